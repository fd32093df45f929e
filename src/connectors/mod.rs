//! Connectors: where export files are published. One module per connector kind behind one small
//! trait. Writers are synchronous `std::io::Write`s (the export engine runs on a blocking thread);
//! a file becomes visible under its final name only on `commit`.

pub mod file;

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
    #[error("connector {0:?} is not implemented yet (File is)")]
    Unsupported(ConnectorKind),
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
    _secrets: &BTreeMap<String, String>,
) -> Result<Box<dyn Connector>, ConnectorError> {
    match kind {
        ConnectorKind::File => {
            let path = parameters
                .get("path")
                .filter(|p| !p.trim().is_empty())
                .ok_or(ConnectorError::MissingParameter { connector: "File", parameter: "path" })?;
            Ok(Box::new(FileConnector::new(path)))
        }
        other => Err(ConnectorError::Unsupported(other)),
    }
}
