//! Object stores through object_store: Amazon S3 (and S3-compatible stores) and Azure Blob
//! Storage. A file is a multipart upload (block list) completed only on commit, so a run that
//! fails leaves no object under the final name.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload};

use super::{Connector, ConnectorError, ObjectWriter, redact, required};

/// Bytes buffered before a part is uploaded (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 8 << 20;

pub struct ObjectStoreConnector {
    /// `S3` or `AzureBlob`, for messages.
    connector: &'static str,
    /// `s3` or `az`, for object URLs.
    scheme: &'static str,
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
    secrets: Vec<String>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ObjectStoreConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectStoreConnector({})", self.describe())
    }
}

/// A few quick retries inside a request; the run itself retries with backoff.
fn retries() -> object_store::RetryConfig {
    object_store::RetryConfig {
        max_retries: 2,
        retry_timeout: std::time::Duration::from_secs(20),
        ..Default::default()
    }
}

impl ObjectStoreConnector {
    /// Azure Blob Storage: parameters `account`, `container`, `endpoint` (e.g. Azurite's
    /// `http://127.0.0.1:10000/devstoreaccount1`), `prefix`; secret `accountKey` or `sasToken`.
    pub fn azure(
        parameters: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let (account, container) =
            (required(parameters, "AzureBlob", "account")?, required(parameters, "AzureBlob", "container")?);
        let mut builder =
            MicrosoftAzureBuilder::new().with_account(account).with_container_name(container).with_retry(retries());
        if let Some(key) = secrets.get("accountKey") {
            builder = builder.with_access_key(key.trim());
        } else if let Some(sas) = secrets.get("sasToken") {
            let pairs: Vec<(String, String)> = sas
                .trim()
                .trim_start_matches('?')
                .split('&')
                .filter_map(|p| p.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
                .collect();
            builder = builder.with_sas_authorization(pairs);
        }
        if let Some(endpoint) = parameters.get("endpoint").filter(|e| !e.trim().is_empty()) {
            builder = builder.with_endpoint(endpoint.clone()).with_allow_http(endpoint.starts_with("http://"));
        }
        let secret_values: Vec<String> = secrets.values().cloned().collect();
        let store = builder
            .build()
            .map_err(|e| remote("AzureBlob", "configuring", container, &e.to_string(), &secret_values))?;
        Self::with_store("AzureBlob", "az", Arc::new(store), container, parameters, secret_values)
    }

    /// Google Cloud Storage: parameters `bucket`, `endpoint` (an emulator's base URL), `prefix`;
    /// secret `serviceAccountKey` (the JSON key).
    pub fn gcs(
        parameters: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let bucket = required(parameters, "GCS", "bucket")?;
        let mut builder = GoogleCloudStorageBuilder::new().with_bucket_name(bucket).with_retry(retries());
        // Without a key object_store falls back to the cloud metadata server for a token: never.
        let key = secrets.get("serviceAccountKey").ok_or_else(|| ConnectorError::Remote {
            connector: "GCS",
            target: bucket.clone(),
            message: "the Account's Secret has no 'serviceAccountKey'".into(),
        })?;
        builder = builder.with_service_account_key(key.trim());
        if let Some(endpoint) = parameters.get("endpoint").filter(|e| !e.trim().is_empty()) {
            builder = builder.with_config(object_store::gcp::GoogleConfigKey::BaseUrl, endpoint.clone());
        }
        let secret_values: Vec<String> = secrets.values().cloned().collect();
        let store =
            builder.build().map_err(|e| remote("GCS", "configuring", bucket, &e.to_string(), &secret_values))?;
        Self::with_store("GCS", "gs", Arc::new(store), bucket, parameters, secret_values)
    }

    fn with_store(
        connector: &'static str,
        scheme: &'static str,
        store: Arc<dyn ObjectStore>,
        bucket: &str,
        parameters: &BTreeMap<String, String>,
        secrets: Vec<String>,
    ) -> Result<Self, ConnectorError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ConnectorError::Io { connector, target: bucket.to_string(), source })?;
        Ok(Self {
            connector,
            scheme,
            store,
            bucket: bucket.to_string(),
            prefix: parameters.get("prefix").map(|p| p.trim_matches('/').to_string()).unwrap_or_default(),
            secrets,
            runtime: Arc::new(runtime),
        })
    }

    /// Amazon S3: parameters `bucket`, `region`, `endpoint` (S3-compatible stores), `prefix`;
    /// secrets `accessKeyId` and `secretAccessKey`.
    pub fn s3(
        parameters: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let bucket = required(parameters, "S3", "bucket")?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(parameters.get("region").map_or("us-east-1", String::as_str))
            .with_retry(retries());
        // Without keys object_store would ask the cloud metadata server for credentials: never.
        let (Some(key), Some(secret)) = (secrets.get("accessKeyId"), secrets.get("secretAccessKey")) else {
            return Err(ConnectorError::Remote {
                connector: "S3",
                target: bucket.clone(),
                message: "the Account's Secret needs 'accessKeyId' and 'secretAccessKey'".into(),
            });
        };
        builder = builder.with_access_key_id(key.trim()).with_secret_access_key(secret.trim());
        if let Some(endpoint) = parameters.get("endpoint").filter(|e| !e.trim().is_empty()) {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let secret_values: Vec<String> = secrets.values().cloned().collect();
        let store = builder.build().map_err(|e| remote("S3", "configuring", bucket, &e.to_string(), &secret_values))?;
        Self::with_store("S3", "s3", Arc::new(store), bucket, parameters, secret_values)
    }

    fn path(&self, name: &str) -> Path {
        if self.prefix.is_empty() { Path::from(name) } else { Path::from(format!("{}/{name}", self.prefix)) }
    }
}

