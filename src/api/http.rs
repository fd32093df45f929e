//! The request shape of an HTTP destination: templates rendered per batch, authentication, and
//! how the platform reports rows it rejected. New platforms are added by writing these, not code.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How Outflow calls an HTTP platform. Templates are minijinja (Jinja2) and see `segment`
/// (`id`, `name`), `dataflow`, `run` (`id`, `scheduledTime`), `account` (the Account's
/// parameters), `secret` (the Account's Secret; only ever rendered into the request), `action`
/// (`add` or `remove`), `identityNamespace` (when grouped by it) and `rows`: one object per
/// profile with `id`, `status`, `action`, `lastQualificationTime`, `fields` (the Dataflow's
/// targets, transformed) and `identities` (the targets mapped from `identityMap.<namespace>`, by
/// namespace). Filters: `tojson`, `sha256`, `base64`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    /// How requests authenticate, from the Account's Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HttpAuth>,
    /// The request that adds members (realized and existing). When `remove` is absent it also
    /// carries exits, each row with `action: remove`.
    pub add: HttpRequestTemplate,
    /// The request that removes members (exited). Batches are then never mixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<HttpRequestTemplate>,
    /// Batches hold rows of one identity namespace only (the first the row has, in the order of
    /// the Destination's `identities`), for platforms whose requests name one schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_by_identity_namespace: Option<bool>,
    /// Where a successful response lists the rows it rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_errors: Option<RowErrors>,
}

/// One request, rendered per batch.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestTemplate {
    /// The HTTP method; POST when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
    /// The URL template, e.g. `https://graph.facebook.com/v21.0/{{ account.audienceId }}/users`.
    #[validate(length(min = 1, max = 2048))]
    pub url: String,
    /// Header templates by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body template; JSON bodies usually end in `| tojson`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(max = 65536))]
    pub body: Option<String>,
}

/// An HTTP method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
    Delete,
}

/// Authentication of each request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.type != 'OAuth2' || has(self.tokenUrl)").message("OAuth2 authentication names its token endpoint in tokenUrl").field_path(".tokenUrl"),
    validation = Rule::new("self.type != 'HmacSignature' || has(self.header)").message("HmacSignature authentication names the header that carries the signature").field_path(".header")
)]
pub struct HttpAuth {
    /// `Bearer` (Secret key `token`, or `accessToken`), `Basic` (`username`, `password`),
    /// `ApiKey` (`apiKey`, sent in `header`), `OAuth2` (`clientId`, `clientSecret`, and
    /// `refreshToken` for the refresh-token grant, else client credentials), `HmacSignature`
    /// (the base64 HMAC of the body with `secretKey`, sent in `header`).
    #[serde(rename = "type")]
    pub kind: AuthType,
    /// The header of an API key or a signature; `X-API-Key` for an API key when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 128))]
    pub header: Option<String>,
    /// OAuth2: the token endpoint (a template over `account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 2048))]
    pub token_url: Option<String>,
    /// OAuth2: the scopes asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[validate(length(max = 16))]
    pub scopes: Vec<String>,
    /// HmacSignature: the hash; SHA256 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<HmacAlgorithm>,
}

/// The kind of authentication.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum AuthType {
    None,
    Bearer,
    Basic,
    ApiKey,
    OAuth2,
    HmacSignature,
}

/// The hash of an HMAC signature.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum HmacAlgorithm {
    #[serde(rename = "SHA1")]
    Sha1,
    #[serde(rename = "SHA256")]
    Sha256,
}

/// Where a successful response lists rejected rows, e.g. `{"errors": [{"index": 3, "message":
/// "invalid hash"}]}` is `path: errors, indexField: index, reasonField: message`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.indexField) != has(self.keyField)").message("rowErrors names exactly one of indexField (a position in the batch) and keyField (a value of the row)").field_path(".indexField"),
    validation = Rule::new("!has(self.keyField) || has(self.rowKey)").message("rowErrors.keyField needs rowKey, the row's value it is compared with").field_path(".rowKey")
)]
pub struct RowErrors {
    /// Dot-separated path of the list in the response body.
    #[validate(length(min = 1, max = 256))]
    pub path: String,
    /// The entry's field holding the row's position in the batch (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_field: Option<String>,
    /// Whether `indexField` counts from 0 (the default) or from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 0, max = 1))]
    pub index_base: Option<u8>,
    /// The entry's field holding a value of the row, such as its email, or a list of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_field: Option<String>,
    /// The row's value `keyField` is compared with: `id`, `fields.<target>` or
    /// `identities.<namespace>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_key: Option<String>,
    /// The entry's field holding the platform's reason.
    #[validate(length(min = 1, max = 256))]
    pub reason_field: String,
}

/// How an Account reaches its platform over the network.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// PEM certificates of the CAs that sign the platform's certificate, trusted instead of the
    /// system's roots. Certificates are always verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(length(min = 1, max = 65536))]
    pub ca_bundle: Option<String>,
    /// Lets requests go to link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10,
    /// 100.100.100.200, fd00:ec2::254), which are refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_link_local_addresses: Option<bool>,
    /// Requests per second for this Account, below the Destination's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 100_000))]
    pub requests_per_second: Option<u32>,
    /// Concurrent requests for this Account, below the Destination's limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(range(min = 1, max = 1_000))]
    pub max_concurrent_requests: Option<u32>,
}
