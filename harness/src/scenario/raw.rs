//! The scenario file as written (serde model). [`super::load`] turns it into the
//! resolved [`super::Scenario`]. Unknown keys are errors everywhere.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::located::Spanned;
use super::values::{
    Address, Cidr, ConntrackProfile, Delivery, DurationValue, Loss, Name, Protocol, SeenAddress,
    Target,
};
use crate::calico::pool::ip_pool_settings;
use crate::calico::{FelixFloatingIps, PodPhase};
use crate::vocab::BackendKind;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[serde(expecting = "a scenario: a mapping with `cluster` and `steps`")]
pub(crate) struct RawScenario {
    #[serde(default)]
    pub name: Option<Spanned<Name>>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub backends: Option<Spanned<Vec<BackendKind>>>,
    /// The Calico release the scenario stands for (`v3.31`, `v3.31.5`);
    /// default: `--calico`, else the newest (docs/fidelity.md).
    #[serde(default)]
    pub calico: Option<Spanned<String>>,
    #[serde(default)]
    pub profiles: Option<Vec<ConntrackProfile>>,
    #[serde(default)]
    pub routings: Option<Vec<crate::vocab::RoutingMode>>,
    #[serde(default)]
    pub profile: Option<Spanned<ConntrackProfile>>,
    /// How updates reach the lab: `felix` (Calico's order, the default) or
    /// `ordered` (the harness's: all NAT, then routes, then conntrack).
    #[serde(default)]
    pub update_order: Option<crate::calico::UpdateOrder>,
    pub cluster: RawCluster,
    pub steps: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub cni: Spanned<String>,
    #[serde(default)]
    pub felix: RawFelix,
    #[serde(default)]
    pub dual_stack: bool,
    #[serde(default)]
    pub pools: Option<Vec<Spanned<RawPoolEntry>>>,
    pub nodes: Spanned<Vec<Spanned<NodeEntry>>>,
    #[serde(default)]
    pub externals: Vec<Spanned<NodeEntry>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawFelix {
    #[serde(default, rename = "floatingIPs")]
    pub floating_ips: FelixFloatingIps,
}

ip_pool_settings! {
    /// An inline pool or a manifest reference (`manifest:` alone).
    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub(crate) struct RawPoolEntry {
        #[serde(default)]
        pub manifest: Option<Spanned<String>>,
        #[serde(default)]
        pub name: Option<Name>,
        #[serde(default)]
        pub cidr: Option<Cidr>,
        ..settings..
    } => IpPoolSpec
}

/// `node-a` or `{name: node-a}`.
#[derive(Debug)]
pub(crate) struct NodeEntry {
    pub name: Name,
}

impl<'de> Deserialize<'de> for NodeEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Long {
            name: Name,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = NodeEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or {name: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<NodeEntry, E> {
                Ok(NodeEntry {
                    name: v.parse().map_err(E::custom)?,
                })
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<NodeEntry, A::Error> {
                let long = Long::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(NodeEntry { name: long.name })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A step: a mapping with exactly one key naming the kind (`createPod: {...}`).
#[derive(Debug)]
pub(crate) enum RawStep {
    CreatePod(RawCreatePod),
    /// Many pods at once; expanded into one `CreatePod` each before replay
    /// (see [`super::bulk`]).
    CreatePods(RawCreatePods),
    DeletePod(Spanned<Name>),
    Annotate(RawAnnotate),
    SetPhase(RawSetPhase),
    Send(RawSend),
    /// One `send` per sender and protocol; expanded before replay (see
    /// [`super::bulk`]).
    Sends(RawSends),
    StartStream(RawStartStream),
    StopStream(RawStopStream),
    Wait(RawWait),
}

pub(super) const STEP_KINDS: &[&str] = &[
    "createPod",
    "createPods",
    "deletePod",
    "annotate",
    "setPhase",
    "send",
    "sends",
    "startStream",
    "stopStream",
    "wait",
];

// yaml_serde reads enums only from `!tags`; steps are written as one-key maps.
impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawStep;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "a step: a mapping with one of the keys {}",
                    STEP_KINDS.join(", ")
                )
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<RawStep, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(de::Error::custom(format!(
                        "empty step: expected one of {}",
                        STEP_KINDS.join(", ")
                    )));
                };
                let step = match kind.as_str() {
                    "createPod" => RawStep::CreatePod(map.next_value()?),
                    "createPods" => RawStep::CreatePods(map.next_value()?),
                    "deletePod" => RawStep::DeletePod(map.next_value()?),
                    "annotate" => RawStep::Annotate(map.next_value()?),
                    "setPhase" => RawStep::SetPhase(map.next_value()?),
                    "send" => RawStep::Send(map.next_value()?),
                    "sends" => RawStep::Sends(map.next_value()?),
                    "startStream" => RawStep::StartStream(map.next_value()?),
                    "stopStream" => RawStep::StopStream(map.next_value()?),
                    "wait" => RawStep::Wait(map.next_value()?),
                    _ => {
                        return Err(de::Error::custom(format!(
                            "unknown step `{kind}`, expected one of {}",
                            STEP_KINDS.join(", ")
                        )))
                    }
                };
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "a step has one kind; found `{kind}` and `{extra}` (start a new `- ` item)"
                    )));
                }
                Ok(step)
            }
        }
        deserializer.deserialize_map(V)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawCreatePod {
    #[serde(default)]
    pub name: Option<Spanned<Name>>,
    #[serde(default)]
    pub namespace: Option<Name>,
    #[serde(default)]
    pub node: Option<Spanned<Name>>,
    #[serde(default)]
    pub manifest: Option<Spanned<String>>,
    #[serde(default)]
    pub annotations: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub expect: Option<RawSetupExpect>,
}

