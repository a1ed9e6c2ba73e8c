//! BIRD configuration text, rendered from a [`BgpTopology`](super::topology::BgpTopology).
//! Pure: the same topology always gives the same text.

mod fabric;
mod filters;
mod node;

pub use fabric::render_fabric;
pub use filters::NORMAL_ROUTE_PRIORITY as FELIX_NORMAL_ROUTE_PRIORITY;
pub use node::{daemon_name, log_file_name, render_node};

#[cfg(test)]
mod tests;
