//! The bodies of the SCTP chunks with fields (DATA, INIT and INIT ACK, SACK)
//! and the type-length-value parameters and error causes some of them carry.

use super::{
    length_u16, malformed, pad4, read_u16, read_u32, truncated, write_u16, write_u32, Result,
    CHUNK_HEADER_LEN, INIT_FIXED_LEN, SACK_FIXED_LEN, TLV_HEADER_LEN,
};

/// Parameter types used in INIT, INIT ACK and HEARTBEAT (RFC 9260 3.3.2, 3.3.3, 3.3.5).
pub mod param_type {
    pub const HEARTBEAT_INFO: u16 = 1;
    pub const IPV4_ADDRESS: u16 = 5;
    pub const IPV6_ADDRESS: u16 = 6;
    pub const STATE_COOKIE: u16 = 7;
    pub const UNRECOGNIZED_PARAMETER: u16 = 8;
    pub const COOKIE_PRESERVATIVE: u16 = 9;
    pub const HOST_NAME_ADDRESS: u16 = 11;
    pub const SUPPORTED_ADDRESS_TYPES: u16 = 12;
    pub const ECN_CAPABLE: u16 = 0x8000;
    pub const FORWARD_TSN_SUPPORTED: u16 = 0xc000;
}

/// Error cause codes carried by ABORT and ERROR (RFC 9260 3.3.10).
pub mod cause_code {
    pub const INVALID_STREAM_IDENTIFIER: u16 = 1;
    pub const MISSING_MANDATORY_PARAMETER: u16 = 2;
    pub const STALE_COOKIE: u16 = 3;
    pub const OUT_OF_RESOURCE: u16 = 4;
    pub const UNRESOLVABLE_ADDRESS: u16 = 5;
    pub const UNRECOGNIZED_CHUNK_TYPE: u16 = 6;
    pub const INVALID_MANDATORY_PARAMETER: u16 = 7;
    pub const UNRECOGNIZED_PARAMETERS: u16 = 8;
    pub const NO_USER_DATA: u16 = 9;
    pub const COOKIE_RECEIVED_WHILE_SHUTTING_DOWN: u16 = 10;
    pub const RESTART_WITH_NEW_ADDRESSES: u16 = 11;
    pub const USER_INITIATED_ABORT: u16 = 12;
    pub const PROTOCOL_VIOLATION: u16 = 13;
}

/// A parameter (INIT, INIT ACK) or error cause (ABORT): type, length, value,
/// padded to 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv<'a> {
    pub kind: u16,
    pub value: &'a [u8],
}

/// An INIT or INIT ACK parameter; see [`param_type`].
pub type Param<'a> = Tlv<'a>;
/// An error cause of an ABORT; see [`cause_code`].
pub type ErrorCause<'a> = Tlv<'a>;

impl<'a> Tlv<'a> {
    /// Length on the wire without padding.
    pub fn wire_len(&self) -> usize {
        TLV_HEADER_LEN + self.value.len()
    }

    /// Reads a list of TLVs filling `bytes`. The last one may lack its padding:
    /// RFC 9260 leaves the last parameter's padding out of the chunk length.
    pub fn parse_list(bytes: &'a [u8], what: &'static str) -> Result<Vec<Tlv<'a>>> {
        let mut rest = bytes;
        let mut list = Vec::new();
        while !rest.is_empty() {
            if rest.len() < TLV_HEADER_LEN {
                return Err(truncated(what, TLV_HEADER_LEN, rest.len()));
            }
            let kind = read_u16(rest, 0);
            let length = usize::from(read_u16(rest, 2));
            if length < TLV_HEADER_LEN {
                return Err(malformed(format!(
                    "{what} of type {kind:#06x} has length {length}, less than its own 4-byte header"
                )));
            }
            if length > rest.len() {
                return Err(truncated(what, length, rest.len()));
            }
            list.push(Tlv {
                kind,
                value: &rest[TLV_HEADER_LEN..length],
            });
            rest = &rest[pad4(length).min(rest.len())..];
        }
        Ok(list)
    }

    pub(super) fn emit(&self, out: &mut [u8]) -> Result<()> {
        write_u16(out, 0, self.kind);
        write_u16(out, 2, length_u16(self.wire_len(), "parameter")?);
        out[TLV_HEADER_LEN..self.wire_len()].copy_from_slice(self.value);
        // The last TLV's padding lies beyond the chunk length; the chunk pads it.
        let end = pad4(self.wire_len()).min(out.len());
        out[self.wire_len()..end].fill(0);
        Ok(())
    }
}

