//! SCTP, RFC 9260: common header with CRC32c, chunk iteration and the chunks an
//! association needs from handshake to shutdown.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |     Source Port Number        |     Destination Port Number   |
//! |                      Verification Tag                         |
//! |                           Checksum                            |
//! |   Chunk Type  | Chunk  Flags  |        Chunk Length           |  ...
//! ```
//!
//! The view and [`Repr`] cover the SCTP packet alone (what a raw `IPPROTO_SCTP`
//! socket hands over after the IP header). The checksum is CRC32c over the whole
//! SCTP packet with the checksum field zeroed; no pseudo-header. RFC 9260
//! Appendix B's byte order amounts to storing the CRC32c value little-endian:
//! that is what Linux does (`cpu_to_le32` in `sctp_compute_cksum`) and what the
//! captured packets in the tests below carry. [`Packet::checksum`] returns the
//! CRC32c value itself, so it equals [`Packet::compute_checksum`] on a good
//! packet; tshark shows the four bytes in wire order, i.e. byte-swapped.

use super::{pad4, ChecksumPolicy, Error, Result};

const PROTOCOL: &str = "SCTP";

/// Length of the common header.
pub const HEADER_LEN: usize = 12;
/// Length of a chunk's type, flags and length fields.
pub const CHUNK_HEADER_LEN: usize = 4;
/// Length of a parameter's or error cause's type and length fields.
pub const TLV_HEADER_LEN: usize = 4;

const DATA_HEADER_LEN: usize = 16;
const INIT_FIXED_LEN: usize = 16;
const SACK_FIXED_LEN: usize = 12;

/// Chunk types (RFC 9260 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkType {
    Data,
    Init,
    InitAck,
    Sack,
    Heartbeat,
    HeartbeatAck,
    Abort,
    Shutdown,
    ShutdownAck,
    Error,
    CookieEcho,
    CookieAck,
    ShutdownComplete,
    Other(u8),
}

impl From<u8> for ChunkType {
    fn from(value: u8) -> Self {
        match value {
            0 => ChunkType::Data,
            1 => ChunkType::Init,
            2 => ChunkType::InitAck,
            3 => ChunkType::Sack,
            4 => ChunkType::Heartbeat,
            5 => ChunkType::HeartbeatAck,
            6 => ChunkType::Abort,
            7 => ChunkType::Shutdown,
            8 => ChunkType::ShutdownAck,
            9 => ChunkType::Error,
            10 => ChunkType::CookieEcho,
            11 => ChunkType::CookieAck,
            14 => ChunkType::ShutdownComplete,
            other => ChunkType::Other(other),
        }
    }
}

impl From<ChunkType> for u8 {
    fn from(value: ChunkType) -> Self {
        match value {
            ChunkType::Data => 0,
            ChunkType::Init => 1,
            ChunkType::InitAck => 2,
            ChunkType::Sack => 3,
            ChunkType::Heartbeat => 4,
            ChunkType::HeartbeatAck => 5,
            ChunkType::Abort => 6,
            ChunkType::Shutdown => 7,
            ChunkType::ShutdownAck => 8,
            ChunkType::Error => 9,
            ChunkType::CookieEcho => 10,
            ChunkType::CookieAck => 11,
            ChunkType::ShutdownComplete => 14,
            ChunkType::Other(other) => other,
        }
    }
}

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

const DATA_FLAG_ENDING: u8 = 0x01;
const DATA_FLAG_BEGINNING: u8 = 0x02;
const DATA_FLAG_UNORDERED: u8 = 0x04;
/// T bit of ABORT and SHUTDOWN COMPLETE: the verification tag is the one the
/// receiver of the packet chose, reflected back (RFC 9260 8.5.1).
const FLAG_T: u8 = 0x01;

/// CRC32c of an SCTP packet as if its checksum field were zero.
///
/// `packet` must be at least [`HEADER_LEN`] bytes long.
fn crc32c_of(packet: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&packet[..8]);
    let crc = crc32c::crc32c_append(crc, &[0; 4]);
    crc32c::crc32c_append(crc, &packet[HEADER_LEN..])
}

