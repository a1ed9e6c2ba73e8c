//! The `nft-maps` tables as nf_tables netlink messages: the same objects
//! [`super::nft_maps::render_apply`] describes in nft's JSON, built directly,
//! so that an apply or a move costs one netlink send instead of an `nft`
//! process (which spends most of its time parsing and evaluating, not in the
//! kernel).
//!
//! Every attribute follows what `nft --debug=netlink,mnl -f` sends for the
//! JSON batch (nftables 1.0.6): set types and lengths, the userdata that tells
//! `nft list` how to print keys, registers, and the `nat` expression; a root
//! test compares the two tables as `nft -j list` shows them.

use std::net::IpAddr;

use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, DataAttribute, ExpressionAttribute, Expressions, Hook,
    InetHookNumber, ListAttribute, Lookup, NfTablesMessage, Payload, Register, RuleAttribute,
    RuleMessage, SetAttribute, SetElementAttribute, SetElementList, SetElementMessage, SetFlags,
    SetMessage, TableAttribute, TableMessage,
};
use netlink_packet_netfilter::NetfilterProtoFamily;
use rtnetlink::packet_core::{DefaultNla, NLM_F_APPEND, NLM_F_CREATE};

use super::nfnl::NfBatch;
use super::nft_maps_delta::{Delta, TABLE};
use super::{DnatMapping, Features, NodeNatState, SnatMapping};

const DNAT_MAP: &str = "fip-dnat";
const SNAT_MAP: &str = "fip-snat";
/// Felix's nat base chain priorities (felix/nftables/table.go `baseChains`):
/// dstnat, and srcnat + 10 for output and postrouting.
const DSTNAT: i32 = -100;
const SRCNAT_PLUS_10: i32 = 110;
/// Elements per NEWSETELEM/DELSETELEM message: the element list is one
/// netlink attribute, whose length is 16 bits, so 10,000 elements must be
/// split. 512 IPv6 SNAT elements (the largest, 64 bytes each) take 32 kB.
const ELEMENTS_PER_MESSAGE: usize = 512;

// linux/netfilter/nf_tables.h and nf_nat.h
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NF_ACCEPT: u32 = 1;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_FLAGS: u16 = 7;
const NFT_NAT_SNAT: u32 = 0;
const NFT_NAT_DNAT: u32 = 1;
const NF_NAT_RANGE_PROTO_RANDOM_FULLY: u32 = 0x10;

/// nft's userdata for a map (libnftnl NFTNL_UDATA_SET_*: key and data byte
/// order big endian, no merging), copied from what nft 1.0.6 sends so that
/// `nft list` prints the elements as addresses.
const DNAT_USERDATA: &[u8] = &[
    0x00, 0x04, 0x02, 0x00, 0x00, 0x00, 0x01, 0x04, 0x02, 0x00, 0x00, 0x00, 0x06, 0x04, 0x00, 0x00,
    0x00, 0x00,
];
/// The same for the concatenated SNAT key (its byte order is per field).
const SNAT_USERDATA: &[u8] = &[
    0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x04, 0x02, 0x00, 0x00, 0x00, 0x03, 0x08, 0x00, 0x04,
    0x0d, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
];

/// What differs between the ip and ip6 tables.
#[derive(Clone, Copy)]
struct Family {
    nf: NetfilterProtoFamily,
    /// NFPROTO_* for the nat expression.
    nfproto: u32,
    v4: bool,
    /// nft's datatype id (TYPE_IPADDR 7, TYPE_IP6ADDR 8) and address size.
    addr_type: u32,
    addr_len: u32,
    /// Offsets of the source and destination address in the network header.
    saddr: u32,
    daddr: u32,
    /// Where the second field of the SNAT key goes: right after the first
    /// (32-bit register 9 after 4 bytes, 128-bit register 2 after 16).
    second: Register,
}

