//! Amazon S3 (and S3-compatible stores) through object_store. A file is a multipart upload
//! completed only on commit, so a run that fails leaves no object under the final name.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

use super::{Connector, ConnectorError, ObjectWriter, redact};

/// Bytes buffered before a part is uploaded (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 8 << 20;

pub struct S3Connector {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    secrets: Vec<String>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for S3Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Connector({})", self.describe())
    }
}

impl S3Connector {
    pub fn new(
        parameters: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let bucket = parameters
            .get("bucket")
            .filter(|b| !b.trim().is_empty())
            .ok_or(ConnectorError::MissingParameter { connector: "S3", parameter: "bucket" })?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(parameters.get("region").map_or("us-east-1", String::as_str))
            // A few quick retries inside a request; the run itself retries with backoff.
            .with_retry(object_store::RetryConfig {
                max_retries: 2,
                retry_timeout: std::time::Duration::from_secs(20),
                ..Default::default()
            });
        if let (Some(key), Some(secret)) = (secrets.get("accessKeyId"), secrets.get("secretAccessKey")) {
            builder = builder.with_access_key_id(key.trim()).with_secret_access_key(secret.trim());
        }
        if let Some(endpoint) = parameters.get("endpoint").filter(|e| !e.trim().is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let secret_values: Vec<String> = secrets.values().cloned().collect();
        let store = builder.build().map_err(|e| remote("configuring", bucket, &e.to_string(), &secret_values))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ConnectorError::Io { connector: "S3", target: bucket.clone(), source })?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.clone(),
            prefix: parameters.get("prefix").map(|p| p.trim_matches('/').to_string()).unwrap_or_default(),
            secrets: secret_values,
            runtime: Arc::new(runtime),
        })
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() { Path::from(name) } else { Path::from(format!("{}/{name}", self.prefix)) }
    }
}

fn remote(action: &str, target: &str, message: &str, secrets: &[String]) -> ConnectorError {
    ConnectorError::Remote {
        connector: "S3",
        target: target.to_string(),
        message: redact(&format!("{action}: {message}"), secrets),
    }
}

impl Connector for S3Connector {
    fn describe(&self) -> String {
        format!("S3(s3://{}/{})", self.bucket, self.prefix)
    }

    fn probe(&self) -> Result<(), ConnectorError> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        self.runtime.block_on(self.store.list_with_delimiter(prefix.as_ref())).map(|_| ()).map_err(|e| {
            remote("listing", &format!("s3://{}/{}", self.bucket, self.prefix), &e.to_string(), &self.secrets)
        })
    }

    fn open(&self, name: &str) -> Result<Box<dyn ObjectWriter>, ConnectorError> {
        let path = self.path(name);
        let target = format!("s3://{}/{}", self.bucket, path);
        let upload = self
            .runtime
            .block_on(self.store.put_multipart(&path))
            .map_err(|e| remote("starting upload", &target, &e.to_string(), &self.secrets))?;
        Ok(Box::new(S3Writer {
            upload: Some(upload),
            buffer: Vec::with_capacity(PART_SIZE),
            bytes: 0,
            target,
            runtime: self.runtime.clone(),
            secrets: self.secrets.clone(),
        }))
    }
}

struct S3Writer {
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: Vec<u8>,
    bytes: u64,
    target: String,
    runtime: Arc<tokio::runtime::Runtime>,
    secrets: Vec<String>,
}

impl S3Writer {
    fn upload_part(&mut self) -> std::io::Result<()> {
        let part = PutPayload::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE)));
        let upload = self.upload.as_mut().ok_or_else(|| std::io::Error::other("the upload was already finished"))?;
        let future = upload.put_part(part);
        self.runtime.block_on(future).map_err(|e| {
            std::io::Error::other(redact(&format!("uploading a part of {}: {e}", self.target), &self.secrets))
        })
    }
}

impl Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        self.bytes += buf.len() as u64;
        if self.buffer.len() >= PART_SIZE {
            self.upload_part()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn commit(mut self: Box<Self>) -> Result<u64, ConnectorError> {
        if !self.buffer.is_empty() || self.bytes == 0 {
            self.upload_part().map_err(|e| remote("uploading", &self.target, &e.to_string(), &self.secrets))?;
        }
        let mut upload =
            self.upload.take().ok_or_else(|| remote("completing", &self.target, "already finished", &[]))?;
        self.runtime
            .block_on(upload.complete())
            .map_err(|e| remote("completing upload", &self.target, &e.to_string(), &self.secrets))?;
        Ok(self.bytes)
    }

    fn abort(mut self: Box<Self>) {
        if let Some(mut upload) = self.upload.take() {
            let _ = self.runtime.block_on(upload.abort());
        }
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            let _ = self.runtime.block_on(upload.abort());
        }
    }
}
