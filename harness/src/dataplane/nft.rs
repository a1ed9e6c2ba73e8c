//! The reference backend: nftables, laid out as Calico's nftables mode lays out
//! its nat chains (`table ip calico` / `table ip6 calico`, base chains
//! `nat-PREROUTING` and `nat-OUTPUT` at priority dstnat, `nat-POSTROUTING` at
//! srcnat, jumping to `cali-PREROUTING` / `cali-OUTPUT` / `cali-POSTROUTING`,
//! which jump to `cali-fip-dnat` / `cali-fip-snat`), except that the floating
//! IPs live in maps keyed by address, so a lookup costs the same with 1 or
//! 10,000 of them:
//!
//! ```text
//! map cali-fip-dnat { type ipv4_addr : ipv4_addr }                 EXT -> INT
//! map cali-fip-snat { type ipv4_addr . ipv4_addr : ipv4_addr }     INT . INT -> EXT
//! chain cali-fip-dnat { dnat to ip daddr map @cali-fip-dnat }
//! chain cali-fip-snat { snat to ip saddr . ip daddr map @cali-fip-snat }
//! ```
//!
//! The SNAT key is the concatenation saddr . daddr because SNAT runs after DNAT:
//! the loopback case is exactly "source and destination are both the pod".
//!
//! One `nft -j -f -` run holds the whole change: for each family the table is
//! added (so that it exists), deleted and built again, all in one kernel
//! transaction, so a reader never sees a half-written table.

use std::borrow::Cow;
use std::net::IpAddr;

use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField};
use nftables::schema::{Chain, Map, NfListObject, Nftables, Rule, SetType, SetTypeValue, Table};
use nftables::stmt::{JumpTarget, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::exec::run_in;
use super::{BackendKind, Dataplane, DataplaneError, DnatMapping, NodeNatState, SnatMapping};
use crate::lab::netns::Netns;

/// Name of the tables (one per family), as in Calico's nftables mode.
pub const TABLE: &str = "calico";
const DSTNAT: i32 = -100;
const SRCNAT: i32 = 100;

#[derive(Clone, Copy)]
struct Family {
    nf: NfFamily,
    name: &'static str,
    proto: &'static str,
    addr: SetType,
    v4: bool,
}

const FAMILIES: [Family; 2] = [
    Family {
        nf: NfFamily::IP,
        name: "ip",
        proto: "ip",
        addr: SetType::Ipv4Addr,
        v4: true,
    },
    Family {
        nf: NfFamily::IP6,
        name: "ip6",
        proto: "ip6",
        addr: SetType::Ipv6Addr,
        v4: false,
    },
];

fn table(family: Family) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: family.nf,
        name: TABLE.into(),
        handle: None,
    })
}

fn field(family: Family, name: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: family.proto.into(),
            field: name.into(),
        },
    )))
}

fn addr(address: IpAddr) -> Expression<'static> {
    Expression::String(address.to_string().into())
}

fn chain(family: Family, name: &'static str, hook: Option<(NfHook, i32)>) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: family.nf,
        table: TABLE.into(),
        name: name.into(),
        _type: hook.map(|_| NfChainType::NAT),
        hook: hook.map(|(hook, _)| hook),
        prio: hook.map(|(_, prio)| prio),
        policy: hook.map(|_| NfChainPolicy::Accept),
        ..Default::default()
    })
}

fn rule(
    family: Family,
    chain: &'static str,
    statement: Statement<'static>,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: family.nf,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Cow::Owned(vec![statement]),
        ..Default::default()
    })
}

fn jump(target: &'static str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: target.into(),
    })
}

fn map(
    family: Family,
    name: &'static str,
    key: SetTypeValue<'static>,
    elements: Vec<Expression<'static>>,
) -> NfListObject<'static> {
    NfListObject::Map(Box::new(Map {
        family: family.nf,
        table: TABLE.into(),
        name: name.into(),
        set_type: key,
        map: SetTypeValue::Single(family.addr),
        elem: (!elements.is_empty()).then(|| Cow::Owned(elements)),
        ..Default::default()
    }))
}

fn nat_through_map(key: Expression<'static>, map: &'static str) -> Option<NAT<'static>> {
    Some(NAT {
        addr: Some(Expression::Named(NamedExpression::Map(Box::new(
            nftables::expr::Map {
                key,
                data: Expression::String(format!("@{map}").into()),
            },
        )))),
        family: None,
        port: None,
        flags: None,
    })
}

