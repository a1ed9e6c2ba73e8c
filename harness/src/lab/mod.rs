//! Labs: one scenario's cluster, emulated in network namespaces on this host.

pub mod netns;
