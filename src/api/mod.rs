//! The three resource types of `outflow.dev/v1alpha1` and their schemas. No I/O lives here.

// kube's `printcolumn(..., type_ = ...)` repeats keys by design; clippy reads them as duplicates.
#[allow(clippy::duplicated_attributes)]
mod account;
mod conditions;
#[allow(clippy::duplicated_attributes)]
mod dataflow;
#[allow(clippy::duplicated_attributes)]
mod destination;
mod http;
mod schedule;

pub use account::{Account, AccountSpec, AccountStatus, SecretReference};
pub use conditions::{Condition, ConditionStatus};
pub use dataflow::{
    ConsentPolicy, CsvOptions, Dataflow, DataflowSpec, DataflowStatus, Deduplication, ExportMode, FieldMapping,
    FileOutput, JobOptions, RowFailure, RunRecord, RunResult, SegmentSpec, SegmentStatus, Transform,
};
pub use destination::{
    AccountRequirements, Category, Compression, ConnectorKind, Destination, DestinationSpec, DestinationStatus,
    ExportType, FileFormat, HashAlgorithm, IdentitySpec, Limits, ParameterSpec, SecretKeySpec,
};
pub use http::{
    AuthType, ConnectionSpec, HmacAlgorithm, HttpAuth, HttpMethod, HttpRequestTemplate, HttpSpec, RowErrors,
};
pub use schedule::{DailySchedule, IntervalSchedule, OnceSchedule, Schedule, Weekday, WeeklySchedule};

/// The API group of every Outflow resource.
pub const GROUP: &str = "outflow.dev";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// The field manager the controller writes status with (server-side apply).
pub const FIELD_MANAGER: &str = "outflow-controller";

/// Annotation a user sets to ask for a run now (any token; echoed in status once handled).
pub const RUN_REQUESTED_ANNOTATION: &str = "outflow.dev/run-requested-at";
