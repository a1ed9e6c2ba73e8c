//! The resolved, validated scenario the runner consumes. Every reference in it
//! has been checked: names exist, files were read, Calico's verdict on each pod
//! set-up agrees with what the step expects.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use super::values::{ConntrackProfile, Protocol, Target};
use crate::calico::{CniFeatureControl, CniNetworkConfig, FelixFloatingIps, IpPool, PodPhase};
use crate::check::{StreamExpectation, TrafficExpectation};
use crate::vocab::BackendKind;

/// Default packet count of `send`.
pub const DEFAULT_COUNT: u32 = 3;
/// Default interval between packets of `send` and streams.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(10);
/// Default destination port for udp, tcp and sctp.
pub const DEFAULT_PORT: u16 = 7;
/// Namespace of pods that do not name one.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Durations in reports read as the scenario language writes them (`10ms`).
fn duration_text<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let nanos = d.as_nanos();
    let text = match nanos {
        n if n % 1_000_000_000 == 0 => format!("{}s", n / 1_000_000_000),
        n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
        n if n % 1_000 == 0 => format!("{}us", n / 1_000),
        n => format!("{n}ns"),
    };
    s.serialize_str(&text)
}

/// One validated scenario.
#[derive(Clone, Debug, Serialize)]
pub struct Scenario {
    /// Unique in a catalogue; defaults to the file stem.
    pub name: String,
    pub description: String,
    pub tags: Vec<String>,
    /// The file it came from (as given on the command line, not canonicalised).
    pub source: PathBuf,
    /// Dataplane backends the scenario runs on (default: all).
    pub backends: Vec<BackendKind>,
    /// The Calico release the model stands for (`calico:`, else `--calico`,
    /// else the newest).
    pub calico: crate::calico::Release,
    /// Conntrack profiles the scenario runs with (default: all).
    pub profiles: Vec<ConntrackProfile>,
    /// Routings the scenario holds under (default: both).
    pub routings: Vec<crate::vocab::RoutingMode>,
    /// How updates reach the lab (default: Felix's own order).
    pub update_order: crate::calico::UpdateOrder,
    pub cluster: Cluster,
    pub steps: Vec<Step>,
    /// What Calico accepts here but is probably a mistake, as
    /// `file:line:col: warning: ...`; `validate` and `run` print them.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// The cluster a scenario builds.
#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    /// The CNI network config, read and parsed (template values substituted).
    pub cni: CniNetworkConfig,
    /// Where it was read from (resolved against the scenario's folder).
    pub cni_source: PathBuf,
    /// Felix's `floatingIPs` switch.
    pub felix_floating_ips: FelixFloatingIps,
    /// Pods get an IPv6 address too.
    pub dual_stack: bool,
    /// Inline pools and pools from manifests, in file order. When the scenario
    /// gives none: 198.19.0.0/16 (and 2001:db8:1::/48 when dual stack).
    pub pools: Vec<IpPool>,
    /// Node names; node i is wired as the addressing plan's node i.
    pub nodes: Vec<String>,
    /// External host names; external j is the plan's external j.
    pub externals: Vec<String>,
}

impl Cluster {
    /// The CNI plugin's `feature_control`.
    pub fn cni_features(&self) -> CniFeatureControl {
        self.cni.feature_control
    }
}

/// One step, run in order.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Step {
    CreatePod(CreatePod),
    /// Delete the pod of this name (CNI DEL: its addresses are freed).
    DeletePod(String),
    Annotate(Annotate),
    SetPhase(SetPhase),
    Send(Send),
    StartStream(StartStream),
    StopStream(StopStream),
    Wait(Wait),
}

/// A `wait` step: a time, or a running stream's next packets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Wait {
    /// `wait: 100ms`.
    Time(#[serde(serialize_with = "duration_text")] Duration),
    /// `wait: {stream: s1, packets: 25}`.
    Packets(PacketWait),
}

/// Wait until stream `stream` has sent `packets` more packets than it had
/// when the step began; the step fails when that takes longer than `within`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PacketWait {
    pub stream: String,
    pub packets: u32,
    #[serde(serialize_with = "duration_text")]
    pub within: Duration,
    /// The stream's interval: `packets` of them is how long the wait takes
    /// on time (what the model's clock and a case's cost count).
    #[serde(skip)]
    pub interval: Duration,
}

impl Wait {
    /// How long the wait takes when its stream keeps to its interval.
    pub fn nominal(&self) -> Duration {
        match self {
            Wait::Time(time) => *time,
            Wait::Packets(wait) => wait.interval.saturating_mul(wait.packets),
        }
    }
}

/// A pod as the CNI plugin sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub name: String,
    pub namespace: String,
    pub node: String,
    /// All annotations (the floating-IP one is `calico::FLOATING_IPS_ANNOTATION`).
    pub annotations: BTreeMap<String, String>,
}

/// Create a pod (CNI ADD).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePod {
    pub pod: Pod,
    /// The pod's manifest, when it came from one.
    pub manifest: Option<PathBuf>,
    /// Set-up must fail with an error containing this text.
    pub expect_error: Option<String>,
}

/// Set (`Some`) or remove (`None`) a pod's floating-IP annotation on a running
/// pod. The change reaches Felix as Calico's Kubernetes-datastore conversion
/// reads it ([`crate::calico::kdd_ip_nats`]): no CNI feature check, entries
/// that are not plain IP addresses or of a family the pod lacks are dropped; a
/// malformed value fails the conversion, and Felix then loses the endpoint.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Annotate {
    pub pod: String,
    /// The raw annotation value (may be malformed on purpose).
    pub floating_ips: Option<String>,
    /// The conversion must reject the new value with an error containing this text.
    pub expect_error: Option<String>,
}

/// Set a running pod's `status.phase`. A finished pod (Succeeded, Failed) keeps
/// its object, sandbox and addresses in the harness, but Calico's conversion
/// gives it no addresses, so Felix drops its endpoint: its floating IPs' NAT
/// and routes go, and conntrack entries of its addresses are flushed
/// ([`crate::calico::PodPhase::is_finished`]).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetPhase {
    pub pod: String,
    pub phase: PodPhase,
}

/// Send `count` packets and check where they land.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Send {
    pub protocol: Protocol,
    /// Pod, node or external host name.
    pub from: String,
    pub to: Target,
    pub count: u32,
    #[serde(serialize_with = "duration_text")]
    pub interval: Duration,
    /// Destination port (udp, tcp, sctp); `DEFAULT_PORT` when not given.
    pub port: u16,
    pub expect: TrafficExpectation,
}

/// Start a background stream (runs until its `stopStream`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StartStream {
    pub name: String,
    pub protocol: Protocol,
    pub from: String,
    pub to: Target,
    #[serde(serialize_with = "duration_text")]
    pub interval: Duration,
    pub port: u16,
}

/// Stop a stream and check what it delivered.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StopStream {
    pub name: String,
    pub expect: StreamExpectation,
}
