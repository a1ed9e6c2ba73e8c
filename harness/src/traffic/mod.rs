//! Traffic: probes, responders, capture, streams and the observations they make.
//!
//! Everything runs inside the harness process: sockets are opened inside each
//! lab namespace on a short-lived thread ([`Netns::run`]) and then served by the
//! tokio runtime. Every probe payload carries a [`Token`] so that each packet
//! seen anywhere (reply at the sender, capture at a pod) is attributed.
//!
//! ```text
//! let engine = TrafficEngine::new("lab1");
//! engine.add_endpoint(EndpointSpec::pod("web", ns, addrs, "eth0")).await?;
//! engine.add_endpoint(EndpointSpec::external("ext", ns2)).await?;
//! let out = engine.probe(ProbeSpec::new("ext", fip, Protocol::Sctp)).await?;
//! ```

mod capture;
pub mod codec;
mod observation;
mod probe;
mod responder;
mod sock;
mod token;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::lab::netns::{Netns, NetnsError};

pub use capture::{Capture, CapturedFrame};
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

struct Endpoint {
    spec: EndpointSpec,
    capture: Option<Arc<Capture>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for task in self.tasks.get_mut().unwrap().iter() {
            task.abort();
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
    /// Payload bytes (at least the token's).
    pub payload_len: usize,
    /// Also collect pod-side observations of this probe (waits `settle` for
    /// the captures to catch up).
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
}

impl ProbeOutcome {
    pub fn lost(&self) -> u32 {
        self.sent.saturating_sub(self.replies.len() as u32)
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

pub struct StreamHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<ProbeOutcome, TrafficError>>,
}

impl StreamHandle {
    /// Stop sending, wait for late replies, and return everything the stream saw.
    pub async fn stop(self) -> Result<ProbeOutcome, TrafficError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| TrafficError::Stream(e.to_string()))?
    }
}

struct Shared {
    lab: String,
    lab_hash: u32,
    next_probe: AtomicU32,
    step: AtomicU32,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Captures of removed endpoints: a stream that outlives a deleted pod
    /// still needs what that pod received before it went.
    retired: Mutex<Vec<Arc<Capture>>>,
}

/// The traffic side of one lab. Cheap to clone.
#[derive(Clone)]
pub struct TrafficEngine {
    shared: Arc<Shared>,
}

/// Time given to captures to read what was delivered before deliveries are
/// collected: frames are read by another task, a little after the reply.
const CAPTURE_SETTLE: Duration = Duration::from_millis(100);

