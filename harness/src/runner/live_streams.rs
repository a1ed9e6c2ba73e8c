//! The streams a case has running, and the changes of floating IPs' pods
//! they may see: the state the stream steps keep and the pod steps add to.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::check;
use crate::scenario::{StartStream, StopStream};
use crate::traffic::{StoppedStream, StreamHandle};

/// The case's streams: those running, and every change of a floating IP's
/// pod so far, in order (each stream picks the ones made while it ran).
#[derive(Default)]
pub(super) struct Streams {
    pub(super) running: BTreeMap<String, RunningStream>,
    pub(super) moves: Vec<FloatingIpChange>,
}

/// A change of the pod that receives a floating IP (`None`: no pod), when
/// the control plane started carrying it out.
#[derive(Clone, Debug)]
pub(super) struct FloatingIpChange {
    pub(super) floating_ip: IpAddr,
    pub(super) from: Option<String>,
    pub(super) to: Option<String>,
    pub(super) at_unix_ns: u64,
}

/// A stream that is running, and what a move during it needs.
pub(super) struct RunningStream {
    pub(super) spec: StartStream,
    pub(super) target: IpAddr,
    pub(super) handle: StreamHandle,
    pub(super) started_unix_ns: u64,
    /// The addresses each pod had while it ran (`check::PodsHad`).
    pub(super) pods_had: check::PodsHad,
}

/// A stream told to stop (by step `stop`) and still waiting for late replies
/// to its last probes; judged once it has drained.
pub(super) struct StoppingStream {
    pub(super) stop: StopStream,
    pub(super) spec: StartStream,
    pub(super) target: IpAddr,
    pub(super) stopped: StoppedStream,
    pub(super) started_unix_ns: u64,
    pub(super) pods_had: check::PodsHad,
}
