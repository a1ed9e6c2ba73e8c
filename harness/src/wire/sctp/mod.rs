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

mod body;
mod chunk;

pub use body::{
    cause_code, param_type, DataChunk, ErrorCause, GapAckBlock, InitChunk, Param, SackChunk, Tlv,
};
pub use chunk::{Chunk, ChunkRepr, ChunkType, Chunks};

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
mod goldens;
#[cfg(test)]
mod tests;