fn remote(connector: &'static str, action: &str, target: &str, message: &str, secrets: &[String]) -> ConnectorError {
    ConnectorError::Remote {
        connector,
        target: target.to_string(),
        message: redact(&format!("{action}: {message}"), secrets),
    }
}

impl Connector for ObjectStoreConnector {
    fn describe(&self) -> String {
        format!("{}({}://{}/{})", self.connector, self.scheme, self.bucket, self.prefix)
    }

    fn probe(&self) -> Result<(), ConnectorError> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        self.runtime.block_on(self.store.list_with_delimiter(prefix.as_ref())).map(|_| ()).map_err(|e| {
            remote(
                self.connector,
                "listing",
                &format!("{}://{}/{}", self.scheme, self.bucket, self.prefix),
                &e.to_string(),
                &self.secrets,
            )
        })
    }

    fn open(&self, name: &str) -> Result<Box<dyn ObjectWriter>, ConnectorError> {
        let path = self.path(name);
        let target = format!("{}://{}/{}", self.scheme, self.bucket, path);
        let upload = self
            .runtime
            .block_on(self.store.put_multipart(&path))
            .map_err(|e| remote(self.connector, "starting upload", &target, &e.to_string(), &self.secrets))?;
        Ok(Box::new(StoreWriter {
            connector: self.connector,
            upload: Some(upload),
            buffer: Vec::with_capacity(PART_SIZE),
            bytes: 0,
            target,
            runtime: self.runtime.clone(),
            secrets: self.secrets.clone(),
        }))
    }
}

struct StoreWriter {
    connector: &'static str,
    upload: Option<Box<dyn MultipartUpload>>,
    buffer: Vec<u8>,
    bytes: u64,
    target: String,
    runtime: Arc<tokio::runtime::Runtime>,
    secrets: Vec<String>,
}

impl StoreWriter {
    fn upload_part(&mut self) -> std::io::Result<()> {
        let part = PutPayload::from(std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE)));
        let upload = self.upload.as_mut().ok_or_else(|| std::io::Error::other("the upload was already finished"))?;
        let future = upload.put_part(part);
        self.runtime.block_on(future).map_err(|e| {
            std::io::Error::other(redact(&format!("uploading a part of {}: {e}", self.target), &self.secrets))
        })
    }
}

impl Write for StoreWriter {
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

impl ObjectWriter for StoreWriter {
    fn commit(mut self: Box<Self>) -> Result<u64, ConnectorError> {
        if !self.buffer.is_empty() || self.bytes == 0 {
            self.upload_part()
                .map_err(|e| remote(self.connector, "uploading", &self.target, &e.to_string(), &self.secrets))?;
        }
        let mut upload = self
            .upload
            .take()
            .ok_or_else(|| remote(self.connector, "completing", &self.target, "already finished", &[]))?;
        self.runtime
            .block_on(upload.complete())
            .map_err(|e| remote(self.connector, "completing upload", &self.target, &e.to_string(), &self.secrets))?;
        Ok(self.bytes)
    }

    fn abort(mut self: Box<Self>) {
        if let Some(mut upload) = self.upload.take() {
            let _ = self.runtime.block_on(upload.abort());
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        if let Some(mut upload) = self.upload.take() {
            let _ = self.runtime.block_on(upload.abort());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn missing_parameters_are_named() {
        let err = ObjectStoreConnector::gcs(&map(&[]), &map(&[])).unwrap_err();
        assert_eq!(err.to_string(), "connector GCS: Account parameter 'bucket' is missing");
        let err = ObjectStoreConnector::gcs(&map(&[("bucket", "b")]), &map(&[])).unwrap_err();
        assert_eq!(err.to_string(), "connector GCS: 'b': the Account's Secret has no 'serviceAccountKey'");
        let err = ObjectStoreConnector::azure(&map(&[("account", "a")]), &map(&[])).unwrap_err();
        assert_eq!(err.to_string(), "connector AzureBlob: Account parameter 'container' is missing");
    }

    #[test]
    fn a_bad_service_account_key_is_refused_without_echoing_it() {
        let key = "{\"private_key\": \"-----BEGIN PRIVATE KEY----- s3cr3t-material\"";
        let err = ObjectStoreConnector::gcs(&map(&[("bucket", "b")]), &map(&[("serviceAccountKey", key)])).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("connector GCS: 'b': configuring"), "{message}");
        assert!(!message.contains("s3cr3t-material"), "{message}");
    }
}
