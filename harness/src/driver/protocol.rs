//! The messages of the driver protocol, version [`PROTOCOL_VERSION`]: one JSON
//! object per line, the harness's requests on the driver's stdin, the
//! driver's answers on its stdout, one answer per request, in order. These
//! types are the protocol: docs/driver-protocol.md describes them and
//! schema/driver-protocol.schema.json is generated from them.
//!
//! Unknown fields are ignored on both sides, so a later version can add
//! fields without breaking drivers; anything else changes the version.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::calico::IpFamily;
use crate::dataplane::{ConntrackMatch, DnatMapping, NodeNatState, NodeTopology, SnatMapping};
use crate::traffic::Protocol;

/// The version this harness speaks. A driver that answers `hello` with
/// another one is refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// A request from the harness.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Request {
    /// Increases by one from 1 with every request to this driver; the answer
    /// carries the same id.
    pub id: u64,
    #[serde(flatten)]
    pub body: RequestBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBody {
    /// Always the first request. Answered by `hello`.
    Hello(Hello),
    /// The node's interfaces, whole; sent after `hello` and again whenever a
    /// pod comes or goes. Answered by `ok`.
    Topology(NodeTopology),
    /// The node's whole desired floating-IP NAT (not a change). Answered by
    /// `ok` once it is in force: the next packet must see it.
    Apply(NatState),
    /// Delete flow state (only to drivers whose `hello` said
    /// `owns_conntrack`). Answered by `flushed`.
    Flush(Flush),
    /// The driver's own view of the node. Answered by `dump`.
    Dump,
    /// The last request. Answered by `ok`; then the driver exits.
    Shutdown(Shutdown),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Hello {
    /// The protocol version the harness speaks.
    pub protocol: u32,
    /// The harness's name and version, for the driver's logs.
    pub harness: String,
    /// How long the harness waits for each answer, in milliseconds.
    pub timeout_ms: u64,
}

/// Floating-IP NAT of one node, per address family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NatState {
    pub ipv4: FamilyNat,
    pub ipv6: FamilyNat,
}

/// The NAT of one family.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FamilyNat {
    /// Packets to `external` go to `internal` (a pod of this node), whether
    /// they arrive at the node or the node sends them (prerouting and output,
    /// in netfilter's words). Every protocol, not only TCP/UDP/SCTP.
    pub dnat: Vec<DnatMapping>,
    /// The loopback case only: a packet from `internal` to `internal` (a pod
    /// reaching its own floating IP, after DNAT) leaves with `external` as
    /// its source.
    pub snat: Vec<SnatMapping>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Flush {
    /// Delete every flow any rule selects.
    pub rules: Vec<FlushRule>,
}

/// Which flows a flush deletes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "match", rename_all = "snake_case")]
pub enum FlushRule {
    /// Flows whose original destination is `address` (a floating IP that
    /// moved, under the strict profile).
    OrigDst { address: IpAddr },
    /// Flows whose original source or reply source is `address` (a deleted
    /// pod's address).
    OrigSrcOrReplySrc { address: IpAddr },
    /// Every flow.
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Shutdown {
    /// True when the lab stays up for people to look at (`fip-harness up`,
    /// `run --keep-on-failure`): leave the node's dataplane as it is. False:
    /// remove what you put there.
    pub keep: bool,
}

/// An answer from the driver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Response {
    /// The id of the request this answers.
    pub id: u64,
    #[serde(flatten)]
    pub body: ResponseBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBody {
    /// To `hello`.
    Hello(HelloAnswer),
    /// To `topology`, `apply` and `shutdown`: done.
    Ok,
    /// To `flush`.
    Flushed {
        /// How many flows went.
        deleted: usize,
    },
    /// To `dump`.
    Dump(DumpAnswer),
    /// To any request the driver could not carry out; fails the case with
    /// `message`.
    Error { message: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HelloAnswer {
    /// The protocol version the driver speaks; must equal the harness's.
    pub protocol: u32,
    /// The driver's name, as failures and reports show it.
    pub name: String,
    pub version: String,
    pub capabilities: Capabilities,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Capabilities {
    /// Address families the driver translates. A case that needs another one
    /// is not run on it (it ends in an error that names what is missing).
    pub families: Vec<Family>,
    /// Protocols whose packets the driver translates (`icmp` covers ICMPv6).
    pub protocols: Vec<Protocol>,
    /// True: the driver keeps its own flow state and deletes it on `flush`.
    /// False: the harness deletes the kernel's conntrack entries itself.
    pub owns_conntrack: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Ipv4,
    Ipv6,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DumpAnswer {
    /// The driver's state as text for people (the diagnostics bundle's
    /// `driver-dump.txt`, `fip-harness state`).
    pub text: String,
    /// The same, or more, as any JSON the driver likes (`driver-dump.json`).
    #[serde(default)]
    pub json: serde_json::Value,
    /// The NAT in force as the driver reads it back, if it can; `state` shows
    /// it as mappings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mappings: Option<NatState>,
}

impl RequestBody {
    /// The request's `type`, as failures name it.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestBody::Hello(_) => "hello",
            RequestBody::Topology(_) => "topology",
            RequestBody::Apply(_) => "apply",
            RequestBody::Flush(_) => "flush",
            RequestBody::Dump => "dump",
            RequestBody::Shutdown(_) => "shutdown",
        }
    }
}

impl ResponseBody {
    /// The answer's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            ResponseBody::Hello(_) => "hello",
            ResponseBody::Ok => "ok",
            ResponseBody::Flushed { .. } => "flushed",
            ResponseBody::Dump(_) => "dump",
            ResponseBody::Error { .. } => "error",
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        })
    }
}

