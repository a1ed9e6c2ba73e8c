//! The Felix + BGP role: from the cluster state, each node's desired
//! floating-IP NAT and the floating-IP routes; the difference between two
//! states; and the applier that programs it into a lab.

pub mod netlink;
