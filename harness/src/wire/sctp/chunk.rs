//! SCTP chunks: the chunk types, a view of one chunk, the iterator over a
//! packet's chunks, and [`ChunkRepr`], the meaning of each chunk the harness
//! speaks (its body types are in [`super::body`]).

use super::body::{emit_tlv_list, tlv_list_len, DataChunk, ErrorCause, InitChunk, SackChunk, Tlv};
use super::{
    length_u16, malformed, pad4, param_type, read_u16, read_u32, truncated, write_u16, write_u32,
    Result, CHUNK_HEADER_LEN, DATA_HEADER_LEN, TLV_HEADER_LEN,
};

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

const DATA_FLAG_ENDING: u8 = 0x01;
const DATA_FLAG_BEGINNING: u8 = 0x02;
const DATA_FLAG_UNORDERED: u8 = 0x04;
/// T bit of ABORT and SHUTDOWN COMPLETE: the verification tag is the one the
/// receiver of the packet chose, reflected back (RFC 9260 8.5.1).
const FLAG_T: u8 = 0x01;

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