/// A read/write view of an SCTP packet: common header followed by chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking anything; getters may then panic on a
    /// short buffer. Use [`Packet::new_checked`] on untrusted input.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wraps a buffer after checking it holds the common header.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    pub fn check_len(&self) -> Result<()> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(truncated("common header", HEADER_LEN, available));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    pub fn verification_tag(&self) -> u32 {
        read_u32(self.buffer.as_ref(), 4)
    }

    /// The CRC32c value the packet carries (stored little-endian on the wire).
    pub fn checksum(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_le_bytes([b[8], b[9], b[10], b[11]])
    }

    /// The CRC32c the packet's bytes give (checksum field taken as zero).
    pub fn compute_checksum(&self) -> u32 {
        crc32c_of(self.buffer.as_ref())
    }

    pub fn verify_checksum(&self) -> bool {
        self.checksum() == self.compute_checksum()
    }

    /// The bytes after the common header: the chunks, each padded to 4 bytes.
    pub fn chunk_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }

    /// Iterates over the chunks; a malformed chunk yields one error and ends it.
    pub fn chunks(&self) -> Chunks<'_> {
        Chunks::new(self.chunk_bytes())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_src_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), 0, port);
    }

    pub fn set_dst_port(&mut self, port: u16) {
        write_u16(self.buffer.as_mut(), 2, port);
    }

    pub fn set_verification_tag(&mut self, tag: u32) {
        write_u32(self.buffer.as_mut(), 4, tag);
    }

    /// Stores a CRC32c value (little-endian, as on the wire).
    pub fn set_checksum(&mut self, crc: u32) {
        self.buffer.as_mut()[8..12].copy_from_slice(&crc.to_le_bytes());
    }

    /// Computes the CRC32c over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        let crc = self.compute_checksum();
        self.set_checksum(crc);
    }

    pub fn chunk_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// A read/write view of one chunk: type, flags, length and value. The buffer
