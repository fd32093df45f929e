//! Validation and reference resolution: is a Destination consistent, does an Account give what
//! its Destination asks for, does a Dataflow fit its Account and Destination. Pure functions over
//! already-fetched objects, shared by the controller, `outflow validate` and local mode.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};

use super::fields::{FieldType, SourceField};
use super::file_name;
use super::schedule::SegmentSchedule;
use crate::api::{
    Account, ConnectorKind, Dataflow, DataflowSpec, Destination, DestinationSpec, ExportMode, ExportType, FileFormat,
    HashAlgorithm, Transform,
};

/// A CamelCase reason, as it appears on a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    InvalidSpec,
    InvalidSchedule,
    InvalidField,
    UnsupportedFormat,
    HashingRequired,
    UnknownIdentity,
    DestinationNotFound,
    DestinationNotReady,
    SecretNotFound,
    MissingSecretKey,
    MissingParameter,
    UnknownParameter,
    AccountNotFound,
    AccountNotReady,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSpec => "InvalidSpec",
            Self::InvalidSchedule => "InvalidSchedule",
            Self::InvalidField => "InvalidField",
            Self::UnsupportedFormat => "UnsupportedFormat",
            Self::HashingRequired => "HashingRequired",
            Self::UnknownIdentity => "UnknownIdentity",
            Self::DestinationNotFound => "DestinationNotFound",
            Self::DestinationNotReady => "DestinationNotReady",
            Self::SecretNotFound => "SecretNotFound",
            Self::MissingSecretKey => "MissingSecretKey",
            Self::MissingParameter => "MissingParameter",
            Self::UnknownParameter => "UnknownParameter",
            Self::AccountNotFound => "AccountNotFound",
            Self::AccountNotReady => "AccountNotReady",
        }
    }

    /// A problem in the object's own spec: only an edit of it fixes it (the object is Stalled).
    /// Other reasons wait for another object to appear or change.
    pub fn is_in_own_spec(self) -> bool {
        !matches!(
            self,
            Self::DestinationNotFound
                | Self::DestinationNotReady
                | Self::SecretNotFound
                | Self::MissingSecretKey
                | Self::AccountNotFound
                | Self::AccountNotReady
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with a resource: a reason, the field it is about, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    /// A path such as `spec.fields[2].source`.
    pub field: String,
    pub message: String,
}

impl Problem {
    fn new(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { reason, field: field.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Joins problems into the one message a condition carries.
pub fn summarize(problems: &[Problem]) -> String {
    let mut lines: Vec<String> = problems.iter().take(5).map(ToString::to_string).collect();
    if problems.len() > 5 {
        lines.push(format!("and {} more", problems.len() - 5));
    }
    lines.join("; ")
}

/// Checks a catalog entry on its own.
pub fn check_destination(spec: &DestinationSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    if spec.connector.writes_files() && spec.formats.is_empty() {
        problems.push(Problem::new(
            Reason::InvalidSpec,
            "spec.formats",
            format!("connector {:?} writes files and needs at least one format", spec.connector),
        ));
    }
    if spec.export_type == ExportType::Segment && spec.identities.is_empty() {
        problems.push(Problem::new(
            Reason::InvalidSpec,
            "spec.identities",
            "a Segment destination lists at least one identity namespace",
        ));
    }
    if let Some(template) = &spec.file_name_template
        && let Err(e) = file_name::validate(template)
    {
        problems.push(Problem::new(Reason::InvalidSpec, "spec.fileNameTemplate", e.to_string()));
    }
    push_duplicates(
        &mut problems,
        "spec.identities",
        "namespace",
        spec.identities.iter().map(|i| i.namespace.as_str()),
    );
    push_duplicates(
        &mut problems,
        "spec.account.parameters",
        "name",
        spec.account.parameters.iter().map(|p| p.name.as_str()),
    );
    push_duplicates(
        &mut problems,
        "spec.account.secretKeys",
        "name",
        spec.account.secret_keys.iter().map(|p| p.name.as_str()),
    );
    problems
}

fn push_duplicates<'a>(problems: &mut Vec<Problem>, field: &str, key: &str, values: impl Iterator<Item = &'a str>) {
    let mut seen = HashSet::new();
    for (i, v) in values.enumerate() {
        if !seen.insert(v) {
            problems.push(Problem::new(
                Reason::InvalidSpec,
                format!("{field}[{i}].{key}"),
                format!("duplicate {key} '{v}'"),
            ));
        }
    }
}

/// What is known of the Secret an Account references: never its values, only its keys.
#[derive(Debug, Clone)]
pub enum SecretKeys {
    NotFound,
    Keys(BTreeSet<String>),
}

/// Checks an Account against its Destination and the keys of its Secret. `secret` is `None`
/// when the Account names no Secret.
pub fn check_account(
    account: &Account,
    destination: Option<&Destination>,
    secret: Option<&SecretKeys>,
) -> Vec<Problem> {
    let spec = &account.spec;
    let Some(destination) = destination else {
        return vec![Problem::new(
            Reason::DestinationNotFound,
            "spec.destination",
            format!(
                "Destination '{}' does not exist (list the catalog with `kubectl get destinations`)",
                spec.destination
            ),
        )];
    };
    let requirements = &destination.spec.account;
    let mut problems = Vec::new();
    for param in requirements.parameters.iter().filter(|p| p.required) {
        if spec.parameters.get(&param.name).is_none_or(|v| v.trim().is_empty()) {
            problems.push(Problem::new(
                Reason::MissingParameter,
                format!("spec.parameters.{}", param.name),
                format!(
                    "Destination '{}' requires parameter '{}'{}",
                    spec.destination,
                    param.name,
                    describe(&param.description)
                ),
            ));
        }
    }
    let known: BTreeSet<&str> = requirements.parameters.iter().map(|p| p.name.as_str()).collect();
    for name in spec.parameters.keys().filter(|k| !known.contains(k.as_str())) {
        problems.push(Problem::new(
            Reason::UnknownParameter,
            format!("spec.parameters.{name}"),
            format!(
                "Destination '{}' has no parameter '{name}' (it takes: {})",
                spec.destination,
                join_or_none(known.iter().copied())
            ),
        ));
    }
    let needs_secret =
        requirements.secret_keys.iter().any(|k| k.required) || !requirements.one_of_secret_keys.is_empty();
    match (&spec.credentials_secret_ref, secret) {
        (None, _) if needs_secret => problems.push(Problem::new(
            Reason::SecretNotFound,
            "spec.credentialsSecretRef",
            format!(
                "Destination '{}' needs credentials; name a Secret with keys {}",
                spec.destination,
                required_keys(destination)
            ),
        )),
        (Some(r), Some(SecretKeys::NotFound) | None) => problems.push(Problem::new(
            Reason::SecretNotFound,
            "spec.credentialsSecretRef.name",
            format!(
                "Secret '{}' does not exist in namespace '{}'",
                r.name,
                account.metadata.namespace.as_deref().unwrap_or("default")
            ),
        )),
        (Some(r), Some(SecretKeys::Keys(keys))) => {
            let missing: Vec<&str> = requirements
                .secret_keys
                .iter()
                .filter(|k| k.required && !keys.contains(&k.name))
                .map(|k| k.name.as_str())
                .collect();
            if !missing.is_empty() {
                problems.push(Problem::new(
                    Reason::MissingSecretKey,
                    "spec.credentialsSecretRef.name",
                    format!(
                        "Secret '{}' has no key {}",
                        r.name,
                        missing.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            for group in &requirements.one_of_secret_keys {
                if !group.iter().any(|k| keys.contains(k)) {
                    problems.push(Problem::new(
                        Reason::MissingSecretKey,
                        "spec.credentialsSecretRef.name",
                        format!(
                            "Secret '{}' needs one of the keys {}",
                            r.name,
                            group.iter().map(|k| format!("'{k}'")).collect::<Vec<_>>().join(", ")
                        ),
                    ));
                }
            }
        }
        _ => {}
    }
    problems
}

fn describe(description: &Option<String>) -> String {
    description.as_ref().map(|d| format!(" ({d})")).unwrap_or_default()
}

fn join_or_none<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = items.collect();
    if all.is_empty() { "none".into() } else { all.join(", ") }
}

fn required_keys(destination: &Destination) -> String {
    let req = &destination.spec.account;
    let mut parts: Vec<String> =
        req.secret_keys.iter().filter(|k| k.required).map(|k| format!("'{}'", k.name)).collect();
    parts.extend(req.one_of_secret_keys.iter().map(|g| format!("one of {}", g.join("/"))));
    parts.join(", ")
}

/// The state of a Dataflow's Account, as the Dataflow reconciler sees it.
pub enum AccountState<'a> {
    NotFound,
    NotReady { reason: String, message: String },
    Ready(&'a Account),
}

/// A segment whose schedule has been validated.
#[derive(Debug, Clone)]
pub struct PlannedSegment {
    pub id: String,
    pub schedule: SegmentSchedule,
    pub mode: ExportMode,
}

/// A Dataflow resolved against its Account and Destination.
#[derive(Debug, Clone)]
pub struct DataflowPlan {
    pub segments: Vec<PlannedSegment>,
    pub fields: Vec<(SourceField, String, Vec<Transform>)>,
    pub format: Option<FileFormat>,
}

/// Checks a Dataflow's own spec (what the API server's schema cannot), then its fit with its
/// Account and Destination. `enabled_at` anchors `once` schedules that have no time.
pub fn check_dataflow(
    dataflow: &Dataflow,
    account: AccountState<'_>,
    destination: Option<&Destination>,
    enabled_at: DateTime<Utc>,
) -> Result<DataflowPlan, Vec<Problem>> {
    let spec = &dataflow.spec;
    let (segments, fields, mut problems) = check_dataflow_spec(spec, enabled_at);
    match account {
        AccountState::NotFound => problems.push(Problem::new(
            Reason::AccountNotFound,
            "spec.account",
            format!(
                "Account '{}' does not exist in namespace '{}'",
                spec.account,
                dataflow.metadata.namespace.as_deref().unwrap_or("default")
            ),
        )),
        AccountState::NotReady { ref reason, ref message } => problems.push(Problem::new(
            Reason::AccountNotReady,
            "spec.account",
            format!("Account '{}' is not ready ({reason}): {message}", spec.account),
        )),
        AccountState::Ready(_) => {}
    }
    let mut format = None;
    if let Some(destination) = destination {
        format = check_fit(spec, &fields, destination, &mut problems);
    } else if matches!(account, AccountState::Ready(_)) {
        problems.push(Problem::new(
            Reason::DestinationNotFound,
            "spec.account",
            "the Account's Destination does not exist",
        ));
    }
    if problems.is_empty() { Ok(DataflowPlan { segments, fields, format }) } else { Err(problems) }
}

type CheckedFields = Vec<(SourceField, String, Vec<Transform>)>;

fn check_dataflow_spec(
    spec: &DataflowSpec,
    enabled_at: DateTime<Utc>,
) -> (Vec<PlannedSegment>, CheckedFields, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut segments = Vec::new();
    push_duplicates(&mut problems, "spec.segments", "id", spec.segments.iter().map(|s| s.id.as_str()));
    push_duplicates(&mut problems, "spec.fields", "target", spec.fields.iter().map(|f| f.target.as_str()));
    for (i, segment) in spec.segments.iter().enumerate() {
        match SegmentSchedule::parse(&segment.schedule, enabled_at) {
            Ok(schedule) => segments.push(PlannedSegment {
                id: segment.id.clone(),
                schedule,
                mode: segment.export_mode.unwrap_or_default(),
            }),
            Err(e) => problems.push(Problem::new(
                Reason::InvalidSchedule,
                format!("spec.segments[{i}].schedule"),
                e.to_string(),
            )),
        }
        if let Some(template) = &segment.file_name_template
            && let Err(e) = file_name::validate(template)
        {
            problems.push(Problem::new(
                Reason::InvalidSpec,
                format!("spec.segments[{i}].fileNameTemplate"),
                e.to_string(),
            ));
        }
    }
    let mut fields = Vec::new();
    for (i, mapping) in spec.fields.iter().enumerate() {
        match SourceField::parse(&mapping.source) {
            Ok(source) => {
                if source.field_type() == FieldType::Timestamp && !mapping.transforms.is_empty() {
                    problems.push(Problem::new(
                        Reason::InvalidField,
                        format!("spec.fields[{i}].transforms"),
                        format!(
                            "'{}' is a timestamp; transforms (trim, lowercase, SHA256) apply only to string fields",
                            mapping.source
                        ),
                    ));
                }
                fields.push((source, mapping.target.clone(), mapping.transforms.clone()));
            }
            Err(e) => {
                problems.push(Problem::new(Reason::InvalidField, format!("spec.fields[{i}].source"), e.to_string()))
            }
        }
    }
    let targets: HashSet<&str> = spec.fields.iter().map(|f| f.target.as_str()).collect();
    for (i, m) in spec.mandatory_fields.iter().enumerate() {
        if !targets.contains(m.as_str()) {
            problems.push(Problem::new(
                Reason::InvalidSpec,
                format!("spec.mandatoryFields[{i}]"),
                format!("'{m}' is not the target of any of spec.fields"),
            ));
        }
    }
    if let Some(dedup) = &spec.deduplication {
        match (&dedup.identity, &dedup.fields) {
            (Some(_), None) => {}
            (None, Some(keys)) if (1..=2).contains(&keys.len()) => {
                for (i, k) in keys.iter().enumerate() {
                    if !targets.contains(k.as_str()) {
                        problems.push(Problem::new(
                            Reason::InvalidSpec,
                            format!("spec.deduplication.fields[{i}]"),
                            format!("'{k}' is not the target of any of spec.fields"),
                        ));
                    }
                }
            }
            _ => problems.push(Problem::new(
                Reason::InvalidSpec,
                "spec.deduplication",
                "give exactly one of identity or one or two fields",
            )),
        }
    }
    if let Some(template) = spec.output.as_ref().and_then(|o| o.file_name_template.as_ref())
        && let Err(e) = file_name::validate(template)
    {
        problems.push(Problem::new(Reason::InvalidSpec, "spec.output.fileNameTemplate", e.to_string()));
    }
    (segments, fields, problems)
}

/// Checks the Dataflow's fields and output against what the Destination accepts; returns the
/// file format the export will use.
fn check_fit(
    spec: &DataflowSpec,
    fields: &CheckedFields,
    destination: &Destination,
    problems: &mut Vec<Problem>,
) -> Option<FileFormat> {
    let dest = &destination.spec;
    let name = destination.metadata.name.as_deref().unwrap_or("?");
    for (i, (source, target, transforms)) in fields.iter().enumerate() {
        let Some(ns) = source.identity_namespace() else { continue };
        let declared = dest.identities.iter().find(|d| d.namespace == ns);
        if dest.export_type == ExportType::Segment && declared.is_none() && matches!(source, SourceField::Identity(_)) {
            problems.push(Problem::new(
                Reason::UnknownIdentity,
                format!("spec.fields[{i}].source"),
                format!(
                    "Destination '{name}' does not match on identity '{ns}' (it takes: {})",
                    join_or_none(dest.identities.iter().map(|d| d.namespace.as_str()))
                ),
            ));
        }
        if declared.is_some_and(|d| d.hashing == Some(HashAlgorithm::Sha256))
            && !transforms.contains(&Transform::Sha256)
        {
            problems.push(Problem::new(
                Reason::HashingRequired,
                format!("spec.fields[{i}].transforms"),
                format!("Destination '{name}' requires '{ns}' hashed with SHA256; add SHA256 to the transforms of '{target}'"),
            ));
        }
    }
    if dest.export_type == ExportType::Segment
        && !fields.iter().any(
            |(s, _, _)| matches!(s, SourceField::Identity(ns) if dest.identities.iter().any(|d| &d.namespace == ns)),
        )
    {
        problems.push(Problem::new(
            Reason::UnknownIdentity,
            "spec.fields",
            format!(
                "a segment export to '{name}' maps at least one identity it matches on ({})",
                dest.identities.iter().map(|d| format!("identityMap.{}", d.namespace)).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    if !dest.connector.writes_files() {
        if spec.output.is_some() {
            problems.push(Problem::new(
                Reason::InvalidSpec,
                "spec.output",
                format!("Destination '{name}' ({:?}) does not take files; remove spec.output", dest.connector),
            ));
        }
        return None;
    }
    let format = match &spec.output {
        Some(output) => {
            if !dest.formats.contains(&output.format) {
                problems.push(Problem::new(
                    Reason::UnsupportedFormat,
                    "spec.output.format",
                    format!("Destination '{name}' does not accept {:?}; it accepts {:?}", output.format, dest.formats),
                ));
            }
            if let Some(c) = output.compression
                && !dest.compression.is_empty()
                && !dest.compression.contains(&c)
            {
                problems.push(Problem::new(
                    Reason::UnsupportedFormat,
                    "spec.output.compression",
                    format!(
                        "Destination '{name}' does not accept {c:?} compression; it accepts {:?}",
                        dest.compression
                    ),
                ));
            }
            if output.csv.is_some() && output.format != FileFormat::Csv {
                problems.push(Problem::new(
                    Reason::InvalidSpec,
                    "spec.output.csv",
                    "CSV options apply only to format CSV",
                ));
            }
            output.format
        }
        None => *dest.formats.first()?,
    };
    if dest.connector == ConnectorKind::Http {
        return None;
    }
    Some(format)
}

#[cfg(test)]
mod tests;
