//! The scenario language: one YAML file per scenario (cluster + ordered steps),
//! loaded into a validated [`Scenario`]. Every error names the file, line and
//! column and the key or value at fault. See docs/scenarios.md.
//!
//! - [`load_file`] / [`load_str`]: one file.
//! - [`catalogue`]: finding files under folders, listing, unique names.

mod bulk;
pub mod catalogue;
mod error;
mod extra;
mod input;
pub mod limits;
mod load;
mod located;
mod model;
mod oracle;
mod raw;
mod release;
mod risky;
mod schema;
mod steps;
mod values;

pub use catalogue::{find_scenario_files, load_catalogue, Catalogue, ScenarioFilter};
pub use error::{ScenarioError, ScenarioErrors};
pub use extra::{catalogue_folders, SCENARIOS_ENV};
pub use load::{load_file, load_str};
pub use model::*;
pub use oracle::{check_expectations_against_model, resolve};
pub use release::{default_calico_release, use_calico_release};
pub use schema::{scenario_schema_json, SCHEMA_PATH};
pub use values::{DurationValue, Name};

#[cfg(test)]
mod tests;
