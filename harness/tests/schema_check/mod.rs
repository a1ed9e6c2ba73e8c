//! Just enough of JSON Schema draft-07 to check scenario files against the
//! generated schema: the keywords schemars and scenario/schema.rs emit. A
//! keyword this does not know fails loudly, so the check never passes by
//! ignoring part of the schema.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Value};

/// Every problem with `document`, as `path: message`.
pub fn validate(schema: &Value, document: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, document, "$", &mut errors);
    errors
}

/// Every key any object in the schema declares.
#[allow(dead_code)] // not every test target that includes this module lists keys
pub fn property_keys(schema: &Value) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    collect_keys(schema, &mut keys);
    keys
}

fn collect_keys(schema: &Value, keys: &mut BTreeSet<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Object(properties)) = map.get("properties") {
                keys.extend(properties.keys().cloned());
            }
            map.values().for_each(|v| collect_keys(v, keys));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_keys(v, keys)),
        _ => {}
    }
}

const KNOWN: &[&str] = &[
    "$schema",
    "$ref",
    "title",
    "description",
    "definitions",
    "default",
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "oneOf",
    "anyOf",
    "allOf",
    "enum",
    "const",
    "pattern",
    "format",
    "minimum",
    "maximum",
];

fn resolve<'a>(root: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').expect("a local $ref");
    root.pointer(pointer)
        .unwrap_or_else(|| panic!("$ref {reference} resolves"))
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("unknown type {other}"),
    }
}

fn check(root: &Value, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => return errors.push(format!("{path}: nothing is allowed here")),
        Value::Object(map) => map,
        other => panic!("a schema is an object: {other}"),
    };
    for key in schema.keys() {
        assert!(
            KNOWN.contains(&key.as_str()),
            "keyword {key} is not checked"
        );
    }
    let mut fail = |message: String| errors.push(format!("{path}: {message}"));
    if let Some(Value::String(reference)) = schema.get("$ref") {
        check(root, resolve(root, reference), value, path, errors);
        return;
    }
    if let Some(types) = schema.get("type") {
        let names: Vec<&str> = match types {
            Value::String(s) => vec![s],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => panic!("type is a string or a list"),
        };
        if !names.iter().any(|t| type_matches(t, value)) {
            return fail(format!("expected {names:?}, found {value}"));
        }
    }
    check_scalar(schema, value, &mut fail);
    for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(Value::Array(branches)) = schema.get(keyword) {
            let passing = branches
                .iter()
                .filter(|b| validate_at(root, b, value, path).is_empty())
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                fail(format!(
                    "{value} matches {passing} of the {keyword} branches"
                ));
            }
        }
    }
    if let Some(Value::Array(branches)) = schema.get("allOf") {
        for branch in branches {
            check(root, branch, value, path, errors);
        }
    }
    check_length(schema, value, path, errors);
    if let (Some(items), Value::Array(elements)) = (schema.get("items"), value) {
        for (i, element) in elements.iter().enumerate() {
            check(root, items, element, &format!("{path}[{i}]"), errors);
        }
    }
    if let Value::Object(object) = value {
        check_object(root, schema, object, path, errors);
    }
}

/// The keywords about a single value: enum, const, pattern, format, minimum
/// and maximum.
fn check_scalar(schema: &Map<String, Value>, value: &Value, fail: &mut dyn FnMut(String)) {
    if let Some(Value::Array(allowed)) = schema.get("enum") {
        if !allowed.contains(value) {
            fail(format!("{value} is not one of {allowed:?}"));
        }
    }
    if let Some(constant) = schema.get("const") {
        if constant != value {
            fail(format!("{value} is not {constant}"));
        }
    }
    if let (Some(Value::String(pattern)), Value::String(s)) = (schema.get("pattern"), value) {
        if !regex::Regex::new(pattern).unwrap().is_match(s) {
            fail(format!("`{s}` does not match {pattern}"));
        }
    }
    if let (Some(Value::String(format)), Value::String(s)) = (schema.get("format"), value) {
        let ok = match format.as_str() {
            "ipv4" => s.parse::<Ipv4Addr>().is_ok(),
            "ipv6" => s.parse::<Ipv6Addr>().is_ok(),
            "ip" => s.parse::<std::net::IpAddr>().is_ok(),
            "uint" | "uint8" | "uint16" | "uint32" | "uint64" => true,
            other => panic!("unknown format {other}"),
        };
        if !ok {
            fail(format!("`{s}` is not {format}"));
        }
    }
    if let Some(n) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n < m)
        {
            fail(format!("{n} is below the minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| n > m)
        {
            fail(format!("{n} is above the maximum"));
        }
    }
}

/// minItems and maxItems of an array.
fn check_length(schema: &Map<String, Value>, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Value::Array(elements) = value {
        let len = elements.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            fail_at(
                errors,
                path,
                format!("{len} item(s), fewer than the minimum"),
            );
        }
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            fail_at(
                errors,
                path,
                format!("{len} item(s), more than the maximum"),
            );
        }
    }
}

fn check_object(
    root: &Value,
    schema: &serde_json::Map<String, Value>,
    object: &serde_json::Map<String, Value>,
    path: &str,
    errors: &mut Vec<String>,
) {
    let empty = serde_json::Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(Value::Array(required)) = schema.get("required") {
        for key in required.iter().filter_map(Value::as_str) {
            if !object.contains_key(key) {
                errors.push(format!("{path}: `{key}` is required"));
            }
        }
    }
    for (key, element) in object {
        let child = format!("{path}.{key}");
        match (properties.get(key), schema.get("additionalProperties")) {
            (Some(property), _) => check(root, property, element, &child, errors),
            (None, Some(Value::Bool(false))) => errors.push(format!("{child}: unknown key")),
            (None, Some(additional)) => check(root, additional, element, &child, errors),
            (None, None) => {}
        }
    }
}

fn fail_at(errors: &mut Vec<String>, path: &str, message: String) {
    errors.push(format!("{path}: {message}"));
}

fn validate_at(root: &Value, schema: &Value, value: &Value, path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    check(root, schema, value, path, &mut errors);
    errors
}
