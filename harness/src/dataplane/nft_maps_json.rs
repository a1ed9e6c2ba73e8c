//! The map backend's batches as nft JSON (the `nftables` crate's types):
//! built for tests only, where they are what the netlink messages
//! ([`super::nft_maps_netlink`]) are checked against, byte for byte in what
//! the kernel then holds (`netlink_writes_what_nft_writes`).

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField};
use nftables::schema::{Chain, Map, NfListObject, Nftables, Rule, SetType, SetTypeValue, Table};
use nftables::stmt::{NATFlag, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use super::nft_maps_delta::{Delta, DNAT_MAP, SNAT_MAP, TABLE};
use super::{DnatMapping, Features, NodeNatState, SnatMapping};

/// Felix's numbers for its nat base chains (felix/nftables/table.go: dstnat,
/// and srcnat + 10 for both output and postrouting).
const DSTNAT: i32 = -100;
const SRCNAT_PLUS_10: i32 = 110;

#[derive(Clone, Copy)]
struct Family {
    nf: NfFamily,
    proto: &'static str,
    addr: SetType,
    v4: bool,
}

const FAMILIES: [Family; 2] = [
    Family {
        nf: NfFamily::IP,
        proto: "ip",
        addr: SetType::Ipv4Addr,
        v4: true,
    },
    Family {
        nf: NfFamily::IP6,
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

fn base_chain(
    family: Family,
    name: &'static str,
    hook: NfHook,
    prio: i32,
) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: family.nf,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(NfChainType::NAT),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
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

fn nat_through_map(
    key: Expression<'static>,
    map: &'static str,
    flags: Option<HashSet<NATFlag>>,
) -> Option<NAT<'static>> {
    Some(NAT {
        addr: Some(Expression::Named(NamedExpression::Map(Box::new(
            nftables::expr::Map {
                key,
                data: Expression::String(format!("@{map}").into()),
            },
        )))),
        family: None,
        port: None,
        flags,
    })
}

fn dnat_rule(family: Family, chain: &'static str) -> NfListObject<'static> {
    rule(
        family,
        chain,
        Statement::DNAT(nat_through_map(field(family, "daddr"), DNAT_MAP, None)),
    )
}

/// The batch that makes both tables hold exactly `state`.
pub fn render_apply(state: &NodeNatState, features: Features) -> Nftables<'static> {
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
            DNAT_MAP,
            SetTypeValue::Single(family.addr),
            dnat,
        ));
        batch.add(map(
            family,
            SNAT_MAP,
            SetTypeValue::Concatenated(Cow::Owned(vec![family.addr, family.addr])),
            snat,
        ));
        batch.add(base_chain(family, "prerouting", NfHook::Prerouting, DSTNAT));
        batch.add(base_chain(family, "output", NfHook::Output, SRCNAT_PLUS_10));
        batch.add(base_chain(
            family,
            "postrouting",
            NfHook::Postrouting,
            SRCNAT_PLUS_10,
        ));
        batch.add(dnat_rule(family, "prerouting"));
        batch.add(dnat_rule(family, "output"));
        let fully_random = features
            .snat_fully_random
            .then(|| HashSet::from([NATFlag::FullyRandom]));
        batch.add(rule(
            family,
            "postrouting",
            Statement::SNAT(nat_through_map(
                Expression::Named(NamedExpression::Concat(vec![
                    field(family, "saddr"),
                    field(family, "daddr"),
                ])),
                SNAT_MAP,
                fully_random,
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
    let change = Delta::between(old, new);
    let mut batch = Batch::new();
    let mut any = false;
    for family in FAMILIES {
        let of = |v: &IpAddr| v.is_ipv4() == family.v4;
        let gone_dnat = change.gone_dnat.iter().filter(|m| of(&m.external));
        let new_dnat = change.new_dnat.iter().filter(|m| of(&m.external));
        let gone_snat = change.gone_snat.iter().filter(|m| of(&m.internal));
        let new_snat = change.new_snat.iter().filter(|m| of(&m.internal));
        for (map, delete, add) in [
            (
                DNAT_MAP,
                gone_dnat.map(|m| addr(m.external)).collect::<Vec<_>>(),
                new_dnat.map(dnat_element).collect::<Vec<_>>(),
            ),
            (
                SNAT_MAP,
                gone_snat.map(snat_key).collect(),
                new_snat.map(snat_element).collect(),
            ),
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

#[cfg(test)]
mod tests {
    use super::super::test_vectors::loopback;
    use super::super::{backend, BackendKind};
    use super::*;
    use crate::ns::netns::{CreationGate, Netns};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn sample() -> NodeNatState {
        loopback()
    }

    #[test]
    fn renders_one_transaction_per_apply() {
        insta::assert_json_snapshot!(render_apply(
            &sample(),
            Features {
                snat_fully_random: true,
                masq_fully_random: true
            }
        ));
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
        new.snat[0] = SnatMapping::new(ip("198.19.0.6"), ip("203.0.113.10"));
        insta::assert_json_snapshot!(render_delta(&old, &new).unwrap());
        assert!(render_delta(&old, &old).is_none());
    }

    /// A namespace deleted when the test ends, even on failure (root, or
    /// the user namespace `ci/test-runner` gives a test binary).
    struct Scratch(Netns);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let name = format!("fiph-h3u{}-{tag}", std::process::id());
            let _ = Netns::delete(&name);
            let gate = CreationGate::new();
            Scratch(Netns::create(&name, &gate).expect("create scratch namespace"))
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = Netns::delete(self.0.name());
        }
    }

    fn first() -> NodeNatState {
        NodeNatState::new(
            [
                ("203.0.113.1", "198.19.0.5"),
                ("203.0.113.2", "198.19.0.5"),
                ("2001:db8:f1::1", "2001:db8:1::5"),
            ]
            .map(|(e, i)| DnatMapping::new(ip(e), ip(i))),
            [
                ("198.19.0.5", "203.0.113.1"),
                ("2001:db8:1::5", "2001:db8:f1::1"),
            ]
            .map(|(i, e)| SnatMapping::new(ip(i), ip(e))),
        )
    }

    /// `nft -j list` of both `fiph-maps` tables with what differs between two
    /// writers of the same content taken out: object handles, and the order of
    /// map elements (a hash set's order follows its random seed).
    fn maps_listing(ns: &Netns) -> Vec<serde_json::Value> {
        fn normalise(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::Object(object) => {
                    object.remove("handle");
                    if let Some(serde_json::Value::Array(elements)) = object.get_mut("elem") {
                        elements.sort_by_key(|e| e.to_string());
                    }
                    object.values_mut().for_each(normalise);
                }
                serde_json::Value::Array(items) => items.iter_mut().for_each(normalise),
                _ => {}
            }
        }
        ["ip", "ip6"]
            .iter()
            .map(|family| {
                let out = ns
                    .command("nft")
                    .args(["-j", "list", "table", family, TABLE])
                    .output()
                    .unwrap();
                assert!(out.status.success(), "{out:?}");
                let mut listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                normalise(&mut listing);
                listing
            })
            .collect()
    }

    fn nft_json(ns: &Netns, batch: &impl serde::Serialize) {
        use std::io::Write;
        let mut child = ns
            .command("nft")
            .args(["-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let json = serde_json::to_vec(batch).unwrap();
        child.stdin.take().unwrap().write_all(&json).unwrap();
        assert!(child.wait().unwrap().success());
    }

    /// The map backend writes over netlink; what the kernel then holds, as `nft
    /// -j list` shows it (tables, maps with their types and elements, chains,
    /// rules), equals what `nft` itself makes of the same change rendered as nft
    /// JSON, for a fresh apply and for a move (an element delta).
    #[test]
    fn netlink_writes_what_nft_writes() {
        let by_netlink = Scratch::new("nl-w");
        let by_nft = Scratch::new("nft-w");
        let maps = backend(BackendKind::NftMaps);
        let features = Features::detected();

        maps.apply(&by_netlink.0, &first()).unwrap();
        nft_json(&by_nft.0, &render_apply(&first(), features));
        let listing = maps_listing(&by_netlink.0);
        assert_eq!(listing, maps_listing(&by_nft.0));
        assert!(
            listing[0].to_string().contains("203.0.113.2"),
            "{listing:?}"
        );

        let mut moved = first();
        moved.dnat[0].internal = ip("198.19.0.6");
        moved.snat = vec![SnatMapping::new(ip("198.19.0.6"), ip("203.0.113.1"))];
        maps.apply(&by_netlink.0, &moved).unwrap();
        nft_json(&by_nft.0, &render_delta(&first(), &moved).unwrap());
        assert_eq!(maps_listing(&by_netlink.0), maps_listing(&by_nft.0));
        assert_eq!(maps.read(&by_netlink.0).unwrap(), moved);
    }
}
