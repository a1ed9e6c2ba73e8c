//! fip-harness: a simulation and conformance test harness for Calico floating IPs
//! on Kubernetes pods.
//!
//! Data flows one way: [`scenario`] -> [`calico`] model -> [`control`] ->
//! [`dataplane`] / [`bgp`] / [`lab`]; [`traffic`] -> observations -> [`check`] ->
//! [`report`]. [`runner`] carries a scenario out in a lab.
//!
//! ## Layers
//!
//! A module imports only modules on rows below its own, never one on its row
//! or above (`tests/layers.rs` reads this table and fails on an import that
//! climbs, and on a module the table does not name). Top row first; `cli` is
//! the binary's.
//!
//! | layer  | modules                |
//! |--------|------------------------|
//! | top    | cli                    |
//! | top    | bench                  |
//! | drive  | conform, mutation      |
//! | drive  | explore                |
//! | drive  | runner                 |
//! | drive  | mutant                 |
//! | report | report                 |
//! | I/O    | control, driver        |
//! | I/O    | dataplane, bgp         |
//! | I/O    | traffic                |
//! | I/O    | lab                    |
//! | ground | ns                     |
//! | pure   | coverage               |
//! | pure   | scenario               |
//! | pure   | calico                 |
//! | pure   | check                  |
//! | pure   | vocab                  |
//! | pure   | wire, seed, programs, text |
//!
//! Pure modules do no I/O: [`vocab`] is the shared vocabulary (the lab's
//! addressing plan and names, the enums a scenario chooses among), [`check`]
//! the one judge, [`calico`] the model of Calico, [`scenario`] the language.

pub mod bench;
pub mod bgp;
pub mod calico;
pub mod check;
pub mod conform;
pub mod control;
pub mod coverage;
pub mod dataplane;
pub mod driver;
pub mod explore;
pub mod lab;
pub mod mutant;
pub mod mutation;
pub mod ns;
pub mod programs;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod seed;
pub mod text;
pub mod traffic;
pub mod vocab;
pub mod wire;
