use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;
use super::http::ConnectionSpec;

/// A connection to one destination platform: its parameters, and a Secret with the credentials.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "outflow.dev",
    version = "v1alpha1",
    kind = "Account",
    doc = "A connection to one destination platform: parameters, and a Secret with the credentials.",
    namespaced,
    status = "AccountStatus",
    shortname = "acct",
    category = "outflow",
    printcolumn(json_path = ".spec.destination", name = "Destination", type_ = "string"),
    printcolumn(
        json_path = ".status.conditions[?(@.type==\"Connected\")].status",
        name = "Connected",
        type_ = "string"
    ),
    printcolumn(json_path = ".status.conditions[?(@.type==\"Ready\")].status", name = "Ready", type_ = "string"),
    printcolumn(
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        name = "Reason",
        type_ = "string",
        priority = 1
    ),
    printcolumn(json_path = ".metadata.creationTimestamp", name = "Age", type_ = "date")
)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpec {
    /// The name of the cluster-scoped Destination this account connects to.
    #[validate(length(min = 1, max = 253))]
    pub destination: String,
    /// Plain (non-secret) parameters the Destination asks for, such as a bucket, host or path.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[validate(length(max = 64))]
    pub parameters: BTreeMap<String, String>,
    /// The Secret, in the Account's namespace, that holds the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<SecretReference>,
    /// TLS trust, address rules and rate limits of this connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionSpec>,
}

/// A reference to a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    /// The Secret's name.
    #[validate(length(min = 1, max = 253))]
    pub name: String,
}

/// What the controller last saw of an Account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// The generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (references resolve), `Connected` (a cheap probe of the platform succeeded),
    /// `Reconciling`, `Stalled`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
}