/// The batch that makes both tables hold exactly `state`.
pub fn render_apply(state: &NodeNatState) -> Nftables<'static> {
    let mut batch = Batch::new();
    for family in FAMILIES {
        batch.add(table(family));
        batch.delete(table(family));
        batch.add(table(family));
        let dnat: Vec<Expression> = state
            .dnat
            .iter()
            .filter(|m| m.external.is_ipv4() == family.v4)
            .map(dnat_element)
            .collect();
        let snat: Vec<Expression> = state
            .snat
            .iter()
            .filter(|m| m.internal.is_ipv4() == family.v4)
            .map(snat_element)
            .collect();
        batch.add(map(
            family,
            "cali-fip-dnat",
            SetTypeValue::Single(family.addr),
            dnat,
        ));
        batch.add(map(
            family,
            "cali-fip-snat",
            SetTypeValue::Concatenated(Cow::Owned(vec![family.addr, family.addr])),
            snat,
        ));
        for name in [
            "cali-fip-dnat",
            "cali-fip-snat",
            "cali-PREROUTING",
            "cali-OUTPUT",
            "cali-POSTROUTING",
        ] {
            batch.add(chain(family, name, None));
        }
        batch.add(chain(
            family,
            "nat-PREROUTING",
            Some((NfHook::Prerouting, DSTNAT)),
        ));
        batch.add(chain(family, "nat-OUTPUT", Some((NfHook::Output, DSTNAT))));
        batch.add(chain(
            family,
            "nat-POSTROUTING",
            Some((NfHook::Postrouting, SRCNAT)),
        ));
        batch.add(rule(family, "nat-PREROUTING", jump("cali-PREROUTING")));
        batch.add(rule(family, "nat-OUTPUT", jump("cali-OUTPUT")));
        batch.add(rule(family, "nat-POSTROUTING", jump("cali-POSTROUTING")));
        batch.add(rule(family, "cali-PREROUTING", jump("cali-fip-dnat")));
        batch.add(rule(family, "cali-OUTPUT", jump("cali-fip-dnat")));
        batch.add(rule(family, "cali-POSTROUTING", jump("cali-fip-snat")));
        batch.add(rule(
            family,
            "cali-fip-dnat",
            Statement::DNAT(nat_through_map(field(family, "daddr"), "cali-fip-dnat")),
        ));
        batch.add(rule(
            family,
            "cali-fip-snat",
            Statement::SNAT(nat_through_map(
                Expression::Named(NamedExpression::Concat(vec![
                    field(family, "saddr"),
                    field(family, "daddr"),
                ])),
                "cali-fip-snat",
            )),
        ));
    }
    batch.to_nftables()
}

fn dnat_element(m: &DnatMapping) -> Expression<'static> {
    Expression::List(vec![addr(m.external), addr(m.internal)])
}

fn snat_key(m: &SnatMapping) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(vec![
        addr(m.internal),
        addr(m.internal),
    ]))
}

fn snat_element(m: &SnatMapping) -> Expression<'static> {
    Expression::List(vec![snat_key(m), addr(m.external)])
}

fn elements(
    family: Family,
    map: &'static str,
    elem: Vec<Expression<'static>>,
) -> NfListObject<'static> {
    NfListObject::Element(nftables::schema::Element {
        family: family.nf,
        table: TABLE.into(),
        name: map.into(),
        elem: Cow::Owned(elem),
    })
}

