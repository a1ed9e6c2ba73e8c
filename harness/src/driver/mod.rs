//! External dataplane drivers: a vendor's program as the dataplane of every
//! node, spoken to in newline-delimited JSON over its stdin and stdout
//! (docs/driver-protocol.md). [`protocol`] is the messages, [`spec`] the
//! `exec:PATH [ARGS]` choice, [`process`] and [`session`] the harness's side
//! of one driver, [`exec`] the [`crate::dataplane::Dataplane`] over them,
//! [`serve`] the driver's side for the built-in backends (`fip-harness
//! driver <backend>`), [`schema`] the protocol's JSON Schema.

mod error;
mod exec;
mod process;
pub mod protocol;
mod schema;
mod serve;
mod session;
mod spec;
pub mod usage;

pub use error::{DriverError, Fault};
pub use exec::{ExecDataplane, DEFAULT_TIMEOUT, TIMEOUT_ENV};
pub use protocol::PROTOCOL_VERSION;
pub use schema::{driver_schema_json, DRIVER_SCHEMA_PATH};
pub use serve::{serve, ServeError, ServeOptions};
pub use spec::{ExecSpec, ExecSpecError};
