//! The structural OpenAPI checks the API server makes before CEL: types, enums, required
//! properties, string patterns and lengths, numeric bounds, list sizes, unique list-map keys and
//! unknown fields. Run against the CRD schema generated from the types, so `outflow validate`
//! refuses what `kubectl apply` would.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// A violation: the field path (as the API server writes it) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// Checks `spec` (and nothing else of the object) against the CRD schema's `spec` property.
pub fn check_spec(crd_schema: &Value, object: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    match (crd_schema.pointer("/properties/spec"), object.get("spec")) {
        (Some(schema), Some(spec)) => check(schema, spec, "spec", &mut out),
        (Some(_), None) => out.push(Violation { field: "spec".into(), message: "Required value".into() }),
        _ => {}
    }
    out
}

fn push(out: &mut Vec<Violation>, field: &str, message: String) {
    out.push(Violation { field: field.to_string(), message });
}

fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            push(out, path, "Invalid value: null".into());
        }
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        push(out, path, format!("Unsupported value: {value}: supported values: {}", list.join(", ")));
        return;
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("object") => match value.as_object() {
            Some(obj) => check_object(schema, obj, path, out),
            None => push(out, path, format!("Invalid value: {value}: must be an object")),
        },
        Some("array") => match value.as_array() {
            Some(items) => check_array(schema, items, path, out),
            None => push(out, path, format!("Invalid value: {value}: must be a list")),
        },
        Some("string") => match value.as_str() {
            Some(s) => check_string(schema, s, path, out),
            None => push(out, path, format!("Invalid value: {value}: must be a string")),
        },
        Some("integer") if !value.is_i64() && !value.is_u64() => {
            push(out, path, format!("Invalid value: {value}: must be an integer"))
        }
        Some("number" | "integer") => match value.as_f64() {
            Some(n) => check_number(schema, n, path, out),
            None => push(out, path, format!("Invalid value: {value}: must be a number")),
        },
        Some("boolean") if !value.is_boolean() => push(out, path, format!("Invalid value: {value}: must be a boolean")),
        _ => {}
    }
}

fn check_object(schema: &Value, obj: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
        if !obj.contains_key(required) {
            push(out, &format!("{path}.{required}"), "Required value".into());
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    for (key, value) in obj {
        let child = format!("{path}.{key}");
        match (properties.and_then(|p| p.get(key)), additional) {
            (Some(s), _) => check(s, value, &child, out),
            (None, Some(s)) if s.is_object() => check(s, value, &child, out),
            (None, _) if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {}
            (None, _) => push(out, &child, "unknown field".into()),
        }
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
        && obj.len() as u64 > max
    {
        push(out, path, format!("Too many: {}: must have at most {max} items", obj.len()));
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, out: &mut Vec<Violation>) {
    if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
        && (items.len() as u64) < min
    {
        push(out, path, format!("Invalid value: {}: {path} in body should have at least {min} items", items.len()));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
        && items.len() as u64 > max
    {
        push(out, path, format!("Too many: {}: must have at most {max} items", items.len()));
    }
    if let Some(item_schema) = schema.get("items") {
        for (i, item) in items.iter().enumerate() {
            check(item_schema, item, &format!("{path}[{i}]"), out);
        }
    }
    let keys: Vec<&str> = schema
        .get("x-kubernetes-list-map-keys")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                let key: Vec<String> =
                    keys.iter().map(|k| item.get(*k).map(Value::to_string).unwrap_or_default()).collect();
                if !seen.insert(key.clone()) {
                    push(out, &format!("{path}[{i}]"), format!("Duplicate value: {}", key.join(", ")));
                }
            }
        }
        Some("set") => {
            let mut seen = HashSet::new();
            for (i, item) in items.iter().enumerate() {
                if !seen.insert(item.to_string()) {
                    push(out, &format!("{path}[{i}]"), format!("Duplicate value: {item}"));
                }
            }
        }
        _ => {}
    }
}

fn check_string(schema: &Value, s: &str, path: &str, out: &mut Vec<Violation>) {
    let len = s.chars().count() as u64;
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        push(out, path, format!("Invalid value: {s:?}: {path} in body should be at least {min} chars long"));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        push(out, path, format!("Too long: may not be more than {max} bytes"));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
        && let Ok(re) = regex::Regex::new(pattern)
        && !re.is_match(s)
    {
        push(out, path, format!("Invalid value: {s:?}: {path} in body should match '{pattern}'"));
    }
}

fn check_number(schema: &Value, n: f64, path: &str, out: &mut Vec<Violation>) {
    if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
        && n < min
    {
        push(out, path, format!("Invalid value: {n}: {path} in body should be greater than or equal to {min}"));
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
        && n > max
    {
        push(out, path, format!("Invalid value: {n}: {path} in body should be less than or equal to {max}"));
    }
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::json;

    use super::*;
    use crate::api::Dataflow;

    fn schema() -> Value {
        let crd = serde_json::to_value(Dataflow::crd()).unwrap();
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema").unwrap().clone()
    }

    fn spec(extra: Value) -> Value {
        let mut spec = json!({
            "account": "a", "enabled": true,
            "segments": [{"id": "seg-1", "schedule": {"daily": {"at": "06:00"}}}],
            "fields": [{"source": "personalEmail.address", "target": "email"}]
        });
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        json!({"spec": spec})
    }

    #[test]
    fn a_valid_spec_passes() {
        assert_eq!(check_spec(&schema(), &spec(json!({}))), vec![]);
    }

    #[test]
    fn patterns_bounds_enums_sizes_duplicates_and_unknown_fields_are_caught() {
        let bad = spec(json!({
            "segments": [{"id": "seg/1", "schedule": {"daily": {"at": "25:00"}}, "exportMode": "Delta"}],
            "fields": [{"source": "personalEmail.address", "target": "email"}, {"source": "identityMap.email", "target": "email"}],
            "runHistoryLimit": 500,
            "colour": "blue"
        }));
        let fields: Vec<String> = check_spec(&schema(), &bad).into_iter().map(|v| v.field).collect();
        for expected in [
            "spec.segments[0].id",
            "spec.segments[0].schedule.daily.at",
            "spec.segments[0].exportMode",
            "spec.fields[1]",
            "spec.runHistoryLimit",
            "spec.colour",
        ] {
            assert!(fields.iter().any(|f| f == expected), "{expected} not in {fields:?}");
        }
        let empty = spec(json!({"segments": []}));
        assert_eq!(check_spec(&schema(), &empty)[0].field, "spec.segments");
    }
}
