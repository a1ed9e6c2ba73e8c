//! The traffic engine of one lab: its endpoints (responders and captures per
//! namespace), probe runs and background streams, and where their packets
//! were delivered.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::seed::Seed;
use tokio::task::JoinHandle;

use super::{
    drive, lab_hash, probe, responder, Capture, EndpointKind, EndpointSpec, Observation,
    PacketRole, ProbeOutcome, ProbeSpec, Protocol, StreamSpec, TrafficError,
};

/// A stream's timeout for its handshake steps (SCTP's INIT and COOKIE ECHO
/// wait at most 500 ms each, [`super::sctp_client`]).
const STREAM_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a stream waits, once stopped, for replies to its last probes
/// (a stream whose last state delivers nothing waits all of it; 1 s once
/// held every such stop, a third of an explored case's time). Our choice,
/// from what we measured (docs/benchmarks.md, "How long a packet takes
/// across a lab"): over the whole catalogue a stream's reply took at most
/// 64 ms to be read by its sender run alone (load 10-24) and 103 ms with
/// two catalogues at once (load 46-56), a stream's packet at most 72 ms to
/// arrive (an SCTP packet its protocol sent again after a move). 300 ms is
/// 3 times the slowest reply read, which bounds the reply's own crossing
/// from above; not lowered, since the data gives no 5-fold margin below it.
/// A reply the drain cuts counts as lost: a failure that is seen.
const STREAM_DRAIN: Duration = Duration::from_millis(300);

/// How long starting a stream waits at most for its first probe to leave.
/// The scenario's next steps must come after it: the model fixes a flow's
/// NAT by its first packet, in the state its start step saw. On a loaded
/// machine the sending task once ran hundreds of milliseconds after the
/// start step returned, after the floating IP had moved (`fip-harness
/// explore --dataplane iptables --seed 4201`, case 1846). A bound only so
/// that a stuck task cannot hold the run; never reached in practice.
const STREAM_FIRST_SEND: Duration = Duration::from_secs(5);

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

pub struct StreamHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<ProbeOutcome, TrafficError>>,
    sent: PacketsSent,
}

/// How many probes a running stream has sent so far, as its sender counts
/// them (`Tally`'s `sent`, in [`drive::drive_stream`]).
#[derive(Clone)]
pub struct PacketsSent(watch::Receiver<u32>);

impl PacketsSent {
    /// Probes sent so far.
    pub fn now(&self) -> u32 {
        *self.0.borrow()
    }

    /// Wait until `total` probes have been sent; `Err` with the count
    /// reached when the sender ended first.
    pub async fn reach(&mut self, total: u32) -> Result<(), u32> {
        let reached = self.0.wait_for(|&n| n >= total).await.is_ok();
        if reached {
            Ok(())
        } else {
            Err(self.now())
        }
    }
}

impl StreamHandle {
    /// The stream's count of probes sent.
    pub fn packets_sent(&self) -> PacketsSent {
        self.sent.clone()
    }

    /// Stop sending, wait for late replies, and return everything the stream saw.
    pub async fn stop(self) -> Result<ProbeOutcome, TrafficError> {
        self.stop_sending().outcome().await
    }

    /// Stop sending now; what the stream saw comes once it has waited for
    /// late replies (up to [`STREAM_DRAIN`]), which the caller may spend on
    /// other work.
    pub fn stop_sending(self) -> StoppedStream {
        let _ = self.stop.send(true);
        StoppedStream {
            task: Some(self.task),
            outcome: None,
        }
    }
}

/// A stream told to stop, waiting for late replies to its last probes.
pub struct StoppedStream {
    task: Option<JoinHandle<Result<ProbeOutcome, TrafficError>>>,
    outcome: Option<Result<ProbeOutcome, TrafficError>>,
}

impl StoppedStream {
    /// Wait until the stream has drained (at once when it has). Safe to
    /// cancel: a wait dropped part way leaves the stream draining.
    pub async fn drained(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let outcome = task
                .await
                .map_err(|e| TrafficError::Stream(e.to_string()))
                .and_then(|outcome| outcome);
            self.task = None;
            self.outcome = Some(outcome);
        }
    }

    /// Whether the stream has drained and its outcome is held.
    pub fn is_drained(&self) -> bool {
        self.task.is_none()
    }

    /// Everything the stream saw, once drained.
    pub async fn outcome(mut self) -> Result<ProbeOutcome, TrafficError> {
        self.drained().await;
        self.outcome
            .take()
            .unwrap_or_else(|| Err(TrafficError::Stream("no outcome".into())))
    }
}

struct Shared {
    lab: String,
    /// The run's seed, when it fixes the engine's random choices.
    seed: Option<Seed>,
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

impl TrafficEngine {
    pub fn new(lab: &str) -> Self {
        Self::with_seed(lab, None)
    }

