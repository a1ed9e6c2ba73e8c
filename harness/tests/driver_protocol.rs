//! The driver protocol as vendors meet it: the committed JSON Schema is the
//! one the Rust types generate, and every example in docs/driver-protocol.md
//! is valid under that schema and reads as the message the harness means.
//! Runs without root.

mod common;
mod schema_check;

use std::collections::BTreeSet;

use serde_json::Value;

use common::repo;
use fip_harness::driver::protocol::{Request, Response};
use fip_harness::driver::{driver_schema_json, DRIVER_SCHEMA_PATH};
use schema_check::validate;

const DOC: &str = "docs/driver-protocol.md";

#[test]
fn the_committed_driver_schema_is_current() {
    let path = repo().join(DRIVER_SCHEMA_PATH);
    let generated = driver_schema_json();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{DRIVER_SCHEMA_PATH} is not what the protocol types generate; regenerate it with \
         `cargo run -p fip-harness -- schema --driver > {DRIVER_SCHEMA_PATH}` (or \
         `UPDATE_SCHEMA=1 cargo test --test driver_protocol`) and commit it"
    );
}

/// Every line of the document's ```json blocks.
fn examples() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(DOC)).unwrap();
    let mut lines = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        match line.trim() {
            "```json" => inside = true,
            "```" => inside = false,
            example if inside && !example.is_empty() => lines.push(example.to_string()),
            _ => {}
        }
    }
    lines
}

#[test]
fn every_documented_message_is_valid_and_means_what_the_harness_reads() {
    let schema: Value = serde_json::from_str(&driver_schema_json()).unwrap();
    let mut requests = BTreeSet::new();
    let mut answers = BTreeSet::new();
    for line in examples() {
        let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
        let errors = validate(&schema, &value);
        assert!(errors.is_empty(), "{line}:\n{errors:#?}");
        // A line is a request or an answer. An answer first: unknown fields
        // are ignored, so a `dump` answer also reads as a `dump` request,
        // but no request carries what its answer must.
        match (
            serde_json::from_str::<Response>(&line),
            serde_json::from_str::<Request>(&line),
        ) {
            (Ok(answer), _) => {
                answers.insert(answer.body.kind());
            }
            (_, Ok(request)) => {
                requests.insert(request.body.kind());
            }
            (Err(a), Err(b)) => panic!("{line}: neither a request ({a}) nor an answer ({b})"),
        }
    }
    let every_request = ["hello", "topology", "apply", "flush", "dump", "shutdown"];
    let every_answer = ["hello", "ok", "flushed", "dump", "error"];
    assert_eq!(
        requests,
        every_request.into_iter().collect(),
        "{DOC} shows a request of each type"
    );
    assert_eq!(
        answers,
        every_answer.into_iter().collect(),
        "{DOC} shows an answer of each type"
    );
}

#[test]
fn the_schema_refuses_what_the_harness_refuses() {
    let schema: Value = serde_json::from_str(&driver_schema_json()).unwrap();
    for bad in [
        // No id.
        r#"{"type":"ok"}"#,
        // An apply without its IPv6 half.
        r#"{"id":3,"type":"apply","ipv4":{"dnat":[],"snat":[]}}"#,
        // A mapping to something that is not an address.
        r#"{"id":3,"type":"apply","ipv4":{"dnat":[{"external":"203.0.113.10","internal":"web"}],"snat":[]},"ipv6":{"dnat":[],"snat":[]}}"#,
        // A type the protocol does not have.
        r#"{"id":2,"type":"fine"}"#,
        // A hello answer without capabilities.
        r#"{"id":1,"type":"hello","protocol":1,"name":"x","version":"1"}"#,
    ] {
        let value: Value = serde_json::from_str(bad).unwrap();
        assert!(
            !validate(&schema, &value).is_empty(),
            "the schema accepts {bad}"
        );
        assert!(
            serde_json::from_str::<Request>(bad).is_err()
                && serde_json::from_str::<Response>(bad).is_err(),
            "the harness reads {bad}"
        );
    }
}

/// `v` with a `$ref` followed into the schema's definitions.
fn resolved<'a>(schema: &'a Value, v: &'a Value) -> &'a Value {
    match v["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/definitions/");
            &schema["definitions"][name]
        }
        None => v,
    }
}

/// The fields of object `v` (and of what its `allOf` adds), as dotted
/// paths: required ones (into required objects) and optional ones. The
/// message's `type` tag is left out.
fn fields_of(schema: &Value, v: &Value, prefix: &str, fields: &mut [BTreeSet<String>; 2]) {
    let v = resolved(schema, v);
    for part in v["allOf"].as_array().into_iter().flatten() {
        fields_of(schema, part, prefix, fields);
    }
    let required: BTreeSet<&str> = v["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for (name, property) in v["properties"].as_object().into_iter().flatten() {
        if name == "type" && property.get("const").is_some() {
            continue;
        }
        let path = format!("{prefix}{name}");
        let inner = resolved(schema, property);
        match (required.contains(name.as_str()), inner.get("properties")) {
            (true, Some(_)) => fields_of(schema, inner, &format!("{path}."), fields),
            (true, None) => {
                fields[0].insert(path);
            }
            (false, _) => {
                fields[1].insert(path);
            }
        }
    }
}

/// The words in backquotes of a table cell.
fn cell_fields(cell: &str) -> BTreeSet<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The page's table of which fields of each answer a driver must write and
/// which it may leave out is the schema's (what the harness reads).
#[test]
fn the_page_says_which_answer_fields_are_required() {
    let schema: Value = serde_json::from_str(&driver_schema_json()).unwrap();
    let response = &schema["definitions"]["Response"];
    let mut from_schema = Vec::new();
    for variant in response["oneOf"].as_array().unwrap() {
        let kind = variant["properties"]["type"]["const"].as_str().unwrap();
        let mut fields = [BTreeSet::new(), BTreeSet::new()];
        fields_of(&schema, response, "", &mut fields);
        fields[0].insert("type".to_string());
        fields_of(&schema, variant, "", &mut fields);
        from_schema.push((kind.to_string(), fields));
    }
    let text = std::fs::read_to_string(repo().join(DOC)).unwrap();
    let table: Vec<_> = text
        .lines()
        .skip_while(|l| !l.starts_with("| answer | required | optional |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let kind = cells[1].trim_matches('`').to_string();
            (kind, [cell_fields(cells[2]), cell_fields(cells[3])])
        })
        .collect();
    assert_eq!(
        table, from_schema,
        "{DOC}: the table '| answer | required | optional |' and the schema differ"
    );
}
