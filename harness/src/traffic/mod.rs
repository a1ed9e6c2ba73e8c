//! Traffic: probes, responders, capture, streams and the observations they make.
//!
//! Everything runs inside the harness process: sockets are opened inside each
//! lab namespace on a short-lived thread ([`Netns::run`]) and then served by the
//! tokio runtime. Every probe payload carries a [`Token`] so that each packet
//! seen anywhere (reply at the sender, capture at a pod) is attributed.
//!
//! `engine` holds a lab's endpoints, probe runs and streams; `probe` is one
//! sender's transport per protocol and `drive` its pacing (`inline` drives a
//! free-running ICMP or GRE probe off the runtime, as ping drives its own);
//! `sctp_client` and `sctp_server` are the two ends of an SCTP association;
//! `responder` starts a pod's echo servers; `capture` reads an interface; `sock` opens sockets in a
//! namespace. Every packet is read and built with [`crate::wire`].
//!
//! ```text
//! let engine = TrafficEngine::new("lab1");
//! engine.add_endpoint(EndpointSpec::pod("web", ns, addrs, "eth0")).await?;
//! engine.add_endpoint(EndpointSpec::external("ext", ns2)).await?;
//! let out = engine.probe(ProbeSpec::new("ext", fip, Protocol::Sctp)).await?;
//! ```

mod capture;
mod drive;
mod engine;
mod inline;
mod observation;
mod probe;
mod raw;
mod responder;
mod sctp_client;
mod sctp_server;
mod sock;
mod tally;
mod token;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lab::netns::{Netns, NetnsError};

pub use capture::{Capture, CapturedFrame};
pub use engine::{PacketsSent, StoppedStream, StreamHandle, TrafficEngine};
pub use observation::{
    now_unix_ns, IcmpErrorObservation, Observation, PacketRole, Protocol, ReplyObservation,
};
pub use responder::{ECHO_PORT, SCTP_CLIENT_PORT_BASE};
pub use token::{lab_hash, Token, TOKEN_LEN, TOKEN_MAGIC};

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error("network namespace '{namespace}': {what}: {source}")]
    Socket {
        namespace: String,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace '{namespace}' has no interface '{interface}'")]
    NoInterface {
        namespace: String,
        interface: String,
    },
    #[error("no traffic endpoint named '{0}'")]
    UnknownEndpoint(String),
    #[error("traffic endpoint '{0}' already exists")]
    DuplicateEndpoint(String),
    #[error("endpoint '{endpoint}' has no capture (no interface given)")]
    NoCapture { endpoint: String },
    #[error("from '{namespace}': TCP connect to {to} failed: {reason}")]
    Connect {
        namespace: String,
        to: SocketAddr,
        reason: String,
    },
    #[error("writing pcap '{path}': {reason}")]
    Pcap { path: PathBuf, reason: String },
    #[error("stream task failed: {0}")]
    Stream(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointKind {
    Pod,
    Node,
    External,
}

/// A namespace the engine sends from or observes.
#[derive(Clone, Debug)]
pub struct EndpointSpec {
    pub name: String,
    pub netns: Netns,
    pub kind: EndpointKind,
    /// The endpoint's own addresses (pods: responders run for these families).
    pub addresses: Vec<IpAddr>,
    /// Interface to capture on (a pod's `eth0`); None: no capture.
    pub interface: Option<String>,
}

impl EndpointSpec {
    pub fn pod(name: &str, netns: Netns, addresses: Vec<IpAddr>, interface: &str) -> Self {
        Self {
            name: name.into(),
            netns,
            kind: EndpointKind::Pod,
            addresses,
            interface: Some(interface.into()),
        }
    }

    /// A node: sends probes; captures on `interface` when given (e.g. its uplink).
    pub fn node(name: &str, netns: Netns, interface: Option<&str>) -> Self {
        Self {
            name: name.into(),
            netns,
            kind: EndpointKind::Node,
            addresses: Vec::new(),
            interface: interface.map(Into::into),
        }
    }

    pub fn external(name: &str, netns: Netns) -> Self {
        Self {
            name: name.into(),
            netns,
            kind: EndpointKind::External,
            addresses: Vec::new(),
            interface: None,
        }
    }
}

/// One probe run: `count` packets from endpoint `from` to `to`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeSpec {
    pub from: String,
    pub to: IpAddr,
    pub protocol: Protocol,
    pub count: u32,
    /// Zero: send as fast as `window` allows.
    pub interval: Duration,
    /// Destination port for UDP, TCP and SCTP (ignored for ICMP and GRE).
    pub port: u16,
    pub step: u32,
    /// Most probes awaiting a reply at once.
    pub window: u32,
    /// Wait for replies this long after the last send.
    pub timeout: Duration,
    /// How long a TCP or SCTP handshake waits for its first answer, all its
    /// tries together. None: the protocol's own (TCP's connect 3 s; SCTP's
    /// three INITs 500 ms apart, each at most `timeout`). A send that expects
    /// silence gives its window: every packet it sends still has a whole
    /// window to be answered or to leak before it is judged (TCP's SYN has
    /// the handshake's; SCTP's DATA goes after the INITs and waits `timeout`).
    #[serde(default)]
    pub handshake: Option<Duration>,
    /// Payload bytes (at least the token's).
    pub payload_len: usize,
    /// Also collect pod-side observations of this probe (once every capture
    /// has read what the kernel queued for it).
    pub collect_deliveries: bool,
}

impl ProbeSpec {
    pub fn new(from: &str, to: IpAddr, protocol: Protocol) -> Self {
        Self {
            from: from.into(),
            to,
            protocol,
            count: 3,
            interval: Duration::from_millis(10),
            port: ECHO_PORT,
            step: 0,
            window: 64,
            timeout: Duration::from_secs(1),
            handshake: None,
            payload_len: 64,
            collect_deliveries: true,
        }
    }
}

/// What a probe run saw.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProbeOutcome {
    pub probe: u32,
    pub from: String,
    pub to: IpAddr,
    pub protocol: Protocol,
    pub sent: u32,
    pub replies: Vec<ReplyObservation>,
    pub duplicates: u32,
    /// Sends the kernel refused (e.g. no route); they count in `sent` and as lost.
    pub send_errors: u32,
    pub icmp_errors: Vec<IcmpErrorObservation>,
    /// Observations at captured endpoints of packets carrying this probe's
    /// token: requests, echoes and ICMP errors (see `protocol`); SCTP's closing
    /// HEARTBEAT carries sequence number `u32::MAX`.
    pub deliveries: Vec<Observation>,
    /// SCTP association events at the sender (INIT sent, INIT ACK from ..., ...).
    pub sctp_events: Vec<String>,
    /// When each sequence number was sent (nanoseconds since the Unix epoch).
    #[serde(default)]
    pub sent_at_unix_ns: Vec<u64>,
    /// When the wait for answers ended and `deliveries` were collected
    /// (nanoseconds since the Unix epoch): a send that expects silence has
    /// its window closed then.
    #[serde(default)]
    pub collected_unix_ns: u64,
}

