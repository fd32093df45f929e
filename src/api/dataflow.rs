use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Compression, Condition, FileFormat, Schedule};

/// An activation: which segments, which profile fields, to which Account, on what schedule.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "outflow.dev",
    version = "v1alpha1",
    kind = "Dataflow",
    doc = "An activation: which segments and profile fields go to which Account, on what schedule, enabled or not.",
    namespaced,
    status = "DataflowStatus",
    shortname = "df",
    category = "outflow",
    printcolumn(json_path = ".spec.account", name = "Account", type_ = "string"),
    printcolumn(json_path = ".spec.enabled", name = "Enabled", type_ = "boolean"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(json_path = ".status.nextRunTime", name = "Next Run", type_ = "string"),
    printcolumn(
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        name = "Reason",
        type_ = "string",
        priority = 1
    ),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date")
)]
#[x_kube(
    validation = Rule::new("!has(self.mandatoryFields) || self.mandatoryFields.all(m, self.fields.exists(f, f.target == m))").message("every entry of mandatoryFields must be the target of one of spec.fields").field_path(".mandatoryFields"),
    validation = Rule::new("!has(self.deduplication) || !has(self.deduplication.fields) || self.deduplication.fields.all(m, self.fields.exists(f, f.target == m))").message("every entry of deduplication.fields must be the target of one of spec.fields").field_path(".deduplication.fields")
)]
#[serde(rename_all = "camelCase")]
pub struct DataflowSpec {
    /// The Account (in the same namespace) the data is sent to.
    #[validate(length(min = 1, max = 253))]
    pub account: String,
    /// Whether the Dataflow runs. Turning it on requires the `activate` permission.
    pub enabled: bool,
    /// The segments to activate, each with its schedule.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    #[validate(length(min = 1, max = 100))]
    pub segments: Vec<SegmentSpec>,
    /// The profile fields to export: a source path into the profile, the target column name, and
    /// transforms applied in order.
    #[x_kube(merge_strategy = ListMerge::Map(vec!["target".into()]))]
    #[validate(length(min = 1, max = 200))]
    pub fields: Vec<FieldMapping>,
    /// Targets a profile must have a value for; profiles missing one are excluded and counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[validate(length(max = 50))]
    pub mandatory_fields: Vec<String>,
    /// The key profiles are deduplicated on; no deduplication when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduplication: Option<Deduplication>,
    /// Which consent a profile must have given; marketing email consent is enforced when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent: Option<ConsentPolicy>,
    /// The files written, for file-based destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<FileOutput>,
    /// Whether a segment's run may start while its previous run still goes (false when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_overlap: Option<bool>,
    /// A run missed by less than this many seconds still starts, once; older ones are recorded
    /// as missed. The controller's default applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0, max = 604_800))]
    pub starting_deadline_seconds: Option<u32>,
    /// How many runs the status keeps (10 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 50))]
    pub run_history_limit: Option<u32>,
    /// Settings of the Kubernetes Jobs that run exports (Job executor only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobOptions>,
}

/// A segment to activate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentSpec {
    /// The segment ID in the profile store's segmentMembership.
    #[validate(length(min = 1, max = 128))]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"))]
    pub id: String,
    /// A display name, usable in file names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 128))]
    pub name: Option<String>,
    /// When the segment is exported.
    pub schedule: Schedule,
    /// `Full` exports every member each run; `Incremental` exports the changes since the last
    /// successful run (the first run is full). Full when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export_mode: Option<ExportMode>,
    /// File name template for this segment, overriding the Dataflow's and the Destination's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 255))]
    pub file_name_template: Option<String>,
}

/// How much of a segment a run exports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum ExportMode {
    #[default]
    Full,
    Incremental,
}

/// One exported column.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(
    validation = Rule::new("!has(self.transforms) || !('SHA256' in self.transforms) || !self.source.endsWith('lastQualificationTime')").message("SHA256 applies only to string fields; lastQualificationTime is a timestamp").field_path(".transforms")
)]
#[serde(rename_all = "camelCase")]
pub struct FieldMapping {
    /// Dotted path into the profile: `person.name.firstName`, `personalEmail.address`,
    /// `identityMap.email` (the primary id of that namespace), `segmentMembership.status`.
    #[validate(length(min = 1, max = 256))]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"))]
    pub source: String,
    /// The column (or attribute) name at the destination.
    #[validate(length(min = 1, max = 128))]
    #[schemars(regex(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]*$"))]
    pub target: String,
    /// Transforms applied in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    #[validate(length(max = 8))]
    pub transforms: Vec<Transform>,
}

/// A value transform.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Transform {
    /// Remove leading and trailing white space.
    Trim,
    /// Lower-case the value.
    Lowercase,
    /// SHA-256 hex of the normalized value (emails trimmed and lower-cased, phones to E.164
    /// digits); a value that is already a SHA-256 hex is left alone.
    #[serde(rename = "SHA256")]
    Sha256,
}

