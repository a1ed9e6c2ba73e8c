//! The JSON Schema of the driver protocol, generated from the types in
//! [`super::protocol`] and committed as schema/driver-protocol.schema.json so
//! that a driver in any language can check its messages against it.

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;

use super::protocol::{Request, Response};

/// Where the committed schema lives, from the repository's root.
pub const DRIVER_SCHEMA_PATH: &str = "schema/driver-protocol.schema.json";

/// Any one line of the protocol: a request or an answer (only for the schema).
#[derive(JsonSchema)]
#[allow(dead_code)]
#[serde(untagged)]
enum Message {
    Request(Request),
    Response(Response),
}

/// The schema as pretty JSON with a final newline.
pub fn driver_schema_json() -> String {
    let generator = SchemaSettings::draft07().for_deserialize().into_generator();
    let mut schema = generator.into_root_schema_for::<Message>();
    schema.insert(
        "title".into(),
        format!(
            "fip-harness driver protocol, version {}",
            super::PROTOCOL_VERSION
        )
        .into(),
    );
    schema.insert(
        "description".into(),
        "One line of the driver protocol: a request from the harness (on the driver's \
         stdin) or an answer from the driver (on its stdout). See docs/driver-protocol.md."
            .into(),
    );
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema is plain JSON");
    text.push('\n');
    text
}
