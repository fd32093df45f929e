//! Connectors: where export files are published. One module per connector kind behind one small
//! trait. Writers are synchronous `std::io::Write`s (the export engine runs on a blocking thread);
//! a file becomes visible under its final name only on `commit`.

pub mod file;
pub mod objects;
pub mod sftp;

use std::collections::BTreeMap;
use std::io::Write;

use crate::api::ConnectorKind;

pub use file::FileConnector;

#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    #[error("connector {connector}: '{target}': {source}")]
    Io { connector: &'static str, target: String, source: std::io::Error },
    #[error("connector {connector}: Account parameter '{parameter}' is missing")]
    MissingParameter { connector: &'static str, parameter: &'static str },
    #[error("connector {0:?} is not implemented yet (File, S3, AzureBlob, GCS and SFTP are)")]
    Unsupported(ConnectorKind),
    #[error("connector {connector}: '{target}': {message}")]
    Remote { connector: &'static str, target: String, message: String },
}

/// An object being written; invisible under its final name until committed.
pub trait ObjectWriter: Write + Send {
    /// Publishes the object atomically under its final name; returns its size in bytes.
    fn commit(self: Box<Self>) -> Result<u64, ConnectorError>;
    /// Discards what was written.
    fn abort(self: Box<Self>);
}

/// A destination that stores named objects.
pub trait Connector: Send + Sync {
    /// A short name for messages, e.g. `File(/data/out)`.
    fn describe(&self) -> String;
    /// A cheap check that the destination is reachable and writable.
    fn probe(&self) -> Result<(), ConnectorError>;
    /// Starts writing the object `name`.
    fn open(&self, name: &str) -> Result<Box<dyn ObjectWriter>, ConnectorError>;
}

/// Builds the connector of a Destination's kind from an Account's parameters.
pub fn connector_for(
    kind: ConnectorKind,
    parameters: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, String>,
) -> Result<Box<dyn Connector>, ConnectorError> {
    match kind {
        ConnectorKind::File => Ok(Box::new(FileConnector::new(required(parameters, "File", "path")?))),
        ConnectorKind::S3 => Ok(Box::new(objects::ObjectStoreConnector::s3(parameters, secrets)?)),
        ConnectorKind::AzureBlob => Ok(Box::new(objects::ObjectStoreConnector::azure(parameters, secrets)?)),
        ConnectorKind::Sftp => Ok(Box::new(sftp::SftpConnector::new(parameters, secrets)?)),
        ConnectorKind::Gcs => Ok(Box::new(objects::ObjectStoreConnector::gcs(parameters, secrets)?)),
        other => Err(ConnectorError::Unsupported(other)),
    }
}

/// A non-empty Account parameter, or the error naming the connector and the parameter.
pub(crate) fn required<'a>(
    parameters: &'a BTreeMap<String, String>,
    connector: &'static str,
    name: &'static str,
) -> Result<&'a String, ConnectorError> {
    parameters
        .get(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConnectorError::MissingParameter { connector, parameter: name })
}

/// Replaces every secret value in a message with `***`: SDK errors sometimes echo what they were
/// given, and messages end up in status, Events and logs.
pub fn redact(message: &str, secrets: &[String]) -> String {
    secrets.iter().filter(|s| s.trim().len() >= 4).fold(message.to_string(), |m, s| m.replace(s.trim(), "***"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn redact_removes_every_secret_value() {
        let secrets = vec!["AKIAEXAMPLE".to_string(), "s3cr3t/key+value".to_string(), "ab".to_string()];
        let message = "signature for AKIAEXAMPLE with s3cr3t/key+value failed (ab)";
        assert_eq!(super::redact(message, &secrets), "signature for *** with *** failed (ab)");
    }
}