/// The batch that takes maps holding `old` to holding `new` by deleting and
/// adding only the elements that differ: one transaction, small for a move
/// among 10,000 floating IPs. `None` when nothing differs.
pub fn render_delta(old: &NodeNatState, new: &NodeNatState) -> Option<Nftables<'static>> {
    use std::collections::HashSet;
    let old_dnat: HashSet<&DnatMapping> = old.dnat.iter().collect();
    let new_dnat_set: HashSet<&DnatMapping> = new.dnat.iter().collect();
    let old_snat: HashSet<&SnatMapping> = old.snat.iter().collect();
    let new_snat_set: HashSet<&SnatMapping> = new.snat.iter().collect();
    let mut batch = Batch::new();
    let mut any = false;
    for family in FAMILIES {
        let of = |v: &IpAddr| v.is_ipv4() == family.v4;
        let gone_dnat: Vec<Expression> = old
            .dnat
            .iter()
            .filter(|m| of(&m.external) && !new_dnat_set.contains(m))
            .map(|m| addr(m.external))
            .collect();
        let new_dnat: Vec<Expression> = new
            .dnat
            .iter()
            .filter(|m| of(&m.external) && !old_dnat.contains(m))
            .map(dnat_element)
            .collect();
        let gone_snat: Vec<Expression> = old
            .snat
            .iter()
            .filter(|m| of(&m.internal) && !new_snat_set.contains(m))
            .map(snat_key)
            .collect();
        let new_snat: Vec<Expression> = new
            .snat
            .iter()
            .filter(|m| of(&m.internal) && !old_snat.contains(m))
            .map(snat_element)
            .collect();
        for (map, delete, add) in [
            ("cali-fip-dnat", gone_dnat, new_dnat),
            ("cali-fip-snat", gone_snat, new_snat),
        ] {
            if !delete.is_empty() {
                any = true;
                batch.delete(elements(family, map, delete));
            }
            if !add.is_empty() {
                any = true;
                batch.add(elements(family, map, add));
            }
        }
    }
    any.then(|| batch.to_nftables())
}

/// The batch that removes both tables (adding first so that deleting never fails).
pub fn render_removal() -> Nftables<'static> {
    let mut batch = Batch::new();
    for family in FAMILIES {
        batch.add(table(family));
        batch.delete(table(family));
    }
    batch.to_nftables()
}

fn text_address(value: &serde_json::Value) -> Option<IpAddr> {
    value.as_str()?.parse().ok()
}

