//! Reading the values a plan needs out of one Arrow batch of profiles: typed views over the
//! (possibly projected, possibly nested) columns, with errors that name the file and column.

use std::path::Path;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, MapArray, RecordBatch, StringArray, StructArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};

use super::plan::{DedupKey, ExportPlan};
use super::source::SourceError;
use crate::plan::fields::SourceField;

/// A string leaf with the struct arrays above it (a null parent makes the value null).
struct StrCol {
    parents: Vec<ArrayRef>,
    leaf: StringArray,
}

impl StrCol {
    fn get(&self, row: usize) -> Option<&str> {
        if self.parents.iter().any(|p| p.is_null(row)) || self.leaf.is_null(row) {
            None
        } else {
            Some(self.leaf.value(row))
        }
    }
}

/// `identityMap`: namespace → list of {id, primary}.
struct IdentityCol {
    map: MapArray,
    keys: StringArray,
    lists: arrow::array::ListArray,
    ids: StringArray,
    primary: Option<BooleanArray>,
}

impl IdentityCol {
    /// The id of the primary entry of `namespace`, else its first entry.
    fn get(&self, row: usize, namespace: &str) -> Option<&str> {
        if self.map.is_null(row) {
            return None;
        }
        let offsets = self.map.value_offsets();
        for e in offsets[row] as usize..offsets[row + 1] as usize {
            if self.keys.is_null(e) || self.keys.value(e) != namespace || self.lists.is_null(e) {
                continue;
            }
            let lo = self.lists.value_offsets();
            let range = lo[e] as usize..lo[e + 1] as usize;
            let valid = |j: &usize| !self.ids.is_null(*j);
            let primary = range
                .clone()
                .filter(valid)
                .find(|&j| self.primary.as_ref().is_some_and(|p| !p.is_null(j) && p.value(j)));
            return primary.or_else(|| range.clone().find(valid)).map(|j| self.ids.value(j));
        }
        None
    }
}

/// `segmentMembership`: segment → {status, lastQualificationTime}.
struct MembershipCol {
    map: MapArray,
    keys: StringArray,
    values: StructArray,
    status: StringArray,
    /// Microseconds since the epoch.
    time: Option<arrow::array::Int64Array>,
}

impl MembershipCol {
    fn get(&self, row: usize, segment: &str) -> Option<(Option<&str>, Option<i64>)> {
        if self.map.is_null(row) {
            return None;
        }
        let offsets = self.map.value_offsets();
        (offsets[row] as usize..offsets[row + 1] as usize)
            .find(|&e| !self.keys.is_null(e) && self.keys.value(e) == segment && !self.values.is_null(e))
            .map(|e| {
                let status = (!self.status.is_null(e)).then(|| self.status.value(e));
                let time = self.time.as_ref().and_then(|t| (!t.is_null(e)).then(|| t.value(e)));
                (status, time)
            })
    }
}

/// Typed access to one batch.
pub struct BatchView {
    rows: usize,
    membership: Option<MembershipCol>,
    consent: Option<StrCol>,
    identity: Option<IdentityCol>,
    profile_id: Option<StrCol>,
    fields: Vec<Option<StrCol>>,
}

fn column_error(path: &Path, column: &str, message: impl Into<String>) -> SourceError {
    SourceError::Column { path: path.to_path_buf(), column: column.to_string(), message: message.into() }
}

fn as_strings(array: &ArrayRef, path: &Path, column: &str) -> Result<StringArray, SourceError> {
    match array.data_type() {
        DataType::Utf8 => Ok(array.as_string::<i32>().clone()),
        DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => cast(array, &DataType::Utf8)
            .map(|a| a.as_string::<i32>().clone())
            .map_err(|e| column_error(path, column, e.to_string())),
        other => Err(column_error(path, column, format!("expected a string, found {other}"))),
    }
}

/// Walks `names` down nested structs; `None` when a level is absent (treated as all-null).
fn string_leaf(batch: &RecordBatch, names: &[&str], path: &Path) -> Result<Option<StrCol>, SourceError> {
    let column = names.join(".");
    let Some(mut current) = batch.column_by_name(names[0]).cloned() else { return Ok(None) };
    let mut parents = Vec::new();
    for name in &names[1..] {
        let Some(s) = current.as_struct_opt() else {
            return Err(column_error(path, &column, format!("expected a struct, found {}", current.data_type())));
        };
        let Some(child) = s.column_by_name(name).cloned() else { return Ok(None) };
        parents.push(current.clone());
        current = child;
    }
    Ok(Some(StrCol { parents, leaf: as_strings(&current, path, &column)? }))
}

fn map_column(batch: &RecordBatch, name: &str, path: &Path) -> Result<Option<MapArray>, SourceError> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(c) => c
            .as_map_opt()
            .cloned()
            .map(Some)
            .ok_or_else(|| column_error(path, name, format!("expected a map, found {}", c.data_type()))),
    }
}

fn identity_col(batch: &RecordBatch, path: &Path) -> Result<Option<IdentityCol>, SourceError> {
    let Some(map) = map_column(batch, "identityMap", path)? else { return Ok(None) };
    let keys = as_strings(map.keys(), path, "identityMap.key")?;
    let lists = map
        .values()
        .as_list_opt::<i32>()
        .cloned()
        .ok_or_else(|| column_error(path, "identityMap.value", "expected a list of {id, primary}"))?;
    let entries = lists
        .values()
        .as_struct_opt()
        .cloned()
        .ok_or_else(|| column_error(path, "identityMap.value.element", "expected a struct {id, primary}"))?;
    let ids = match entries.column_by_name("id") {
        Some(c) => as_strings(c, path, "identityMap.value.element.id")?,
        None => return Err(column_error(path, "identityMap.value.element.id", "missing")),
    };
    let primary = match entries.column_by_name("primary") {
        Some(c) => Some(
            c.as_boolean_opt()
                .cloned()
                .ok_or_else(|| column_error(path, "identityMap.value.element.primary", "expected a boolean"))?,
        ),
        None => None,
    };
    Ok(Some(IdentityCol { map, keys, lists, ids, primary }))
}

