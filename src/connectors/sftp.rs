//! SFTP (russh + russh-sftp), with password or key authentication. A file is written under a
//! temporary name in the target folder and renamed to its final name on commit, so a run that
//! fails leaves no file under the final name.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, decode_secret_key};
use russh_sftp::client::SftpSession;
use russh_sftp::client::fs::File;
use tokio::io::AsyncWriteExt;

use super::{Connector, ConnectorError, ObjectWriter, redact, required};

pub struct SftpConnector {
    host: String,
    port: u16,
    user: String,
    folder: String,
    fingerprint: Option<String>,
    secrets: BTreeMap<String, String>,
    runtime: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for SftpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SftpConnector({})", self.describe())
    }
}

/// Checks the server's host key against the Account's `hostKeyFingerprint` when it gives one.
struct HostKey {
    expected: Option<String>,
}

impl client::Handler for HostKey {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &russh::keys::PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let Some(expected) = &self.expected else { return Ok(true) };
        Ok(match key {
            russh::keys::PublicKeyOrCertificate::PublicKey { key, .. } => {
                key.fingerprint(HashAlg::Sha256).to_string() == *expected
            }
            russh::keys::PublicKeyOrCertificate::Certificate(_) => false,
        })
    }
}

impl SftpConnector {
    pub fn new(
        parameters: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, String>,
    ) -> Result<Self, ConnectorError> {
        let required = |name: &'static str| required(parameters, "SFTP", name).cloned();
        let (host, user, folder) = (required("host")?, required("username")?, required("path")?);
        let port = match parameters.get("port") {
            None => 22,
            Some(p) => p.trim().parse().map_err(|_| ConnectorError::Remote {
                connector: "SFTP",
                target: host.clone(),
                message: format!("parameter 'port' is '{p}', not a port number"),
            })?,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ConnectorError::Io { connector: "SFTP", target: host.clone(), source })?;
        Ok(Self {
            host,
            port,
            user,
            folder: folder.trim_end_matches('/').to_string(),
            fingerprint: parameters.get("hostKeyFingerprint").filter(|f| !f.trim().is_empty()).cloned(),
            secrets: secrets.clone(),
            runtime: Arc::new(runtime),
        })
    }

    fn fail(&self, action: &str, message: impl std::fmt::Display) -> ConnectorError {
        let secrets: Vec<String> = self.secrets.values().cloned().collect();
        ConnectorError::Remote {
            connector: "SFTP",
            target: self.describe(),
            message: redact(&format!("{action}: {message}"), &secrets),
        }
    }

    async fn session(&self) -> Result<SftpSession, ConnectorError> {
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        });
        let handler = HostKey { expected: self.fingerprint.clone() };
        let connect = client::connect(config, (self.host.as_str(), self.port), handler);
        let mut session = tokio::time::timeout(std::time::Duration::from_secs(20), connect)
            .await
            .map_err(|_| self.fail("connecting", "no answer within 20 s"))?
            .map_err(|e| self.fail("connecting (or the host key did not match hostKeyFingerprint)", e))?;
        let authenticated = if let Some(pem) = self.secrets.get("privateKey") {
            let key = decode_secret_key(pem, self.secrets.get("privateKeyPassphrase").map(String::as_str))
                .map_err(|e| self.fail("reading privateKey", e))?;
            let hash = session.best_supported_rsa_hash().await.map_err(|e| self.fail("negotiating", e))?.flatten();
            session.authenticate_publickey(&self.user, PrivateKeyWithHashAlg::new(Arc::new(key), hash)).await
        } else if let Some(password) = self.secrets.get("password") {
            session.authenticate_password(&self.user, password.trim()).await
        } else {
            return Err(self.fail("authenticating", "the Secret has neither 'password' nor 'privateKey'"));
        }
        .map_err(|e| self.fail("authenticating", e))?;
        if !authenticated.success() {
            return Err(
                self.fail("authenticating", format!("the server refused the credentials of user '{}'", self.user))
            );
        }
        let channel = session.channel_open_session().await.map_err(|e| self.fail("opening a channel", e))?;
        channel.request_subsystem(true, "sftp").await.map_err(|e| self.fail("starting sftp", e))?;
        SftpSession::new(channel.into_stream()).await.map_err(|e| self.fail("starting sftp", e))
    }
}

impl Connector for SftpConnector {
    fn describe(&self) -> String {
        format!("SFTP(sftp://{}@{}:{}{})", self.user, self.host, self.port, self.folder)
    }

    fn probe(&self) -> Result<(), ConnectorError> {
        self.runtime.block_on(async {
            let sftp = self.session().await?;
            let meta =
                sftp.metadata(self.folder.as_str()).await.map_err(|e| self.fail("reading the target folder", e))?;
            if meta.is_dir() { Ok(()) } else { Err(self.fail("reading the target folder", "it is not a folder")) }
        })
    }

    fn open(&self, name: &str) -> Result<Box<dyn ObjectWriter>, ConnectorError> {
        let final_path = format!("{}/{name}", self.folder);
        let temp_path = format!("{}/.{name}.tmp-{}", self.folder, std::process::id());
        let (sftp, file) = self.runtime.block_on(async {
            let sftp = self.session().await?;
            let file =
                sftp.create(temp_path.as_str()).await.map_err(|e| self.fail(&format!("creating {temp_path}"), e))?;
            Ok::<_, ConnectorError>((sftp, file))
        })?;
        Ok(Box::new(SftpWriter {
            sftp: Some(sftp),
            file: Some(file),
            temp_path,
            final_path,
            bytes: 0,
            runtime: self.runtime.clone(),
            describe: self.describe(),
        }))
    }
}

struct SftpWriter {
    sftp: Option<SftpSession>,
    file: Option<File>,
    temp_path: String,
    final_path: String,
    bytes: u64,
    runtime: Arc<tokio::runtime::Runtime>,
    describe: String,
}

impl Write for SftpWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let file = self.file.as_mut().ok_or_else(|| std::io::Error::other("the file was already closed"))?;
        self.runtime.block_on(file.write_all(buf))?;
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for SftpWriter {
    fn commit(mut self: Box<Self>) -> Result<u64, ConnectorError> {
        let fail = |action: &str, e: String| ConnectorError::Remote {
            connector: "SFTP",
            target: self.describe.clone(),
            message: format!("{action}: {e}"),
        };
        let (Some(mut file), Some(sftp)) = (self.file.take(), self.sftp.take()) else {
            return Err(fail("committing", "the file was already closed".into()));
        };
        let runtime = self.runtime.clone();
        runtime.block_on(async {
            file.shutdown().await.map_err(|e| fail(&format!("closing {}", self.temp_path), e.to_string()))?;
            // Some servers refuse to rename over an existing file: remove it first.
            let _ = sftp.remove_file(self.final_path.as_str()).await;
            sftp.rename(self.temp_path.as_str(), self.final_path.as_str())
                .await
                .map_err(|e| fail(&format!("renaming to {}", self.final_path), e.to_string()))
        })?;
        Ok(self.bytes)
    }

    fn abort(mut self: Box<Self>) {
        self.discard();
    }
}

impl SftpWriter {
    fn discard(&mut self) {
        if let (Some(mut file), Some(sftp)) = (self.file.take(), self.sftp.take()) {
            let temp = self.temp_path.clone();
            self.runtime.block_on(async move {
                let _ = file.shutdown().await;
                let _ = sftp.remove_file(temp.as_str()).await;
            });
        }
    }
}

impl Drop for SftpWriter {
    fn drop(&mut self) {
        self.discard();
    }
}