impl Family {
    pub fn of(family: IpFamily) -> Self {
        match family {
            IpFamily::V4 => Family::Ipv4,
            IpFamily::V6 => Family::Ipv6,
        }
    }
}

impl From<&NodeNatState> for NatState {
    fn from(state: &NodeNatState) -> Self {
        let mut nat = NatState::default();
        for dnat in &state.dnat {
            nat.family_mut(dnat.external.is_ipv4()).dnat.push(*dnat);
        }
        for snat in &state.snat {
            nat.family_mut(snat.internal.is_ipv4()).snat.push(*snat);
        }
        nat
    }
}

impl From<&NatState> for NodeNatState {
    fn from(nat: &NatState) -> Self {
        let families = [&nat.ipv4, &nat.ipv6];
        NodeNatState::new(
            families.iter().flat_map(|f| f.dnat.iter().copied()),
            families.iter().flat_map(|f| f.snat.iter().copied()),
        )
    }
}

impl NatState {
    fn family_mut(&mut self, v4: bool) -> &mut FamilyNat {
        if v4 {
            &mut self.ipv4
        } else {
            &mut self.ipv6
        }
    }
}

impl From<&ConntrackMatch> for FlushRule {
    fn from(rule: &ConntrackMatch) -> Self {
        match rule {
            ConntrackMatch::OrigDst(address) => FlushRule::OrigDst { address: *address },
            ConntrackMatch::OrigSrcOrReplySrc(address) => {
                FlushRule::OrigSrcOrReplySrc { address: *address }
            }
            ConntrackMatch::Any => FlushRule::Any,
        }
    }
}

impl From<&FlushRule> for ConntrackMatch {
    fn from(rule: &FlushRule) -> Self {
        match rule {
            FlushRule::OrigDst { address } => ConntrackMatch::OrigDst(*address),
            FlushRule::OrigSrcOrReplySrc { address } => ConntrackMatch::OrigSrcOrReplySrc(*address),
            FlushRule::Any => ConntrackMatch::Any,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_read_as_the_document_writes_them() {
        let line = r#"{"id":3,"type":"apply","ipv4":{"dnat":[{"external":"203.0.113.10","internal":"10.65.0.2"}],"snat":[{"internal":"10.65.0.2","external":"203.0.113.10"}]},"ipv6":{"dnat":[],"snat":[]}}"#;
        let request: Request = serde_json::from_str(line).unwrap();
        assert_eq!(request.id, 3);
        let RequestBody::Apply(nat) = &request.body else {
            panic!("{request:?}")
        };
        let state = NodeNatState::from(nat);
        assert_eq!(state.dnat[0].internal.to_string(), "10.65.0.2");
        assert_eq!(NatState::from(&state), *nat);
        assert_eq!(serde_json::to_string(&request).unwrap(), line);
        let dump: Request = serde_json::from_str(r#"{"id":9,"type":"dump"}"#).unwrap();
        assert_eq!(dump.body, RequestBody::Dump);
    }

    #[test]
    fn answers_keep_their_id_and_type() {
        let ok: Response = serde_json::from_str(r#"{"id":2,"type":"ok"}"#).unwrap();
        assert_eq!(ok.body, ResponseBody::Ok);
        let flushed: Response =
            serde_json::from_str(r#"{"type":"flushed","deleted":4,"id":5}"#).unwrap();
        assert_eq!(flushed.id, 5);
        assert_eq!(flushed.body, ResponseBody::Flushed { deleted: 4 });
        assert!(serde_json::from_str::<Response>(r#"{"id":2,"type":"fine"}"#).is_err());
        assert!(serde_json::from_str::<Response>(r#"{"type":"ok"}"#).is_err());
    }

    #[test]
    fn flush_rules_round_trip_to_conntrack_matches() {
        for rule in [
            ConntrackMatch::OrigDst("203.0.113.10".parse().unwrap()),
            ConntrackMatch::OrigSrcOrReplySrc("2001:db8::5".parse().unwrap()),
            ConntrackMatch::Any,
        ] {
            let wire = FlushRule::from(&rule);
            let text = serde_json::to_string(&wire).unwrap();
            let back: FlushRule = serde_json::from_str(&text).unwrap();
            assert_eq!(ConntrackMatch::from(&back), rule, "{text}");
        }
        assert_eq!(
            serde_json::to_string(&FlushRule::Any).unwrap(),
            r#"{"match":"any"}"#
        );
    }
}