    /// An engine whose random choices (SCTP tags and TSNs at both ends, UDP
    /// and TCP source ports) come from `seed` (see [`crate::seed`]).
    pub fn with_seed(lab: &str, seed: Option<Seed>) -> Self {
        Self {
            shared: Arc::new(Shared {
                lab: lab.into(),
                seed,
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
            let observe = matches!(spec.kind, EndpointKind::Pod | EndpointKind::External);
            let (cap, task) = Capture::start(&spec.name, &spec.netns, interface, step, observe)?;
            capture = Some(cap);
            tasks.push(task);
        }
        if spec.kind == EndpointKind::Pod {
            tasks.extend(responder::start_pod_responders(
                &spec.netns,
                &spec.addresses,
                self.shared.seed,
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

    /// Wait until every capture has read what the kernel had queued for it:
    /// then every probe that was answered is seen where it was delivered.
    pub async fn catch_up(&self) {
        futures::future::join_all(self.captures().iter().map(|c| c.catch_up())).await;
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

    /// Open `spec`'s transport (its count, pace and window are the caller's).
    async fn open(&self, spec: &ProbeSpec, id: u32) -> Result<probe::Transport, TrafficError> {
        let endpoint = self.endpoint(&spec.from)?;
        let ctx = probe::ProbeContext {
            sender: spec.from.clone(),
            protocol: spec.protocol,
            to: spec.to,
            port: spec.port,
            lab: self.shared.lab_hash,
            step: spec.step,
            probe: id,
            payload_len: spec.payload_len,
            seed: self.shared.seed,
            timeout: spec.timeout,
            handshake: spec.handshake,
        };
        probe::Transport::open(&endpoint.spec.netns, ctx).await
    }

    /// The ids of the next `count` probes, for [`TrafficEngine::probe_numbered`].
    /// The run's seed draws SCTP tags and source ports from a probe's id: so
    /// that one seed sends the same packets, probes that fly together take
    /// their ids in step order, not in the order their tasks happen to open.
    pub fn reserve_probe_ids(&self, count: u32) -> std::ops::Range<u32> {
        let first = self.shared.next_probe.fetch_add(count, Ordering::Relaxed);
        first..first + count
    }

    /// Send `spec.count` probes and collect replies, ICMP errors and (when
    /// asked) where they were delivered.
    pub async fn probe(&self, spec: ProbeSpec) -> Result<ProbeOutcome, TrafficError> {
        let id = self.reserve_probe_ids(1).start;
        self.probe_numbered(id, spec).await
    }

    /// [`TrafficEngine::probe`] as probe `id` (from
    /// [`TrafficEngine::reserve_probe_ids`]).
    pub async fn probe_numbered(
        &self,
        id: u32,
        spec: ProbeSpec,
    ) -> Result<ProbeOutcome, TrafficError> {
        let opened = self.open(&spec, id).await;
        let mut transport = match opened {
            Ok(opened) => opened,
            // A TCP connection the network refuses (no route, an ICMP
            // unreachable, a reset, no answer) carries no probe: every probe
            // is sent and lost, as a datagram's would be. It is an
            // observation, not a failure of the harness.
            Err(TrafficError::Connect { reason, .. }) => {
                tracing::debug!(to = %spec.to, %reason, "TCP probe not connected");
                return Ok(self.unconnected(id, &spec));
            }
            Err(error) => return Err(error),
        };
        let pace = drive::Pace {
            count: Some(spec.count),
            interval: spec.interval,
            window: spec.window as usize,
            timeout: spec.timeout,
        };
        let result = drive::drive(&mut transport, pace, None).await;
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

    /// The outcome of probes whose connection never opened.
    fn unconnected(&self, id: u32, spec: &ProbeSpec) -> ProbeOutcome {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        ProbeOutcome {
            probe: id,
            from: spec.from.clone(),
            to: spec.to,
            protocol: spec.protocol,
            sent: spec.count,
            replies: Vec::new(),
            duplicates: 0,
            send_errors: spec.count,
            icmp_errors: Vec::new(),
            deliveries: Vec::new(),
            sctp_events: Vec::new(),
            sent_at_unix_ns: vec![now; spec.count as usize],
            collected_unix_ns: now,
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn outcome(
        &self,
        id: u32,
        from: &str,
        to: IpAddr,
        protocol: Protocol,
        result: drive::DriveResult,
        sctp_events: Vec<String>,
        collect: bool,
    ) -> ProbeOutcome {
        // Before catching up: what the kernel queued by now is read.
        let collected_unix_ns = super::now_unix_ns();
        let deliveries = if collect {
            self.catch_up().await;
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
            sent_at_unix_ns: result.sent_at_unix_ns,
            collected_unix_ns,
        }
    }

    /// Start a background sender; it runs until [`StreamHandle::stop`].
    pub async fn start_stream(&self, spec: StreamSpec) -> Result<StreamHandle, TrafficError> {
        let mut opening = ProbeSpec::new(&spec.from, spec.to, spec.protocol);
        opening.port = spec.port;
        opening.step = spec.step;
        opening.payload_len = spec.payload_len;
        opening.timeout = STREAM_TIMEOUT;
        let id = self.reserve_probe_ids(1).start;
        let mut transport = self.open(&opening, id).await?;
        let (stop, stopped) = watch::channel(false);
        let (counting, sent) = watch::channel(0);
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let pace = drive::Pace {
                count: None,
                interval: spec.interval,
                // No window: `timeout` only bounds the drain after the stop.
                window: usize::MAX,
                timeout: STREAM_DRAIN,
            };
            let result = drive::drive_stream(&mut transport, pace, stopped, counting).await;
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
        // The task dropping its end (it ended before sending) ends the wait too.
        let mut first = sent.clone();
        let _ = tokio::time::timeout(STREAM_FIRST_SEND, first.wait_for(|&n| n >= 1)).await;
        Ok(StreamHandle {
            stop,
            task,
            sent: PacketsSent(sent),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A counted wait ends when the stream's count reaches the total, and
    /// with the count reached when its sender ends first.
    #[tokio::test]
    async fn packets_sent_reaches_a_total_or_says_where_the_sender_ended() {
        let (counting, sent) = watch::channel(0);
        let mut sent = PacketsSent(sent);
        let sender = tokio::spawn(async move {
            for n in 1..=5 {
                tokio::task::yield_now().await;
                counting.send_replace(n);
            }
        });
        assert_eq!(sent.reach(5).await, Ok(()));
        assert_eq!(sent.now(), 5);
        sender.await.unwrap();
        assert_eq!(sent.reach(6).await, Err(5));
        // A total already reached needs no more packets, even from a sender gone.
        assert_eq!(sent.reach(3).await, Ok(()));
    }
}