/// Length a TLV list takes inside a chunk: every TLV padded except the last
/// (RFC 9260 3.2: chunk length counts padding of all but the last parameter).
pub(super) fn tlv_list_len(list: &[Tlv<'_>]) -> usize {
    match list.split_last() {
        None => 0,
        Some((last, init)) => {
            init.iter().map(|t| pad4(t.wire_len())).sum::<usize>() + last.wire_len()
        }
    }
}

pub(super) fn emit_tlv_list(list: &[Tlv<'_>], out: &mut [u8]) -> Result<()> {
    let mut at = 0;
    for tlv in list {
        tlv.emit(&mut out[at..])?;
        at += pad4(tlv.wire_len());
    }
    Ok(())
}

/// A DATA chunk (RFC 9260 3.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataChunk<'a> {
    /// U bit: deliver without regard to stream order.
    pub unordered: bool,
    /// B bit: first fragment of a user message.
    pub beginning: bool,
    /// E bit: last fragment of a user message.
    pub ending: bool,
    pub tsn: u32,
    pub stream_id: u16,
    pub stream_seq: u16,
    /// Payload Protocol Identifier, opaque to SCTP.
    pub ppid: u32,
    pub user_data: &'a [u8],
}

impl<'a> DataChunk<'a> {
    /// A DATA chunk carrying one whole user message in stream order (B and E
    /// set, U clear).
    pub fn whole_message(
        tsn: u32,
        stream_id: u16,
        stream_seq: u16,
        ppid: u32,
        user_data: &'a [u8],
    ) -> DataChunk<'a> {
        DataChunk {
            unordered: false,
            beginning: true,
            ending: true,
            tsn,
            stream_id,
            stream_seq,
            ppid,
            user_data,
        }
    }
}

/// The body of an INIT or INIT ACK chunk (RFC 9260 3.3.2, 3.3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitChunk<'a> {
    pub initiate_tag: u32,
    /// Advertised receiver window credit.
    pub a_rwnd: u32,
    pub outbound_streams: u16,
    pub inbound_streams: u16,
    pub initial_tsn: u32,
    /// Parameters in wire order; an INIT ACK must carry a State Cookie.
    pub params: Vec<Param<'a>>,
}

impl<'a> InitChunk<'a> {
    /// The value of the State Cookie parameter, if present.
    pub fn state_cookie(&self) -> Option<&'a [u8]> {
        self.params
            .iter()
            .find(|p| p.kind == param_type::STATE_COOKIE)
            .map(|p| p.value)
    }

    pub(super) fn parse(value: &'a [u8], what: &'static str) -> Result<InitChunk<'a>> {
        if value.len() < INIT_FIXED_LEN {
            return Err(truncated(
                what,
                CHUNK_HEADER_LEN + INIT_FIXED_LEN,
                CHUNK_HEADER_LEN + value.len(),
            ));
        }
        Ok(InitChunk {
            initiate_tag: read_u32(value, 0),
            a_rwnd: read_u32(value, 4),
            outbound_streams: read_u16(value, 8),
            inbound_streams: read_u16(value, 10),
            initial_tsn: read_u32(value, 12),
            params: Tlv::parse_list(&value[INIT_FIXED_LEN..], "INIT parameter")?,
        })
    }

    pub(super) fn value_len(&self) -> usize {
        INIT_FIXED_LEN + tlv_list_len(&self.params)
    }

    pub(super) fn emit(&self, out: &mut [u8]) -> Result<()> {
        write_u32(out, 0, self.initiate_tag);
        write_u32(out, 4, self.a_rwnd);
        write_u16(out, 8, self.outbound_streams);
        write_u16(out, 10, self.inbound_streams);
        write_u32(out, 12, self.initial_tsn);
        emit_tlv_list(&self.params, &mut out[INIT_FIXED_LEN..])
    }
}