/// ends where the chunk's Length field says; padding is not part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Chunk<T> {
    pub const fn new_unchecked(buffer: T) -> Chunk<T> {
        Chunk { buffer }
    }

    /// Wraps a buffer after checking the Length field is at least the chunk
    /// header and no more than the buffer.
    pub fn new_checked(buffer: T) -> Result<Chunk<T>> {
        let chunk = Self::new_unchecked(buffer);
        chunk.check_len()?;
        Ok(chunk)
    }

    pub fn check_len(&self) -> Result<()> {
        let available = self.buffer.as_ref().len();
        if available < CHUNK_HEADER_LEN {
            return Err(truncated("chunk header", CHUNK_HEADER_LEN, available));
        }
        let length = usize::from(self.length());
        if length < CHUNK_HEADER_LEN {
            return Err(malformed(format!(
                "chunk type {} has length {length}, less than its own 4-byte header",
                self.raw_type()
            )));
        }
        if length > available {
            return Err(truncated("chunk", length, available));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn raw_type(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    pub fn chunk_type(&self) -> ChunkType {
        ChunkType::from(self.raw_type())
    }

    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[1]
    }

    /// The Length field: header plus value, without padding.
    pub fn length(&self) -> u16 {
        read_u16(self.buffer.as_ref(), 2)
    }

    /// The chunk's value: the bytes after its header up to its Length.
    pub fn value(&self) -> &[u8] {
        &self.buffer.as_ref()[CHUNK_HEADER_LEN..usize::from(self.length())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Chunk<T> {
    pub fn set_raw_type(&mut self, chunk_type: u8) {
        self.buffer.as_mut()[0] = chunk_type;
    }

    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[1] = flags;
    }

    pub fn set_length(&mut self, length: u16) {
        write_u16(self.buffer.as_mut(), 2, length);
    }

    pub fn value_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[CHUNK_HEADER_LEN..end]
    }
}

/// Iterator over the chunks of a packet (see [`Packet::chunks`]).
#[derive(Debug, Clone)]
pub struct Chunks<'a> {
    rest: &'a [u8],
}

impl<'a> Chunks<'a> {
    /// Iterates over `bytes`, the chunk area of a packet.
    pub fn new(bytes: &'a [u8]) -> Chunks<'a> {
        Chunks { rest: bytes }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = Result<Chunk<&'a [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = self.rest;
        match Chunk::new_checked(rest) {
            Err(error) => {
                self.rest = &[];
                Some(Err(error))
            }
            Ok(chunk) => {
                let length = usize::from(chunk.length());
                // Senders must pad the last chunk too, but a missing final pad
                // loses nothing, so it is accepted.
                self.rest = &rest[pad4(length).min(rest.len())..];
                Some(Ok(Chunk::new_unchecked(&rest[..length])))
            }
        }
    }
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

    fn emit(&self, out: &mut [u8]) -> Result<()> {
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
fn tlv_list_len(list: &[Tlv<'_>]) -> usize {
    match list.split_last() {
        None => 0,
        Some((last, init)) => {
            init.iter().map(|t| pad4(t.wire_len())).sum::<usize>() + last.wire_len()
        }
    }
}

fn emit_tlv_list(list: &[Tlv<'_>], out: &mut [u8]) -> Result<()> {
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

    fn parse(value: &'a [u8], what: &'static str) -> Result<InitChunk<'a>> {
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

    fn value_len(&self) -> usize {
        INIT_FIXED_LEN + tlv_list_len(&self.params)
    }

    fn emit(&self, out: &mut [u8]) -> Result<()> {
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
    fn parse(value: &[u8]) -> Result<SackChunk> {
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

    fn value_len(&self) -> usize {
        SACK_FIXED_LEN + 4 * (self.gap_blocks.len() + self.duplicate_tsns.len())
    }

    fn emit(&self, out: &mut [u8]) -> Result<()> {
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

/// The meaning of one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkRepr<'a> {
    Data(DataChunk<'a>),
    Init(InitChunk<'a>),
    InitAck(InitChunk<'a>),
    Sack(SackChunk),
    /// HEARTBEAT: `info` is the value of its Heartbeat Info parameter, opaque to
    /// the peer, which must return it unchanged.
    Heartbeat {
        info: &'a [u8],
    },
    HeartbeatAck {
        info: &'a [u8],
    },
    /// ABORT; `reflected_tag` is the T bit.
    Abort {
        reflected_tag: bool,
        causes: Vec<ErrorCause<'a>>,
    },
    Shutdown {
        cum_tsn_ack: u32,
    },
    ShutdownAck,
    CookieEcho {
        cookie: &'a [u8],
    },
    CookieAck,
    /// SHUTDOWN COMPLETE; `reflected_tag` is the T bit.
    ShutdownComplete {
        reflected_tag: bool,
    },
    /// Any other chunk (ERROR, ECNE, FORWARD TSN, ...), kept as raw bytes so a
    /// packet round-trips.
    Other {
        chunk_type: u8,
        flags: u8,
        value: &'a [u8],
    },
}

impl<'a> ChunkRepr<'a> {
    /// Reads a chunk. Flags a chunk type does not define are ignored, as RFC 9260
    /// asks of receivers.
    pub fn parse(chunk: &Chunk<&'a [u8]>) -> Result<ChunkRepr<'a>> {
        chunk.check_len()?;
        let buffer: &'a [u8] = chunk.buffer;
        let value = &buffer[CHUNK_HEADER_LEN..usize::from(chunk.length())];
        let flags = chunk.flags();
        Ok(match chunk.chunk_type() {
            ChunkType::Data => {
                if value.len() < DATA_HEADER_LEN - CHUNK_HEADER_LEN {
                    return Err(truncated(
                        "DATA chunk",
                        DATA_HEADER_LEN,
                        CHUNK_HEADER_LEN + value.len(),
                    ));
                }
                let user_data = &value[DATA_HEADER_LEN - CHUNK_HEADER_LEN..];
                if user_data.is_empty() {
                    // RFC 9260 6.2: an empty DATA chunk gets an ABORT with "No User Data".
                    return Err(malformed(format!(
                        "DATA chunk with TSN {} carries no user data",
                        read_u32(value, 0)
                    )));
                }
                ChunkRepr::Data(DataChunk {
                    unordered: flags & DATA_FLAG_UNORDERED != 0,
                    beginning: flags & DATA_FLAG_BEGINNING != 0,
                    ending: flags & DATA_FLAG_ENDING != 0,
                    tsn: read_u32(value, 0),
                    stream_id: read_u16(value, 4),
                    stream_seq: read_u16(value, 6),
                    ppid: read_u32(value, 8),
                    user_data,
                })
            }
            ChunkType::Init => ChunkRepr::Init(InitChunk::parse(value, "INIT chunk")?),
            ChunkType::InitAck => {
                let init = InitChunk::parse(value, "INIT ACK chunk")?;
                if init.state_cookie().is_none() {
                    return Err(malformed(
                        "INIT ACK chunk lacks its mandatory State Cookie parameter".into(),
                    ));
                }
                ChunkRepr::InitAck(init)
            }
            ChunkType::Sack => ChunkRepr::Sack(SackChunk::parse(value)?),
            ChunkType::Heartbeat => ChunkRepr::Heartbeat {
                info: heartbeat_info(value, "HEARTBEAT")?,
            },
            ChunkType::HeartbeatAck => ChunkRepr::HeartbeatAck {
                info: heartbeat_info(value, "HEARTBEAT ACK")?,
            },
            ChunkType::Abort => ChunkRepr::Abort {
                reflected_tag: flags & FLAG_T != 0,
                causes: Tlv::parse_list(value, "ABORT error cause")?,
            },
            ChunkType::Shutdown => {
                if value.len() < 4 {
                    return Err(truncated(
                        "SHUTDOWN chunk",
                        8,
                        CHUNK_HEADER_LEN + value.len(),
                    ));
                }
                ChunkRepr::Shutdown {
                    cum_tsn_ack: read_u32(value, 0),
                }
            }
            ChunkType::ShutdownAck => ChunkRepr::ShutdownAck,
            ChunkType::CookieEcho => ChunkRepr::CookieEcho { cookie: value },
            ChunkType::CookieAck => ChunkRepr::CookieAck,
            ChunkType::ShutdownComplete => ChunkRepr::ShutdownComplete {
                reflected_tag: flags & FLAG_T != 0,
            },
            ChunkType::Error | ChunkType::Other(_) => ChunkRepr::Other {
                chunk_type: chunk.raw_type(),
                flags,
                value,
            },
        })
    }

    pub fn chunk_type(&self) -> ChunkType {
        match self {
            ChunkRepr::Data(_) => ChunkType::Data,
            ChunkRepr::Init(_) => ChunkType::Init,
            ChunkRepr::InitAck(_) => ChunkType::InitAck,
            ChunkRepr::Sack(_) => ChunkType::Sack,
            ChunkRepr::Heartbeat { .. } => ChunkType::Heartbeat,
            ChunkRepr::HeartbeatAck { .. } => ChunkType::HeartbeatAck,
            ChunkRepr::Abort { .. } => ChunkType::Abort,
            ChunkRepr::Shutdown { .. } => ChunkType::Shutdown,
            ChunkRepr::ShutdownAck => ChunkType::ShutdownAck,
            ChunkRepr::CookieEcho { .. } => ChunkType::CookieEcho,
            ChunkRepr::CookieAck => ChunkType::CookieAck,
            ChunkRepr::ShutdownComplete { .. } => ChunkType::ShutdownComplete,
            ChunkRepr::Other { chunk_type, .. } => ChunkType::from(*chunk_type),
        }
    }

    fn flags(&self) -> u8 {
        let t_bit = |on: bool| if on { FLAG_T } else { 0 };
        match self {
            ChunkRepr::Data(data) => {
                (if data.unordered {
                    DATA_FLAG_UNORDERED
                } else {
                    0
                }) | (if data.beginning {
                    DATA_FLAG_BEGINNING
                } else {
                    0
                }) | (if data.ending { DATA_FLAG_ENDING } else { 0 })
            }
            ChunkRepr::Abort { reflected_tag, .. }
            | ChunkRepr::ShutdownComplete { reflected_tag } => t_bit(*reflected_tag),
            ChunkRepr::Other { flags, .. } => *flags,
            _ => 0,
        }
    }

    fn value_len(&self) -> usize {
        match self {
            ChunkRepr::Data(data) => DATA_HEADER_LEN - CHUNK_HEADER_LEN + data.user_data.len(),
            ChunkRepr::Init(init) | ChunkRepr::InitAck(init) => init.value_len(),
            ChunkRepr::Sack(sack) => sack.value_len(),
            ChunkRepr::Heartbeat { info } | ChunkRepr::HeartbeatAck { info } => {
                TLV_HEADER_LEN + info.len()
            }
            ChunkRepr::Abort { causes, .. } => tlv_list_len(causes),
            ChunkRepr::Shutdown { .. } => 4,
            ChunkRepr::ShutdownAck | ChunkRepr::CookieAck | ChunkRepr::ShutdownComplete { .. } => 0,
            ChunkRepr::CookieEcho { cookie } => cookie.len(),
            ChunkRepr::Other { value, .. } => value.len(),
        }
    }

    /// The chunk's Length field: header and value, without padding.
    pub fn chunk_len(&self) -> usize {
        CHUNK_HEADER_LEN + self.value_len()
    }

    /// Bytes the chunk takes in a packet, padding included.
    pub fn buffer_len(&self) -> usize {
        pad4(self.chunk_len())
    }

    /// Writes the chunk and its zero padding at the start of `out`, which must
    /// hold at least [`ChunkRepr::buffer_len`] bytes.
    pub fn emit(&self, out: &mut [u8]) -> Result<()> {
        let padded = self.buffer_len();
        if out.len() < padded {
            return Err(truncated("output buffer for a chunk", padded, out.len()));
        }
        let length = length_u16(self.chunk_len(), "chunk")?;
        if let ChunkRepr::Data(data) = self {
            if data.user_data.is_empty() {
                return Err(malformed(
                    "refusing to emit a DATA chunk without user data".into(),
                ));
            }
        }
        let mut chunk = Chunk::new_unchecked(&mut out[..padded]);
        chunk.set_raw_type(self.chunk_type().into());
        chunk.set_flags(self.flags());
        chunk.set_length(length);
        let value = chunk.value_mut();
        match self {
            ChunkRepr::Data(data) => {
                write_u32(value, 0, data.tsn);
                write_u16(value, 4, data.stream_id);
                write_u16(value, 6, data.stream_seq);
                write_u32(value, 8, data.ppid);
                value[DATA_HEADER_LEN - CHUNK_HEADER_LEN..].copy_from_slice(data.user_data);
            }
            ChunkRepr::Init(init) | ChunkRepr::InitAck(init) => init.emit(value)?,
            ChunkRepr::Sack(sack) => sack.emit(value)?,
            ChunkRepr::Heartbeat { info } | ChunkRepr::HeartbeatAck { info } => {
                // The padding of the single parameter lies beyond the chunk length.
                let param = Tlv {
                    kind: param_type::HEARTBEAT_INFO,
                    value: info,
                };
                write_u16(value, 0, param.kind);
                write_u16(
                    value,
                    2,
                    length_u16(param.wire_len(), "Heartbeat Info parameter")?,
                );
                value[TLV_HEADER_LEN..].copy_from_slice(info);
            }
            ChunkRepr::Abort { causes, .. } => emit_tlv_list(causes, value)?,
            ChunkRepr::Shutdown { cum_tsn_ack } => write_u32(value, 0, *cum_tsn_ack),
            ChunkRepr::CookieEcho { cookie } => value.copy_from_slice(cookie),
            ChunkRepr::Other { value: raw, .. } => value.copy_from_slice(raw),
            ChunkRepr::ShutdownAck | ChunkRepr::CookieAck | ChunkRepr::ShutdownComplete { .. } => {}
        }
        out[self.chunk_len()..padded].fill(0);
        Ok(())
    }
}

fn heartbeat_info<'a>(value: &'a [u8], what: &'static str) -> Result<&'a [u8]> {
    let params = Tlv::parse_list(value, "Heartbeat Info parameter")?;
    match params.first() {
        Some(param) if param.kind == param_type::HEARTBEAT_INFO => Ok(param.value),
        Some(param) => Err(malformed(format!(
            "{what} chunk starts with parameter type {:#06x}, not Heartbeat Info (1)",
            param.kind
        ))),
        None => Err(malformed(format!(
            "{what} chunk lacks its Heartbeat Info parameter"
        ))),
    }
}

/// The meaning of a whole SCTP packet: common header and chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub verification_tag: u32,
    pub chunks: Vec<ChunkRepr<'a>>,
}

impl<'a> Repr<'a> {
    /// Reads a packet, verifying its CRC32c unless told not to. A packet without
    /// chunks, or with a malformed one, is an error.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&'a T>,
        policy: ChecksumPolicy,
    ) -> Result<Repr<'a>> {
        packet.check_len()?;
        if policy == ChecksumPolicy::Verify && !packet.verify_checksum() {
            return Err(Error::BadChecksum {
                protocol: PROTOCOL,
                stored: packet.checksum(),
                computed: packet.compute_checksum(),
            });
        }
        let bytes: &'a [u8] = packet.buffer.as_ref();
        let chunks = Chunks::new(&bytes[HEADER_LEN..])
            .map(|chunk| ChunkRepr::parse(&chunk?))
            .collect::<Result<Vec<_>>>()?;
        if chunks.is_empty() {
            return Err(malformed("packet carries no chunk".into()));
        }
        Ok(Repr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            verification_tag: packet.verification_tag(),
            chunks,
        })
    }

    /// Shorthand for `parse(&Packet::new_checked(bytes)?, policy)`.
    pub fn parse_bytes(bytes: &'a [u8], policy: ChecksumPolicy) -> Result<Repr<'a>> {
        Repr::parse(&Packet::new_checked(bytes)?, policy)
    }

    /// Length of the packet this repr emits.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN + self.chunks.iter().map(ChunkRepr::buffer_len).sum::<usize>()
    }

    /// Writes the packet, checksum included, into a buffer exactly
    /// [`Repr::buffer_len`] bytes long (the CRC covers the whole buffer).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let needed = self.buffer_len();
        let available = packet.buffer.as_ref().len();
        if available != needed {
            return Err(malformed(format!(
                "output buffer is {available} bytes, packet needs exactly {needed}"
            )));
        }
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_verification_tag(self.verification_tag);
        let out = packet.chunk_bytes_mut();
        let mut at = 0;
        for chunk in &self.chunks {
            chunk.emit(&mut out[at..])?;
            at += chunk.buffer_len();
        }
        packet.fill_checksum();
        Ok(())
    }

    /// Builds the packet bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = vec![0; self.buffer_len()];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]))?;
        Ok(bytes)
    }
}

fn length_u16(len: usize, what: &str) -> Result<u16> {
    u16::try_from(len).map_err(|_| {
        malformed(format!(
            "{what} of {len} bytes does not fit a 16-bit length field"
        ))
    })
}

fn truncated(what: &'static str, needed: usize, available: usize) -> Error {
    Error::Truncated {
        protocol: PROTOCOL,
        what,
        needed,
        available,
    }
}

fn malformed(reason: String) -> Error {
    Error::Malformed {
        protocol: PROTOCOL,
        reason,
    }
}

fn read_u16(buffer: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buffer[at], buffer[at + 1]])
}

fn read_u32(buffer: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buffer[at], buffer[at + 1], buffer[at + 2], buffer[at + 3]])
}

fn write_u16(buffer: &mut [u8], at: usize, value: u16) {
    buffer[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn write_u32(buffer: &mut [u8], at: usize, value: u32) {
    buffer[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
#[path = "sctp_tests.rs"]
mod tests;