impl TrafficEngine {
    pub fn new(lab: &str) -> Self {
        Self {
            shared: Arc::new(Shared {
                lab: lab.into(),
                lab_hash: lab_hash(lab),
                next_probe: AtomicU32::new(1),
                step: AtomicU32::new(0),
                endpoints: Mutex::new(HashMap::new()),
                retired: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn lab(&self) -> &str {
        &self.shared.lab
    }

    pub fn lab_hash(&self) -> u32 {
        self.shared.lab_hash
    }

    /// Register an endpoint; for pods, start responders (GRE, SCTP, UDP and TCP
    /// echo) and, when an interface is given, capture on it. Must be called on
    /// a tokio runtime.
    pub async fn add_endpoint(&self, spec: EndpointSpec) -> Result<(), TrafficError> {
        if self
            .shared
            .endpoints
            .lock()
            .unwrap()
            .contains_key(&spec.name)
        {
            return Err(TrafficError::DuplicateEndpoint(spec.name));
        }
        let mut tasks = Vec::new();
        let mut capture = None;
        if let Some(interface) = &spec.interface {
            let step = self.shared.step.load(Ordering::Relaxed);
            let (cap, task) = Capture::start(&spec.name, &spec.netns, interface, step)?;
            capture = Some(cap);
            tasks.push(task);
        }
        if spec.kind == EndpointKind::Pod {
            tasks.extend(responder::start_pod_responders(
                &spec.netns,
                &spec.addresses,
            )?);
        }
        let name = spec.name.clone();
        let endpoint = Arc::new(Endpoint {
            spec,
            capture,
            tasks: Mutex::new(tasks),
        });
        let mut endpoints = self.shared.endpoints.lock().unwrap();
        if endpoints.contains_key(&name) {
            return Err(TrafficError::DuplicateEndpoint(name));
        }
        endpoints.insert(name, endpoint);
        Ok(())
    }

    /// Stop an endpoint's responders and capture (its frames are dropped).
    /// Returns once their sockets are closed, so the namespace's kernel answers
    /// GRE and SCTP itself again (protocol unreachable) from then on.
    pub async fn remove_endpoint(&self, name: &str) -> Result<(), TrafficError> {
        let endpoint = self
            .shared
            .endpoints
            .lock()
            .unwrap()
            .remove(name)
            .ok_or_else(|| TrafficError::UnknownEndpoint(name.into()))?;
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *endpoint.tasks.lock().unwrap());
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Some(capture) = &endpoint.capture {
            self.shared.retired.lock().unwrap().push(capture.clone());
        }
        Ok(())
    }

    fn endpoint(&self, name: &str) -> Result<Arc<Endpoint>, TrafficError> {
        self.shared
            .endpoints
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .ok_or_else(|| TrafficError::UnknownEndpoint(name.into()))
    }

    fn captures(&self) -> Vec<Arc<Capture>> {
        self.shared
            .endpoints
            .lock()
            .unwrap()
            .values()
            .filter_map(|e| e.capture.clone())
            .chain(self.shared.retired.lock().unwrap().iter().cloned())
            .collect()
    }

    /// Captured frames without a token from now on belong to `step`.
    pub fn begin_step(&self, step: u32) {
        self.shared.step.store(step, Ordering::Relaxed);
        for capture in self.captures() {
            capture.set_step(step);
        }
    }

    /// Every observation at every capture that `keep` accepts, in time order.
    pub fn observations(&self, keep: impl Fn(&Observation) -> bool) -> Vec<Observation> {
        let mut all: Vec<Observation> = self
            .captures()
            .iter()
            .flat_map(|c| c.observations(|o| o.token.lab == self.shared.lab_hash && keep(o)))
            .collect();
        all.sort_by_key(|o| o.at_unix_ns);
        all
    }

    /// Where the probes of one probe or stream id were delivered: their
    /// requests as the receivers saw them (replies coming back to a sender
    /// that is itself captured, and ICMP errors, are not deliveries).
    pub fn deliveries(&self, probe: u32) -> Vec<Observation> {
        self.observations(|o| o.token.probe == probe && o.role == PacketRole::Request)
    }

    pub fn capture(&self, endpoint: &str) -> Result<Arc<Capture>, TrafficError> {
        self.endpoint(endpoint)?
            .capture
            .clone()
            .ok_or_else(|| TrafficError::NoCapture {
                endpoint: endpoint.into(),
            })
    }

    /// Write an endpoint's captured frames of `step` (all when None) as pcap.
    pub fn write_pcap(
        &self,
        endpoint: &str,
        step: Option<u32>,
        path: &Path,
    ) -> Result<usize, TrafficError> {
        self.capture(endpoint)?.write_pcap(step, path)
    }

    async fn open(
        &self,
        from: &str,
        to: IpAddr,
        protocol: Protocol,
        port: u16,
        step: u32,
        payload_len: usize,
    ) -> Result<(u32, probe::Transport), TrafficError> {
        let endpoint = self.endpoint(from)?;
        let id = self.shared.next_probe.fetch_add(1, Ordering::Relaxed);
        let ctx = probe::ProbeContext {
            sender: from.into(),
            protocol,
            to,
            port,
            lab: self.shared.lab_hash,
            step,
            probe: id,
            payload_len,
        };
        let transport = probe::Transport::open(&endpoint.spec.netns, ctx).await?;
        Ok((id, transport))
    }

    /// Send `spec.count` probes and collect replies, ICMP errors and (when
    /// asked) where they were delivered.
    pub async fn probe(&self, spec: ProbeSpec) -> Result<ProbeOutcome, TrafficError> {
        let (id, mut transport) = self
            .open(
                &spec.from,
                spec.to,
                spec.protocol,
                spec.port,
                spec.step,
                spec.payload_len,
            )
            .await?;
        let pace = probe::Pace {
            count: Some(spec.count),
            interval: spec.interval,
            window: spec.window as usize,
            timeout: spec.timeout,
        };
        let result = probe::drive(&mut transport, pace, None).await;
        let sctp_events = transport.close().await;
        Ok(self
            .outcome(
                id,
                &spec.from,
                spec.to,
                spec.protocol,
                result,
                sctp_events,
                spec.collect_deliveries,
            )
            .await)
    }

    #[allow(clippy::too_many_arguments)]
    async fn outcome(
        &self,
        id: u32,
        from: &str,
        to: IpAddr,
        protocol: Protocol,
        result: probe::DriveResult,
        sctp_events: Vec<String>,
        collect: bool,
    ) -> ProbeOutcome {
        let deliveries = if collect {
            tokio::time::sleep(CAPTURE_SETTLE).await;
            self.deliveries(id)
        } else {
            Vec::new()
        };
        ProbeOutcome {
            probe: id,
            from: from.into(),
            to,
            protocol,
            sent: result.sent,
            replies: result.replies,
            duplicates: result.duplicates,
            send_errors: result.send_errors,
            icmp_errors: result.icmp_errors,
            deliveries,
            sctp_events,
        }
    }

    /// Start a background sender; it runs until [`StreamHandle::stop`].
    pub async fn start_stream(&self, spec: StreamSpec) -> Result<StreamHandle, TrafficError> {
        let (id, mut transport) = self
            .open(
                &spec.from,
                spec.to,
                spec.protocol,
                spec.port,
                spec.step,
                spec.payload_len,
            )
            .await?;
        let (stop, stopped) = watch::channel(false);
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let pace = probe::Pace {
                count: None,
                interval: spec.interval,
                window: usize::MAX,
                timeout: Duration::from_secs(1),
            };
            let result = probe::drive(&mut transport, pace, Some(stopped)).await;
            let sctp_events = transport.close().await;
            Ok(engine
                .outcome(
                    id,
                    &spec.from,
                    spec.to,
                    spec.protocol,
                    result,
                    sctp_events,
                    true,
                )
                .await)
        });
        Ok(StreamHandle { stop, task })
    }
}