/// A Gap Ack Block: TSNs `cum_tsn_ack + start ..= cum_tsn_ack + end` arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GapAckBlock {
    pub start: u16,
    pub end: u16,
}

/// A SACK chunk (RFC 9260 3.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SackChunk {
    pub cum_tsn_ack: u32,
    pub a_rwnd: u32,
    pub gap_blocks: Vec<GapAckBlock>,
    pub duplicate_tsns: Vec<u32>,
}

impl SackChunk {
    /// A SACK without gap blocks or duplicates: everything up to `cum_tsn_ack`
    /// arrived.
    pub fn cumulative(cum_tsn_ack: u32, a_rwnd: u32) -> SackChunk {
        SackChunk {
            cum_tsn_ack,
            a_rwnd,
            gap_blocks: Vec::new(),
            duplicate_tsns: Vec::new(),
        }
    }

    pub(super) fn parse(value: &[u8]) -> Result<SackChunk> {
        if value.len() < SACK_FIXED_LEN {
            return Err(truncated(
                "SACK chunk",
                CHUNK_HEADER_LEN + SACK_FIXED_LEN,
                CHUNK_HEADER_LEN + value.len(),
            ));
        }
        let gaps = usize::from(read_u16(value, 8));
        let dups = usize::from(read_u16(value, 10));
        let needed = SACK_FIXED_LEN + 4 * (gaps + dups);
        if value.len() < needed {
            return Err(truncated(
                "SACK chunk (gap blocks and duplicate TSNs)",
                CHUNK_HEADER_LEN + needed,
                CHUNK_HEADER_LEN + value.len(),
            ));
        }
        let gap_blocks = (0..gaps)
            .map(|i| GapAckBlock {
                start: read_u16(value, SACK_FIXED_LEN + 4 * i),
                end: read_u16(value, SACK_FIXED_LEN + 4 * i + 2),
            })
            .collect();
        let dup_at = SACK_FIXED_LEN + 4 * gaps;
        let duplicate_tsns = (0..dups).map(|i| read_u32(value, dup_at + 4 * i)).collect();
        Ok(SackChunk {
            cum_tsn_ack: read_u32(value, 0),
            a_rwnd: read_u32(value, 4),
            gap_blocks,
            duplicate_tsns,
        })
    }

    pub(super) fn value_len(&self) -> usize {
        SACK_FIXED_LEN + 4 * (self.gap_blocks.len() + self.duplicate_tsns.len())
    }

    pub(super) fn emit(&self, out: &mut [u8]) -> Result<()> {
        let count = |n: usize| {
            u16::try_from(n)
                .map_err(|_| malformed(format!("SACK lists {n} entries, more than 65535")))
        };
        write_u32(out, 0, self.cum_tsn_ack);
        write_u32(out, 4, self.a_rwnd);
        write_u16(out, 8, count(self.gap_blocks.len())?);
        write_u16(out, 10, count(self.duplicate_tsns.len())?);
        let mut at = SACK_FIXED_LEN;
        for block in &self.gap_blocks {
            write_u16(out, at, block.start);
            write_u16(out, at + 2, block.end);
            at += 4;
        }
        for tsn in &self.duplicate_tsns {
            write_u32(out, at, *tsn);
            at += 4;
        }
        Ok(())
    }
}
