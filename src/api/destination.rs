use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;
use super::http::HttpSpec;

/// A destination platform in the catalog: what it is, how Outflow talks to it, and what an
/// Account that connects to it must provide. Cluster-scoped, like a StorageClass.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "outflow.dev",
    version = "v1alpha1",
    kind = "Destination",
    doc = "A destination platform in the catalog (cluster-scoped): category, export type, connector, what an Account must provide, formats, identities and hashing, limits.",
    status = "DestinationStatus",
    shortname = "dest",
    category = "outflow",
    printcolumn(json_path = ".spec.displayName", name = "Display Name", type_ = "string"),
    printcolumn(json_path = ".spec.category", name = "Category", type_ = "string"),
    printcolumn(json_path = ".spec.exportType", name = "Export Type", type_ = "string"),
    printcolumn(json_path = ".spec.connector", name = "Connector", type_ = "string"),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date")
)]
#[x_kube(
    validation = Rule::new("self.exportType != 'Segment' || size(self.identities) > 0").message("a Segment destination lists at least one identity namespace in spec.identities").field_path(".identities"),
    validation = Rule::new("!(self.connector in ['File', 'S3', 'AzureBlob', 'GCS', 'SFTP']) || size(self.formats) > 0").message("a file-based connector lists at least one format in spec.formats").field_path(".formats"),
    validation = Rule::new("self.connector != 'HTTP' || has(self.limits)").message("an HTTP destination states its batch and rate limits in spec.limits").field_path(".limits"),
    validation = Rule::new("self.connector != 'HTTP' || has(self.http)").message("an HTTP destination describes its requests in spec.http").field_path(".http")
)]
#[serde(rename_all = "camelCase")]
pub struct DestinationSpec {
    /// The platform's name as people know it, e.g. "Amazon S3".
    #[validate(length(min = 1, max = 128))]
    pub display_name: String,
    /// What the platform is and what Outflow sends to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The kind of platform: Advertising, EmailMarketing, CloudStorage or Streaming.
    pub category: Category,
    /// What an export sends: `Profile` (files of profiles and their attributes) or `Segment`
    /// (segment membership keyed by identities, often hashed).
    pub export_type: ExportType,
    /// How Outflow talks to the platform.
    pub connector: ConnectorKind,
    /// What an Account for this destination must provide.
    #[serde(default, skip_serializing_if = "AccountRequirements::is_empty")]
    pub account: AccountRequirements,
    /// File formats the platform accepts, for file-based connectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[validate(length(max = 8))]
    pub formats: Vec<FileFormat>,
    /// Compression the platform accepts (`None` means uncompressed files are accepted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Set)]
    #[validate(length(max = 4))]
    pub compression: Vec<Compression>,
    /// Identity namespaces the platform matches on, and the hashing it requires for each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["namespace".into()]))]
    #[validate(length(max = 32))]
    pub identities: Vec<IdentitySpec>,
    /// Default file name template, e.g. `%DESTINATION%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 255))]
    pub file_name_template: Option<String>,
    /// Batch, file and rate limits of the platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The requests of an HTTP destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSpec>,
}

/// The kind of platform a destination is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Category {
    Advertising,
    EmailMarketing,
    CloudStorage,
    Streaming,
}

/// What an export to the destination carries.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ExportType {
    /// Files of profiles and their attributes.
    Profile,
    /// Segment membership (realized, existing, exited) keyed by identities.
    Segment,
}

/// The protocol Outflow speaks to the destination.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ConnectorKind {
    /// A local folder, for development and tests.
    File,
    S3,
    AzureBlob,
    #[serde(rename = "GCS")]
    Gcs,
    #[serde(rename = "SFTP")]
    Sftp,
    #[serde(rename = "HTTP")]
    Http,
    Kafka,
}

impl ConnectorKind {
    /// Whether the connector publishes files (and so needs a format).
    pub fn writes_files(self) -> bool {
        matches!(self, Self::File | Self::S3 | Self::AzureBlob | Self::Gcs | Self::Sftp)
    }
}

/// A file format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FileFormat {
    #[serde(rename = "CSV")]
    Csv,
    /// One JSON object per line.
    JSONLines,
    Parquet,
}

/// A compression codec for exported files.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Compression {
    None,
    Gzip,
}

/// A hashing algorithm a platform requires on an identity.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HashAlgorithm {
    #[serde(rename = "SHA256")]
    Sha256,
}

/// The parameters and credentials an Account must give.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountRequirements {
    /// Plain (non-secret) parameters, such as a bucket, host, endpoint or path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[validate(length(max = 32))]
    pub parameters: Vec<ParameterSpec>,
    /// Keys of the Account's credentials Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[validate(length(max = 32))]
    pub secret_keys: Vec<SecretKeySpec>,
    /// Groups of secret keys of which at least one must be present, e.g. `[password, privateKey]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[validate(length(max = 8))]
    pub one_of_secret_keys: Vec<Vec<String>>,
}

impl AccountRequirements {
    pub fn is_empty(&self) -> bool {
        self.parameters.is_empty() && self.secret_keys.is_empty() && self.one_of_secret_keys.is_empty()
    }
}

/// A parameter an Account gives in `spec.parameters`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    /// The parameter's key in `Account.spec.parameters`.
    #[validate(length(min = 1, max = 63))]
    pub name: String,
    /// What the parameter is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether an Account must give it.
    #[serde(default)]
    pub required: bool,
}

/// A key of the Account's credentials Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySpec {
    /// The key in the Secret's data.
    #[validate(length(min = 1, max = 253))]
    pub name: String,
    /// What the key holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether the Secret must hold it.
    #[serde(default)]
    pub required: bool,
}

/// An identity namespace the platform matches on.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentitySpec {
    /// The namespace in the profile's identityMap, e.g. `email`, `phone`, `crmId`.
    #[validate(length(min = 1, max = 63))]
    pub namespace: String,
    /// The hashing the platform requires for this identity; absent means plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hashing: Option<HashAlgorithm>,
}

/// Limits of the platform.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    /// Rows per file before the export is split into parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 100_000_000))]
    pub max_rows_per_file: Option<u64>,
    /// Identities per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 1_000_000))]
    pub max_batch_size: Option<u32>,
    /// Longest a batch waits before it is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 86_400))]
    pub max_batch_age_seconds: Option<u32>,
    /// Requests per second per Account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 100_000))]
    pub requests_per_second: Option<u32>,
    /// Concurrent requests per Account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 1_000))]
    pub max_concurrent_requests: Option<u32>,
}

/// What the controller last saw of a Destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
