//! Connectors: where export files are published. One module per connector kind behind one small
//! trait. Writers are synchronous `std::io::Write`s (the export engine runs on a blocking thread);
//! a file becomes visible under its final name only on `commit`.

pub mod file;
pub mod http;
pub mod kafka;
pub mod objects;
pub mod push;
pub mod sftp;

use std::collections::BTreeMap;
use std::io::Write;

use crate::api::{Account, ConnectorKind, Destination};

pub use file::FileConnector;
pub use push::{PushContext, PushOutcome, PushRow, PushSession, Pusher};

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
    /// The platform refused the credentials or the configuration; retrying will not help.
    #[error("connector {connector}: '{target}': {message}")]
    Rejected { connector: &'static str, target: String, message: String },
    /// A request template of the Destination does not render.
    #[error("connector {connector}: {message}")]
    Template { connector: &'static str, message: String },
}

impl ConnectorError {
    /// Whether the same run fails again until the Account or the Destination changes.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::MissingParameter { .. } | Self::Unsupported(_) | Self::Rejected { .. } | Self::Template { .. }
        )
    }
}

/// Where a run's rows go: files published through a [`Connector`], or rows fed to a [`Pusher`].
pub enum Target {
    Files(Box<dyn Connector>),
    Push(Box<dyn Pusher>),
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::Files(c) => c.describe(),
            Target::Push(p) => p.describe(),
        }
    }

    pub fn probe(&self) -> Result<(), ConnectorError> {
        match self {
            Target::Files(c) => c.probe(),
            Target::Push(p) => p.probe(),
        }
    }
}

/// The target of an Account on its Destination. The Account's `namespace/name` keys the rate
/// limits and tokens its runs share.
pub fn target_for(
    destination: &Destination,
    account: &Account,
    secrets: &BTreeMap<String, String>,
) -> Result<Target, ConnectorError> {
    let spec = &account.spec;
    match destination.spec.connector {
        ConnectorKind::Http => {
            let key = format!(
                "{}/{}",
                account.metadata.namespace.as_deref().unwrap_or_default(),
                account.metadata.name.as_deref().unwrap_or_default()
            );
            let pusher =
                http::HttpPusher::new(&destination.spec, &key, &spec.parameters, spec.connection.as_ref(), secrets)?;
            Ok(Target::Push(Box::new(pusher)))
        }
        ConnectorKind::Kafka => {
            Ok(Target::Push(Box::new(kafka::KafkaPusher::new(&spec.parameters, spec.connection.as_ref(), secrets)?)))
        }
        kind => connector_for(kind, &spec.parameters, secrets).map(Target::Files),
    }
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
