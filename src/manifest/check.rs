//! Checks a set of manifests exactly as the API server and the controller would: the schema's
//! CEL rules, unknown fields, references between resources, fields against the destination.

use std::fmt;

use chrono::{DateTime, Utc};
use kube::CustomResourceExt;
use serde::Serialize;

use super::schema::Violation;
use super::{Located, ManifestSet, Origin, namespace_of, secret_keys};
use crate::api::{Account, Dataflow};
use crate::plan::validate::{self, AccountState, Problem, SecretKeys};

/// One thing wrong, with where it was found.
#[derive(Debug, Clone)]
pub struct Finding {
    pub origin: Origin,
    pub kind: &'static str,
    pub name: String,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} {}): {}: {}", self.origin, self.kind, self.name, self.field, self.message)
    }
}

fn finding<T: kube::Resource>(
    located: &Located<T>,
    kind: &'static str,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Finding {
    let meta = located.object.meta();
    let name = match &meta.namespace {
        Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or("?")),
        None => meta.name.clone().unwrap_or_else(|| "?".into()),
    };
    Finding { origin: located.origin.clone(), kind, name, field: field.into(), message: message.into() }
}

fn from_problem<T: kube::Resource>(located: &Located<T>, kind: &'static str, p: &Problem) -> Finding {
    finding(located, kind, p.field.clone(), format!("{} ({})", p.message, p.reason))
}

/// Every finding over the whole set; empty when everything would be accepted and become Ready.
pub fn check(set: &ManifestSet, now: DateTime<Utc>) -> Vec<Finding> {
    let mut out = Vec::new();
    for d in &set.destinations {
        schema_findings(d, "Destination", &mut out);
        out.extend(validate::check_destination(&d.object.spec).iter().map(|p| from_problem(d, "Destination", p)));
    }
    for a in &set.accounts {
        schema_findings(a, "Account", &mut out);
        out.extend(account_problems(set, &a.object).iter().map(|p| from_problem(a, "Account", p)));
    }
    for df in &set.dataflows {
        schema_findings(df, "Dataflow", &mut out);
        if let Err(problems) = dataflow_check(set, &df.object, now) {
            out.extend(problems.iter().map(|p| from_problem(df, "Dataflow", p)));
        }
    }
    out
}

/// An Account's problems against the Destination and Secret in the set.
pub fn account_problems(set: &ManifestSet, account: &Account) -> Vec<Problem> {
    let ns = namespace_of(&account.metadata);
    let destination = set.destination(&account.spec.destination).map(|d| &d.object);
    let secret = account.spec.credentials_secret_ref.as_ref().map(|r| match set.secret(ns, &r.name) {
        Some(s) => SecretKeys::Keys(secret_keys(&s.object)),
        None => SecretKeys::NotFound,
    });
    validate::check_account(account, destination, secret.as_ref())
}

/// A Dataflow resolved against the set, as the controller would resolve it.
pub fn dataflow_check(
    set: &ManifestSet,
    dataflow: &Dataflow,
    now: DateTime<Utc>,
) -> Result<validate::DataflowPlan, Vec<Problem>> {
    let ns = namespace_of(&dataflow.metadata);
    let account = set.account(ns, &dataflow.spec.account).map(|a| &a.object);
    let destination = account.and_then(|a| set.destination(&a.spec.destination)).map(|d| &d.object);
    let state = match account {
        None => AccountState::NotFound,
        Some(a) => {
            let problems = account_problems(set, a);
            match problems.first() {
                None => AccountState::Ready(a),
                Some(p) => {
                    AccountState::NotReady { reason: p.reason.to_string(), message: validate::summarize(&problems) }
                }
            }
        }
    };
    let enabled_at = dataflow
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| DateTime::<Utc>::from_timestamp(t.0.as_second(), 0).unwrap_or(now))
        .unwrap_or(now);
    validate::check_dataflow(dataflow, state, destination, enabled_at)
}

/// The API server's own checks: the structural schema (types, enums, patterns, bounds, unknown
/// fields), then the CEL rules.
fn schema_findings<T>(located: &Located<T>, kind: &'static str, out: &mut Vec<Finding>)
where
    T: kube::Resource + CustomResourceExt + Serialize + serde::de::DeserializeOwned,
{
    for v in api_server_checks::<T>(&located.raw) {
        out.push(finding(located, kind, v.field, v.message));
    }
}

/// What the API server would refuse in `raw` (an object of kind `T`): structural violations,
/// then, when the object has the right types, its CEL rules.
pub fn api_server_checks<T>(raw: &serde_json::Value) -> Vec<Violation>
where
    T: CustomResourceExt + Serialize + serde::de::DeserializeOwned,
{
    let crd = serde_json::to_value(T::crd()).unwrap_or_default();
    let mut out = match crd.pointer("/spec/versions/0/schema/openAPIV3Schema") {
        Some(schema) => super::schema::check_spec(schema, raw),
        None => Vec::new(),
    };
    if let Ok(typed) = serde_json::from_value::<T>(raw.clone())
        && let Err(errors) = kube::core::cel::validate_cel(&typed)
    {
        out.extend(errors.iter().map(|e| Violation { field: e.field_path.clone(), message: e.message.clone() }));
    }
    out
}

/// Counts, for the summary line.
pub fn counts(set: &ManifestSet) -> String {
    format!(
        "{} Destination(s), {} Account(s), {} Dataflow(s), {} Secret(s)",
        set.destinations.len(),
        set.accounts.len(),
        set.dataflows.len(),
        set.secrets.len()
    )
}