fn membership_col(batch: &RecordBatch, path: &Path) -> Result<Option<MembershipCol>, SourceError> {
    let Some(map) = map_column(batch, "segmentMembership", path)? else { return Ok(None) };
    let keys = as_strings(map.keys(), path, "segmentMembership.key")?;
    let values = map.values().as_struct_opt().cloned().ok_or_else(|| {
        column_error(path, "segmentMembership.value", "expected a struct {status, lastQualificationTime}")
    })?;
    let status = match values.column_by_name("status") {
        Some(c) => as_strings(c, path, "segmentMembership.value.status")?,
        None => StringArray::new_null(values.len()),
    };
    let column = "segmentMembership.value.lastQualificationTime";
    let time = match values.column_by_name("lastQualificationTime") {
        None => None,
        Some(c) => {
            let scale_down = match c.data_type() {
                DataType::Timestamp(TimeUnit::Second, _) => -1_000_000,
                DataType::Timestamp(TimeUnit::Millisecond, _) => -1_000,
                DataType::Timestamp(TimeUnit::Microsecond, _) => 1,
                DataType::Timestamp(TimeUnit::Nanosecond, _) => 1_000,
                other => return Err(column_error(path, column, format!("expected a timestamp, found {other}"))),
            };
            let raw = cast(c, &DataType::Int64).map_err(|e| column_error(path, column, e.to_string()))?;
            let raw = raw.as_primitive::<Int64Type>();
            Some(arrow::array::Int64Array::from_iter(
                raw.iter()
                    .map(|v| v.map(|v| if scale_down < 0 { v.saturating_mul(-scale_down) } else { v / scale_down })),
            ))
        }
    };
    Ok(Some(MembershipCol { map, keys, values, status, time }))
}

fn leaf_names(field: &SourceField) -> Option<&'static [&'static str]> {
    Some(match field {
        SourceField::ProfileId => &["profile_id"],
        SourceField::FirstName => &["person", "name", "firstName"],
        SourceField::LastName => &["person", "name", "lastName"],
        SourceField::Email => &["personalEmail", "address"],
        SourceField::Phone => &["mobilePhone", "number"],
        SourceField::City => &["homeAddress", "city"],
        SourceField::Country => &["homeAddress", "country"],
        SourceField::PostalCode => &["homeAddress", "postalCode"],
        SourceField::EmailConsent => &["consents", "marketing", "email", "val"],
        SourceField::Identity(_) | SourceField::SegmentStatus | SourceField::SegmentQualificationTime => return None,
    })
}

/// Renders a timestamp in microseconds as RFC 3339 (`2026-01-05T10:00:00Z`).
pub fn render_time(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| us.to_string())
}

impl BatchView {
    pub fn new(batch: &RecordBatch, plan: &ExportPlan, path: &Path) -> Result<Self, SourceError> {
        let needs_identity = matches!(plan.dedup, DedupKey::Identity(_))
            || plan.fields.iter().any(|f| matches!(f.source, SourceField::Identity(_)));
        let fields = plan
            .fields
            .iter()
            .map(|f| match leaf_names(&f.source) {
                Some(names) => string_leaf(batch, names, path),
                None => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            rows: batch.num_rows(),
            membership: membership_col(batch, path)?,
            consent: if plan.enforce_consent {
                string_leaf(batch, &["consents", "marketing", "email", "val"], path)?
            } else {
                None
            },
            identity: if needs_identity { identity_col(batch, path)? } else { None },
            profile_id: if plan.keep_profile_id { string_leaf(batch, &["profile_id"], path)? } else { None },
            fields,
        })
    }

    pub fn num_rows(&self) -> usize {
        self.rows
    }

    /// The membership of a row in `segment`: status and qualification time.
    pub fn membership(&self, row: usize, segment: &str) -> (Option<&str>, Option<i64>) {
        self.membership.as_ref().and_then(|m| m.get(row, segment)).unwrap_or((None, None))
    }

    pub fn consent(&self, row: usize) -> Option<&str> {
        self.consent.as_ref().and_then(|c| c.get(row))
    }

    /// The profile ID, when the plan keeps it.
    pub fn profile_id(&self, row: usize) -> Option<&str> {
        self.profile_id.as_ref().and_then(|c| c.get(row))
    }

    pub fn identity(&self, row: usize, namespace: &str) -> Option<&str> {
        self.identity.as_ref().and_then(|c| c.get(row, namespace))
    }

    /// The raw (untransformed) value of each plan field of a row.
    pub fn raw_values(
        &self,
        row: usize,
        plan: &ExportPlan,
        status: Option<&str>,
        time: Option<i64>,
    ) -> Vec<Option<String>> {
        plan.fields
            .iter()
            .zip(&self.fields)
            .map(|(f, col)| match &f.source {
                SourceField::Identity(ns) => self.identity(row, ns).map(str::to_string),
                SourceField::SegmentStatus => status.map(str::to_string),
                SourceField::SegmentQualificationTime => time.map(render_time),
                _ => col.as_ref().and_then(|c| c.get(row)).map(str::to_string),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_render_as_rfc3339() {
        assert_eq!(render_time(1_767_225_600_000_000), "2026-01-01T00:00:00Z");
        assert_eq!(render_time(1_767_225_600_000_500), "2026-01-01T00:00:00.000500Z");
    }
}