const FAMILIES: [Family; 2] = [
    Family {
        nf: NetfilterProtoFamily::IPv4,
        nfproto: 2,
        v4: true,
        addr_type: 7,
        addr_len: 4,
        saddr: 12,
        daddr: 16,
        second: Register::Reg32_01,
    },
    Family {
        nf: NetfilterProtoFamily::IPv6,
        nfproto: 10,
        v4: false,
        addr_type: 8,
        addr_len: 16,
        saddr: 8,
        daddr: 24,
        second: Register::Reg2,
    },
];

/// nft's id of a concatenated type: the field ids, 6 bits each
/// (src/datatype.c `concat_type_alloc`).
fn concat_type(a: u32, b: u32) -> u32 {
    (a << 6) | b
}

fn octets(address: IpAddr) -> Vec<u8> {
    match address {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn table(batch: &mut NfBatch, family: Family, add: bool) {
    let attributes = vec![TableAttribute::Name(TABLE.into())];
    let message = if add {
        NfTablesMessage::NewTable(TableMessage { attributes })
    } else {
        NfTablesMessage::DeleteTable(TableMessage { attributes })
    };
    batch.add(family.nf, message, if add { NLM_F_CREATE } else { 0 });
}

fn map(batch: &mut NfBatch, family: Family, name: &str, id: u32) {
    let (key_type, key_len, userdata) = if name == SNAT_MAP {
        (
            concat_type(family.addr_type, family.addr_type),
            2 * family.addr_len,
            SNAT_USERDATA,
        )
    } else {
        (family.addr_type, family.addr_len, DNAT_USERDATA)
    };
    let message = NfTablesMessage::NewSet(SetMessage {
        attributes: vec![
            SetAttribute::Table(TABLE.into()),
            SetAttribute::Name(name.into()),
            SetAttribute::Flags(SetFlags::Map),
            SetAttribute::KeyType(key_type),
            SetAttribute::KeyLen(key_len),
            SetAttribute::DataType(family.addr_type),
            SetAttribute::DataLen(family.addr_len),
            SetAttribute::Id(id),
            SetAttribute::UserData(userdata.to_vec()),
        ],
    });
    batch.add(family.nf, message, NLM_F_CREATE);
}

fn base_chain(batch: &mut NfBatch, family: Family, name: &str, hook: InetHookNumber, prio: i32) {
    let message = NfTablesMessage::NewChain(ChainMessage {
        attributes: vec![
            ChainAttribute::Table(TABLE.into()),
            ChainAttribute::Name(name.into()),
            ChainAttribute::Type("nat".into()),
            ChainAttribute::Policy(NF_ACCEPT),
            // The kernel reads the priority as a signed 32-bit number.
            ChainAttribute::Hook(vec![Hook::Number(hook.into()), Hook::Priority(prio as u32)]),
        ],
    });
    batch.add(family.nf, message, NLM_F_CREATE);
}

fn load(family: Family, offset: u32, register: Register) -> ListAttribute<ExpressionAttribute> {
    Expressions::Payload(vec![
        Payload::DestinationRegister(register),
        Payload::Base(NFT_PAYLOAD_NETWORK_HEADER),
        Payload::Offset(offset),
        Payload::Len(family.addr_len),
    ])
    .into()
}

fn lookup(map: &str, id: u32) -> ListAttribute<ExpressionAttribute> {
    Expressions::Lookup(vec![
        Lookup::SourceRegister(Register::Reg1),
        Lookup::DestinationRegister(Register::Reg1),
        Lookup::Set(map.into()),
        Lookup::SetId(id),
    ])
    .into()
}

fn be32(kind: u16, value: u32) -> DefaultNla {
    DefaultNla::new(kind, value.to_be_bytes().to_vec())
}

/// `dnat|snat to <reg 1>`; the crate has no type for the nat expression.
fn nat(family: Family, kind: u32, flags: u32) -> ListAttribute<ExpressionAttribute> {
    let mut attributes = vec![
        be32(NFTA_NAT_TYPE, kind),
        be32(NFTA_NAT_FAMILY, family.nfproto),
        be32(NFTA_NAT_REG_ADDR_MIN, u32::from(Register::Reg1)),
    ];
    if flags != 0 {
        attributes.push(be32(NFTA_NAT_FLAGS, flags));
    }
    Expressions::Other {
        expression_type: "nat".into(),
        attributes,
    }
    .into()
}

fn rule(
    batch: &mut NfBatch,
    family: Family,
    chain: &str,
    expressions: Vec<ListAttribute<ExpressionAttribute>>,
) {
    let message = NfTablesMessage::NewRule(RuleMessage {
        attributes: vec![
            RuleAttribute::Table(TABLE.into()),
            RuleAttribute::Chain(chain.into()),
            RuleAttribute::Expressions(expressions),
        ],
    });
    batch.add(family.nf, message, NLM_F_CREATE | NLM_F_APPEND);
}

/// `dnat to ip daddr map @fip-dnat`
fn dnat_rule(batch: &mut NfBatch, family: Family, chain: &str, dnat_id: u32) {
    rule(
        batch,
        family,
        chain,
        vec![
            load(family, family.daddr, Register::Reg1),
            lookup(DNAT_MAP, dnat_id),
            nat(family, NFT_NAT_DNAT, 0),
        ],
    );
}

/// `snat to ip saddr . ip daddr map @fip-snat [fully-random]`
fn snat_rule(batch: &mut NfBatch, family: Family, snat_id: u32, features: Features) {
    let flags = if features.snat_fully_random {
        NF_NAT_RANGE_PROTO_RANDOM_FULLY
    } else {
        0
    };
    rule(
        batch,
        family,
        "postrouting",
        vec![
            load(family, family.saddr, Register::Reg1),
            load(family, family.daddr, family.second),
            lookup(SNAT_MAP, snat_id),
            nat(family, NFT_NAT_SNAT, flags),
        ],
    );
}

fn element(key: Vec<u8>, value: IpAddr) -> ListAttribute<SetElementAttribute> {
    ListAttribute::Element(vec![
        SetElementAttribute::Key(DataAttribute::Value(key)),
        SetElementAttribute::Data(DataAttribute::Value(octets(value))),
    ])
}

fn key_only(key: Vec<u8>) -> ListAttribute<SetElementAttribute> {
    ListAttribute::Element(vec![SetElementAttribute::Key(DataAttribute::Value(key))])
}

fn dnat_element(m: &DnatMapping) -> ListAttribute<SetElementAttribute> {
    element(octets(m.external), m.internal)
}

/// SNAT runs after DNAT, so the loopback key is "source and destination are
/// both the pod".
fn snat_key(m: &SnatMapping) -> Vec<u8> {
    let mut key = octets(m.internal);
    key.extend(octets(m.internal));
    key
}

fn snat_element(m: &SnatMapping) -> ListAttribute<SetElementAttribute> {
    element(snat_key(m), m.external)
}

/// Add (or delete) `elements` of `map`, a message per
/// [`ELEMENTS_PER_MESSAGE`]. `id` names a map made in the same batch.
fn elements(
    batch: &mut NfBatch,
    family: Family,
    map: &str,
    id: Option<u32>,
    add: bool,
    elements: Vec<ListAttribute<SetElementAttribute>>,
) {
    let mut rest = elements;
    while !rest.is_empty() {
        let tail = rest.split_off(rest.len().min(ELEMENTS_PER_MESSAGE));
        let mut attributes = vec![
            SetElementList::Table(TABLE.into()),
            SetElementList::Set(map.into()),
        ];
        attributes.extend(id.map(SetElementList::SetId));
        attributes.push(SetElementList::Elements(rest));
        let message = SetElementMessage { attributes };
        let message = if add {
            NfTablesMessage::NewSetElement(message)
        } else {
            NfTablesMessage::DeleteSetElement(message)
        };
        batch.add(family.nf, message, if add { NLM_F_CREATE } else { 0 });
        rest = tail;
    }
}

/// The transaction that makes both tables hold exactly `state`: each table is
/// added (so that it exists), deleted and built again with all its elements,
/// so a reader never sees a half-written table.
pub(crate) fn apply_batch(state: &NodeNatState, features: Features) -> NfBatch {
    let mut batch = NfBatch::new();
    for (index, family) in FAMILIES.into_iter().enumerate() {
        // Set ids only need to be unique within the batch.
        let (dnat_id, snat_id) = (2 * index as u32 + 1, 2 * index as u32 + 2);
        table(&mut batch, family, true);
        table(&mut batch, family, false);
        table(&mut batch, family, true);
        map(&mut batch, family, DNAT_MAP, dnat_id);
        let dnat = state
            .dnat
            .iter()
            .filter(|m| m.external.is_ipv4() == family.v4)
            .map(dnat_element)
            .collect();
        elements(&mut batch, family, DNAT_MAP, Some(dnat_id), true, dnat);
        map(&mut batch, family, SNAT_MAP, snat_id);
        let snat = state
            .snat
            .iter()
            .filter(|m| m.internal.is_ipv4() == family.v4)
            .map(snat_element)
            .collect();
        elements(&mut batch, family, SNAT_MAP, Some(snat_id), true, snat);
        base_chain(
            &mut batch,
            family,
            "prerouting",
            InetHookNumber::PreRouting,
            DSTNAT,
        );
        base_chain(
            &mut batch,
            family,
            "output",
            InetHookNumber::LocalOut,
            SRCNAT_PLUS_10,
        );
        base_chain(
            &mut batch,
            family,
            "postrouting",
            InetHookNumber::PostRouting,
            SRCNAT_PLUS_10,
        );
        dnat_rule(&mut batch, family, "prerouting", dnat_id);
        dnat_rule(&mut batch, family, "output", dnat_id);
        snat_rule(&mut batch, family, snat_id, features);
    }
    batch
}

/// The transaction that takes maps holding `old` to holding `new`: only the
/// elements that differ are deleted and added. `None` when nothing differs.
pub(crate) fn delta_batch(old: &NodeNatState, new: &NodeNatState) -> Option<NfBatch> {
    let change = Delta::between(old, new);
    let mut batch = NfBatch::new();
    for family in FAMILIES {
        let of = |a: &IpAddr| a.is_ipv4() == family.v4;
        let gone_dnat = change.gone_dnat.iter().filter(|m| of(&m.external));
        let gone_dnat = gone_dnat.map(|m| key_only(octets(m.external))).collect();
        elements(&mut batch, family, DNAT_MAP, None, false, gone_dnat);
        let gone_snat = change.gone_snat.iter().filter(|m| of(&m.internal));
        let gone_snat = gone_snat.map(|m| key_only(snat_key(m))).collect();
        elements(&mut batch, family, SNAT_MAP, None, false, gone_snat);
        let new_dnat = change.new_dnat.iter().filter(|m| of(&m.external));
        elements(
            &mut batch,
            family,
            DNAT_MAP,
            None,
            true,
            new_dnat.map(dnat_element).collect(),
        );
        let new_snat = change.new_snat.iter().filter(|m| of(&m.internal));
        elements(
            &mut batch,
            family,
            SNAT_MAP,
            None,
            true,
            new_snat.map(snat_element).collect(),
        );
    }
    (!batch.is_empty()).then_some(batch)
}

/// The transaction that removes both tables (adding first so that deleting
/// never fails).
pub(crate) fn removal_batch() -> NfBatch {
    let mut batch = NfBatch::new();
    for family in FAMILIES {
        table(&mut batch, family, true);
        table(&mut batch, family, false);
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
    use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK};
    use std::net::Ipv4Addr;

    /// (message, flags, sequence) of every message in the framed batch.
    fn messages(batch: &NfBatch) -> Vec<(NetfilterMessageInner, u16, u32)> {
        let bytes = batch.framed();
        let mut out = Vec::new();
        let mut offset = 0;
        while offset < bytes.len() {
            let message =
                NetlinkMessage::<NetfilterMessage>::deserialize(&bytes[offset..]).unwrap();
            offset += (message.header.length as usize + 3) & !3;
            let NetlinkPayload::InnerMessage(inner) = message.payload else {
                panic!("not a netfilter message");
            };
            out.push((
                inner.inner,
                message.header.flags,
                message.header.sequence_number,
            ));
        }
        out
    }

    fn state(count: u32) -> NodeNatState {
        let v4 =
            |base: [u8; 4], i: u32| IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + i));
        NodeNatState::new(
            (0..count).map(|i| DnatMapping::new(v4([198, 19, 64, 0], i), v4([198, 19, 128, 0], i))),
            (0..count).map(|i| SnatMapping::new(v4([198, 19, 128, 0], i), v4([198, 19, 64, 0], i))),
        )
    }

    fn element_messages(messages: &[(NetfilterMessageInner, u16, u32)], map: &str) -> Vec<usize> {
        messages
            .iter()
            .filter_map(|(m, _, _)| match m {
                NetfilterMessageInner::NfTables(
                    NfTablesMessage::NewSetElement(e) | NfTablesMessage::DeleteSetElement(e),
                ) if e.attributes.contains(&SetElementList::Set(map.into())) => {
                    e.attributes.iter().find_map(|a| match a {
                        SetElementList::Elements(list) => Some(list.len()),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_batch_is_framed_and_every_message_asks_for_an_ack() {
        let all = messages(&apply_batch(
            &state(3),
            Features {
                snat_fully_random: true,
                masq_fully_random: true,
            },
        ));
        assert!(
            matches!(all.first(), Some((NetfilterMessageInner::None(m), _, _)) if *m == netlink_packet_netfilter::none::ControlMessage::BatchBegin)
        );
        assert!(
            matches!(all.last(), Some((NetfilterMessageInner::None(m), _, _)) if *m == netlink_packet_netfilter::none::ControlMessage::BatchEnd)
        );
        let inside = &all[1..all.len() - 1];
        assert!(inside.iter().all(|(_, flags, _)| flags & NLM_F_ACK != 0));
        let sequences: Vec<u32> = all.iter().map(|(_, _, s)| *s).collect();
        assert!(
            sequences.windows(2).all(|w| w[1] == w[0] + 1),
            "{sequences:?}"
        );
    }

    #[test]
    fn the_send_buffer_is_sized_from_the_framed_length() {
        for count in [0, 3, 1_200] {
            let batch = apply_batch(
                &state(count),
                Features {
                    snat_fully_random: true,
                    masq_fully_random: true,
                },
            );
            assert_eq!(batch.byte_len(), batch.framed().len(), "{count} mappings");
        }
    }

    #[test]
    fn thousands_of_elements_are_split_under_the_attribute_limit() {
        let all = messages(&apply_batch(
            &state(1_200),
            Features {
                snat_fully_random: true,
                masq_fully_random: true,
            },
        ));
        let dnat = element_messages(&all, DNAT_MAP);
        assert_eq!(dnat.len(), 3, "{dnat:?}");
        assert_eq!(dnat.iter().sum::<usize>(), 1_200);
        assert!(dnat.iter().all(|n| *n <= ELEMENTS_PER_MESSAGE), "{dnat:?}");
        assert_eq!(
            element_messages(&all, SNAT_MAP).iter().sum::<usize>(),
            1_200
        );
    }

    #[test]
    fn a_move_deletes_and_adds_one_element_per_map() {
        let old = state(100);
        let mut new = old.clone();
        new.dnat[7].internal = "198.19.0.6".parse().unwrap();
        let all = messages(&delta_batch(&old, &new).unwrap());
        // BEGIN, delete the old DNAT, add the new one, END.
        assert_eq!(element_messages(&all, DNAT_MAP), [1, 1]);
        assert!(element_messages(&all, SNAT_MAP).is_empty());
        assert!(matches!(
            &all[1].0,
            NetfilterMessageInner::NfTables(NfTablesMessage::DeleteSetElement(_))
        ));
        assert!(delta_batch(&old, &old).is_none());
    }
}