/// The deduplication key: an identity namespace or up to two exported fields.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.identity) != has(self.fields)").message("deduplication takes exactly one of identity or fields"))]
#[serde(rename_all = "camelCase")]
pub struct Deduplication {
    /// An identity namespace, e.g. `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 63))]
    pub identity: Option<String>,
    /// One or two targets of spec.fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 2))]
    pub fields: Option<Vec<String>>,
}

/// Consent enforcement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentPolicy {
    /// Exclude profiles that did not consent to marketing email (true when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforce: Option<bool>,
}

/// How files are written.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileOutput {
    /// File format; it must be one the Destination accepts.
    pub format: FileFormat,
    /// Compression; None when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// CSV options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvOptions>,
    /// Rows per file before a new part starts (5,000,000 when absent, or the Destination's limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 100_000_000))]
    pub max_rows_per_file: Option<u64>,
    /// File name template with macros `%DESTINATION%`, `%SEGMENT_ID%`, `%SEGMENT_NAME%`,
    /// `%DATETIME(fmt)%`, `%TIMESTAMP%`; overrides the Destination's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 255))]
    pub file_name_template: Option<String>,
}

/// CSV dialect.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CsvOptions {
    /// One-character delimiter (`,` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 1))]
    pub delimiter: Option<String>,
    /// One-character quote (`"` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 1))]
    pub quote: Option<String>,
    /// One-character escape; quotes are doubled when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 1))]
    pub escape: Option<String>,
    /// Write a header line (true when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<bool>,
    /// Text written for a missing value (empty when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 16))]
    pub null_value: Option<String>,
}

/// Settings of the Kubernetes Jobs that run this Dataflow's exports.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobOptions {
    /// Retries of a failed pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,
    /// Longest a run may take, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1))]
    pub active_deadline_seconds: Option<i64>,
    /// How long a finished Job is kept, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0))]
    pub ttl_seconds_after_finished: Option<i32>,
}

/// What the controller last saw and did for a Dataflow.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DataflowStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (configuration valid), `Reconciling`, `Stalled`, `Degraded` (last run failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// The earliest next run over all segments (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    /// Per segment: schedule and incremental state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["id".into()]))]
    pub segments: Vec<SegmentStatus>,
    /// The most recent runs, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Atomic)]
    pub history: Vec<RunRecord>,
    /// The last `outflow.dev/run-requested-at` token the controller acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_run_request: Option<String>,
    /// Set when a run failed permanently: the versions of the Dataflow, Account and Destination
    /// it failed with. Runs resume once any of them changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stalled_on: Option<String>,
}

/// Schedule and incremental state of one segment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SegmentStatus {
    /// The segment ID.
    pub id: String,
    /// The next scheduled run (RFC 3339); absent when nothing more is scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<String>,
    /// The scheduled time of the last run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled_time: Option<String>,
    /// The scheduled time of the last run that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// Incremental exports send changes qualified after this time; advanced only once the files
    /// of a run are committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
    /// The result of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<RunResult>,
}

/// How a run ended.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RunResult {
    Running,
    Succeeded,
    Failed,
    Skipped,
    Missed,
}

/// One export run, as kept in the Dataflow's history.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Deterministic run ID: Dataflow, segment and scheduled time.
    pub id: String,
    /// The segment ID.
    pub segment: String,
    /// When the run was due (RFC 3339).
    pub scheduled_time: String,
    /// When it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<String>,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// How it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResult>,
    /// Profiles read from the store.
    #[serde(default)]
    pub profiles_read: u64,
    /// Profiles exported.
    #[serde(default)]
    pub exported: u64,
    /// Profiles excluded for lack of consent.
    #[serde(default)]
    pub excluded_consent: u64,
    /// Profiles excluded for a missing mandatory field.
    #[serde(default)]
    pub excluded_mandatory: u64,
    /// Profiles excluded as duplicates.
    #[serde(default)]
    pub excluded_duplicate: u64,
    /// Rows the destination rejected or that could not be encoded.
    #[serde(default)]
    pub failed: u64,
    /// Files published.
    #[serde(default)]
    pub files: u64,
    /// Bytes published.
    #[serde(default)]
    pub bytes: u64,
    /// A short message: the error of a failed run, the reason of a skipped or missed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The failure needs a change of configuration or credentials (bad credentials, an unknown
    /// segment): runs stop until the Dataflow, its Account or its Destination changes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub permanent: bool,
    /// The first rows the platform rejected, with its reasons. They are sent again by the next
    /// run: the watermark stops before the earliest of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[validate(length(max = 10))]
    pub failed_rows: Vec<RowFailure>,
}

/// A row a platform rejected.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RowFailure {
    /// The profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_id: Option<String>,
    /// The platform's reason.
    #[validate(length(max = 512))]
    pub reason: String,
}
