//! The JSON Schema of a scenario file, generated from the serde model in
//! [`super::raw`] so that editors (yaml-language-server) complete and check keys.
//!
//! Structs derive their schema; the types with a hand-written `Deserialize`
//! (values parsed from strings, the one-key step mapping, the short node form)
//! get theirs here, written to accept what their `Deserialize` accepts.

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

use super::located::Spanned;
use super::raw::{
    NodeEntry, RawAnnotate, RawCreatePod, RawCreatePods, RawPacketWait, RawScenario, RawSend,
    RawSends, RawSetPhase, RawStartStream, RawStep, RawStopStream, RawWait, STEP_KINDS,
};
use super::values::{Address, Cidr, Delivery, DurationValue, Loss, Name, SeenAddress, Target};

/// Where the committed schema lives, relative to the repository root.
pub const SCHEMA_PATH: &str = "schema/scenario.schema.json";

/// The scenario schema (JSON Schema draft-07, what yaml-language-server reads
/// best), as pretty-printed JSON ending in a newline.
pub fn scenario_schema_json() -> String {
    let generator = SchemaSettings::draft07().for_deserialize().into_generator();
    let mut schema = generator.into_root_schema_for::<RawScenario>();
    schema.insert("title".into(), "fip-harness scenario".into());
    schema.insert(
        "description".into(),
        "One scenario of fip-harness: a cluster and ordered steps (see docs/scenarios.md).".into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}

/// A [`Spanned`] value is written as the value itself.
impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

/// Declares a string-valued schema for a type parsed with `FromStr`.
macro_rules! string_schema {
    ($ty:ty, $name:literal, $schema:tt) => {
        impl JsonSchema for $ty {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!($schema)
            }
        }
    };
}

/// RFC 1123 label, as [`Name`]'s `FromStr` checks it.
const NAME_PATTERN: &str = "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$";

string_schema!(Name, "Name", {
    "description": "A DNS label: 1-63 lowercase letters, digits or `-`, starting and ending with a letter or digit.",
    "type": "string",
    "pattern": NAME_PATTERN
});

string_schema!(DurationValue, "Duration", {
    "description": "A number with a unit: ns, us, ms, s or m (`10ms`, `1.5s`).",
    "type": "string",
    "pattern": "^[0-9.]+(ns|us|µs|ms|s|m)$"
});

string_schema!(Address, "Address", {
    "description": "An IPv4 or IPv6 address.",
    "type": "string",
    "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]
});

string_schema!(Cidr, "Cidr", {
    "description": "An address and a prefix length (`198.19.0.0/16`).",
    "type": "string",
    "pattern": "^[0-9A-Fa-f.:]+/[0-9]{1,3}$"
});

string_schema!(Target, "Target", {
    "description": "An IP address, or a pod, node or external host by name (`name/v6` for its IPv6 address).",
    "type": "string",
    "anyOf": [
        {"format": "ipv4"},
        {"format": "ipv6"},
        {"pattern": "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(/v4|/v6)?$"}
    ]
});

string_schema!(SeenAddress, "SeenAddress", {
    "description": "`pod` (the pod's own address), `from` (the sender's address) or an IP address.",
    "type": "string",
    "anyOf": [{"enum": ["pod", "from"]}, {"format": "ipv4"}, {"format": "ipv6"}]
});

impl JsonSchema for Loss {
    fn schema_name() -> Cow<'static, str> {
        "Loss".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Packets lost: a count (`0`) or a percentage (`\"5%\"`).",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*[0-9]+\\s*$"},
                {"type": "string", "pattern": "^\\s*[0-9.]+\\s*%$"}
            ]
        })
    }
}

impl JsonSchema for Delivery {
    fn schema_name() -> Cow<'static, str> {
        "Delivery".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let name = generator.subschema_for::<Name>();
        json_schema!({
            "description": "Which pods receive the traffic: `none`, a pod, a list of pods (these and no others), or `{oneOf: [pods]}` (exactly one of them, and no other).",
            "anyOf": [
                {"const": "none"},
                name,
                {"type": "array", "items": name},
                {
                    "type": "object",
                    "properties": {"oneOf": {"type": "array", "items": name, "minItems": 2}},
                    "required": ["oneOf"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for NodeEntry {
    fn schema_name() -> Cow<'static, str> {
        "NodeEntry".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let name = generator.subschema_for::<Name>();
        json_schema!({
            "description": "A host name, or `{name: ...}`.",
            "anyOf": [
                name,
                {
                    "type": "object",
                    "properties": {"name": name},
                    "required": ["name"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for RawWait {
    fn schema_name() -> Cow<'static, str> {
        "Wait".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let time = generator.subschema_for::<DurationValue>();
        let packets = generator.subschema_for::<RawPacketWait>();
        json_schema!({
            "description": "A duration, or `{stream: s1, packets: 25}`: until the running stream has sent that many more packets.",
            "anyOf": [time, packets]
        })
    }
}

/// One step kind's schema: a mapping whose only key is the kind.
fn step_kind(kind: &str, body: Schema) -> Schema {
    json_schema!({
        "type": "object",
        "properties": {kind: body},
        "required": [kind],
        "additionalProperties": false
    })
}

/// The schema of each step kind, in [`STEP_KINDS`] order. A kind added to the
/// loader without a schema here fails `every_step_kind_has_a_schema`.
fn step_kinds(generator: &mut SchemaGenerator) -> Vec<(&'static str, Schema)> {
    vec![
        ("createPod", generator.subschema_for::<RawCreatePod>()),
        ("createPods", generator.subschema_for::<RawCreatePods>()),
        ("deletePod", generator.subschema_for::<Name>()),
        ("annotate", generator.subschema_for::<RawAnnotate>()),
        ("setPhase", generator.subschema_for::<RawSetPhase>()),
        ("send", generator.subschema_for::<RawSend>()),
        ("sends", generator.subschema_for::<RawSends>()),
        ("startStream", generator.subschema_for::<RawStartStream>()),
        ("stopStream", generator.subschema_for::<RawStopStream>()),
        ("wait", generator.subschema_for::<RawWait>()),
    ]
}

impl JsonSchema for RawStep {
    fn schema_name() -> Cow<'static, str> {
        "Step".into()
    }
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let kinds: Vec<Schema> = step_kinds(generator)
            .into_iter()
            .map(|(kind, body)| step_kind(kind, body))
            .collect();
        json_schema!({
            "description": format!("A step: a mapping with one key naming its kind ({}).", STEP_KINDS.join(", ")),
            "oneOf": kinds
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_kind_has_a_schema() {
        let mut generator = SchemaSettings::draft07().into_generator();
        let kinds: Vec<&str> = step_kinds(&mut generator)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kinds, STEP_KINDS, "scenario/schema.rs: step_kinds");
    }

    #[test]
    fn name_pattern_agrees_with_the_parser() {
        let pattern = regex::Regex::new(NAME_PATTERN).unwrap();
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        for s in [
            "a", "node-a", "1x", &long, "", "Node", "-a", "a-", "a_b", &too_long,
        ] {
            assert_eq!(
                pattern.is_match(s),
                s.parse::<Name>().is_ok(),
                "`{s}`: pattern and parser disagree"
            );
        }
    }

    #[test]
    fn the_schema_is_draft_07_with_the_top_level_keys() {
        let schema: serde_json::Value = serde_json::from_str(&scenario_schema_json()).unwrap();
        assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
        assert_eq!(schema["additionalProperties"], false);
        let required = schema["required"].as_array().unwrap();
        assert!(required.contains(&"cluster".into()) && required.contains(&"steps".into()));
    }
}