/// Read the floating-IP mappings back from `nft -j list table` output.
pub fn parse_listing(json: &str) -> Result<NodeNatState, serde_json::Error> {
    let document: serde_json::Value = serde_json::from_str(json)?;
    let (mut dnat, mut snat) = (Vec::new(), Vec::new());
    let objects = document["nftables"].as_array().cloned().unwrap_or_default();
    for object in objects {
        let Some(map) = object.get("map") else {
            continue;
        };
        let elements = map["elem"].as_array().cloned().unwrap_or_default();
        for element in elements {
            let (Some(key), Some(value)) = (element.get(0), element.get(1).and_then(text_address))
            else {
                continue;
            };
            match map["name"].as_str() {
                Some("cali-fip-dnat") => {
                    if let Some(external) = text_address(key) {
                        dnat.push(DnatMapping::new(external, value));
                    }
                }
                Some("cali-fip-snat") => {
                    if let Some(internal) = key["concat"].get(0).and_then(text_address) {
                        snat.push(SnatMapping::new(internal, value));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(NodeNatState::new(dnat, snat))
}

/// nftables with address-keyed maps (see the module documentation).
///
/// It remembers what it last applied to each namespace (keyed by the
/// namespace's inode, not its name, so a recreated namespace is a new one) and
/// then sends only the elements that differ, still as one transaction. It
/// assumes it is the only writer of its tables; if a delta fails for any
/// reason it falls back to the full replacement.
#[derive(Debug, Default)]
pub struct NftablesBackend {
    applied: std::sync::Mutex<std::collections::HashMap<(u64, u64), NodeNatState>>,
}

fn netns_key(node: &Netns) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = node.file().metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

impl NftablesBackend {
    pub fn new() -> Self {
        Self::default()
    }

    fn remember(&self, node: &Netns, state: Option<&NodeNatState>) {
        let Some(key) = netns_key(node) else { return };
        let mut applied = self.applied.lock().expect("cache lock");
        match state {
            Some(state) => {
                applied.insert(key, state.clone());
            }
            None => {
                applied.remove(&key);
            }
        }
    }

    fn last_applied(&self, node: &Netns) -> Option<NodeNatState> {
        let key = netns_key(node)?;
        self.applied.lock().expect("cache lock").get(&key).cloned()
    }

    fn run_batch(&self, node: &Netns, batch: &Nftables) -> Result<(), DataplaneError> {
        let json = serde_json::to_vec(batch).expect("nftables batch serialises");
        run_in(node, "nft", &["-j", "-f", "-"], Some(&json)).map(drop)
    }

    /// `nft list table <family> calico`, or nothing when the table is absent.
    fn list(&self, node: &Netns, json: bool) -> Result<String, DataplaneError> {
        let mut out = String::new();
        for family in FAMILIES {
            let mut args = vec!["list", "table", family.name, TABLE];
            if json {
                args.insert(0, "-j");
            }
            match run_in(node, "nft", &args, None) {
                Ok(text) => out.push_str(&text),
                Err(DataplaneError::Failed { stderr, .. }) if stderr.contains("No such file") => {}
                Err(e) => return Err(e),
            }
            if json {
                out.push('\n');
            }
        }
        Ok(out)
    }
}

impl Dataplane for NftablesBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Nftables
    }

    fn apply(&self, node: &Netns, state: &NodeNatState) -> Result<(), DataplaneError> {
        if let Some(old) = self.last_applied(node) {
            match render_delta(&old, state) {
                None => return Ok(()),
                Some(delta) => {
                    if self.run_batch(node, &delta).is_ok() {
                        self.remember(node, Some(state));
                        return Ok(());
                    }
                    tracing::debug!(
                        netns = node.name(),
                        "nft delta failed, replacing the tables"
                    );
                }
            }
        }
        self.remember(node, None);
        self.run_batch(node, &render_apply(state))?;
        self.remember(node, Some(state));
        Ok(())
    }

    fn remove(&self, node: &Netns) -> Result<(), DataplaneError> {
        self.remember(node, None);
        self.run_batch(node, &render_removal())
    }

    fn dump(&self, node: &Netns) -> Result<String, DataplaneError> {
        self.list(node, false)
    }

    fn read(&self, node: &Netns) -> Result<NodeNatState, DataplaneError> {
        let mut state = NodeNatState::default();
        for line in self
            .list(node, true)?
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let part = parse_listing(line).map_err(|e| DataplaneError::Unreadable {
                netns: node.name().to_string(),
                reason: e.to_string(),
            })?;
            state.dnat.extend(part.dnat);
            state.snat.extend(part.snat);
        }
        state.dnat.sort();
        state.snat.sort();
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sample() -> NodeNatState {
        NodeNatState::new(
            [
                DnatMapping::new(ip("203.0.113.1"), ip("198.19.0.5")),
                DnatMapping::new(ip("2001:db8:f1::1"), ip("2001:db8:1::5")),
            ],
            [
                SnatMapping::new(ip("198.19.0.5"), ip("203.0.113.1")),
                SnatMapping::new(ip("2001:db8:1::5"), ip("2001:db8:f1::1")),
            ],
        )
    }

    #[test]
    fn renders_one_transaction_per_apply() {
        insta::assert_json_snapshot!(render_apply(&sample()));
    }

    #[test]
    fn renders_removal() {
        insta::assert_json_snapshot!(render_removal());
    }

    #[test]
    fn a_move_is_a_small_delta() {
        let old = sample();
        let mut new = sample();
        new.dnat[0].internal = ip("198.19.0.6");
        new.snat[0] = SnatMapping::new(ip("198.19.0.6"), ip("203.0.113.1"));
        insta::assert_json_snapshot!(render_delta(&old, &new).unwrap());
        assert!(render_delta(&old, &old).is_none());
    }

    #[test]
    fn reads_back_what_nft_lists() {
        // Shape copied from `nft -j list table ip calico` (nftables 1.0.6).
        let listing = r#"{"nftables": [{"metainfo": {"version": "1.0.6"}},
            {"table": {"family": "ip", "name": "calico", "handle": 1}},
            {"map": {"family": "ip", "name": "cali-fip-dnat", "table": "calico", "type": "ipv4_addr", "handle": 4, "map": "ipv4_addr", "elem": [["203.0.113.1", "198.19.0.5"]]}},
            {"map": {"family": "ip", "name": "cali-fip-snat", "table": "calico", "type": ["ipv4_addr", "ipv4_addr"], "handle": 5, "map": "ipv4_addr", "elem": [[{"concat": ["198.19.0.5", "198.19.0.5"]}, "203.0.113.1"]]}}]}"#;
        let state = parse_listing(listing).unwrap();
        let expected = sample();
        assert_eq!(state.dnat, expected.dnat[..1]);
        assert_eq!(state.snat, expected.snat[..1]);
    }
}
