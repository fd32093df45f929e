//! Rows a platform rejected inside a successful response, found through the Destination's
//! `spec.http.rowErrors`.

use std::collections::HashMap;

use serde_json::Value;

use crate::api::RowErrors;

/// Follows a dot-separated path (`a.b.0.c`) into a JSON value.
pub fn lookup<'v>(value: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').filter(|p| !p.is_empty()).try_fold(value, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The rejected rows of a batch, by position, with the platform's reason. Entries that point at
/// no row of the batch are ignored.
pub fn rejected(body: &Value, spec: &RowErrors, rows: &[Value]) -> Vec<(usize, String)> {
    let Some(Value::Array(entries)) = lookup(body, &spec.path) else { return Vec::new() };
    let by_key: HashMap<String, Vec<usize>> = match &spec.row_key {
        Some(row_key) if spec.key_field.is_some() => {
            let mut map: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, row) in rows.iter().enumerate() {
                if let Some(v) = lookup(row, row_key).filter(|v| !v.is_null()) {
                    map.entry(as_text(v)).or_default().push(i);
                }
            }
            map
        }
        _ => HashMap::new(),
    };
    let mut found: Vec<(usize, String)> = Vec::new();
    for entry in entries {
        let reason = lookup(entry, &spec.reason_field).map_or_else(|| "rejected by the platform".to_string(), as_text);
        let base = u64::from(spec.index_base.unwrap_or(0));
        let positions: Vec<usize> = if let Some(field) = &spec.index_field {
            lookup(entry, field)
                .and_then(|v| v.as_u64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok())))
                .and_then(|i| i.checked_sub(base))
                .map(|i| i as usize)
                .filter(|&i| i < rows.len())
                .into_iter()
                .collect()
        } else if let Some(field) = &spec.key_field {
            let keys = match lookup(entry, field) {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(one) => vec![one],
                None => vec![],
            };
            keys.into_iter().filter_map(|k| by_key.get(&as_text(k))).flatten().copied().collect()
        } else {
            Vec::new()
        };
        found.extend(positions.into_iter().map(|p| (p, reason.clone())));
    }
    found.sort_by_key(|(p, _)| *p);
    found.dedup_by_key(|(p, _)| *p);
    found
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn spec(index: Option<&str>, key: Option<&str>, row_key: Option<&str>) -> RowErrors {
        RowErrors {
            path: "result.errors".into(),
            index_field: index.map(Into::into),
            index_base: None,
            key_field: key.map(Into::into),
            row_key: row_key.map(Into::into),
            reason_field: "message".into(),
        }
    }

    #[test]
    fn errors_by_position_name_their_rows() {
        let body = json!({"result": {"errors": [{"index": 2, "message": "bad hash"}, {"index": "0", "message": "x"}, {"index": 9}]}});
        let rows = vec![json!({}), json!({}), json!({})];
        assert_eq!(
            rejected(&body, &spec(Some("index"), None, None), &rows),
            vec![(0, "x".to_string()), (2, "bad hash".to_string())]
        );
    }

    #[test]
    fn errors_by_value_match_the_rows_that_carry_it() {
        let body =
            json!({"result": {"errors": [{"email_address": "b@example.com", "message": "looks fake", "code": 400}]}});
        let rows = vec![json!({"fields": {"email": "a@example.com"}}), json!({"fields": {"email": "b@example.com"}})];
        assert_eq!(
            rejected(&body, &spec(None, Some("email_address"), Some("fields.email")), &rows),
            vec![(1, "looks fake".to_string())]
        );
    }

    #[test]
    fn entries_may_list_several_values_or_count_from_one() {
        let body =
            json!({"result": {"errors": [{"email_address": ["a@x.io", "c@x.io"], "message": "not in the audience"}]}});
        let rows: Vec<Value> = ["a@x.io", "b@x.io", "c@x.io"].iter().map(|e| json!({"fields": {"email": e}})).collect();
        let found = rejected(&body, &spec(None, Some("email_address"), Some("fields.email")), &rows);
        assert_eq!(found.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
        let mut one_based = spec(Some("line"), None, None);
        one_based.index_base = Some(1);
        let body = json!({"result": {"errors": [{"line": 1, "message": "first"}, {"line": 0}]}});
        assert_eq!(rejected(&body, &one_based, &rows), vec![(0, "first".to_string())]);
    }

    #[test]
    fn a_response_without_the_list_rejects_nothing() {
        assert!(rejected(&json!({"ok": true}), &spec(Some("index"), None, None), &[json!({})]).is_empty());
        assert_eq!(lookup(&json!({"a": [{"b": 1}]}), "a.0.b"), Some(&json!(1)));
    }
}