impl ProbeOutcome {
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.replies.len() as u32)
    }
}

/// What the checks judge a probe run or a stopped stream on
/// ([`crate::check::delivery_observed`], [`crate::check::stream_packets`]).
impl crate::check::Recording for ProbeOutcome {
    fn sent(&self) -> u32 {
        self.sent
    }

    fn arrivals(&self) -> impl Iterator<Item = crate::check::Arrival<'_>> {
        self.deliveries.iter().map(|seen| crate::check::Arrival {
            pod: &seen.endpoint,
            sequence: seen.token.seq,
            source: seen.src,
            destination: seen.dst,
            at_unix_ns: seen.at_unix_ns,
        })
    }

    fn answers(&self) -> impl Iterator<Item = crate::check::Answer> {
        self.replies.iter().map(|reply| crate::check::Answer {
            sequence: reply.token.seq,
            source: reply.src,
            round_trip_ns: reply.rtt_ns,
        })
    }

    fn quoted_destinations(&self) -> impl Iterator<Item = IpAddr> {
        self.icmp_errors.iter().map(|error| error.quoted_dst)
    }

    fn sent_at_unix_ns(&self, sequence: u32) -> Option<u64> {
        self.sent_at_unix_ns.get(sequence as usize).copied()
    }
}

/// A background sender: like a probe without a count, until stopped.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamSpec {
    pub from: String,
    pub to: IpAddr,
    pub protocol: Protocol,
    /// Down to 1 ms.
    pub interval: Duration,
    pub port: u16,
    pub step: u32,
    pub payload_len: usize,
}

impl StreamSpec {
    pub fn new(from: &str, to: IpAddr, protocol: Protocol, interval: Duration) -> Self {
        Self {
            from: from.into(),
            to,
            protocol,
            interval,
            port: ECHO_PORT,
            step: 0,
            payload_len: 64,
        }
    }
}
