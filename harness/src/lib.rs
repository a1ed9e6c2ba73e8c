//! fip-harness: a simulation and conformance test harness for Calico floating IPs
//! on Kubernetes pods.
//!
//! Data flows one way: [`scenario`] -> [`calico`] model -> [`control`] ->
//! [`dataplane`] / [`lab`]; [`traffic`] -> observations -> [`check`] -> [`report`].
//! [`runner`] ties them together for one scenario. Nothing below `control` knows
//! what a scenario is.

pub mod bgp;
pub mod calico;
pub mod check;
pub mod conform;
pub mod control;
pub mod dataplane;
pub mod driver;
pub mod lab;
pub mod mutant;
pub mod programs;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod traffic;
pub mod wire;
