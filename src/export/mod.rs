//! The data plane: read profiles from the profile store as Arrow record batches, select the
//! segment's members, enforce consent, transform fields, encode files, publish them atomically
//! through a connector and report what happened.
//!
//! Pure parts: [`plan`], [`select`], [`transform`], the line encoders of [`encode`]. I/O:
//! [`source`], [`run`], and the connectors.

pub mod encode;
pub mod extract;
pub mod plan;
pub mod record;
pub mod run;
pub mod select;
pub mod source;
pub mod transform;

use serde::Serialize;

pub use plan::ExportPlan;
pub use run::{NoProgress, Progress, run_export, run_export_to, run_push};

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Encode(#[from] encode::EncodeError),
    #[error(transparent)]
    Connector(#[from] crate::connectors::ConnectorError),
    #[error("file name: {0}")]
    FileName(String),
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One published file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileReport {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunReport {
    pub dataflow: String,
    pub segment: String,
    pub profiles_read: u64,
    pub exported: u64,
    pub excluded_consent: u64,
    pub excluded_mandatory: u64,
    pub excluded_duplicate: u64,
    pub failed: u64,
    /// The first rows the platform rejected, with its reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_rows: Vec<crate::connectors::push::RowFailure>,
    /// Requests or messages sent to a platform fed rows, retries included.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub requests: u64,
    pub files: Vec<FileReport>,
    pub duration_ms: u64,
    /// The latest qualification time among the selected members (RFC 3339): the watermark of
    /// the next incremental run.
    pub watermark: Option<String>,
}