/// `createPods: {count: 100, node: node-a, namePrefix: web}`: pods
/// `web-0` .. `web-99` on one node, optionally each with the next floating IP
/// of a range.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawCreatePods {
    /// How many pods.
    pub count: Spanned<u32>,
    /// The node every pod runs on.
    pub node: Spanned<Name>,
    /// Pod `i` (from 0) is named `<namePrefix>-<i>`.
    pub name_prefix: Spanned<Name>,
    #[serde(default)]
    pub namespace: Option<Name>,
    /// Pod `i` gets the `i`-th address of this range (from its first address)
    /// as its floating IP, in the annotation `cni.projectcalico.org/floatingIPs`.
    #[serde(default, rename = "floatingIPs")]
    pub floating_ips: Option<Spanned<Cidr>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawSetupExpect {
    pub error: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawAnnotate {
    pub pod: Spanned<Name>,
    #[serde(default, rename = "floatingIPs")]
    pub floating_ips: Option<Spanned<String>>,
    #[serde(default)]
    pub remove: bool,
    #[serde(default)]
    pub expect: Option<RawSetupExpect>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawSetPhase {
    pub pod: Spanned<Name>,
    pub phase: PodPhase,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawSend {
    pub protocol: Protocol,
    pub from: Spanned<Name>,
    pub to: Spanned<Target>,
    #[serde(default)]
    pub count: Option<Spanned<u32>>,
    #[serde(default)]
    pub interval: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub expect: RawTrafficExpect,
}

/// `sends: {from: [client, node-b, peer], protocols: [icmp, gre, sctp],
/// to: 203.0.113.10, expect: {...}}`: one `send` per sender and protocol
/// (senders outer, in the order given), each with the same destination,
/// count, interval, port and expectation (`seenSource: from` is each one's
/// own sender).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawSends {
    /// The senders: pods, nodes or external hosts.
    pub from: Spanned<Vec<Spanned<Name>>>,
    /// The protocols each sender sends.
    pub protocols: Spanned<Vec<Protocol>>,
    pub to: Spanned<Target>,
    #[serde(default)]
    pub count: Option<Spanned<u32>>,
    #[serde(default)]
    pub interval: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
    #[serde(default)]
    pub expect: RawTrafficExpect,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawTrafficExpect {
    #[serde(default)]
    pub delivered_to: Option<Spanned<Delivery>>,
    #[serde(default)]
    pub seen_destination: Option<SeenAddress>,
    #[serde(default)]
    pub seen_source: Option<SeenAddress>,
    #[serde(default)]
    pub reply_source: Option<Address>,
    #[serde(default)]
    pub loss: Option<Loss>,
    #[serde(default)]
    pub quoted_destination: Option<Address>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawStartStream {
    pub name: Spanned<Name>,
    pub protocol: Protocol,
    pub from: Spanned<Name>,
    pub to: Spanned<Target>,
    #[serde(default)]
    pub interval: Option<Spanned<DurationValue>>,
    #[serde(default)]
    pub port: Option<Spanned<u16>>,
}

/// `wait: 100ms`, or `wait: {stream: s1, packets: 25}`.
#[derive(Debug)]
pub(crate) enum RawWait {
    Time(Spanned<DurationValue>),
    Packets(RawPacketWait),
}

/// Wait for a running stream's next packets.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawPacketWait {
    /// A stream running at this step.
    pub stream: Spanned<Name>,
    /// How many more packets it must have sent since the step began.
    pub packets: Spanned<u32>,
    /// The step fails when the packets take longer; default: ten times
    /// their time at the stream's interval, and at least 10s.
    #[serde(default)]
    pub within: Option<Spanned<DurationValue>>,
}

impl<'de> Deserialize<'de> for RawWait {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawWait;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `100ms`, or {stream: ..., packets: ...}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawWait, E> {
                let time =
                    Spanned::<DurationValue>::deserialize(de::value::StrDeserializer::<E>::new(v))?;
                Ok(RawWait::Time(time))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<RawWait, A::Error> {
                let wait = RawPacketWait::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawWait::Packets(wait))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawStopStream {
    pub name: Spanned<Name>,
    #[serde(default)]
    pub expect: RawStreamExpect,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawStreamExpect {
    #[serde(default)]
    pub delivered_to: Option<Spanned<Delivery>>,
    #[serde(default)]
    pub loss: Option<Loss>,
    #[serde(default)]
    pub after_move_at: Option<Spanned<Name>>,
}

/// A Kubernetes Pod v1 manifest: only what a lab needs is read; other fields
/// (containers...) are allowed, since real manifests carry them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodManifest {
    pub api_version: String,
    pub kind: String,
    pub metadata: PodMetadata,
    #[serde(default)]
    pub spec: PodManifestSpec,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PodMetadata {
    pub name: Name,
    #[serde(default)]
    pub namespace: Option<Name>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodManifestSpec {
    #[serde(default)]
    pub node_name: Option<Name>,
}
