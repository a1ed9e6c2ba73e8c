//! The ground floor: network namespaces (create, pin, enter, delete, run on
//! a dedicated thread inside one) and the netlink requests made inside them.
//! It knows no lab, no registry, no claim and no signal handling: whether
//! creation may still go on (a process being interrupted) is a
//! [`netns::CreationGate`] its caller passes in.

pub mod netlink;
pub mod netns;
