//! GRE, RFC 2784 with RFC 2890's key and sequence number extensions.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C| |K|S| Reserved0       | Ver |         Protocol Type         |
//! |      Checksum (optional)      |       Reserved1 (Optional)    |
//! |                         Key (optional)                        |
//! |                 Sequence Number (Optional)                    |
//! ```
//!
//! The view and [`Repr`] cover the GRE header and its payload only, the bytes a
//! raw `IPPROTO_GRE` socket hands over after the IP header. The checksum, when
//! present, covers the GRE header and payload and needs no pseudo-header.

use pnet_packet::util::checksum;

use super::{ChecksumPolicy, Error, Result};

const PROTOCOL: &str = "GRE";

/// Length of the mandatory part of the header.
pub const BASE_HEADER_LEN: usize = 4;

/// Protocol type of the harness's echo payload: IEEE 802 "Local Experimental
/// Ethertype 1". It names no real protocol, so a payload that is a harness token
/// rather than an IP packet is never mistaken for one by the kernel or by a
/// dissector (tshark shows it as plain data), and it is reserved for exactly this
/// kind of private use.
pub const PROTOCOL_HARNESS_ECHO: u16 = 0x88b5;
/// Protocol type of the harness's echo reply: "Local Experimental Ethertype 2",
/// so a capture tells requests from replies by the header alone.
pub const PROTOCOL_HARNESS_ECHO_REPLY: u16 = 0x88b6;
/// Protocol type of an encapsulated IPv4 packet.
pub const PROTOCOL_IPV4: u16 = 0x0800;
/// Protocol type of an encapsulated IPv6 packet.
pub const PROTOCOL_IPV6: u16 = 0x86dd;

const FLAG_CHECKSUM: u16 = 0x8000;
const FLAG_ROUTING: u16 = 0x4000;
const FLAG_KEY: u16 = 0x2000;
const FLAG_SEQUENCE: u16 = 0x1000;
const FLAG_STRICT_ROUTE: u16 = 0x0800;
const RECURSION_MASK: u16 = 0x0700;
const VERSION_MASK: u16 = 0x0007;
/// Index of the Checksum field in 16-bit words, for pnet's RFC 1071 sum, which
/// leaves that word out (the sum the sender stores).
const CHECKSUM_WORD: usize = BASE_HEADER_LEN / 2;

mod field {
    pub const FLAGS: core::ops::Range<usize> = 0..2;
    pub const PROTOCOL: core::ops::Range<usize> = 2..4;
}

/// A read/write view of a GRE header followed by its payload.
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

    /// Wraps a buffer after checking it holds the whole header its flags announce.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the buffer holds the header its flags announce, so that every getter
    /// is safe to call.
    pub fn check_len(&self) -> Result<()> {
        let available = self.buffer.as_ref().len();
        if available < BASE_HEADER_LEN {
            return Err(truncated("header", BASE_HEADER_LEN, available));
        }
        let needed = self.header_len();
        if available < needed {
            return Err(truncated(
                "header with its optional fields",
                needed,
                available,
            ));
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn flags_word(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::FLAGS.start)
    }

    /// C bit: the Checksum and Reserved1 fields are present.
    pub fn checksum_present(&self) -> bool {
        self.flags_word() & FLAG_CHECKSUM != 0
    }

    /// K bit (RFC 2890): the Key field is present.
    pub fn key_present(&self) -> bool {
        self.flags_word() & FLAG_KEY != 0
    }

    /// S bit (RFC 2890): the Sequence Number field is present.
    pub fn sequence_present(&self) -> bool {
        self.flags_word() & FLAG_SEQUENCE != 0
    }

    /// Bits RFC 2784 requires a receiver to discard the packet for (routing,
    /// strict source route, recursion control), as one mask of the flags word.
    pub fn rfc1701_bits(&self) -> u16 {
        self.flags_word() & (FLAG_ROUTING | FLAG_STRICT_ROUTE | RECURSION_MASK)
    }

    pub fn version(&self) -> u8 {
        (self.flags_word() & VERSION_MASK) as u8
    }

    pub fn protocol(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::PROTOCOL.start)
    }

    /// Length of the header including the optional fields its flags announce.
    pub fn header_len(&self) -> usize {
        header_len(
            self.checksum_present(),
            self.key_present(),
            self.sequence_present(),
        )
    }

    fn key_offset(&self) -> usize {
        BASE_HEADER_LEN + if self.checksum_present() { 4 } else { 0 }
    }

    fn sequence_offset(&self) -> usize {
        self.key_offset() + if self.key_present() { 4 } else { 0 }
    }

    /// The Checksum field, if the C bit is set.
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present()
            .then(|| read_u16(self.buffer.as_ref(), BASE_HEADER_LEN))
    }

    /// The Key field, if the K bit is set.
    pub fn key(&self) -> Option<u32> {
        self.key_present()
            .then(|| read_u32(self.buffer.as_ref(), self.key_offset()))
    }

    /// The Sequence Number field, if the S bit is set.
    pub fn sequence_number(&self) -> Option<u32> {
        self.sequence_present()
            .then(|| read_u32(self.buffer.as_ref(), self.sequence_offset()))
    }

    /// Whether the checksum is right. A packet without a checksum is right.
    pub fn verify_checksum(&self) -> bool {
        self.checksum()
            .is_none_or(|stored| stored == checksum(self.buffer.as_ref(), CHECKSUM_WORD))
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_flags_word(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::FLAGS.start, value);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let word = self.flags_word();
        self.set_flags_word(if on { word | flag } else { word & !flag });
    }

    /// Sets the C bit. Changing C, K or S moves the fields after it; set the
    /// flags first, then the fields.
    pub fn set_checksum_present(&mut self, on: bool) {
        self.set_flag(FLAG_CHECKSUM, on);
    }

    pub fn set_key_present(&mut self, on: bool) {
        self.set_flag(FLAG_KEY, on);
    }

    pub fn set_sequence_present(&mut self, on: bool) {
        self.set_flag(FLAG_SEQUENCE, on);
    }

    pub fn set_version(&mut self, version: u8) {
        let word = self.flags_word() & !VERSION_MASK;
        self.set_flags_word(word | (u16::from(version) & VERSION_MASK));
    }

    pub fn set_protocol(&mut self, protocol: u16) {
        write_u16(self.buffer.as_mut(), field::PROTOCOL.start, protocol);
    }

    /// Writes the Key field; the K bit must be set.
    pub fn set_key(&mut self, key: u32) {
        let at = self.key_offset();
        write_u32(self.buffer.as_mut(), at, key);
    }

    /// Writes the Sequence Number field; the S bit must be set.
    pub fn set_sequence_number(&mut self, sequence: u32) {
        let at = self.sequence_offset();
        write_u32(self.buffer.as_mut(), at, sequence);
    }

    /// Computes and writes the checksum over the whole buffer (header and
    /// payload), zeroing Reserved1 as RFC 2784 asks. Does nothing if C is clear.
    pub fn fill_checksum(&mut self) {
        if !self.checksum_present() {
            return;
        }
        let buffer = self.buffer.as_mut();
        buffer[BASE_HEADER_LEN..BASE_HEADER_LEN + 4].fill(0);
        let sum = checksum(buffer, CHECKSUM_WORD);
        write_u16(buffer, BASE_HEADER_LEN, sum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let at = self.header_len();
        &mut self.buffer.as_mut()[at..]
    }
}

/// The meaning of a GRE header, without its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// Whether the packet carries a checksum (C bit).
    pub checksum: bool,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
    /// Protocol type of the payload, an ethertype.
    pub protocol: u16,
}

impl Repr {
    /// Reads a version 0 GRE header, rejecting what RFC 2784 tells a receiver to
    /// discard (bits 1, 4 and 5 set, version other than 0) and, under
    /// [`ChecksumPolicy::Verify`], a wrong checksum.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Packet<&T>,
        policy: ChecksumPolicy,
    ) -> Result<Repr> {
        packet.check_len()?;
        if packet.rfc1701_bits() != 0 {
            return Err(Error::Unsupported {
                protocol: PROTOCOL,
                reason: format!(
                    "RFC 1701 routing/recursion bits {:#06x} set; RFC 2784 receivers discard such packets",
                    packet.rfc1701_bits()
                ),
            });
        }
        if packet.version() != 0 {
            return Err(Error::Unsupported {
                protocol: PROTOCOL,
                reason: format!(
                    "version {} (only version 0 is GRE proper; 1 is PPTP)",
                    packet.version()
                ),
            });
        }
        if policy == ChecksumPolicy::Verify && !packet.verify_checksum() {
            return Err(Error::BadChecksum {
                protocol: PROTOCOL,
                stored: u32::from(packet.checksum().unwrap_or_default()),
                computed: u32::from(checksum(packet.buffer.as_ref(), CHECKSUM_WORD)),
            });
        }
        Ok(Repr {
            checksum: packet.checksum_present(),
            key: packet.key(),
            sequence: packet.sequence_number(),
            protocol: packet.protocol(),
        })
    }

    /// Length of the header this repr emits.
    pub const fn header_len(&self) -> usize {
        header_len(self.checksum, self.key.is_some(), self.sequence.is_some())
    }

    /// Length of the whole packet for a payload of `payload_len` bytes.
    pub const fn buffer_len(&self, payload_len: usize) -> usize {
        self.header_len() + payload_len
    }

    /// Writes the header only, leaving the checksum zero: for callers that write
    /// the payload in place with [`Packet::payload_mut`] and then call
    /// [`Packet::fill_checksum`].
    pub fn emit_header<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Packet<T>) -> Result<()> {
        let available = packet.buffer.as_ref().len();
        if available < self.header_len() {
            return Err(truncated("output buffer", self.header_len(), available));
        }
        let buffer = packet.buffer.as_mut();
        buffer[..self.header_len()].fill(0);
        packet.set_checksum_present(self.checksum);
        packet.set_key_present(self.key.is_some());
        packet.set_sequence_present(self.sequence.is_some());
        packet.set_version(0);
        packet.set_protocol(self.protocol);
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(sequence) = self.sequence {
            packet.set_sequence_number(sequence);
        }
        Ok(())
    }

    /// Writes header and payload into a buffer exactly `buffer_len(payload.len())`
    /// bytes long, then the checksum if asked for.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Packet<T>,
        payload: &[u8],
    ) -> Result<()> {
        let needed = self.buffer_len(payload.len());
        let available = packet.buffer.as_ref().len();
        if available != needed {
            // The checksum covers the whole buffer, so it must end where the payload does.
            return Err(Error::Malformed {
                protocol: PROTOCOL,
                reason: format!(
                    "output buffer is {available} bytes, packet needs exactly {needed}"
                ),
            });
        }
        self.emit_header(packet)?;
        packet.payload_mut().copy_from_slice(payload);
        packet.fill_checksum();
        Ok(())
    }

    /// Builds the packet bytes for `payload`.
    pub fn to_bytes(&self, payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0; self.buffer_len(payload.len())];
        self.emit(&mut Packet::new_unchecked(&mut bytes[..]), payload)
            .expect("buffer sized by buffer_len");
        bytes
    }
}

const fn header_len(checksum: bool, key: bool, sequence: bool) -> usize {
    BASE_HEADER_LEN + 4 * (checksum as usize + key as usize + sequence as usize)
}

fn truncated(what: &'static str, needed: usize, available: usize) -> Error {
    Error::Truncated {
        protocol: PROTOCOL,
        what,
        needed,
        available,
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
mod tests {
    use super::*;

    /// GRE header and payload of `testPacketGRE` in google/gopacket
    /// `layers/gre_test.go`: a tcpdump capture ("15:08:08.003196 IP 192.168.1.1 >
    /// 192.168.1.2: GREv0, length 88: IP 172.16.1.1 > 172.16.2.1: ICMP echo
    /// request, id 4724, seq 1"), bytes 34.. of the Ethernet frame.
    const CAPTURED_GRE_IPV4: [u8; 88] = [
        0x00, 0x00, 0x08, 0x00, 0x45, 0x00, 0x00, 0x54, 0x04, 0x88, 0x40, 0x00, 0x40, 0x01, 0xda,
        0xfe, 0xac, 0x10, 0x01, 0x01, 0xac, 0x10, 0x02, 0x01, 0x08, 0x00, 0x82, 0xc4, 0x12, 0x74,
        0x00, 0x01, 0xc8, 0x92, 0xa3, 0x54, 0x00, 0x00, 0x00, 0x00, 0x38, 0x0c, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
        0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a,
        0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
    ];

    /// GRE header of `testPacketEthernetOverGRE` in the same gopacket file, also a
    /// tcpdump capture ("11:01:38.124768 IP 192.168.1.1 > 192.168.1.2: GREv0,
    /// length 102"): transparent Ethernet bridging, protocol 0x6558.
    const CAPTURED_GRE_TEB_HEADER: [u8; 4] = [0x00, 0x00, 0x65, 0x58];

    #[test]
    fn captured_plain_gre_parses_and_reemits_identically() {
        let packet = Packet::new_checked(&CAPTURED_GRE_IPV4[..]).unwrap();
        let repr = Repr::parse(&packet, ChecksumPolicy::Verify).unwrap();
        assert_eq!(
            repr,
            Repr {
                checksum: false,
                key: None,
                sequence: None,
                protocol: PROTOCOL_IPV4
            }
        );
        // The payload is the inner IPv4 header: version 4, IHL 5, ICMP.
        assert_eq!(packet.payload()[0], 0x45);
        assert_eq!(packet.payload()[9], 1);
        assert_eq!(repr.to_bytes(packet.payload()), CAPTURED_GRE_IPV4);
    }

    #[test]
    fn captured_teb_gre_header_parses() {
        let packet = Packet::new_checked(&CAPTURED_GRE_TEB_HEADER[..]).unwrap();
        let repr = Repr::parse(&packet, ChecksumPolicy::Verify).unwrap();
        assert_eq!(repr.protocol, 0x6558);
        assert_eq!(repr.header_len(), 4);
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn every_option_combination_round_trips_and_checksums() {
        let payload = b"fiph token lab=a step=3 seq=17";
        for checksum in [false, true] {
            for key in [None, Some(0xdead_beef)] {
                for sequence in [None, Some(7)] {
                    let repr = Repr {
                        checksum,
                        key,
                        sequence,
                        protocol: PROTOCOL_HARNESS_ECHO,
                    };
                    let bytes = repr.to_bytes(payload);
                    assert_eq!(bytes.len(), repr.buffer_len(payload.len()));
                    let packet = Packet::new_checked(&bytes[..]).unwrap();
                    assert_eq!(Repr::parse(&packet, ChecksumPolicy::Verify).unwrap(), repr);
                    assert_eq!(packet.payload(), payload);
                    assert!(packet.verify_checksum());
                }
            }
        }
    }

    #[test]
    fn header_layout_follows_rfc_2890() {
        let repr = Repr {
            checksum: true,
            key: Some(0x0102_0304),
            sequence: Some(0x0a0b_0c0d),
            protocol: PROTOCOL_IPV6,
        };
        let bytes = repr.to_bytes(&[]);
        assert_eq!(bytes.len(), 16);
        assert_eq!(&bytes[0..4], &[0xb0, 0x00, 0x86, 0xdd]);
        assert_eq!(&bytes[6..8], &[0, 0], "Reserved1 is zero");
        assert_eq!(&bytes[8..12], &[1, 2, 3, 4]);
        assert_eq!(&bytes[12..16], &[0x0a, 0x0b, 0x0c, 0x0d]);
        // With its checksum in place the whole header sums to zero (no word skipped).
        assert_eq!(checksum(&bytes, usize::MAX), 0);
    }

    #[test]
    fn the_sum_is_rfc_1071s() {
        // RFC 1071 section 3 worked example: the words 0001 f203 f4f5 f6f7 sum
        // (with end-around carry) to 0xddf2, whose complement is 0x220d; an odd
        // trailing byte is padded with zero.
        let words = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&words, usize::MAX), 0x220d);
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56], usize::MAX),
            checksum(&[0x12, 0x34, 0x56, 0x00], usize::MAX)
        );
    }

    #[test]
    fn corrupted_payload_fails_checksum_unless_ignored() {
        let repr = Repr {
            checksum: true,
            key: Some(1),
            sequence: None,
            protocol: PROTOCOL_HARNESS_ECHO,
        };
        let mut bytes = repr.to_bytes(b"abcd");
        let good_checksum = u32::from(u16::from_be_bytes([bytes[4], bytes[5]]));
        bytes[12] ^= 0xff;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        match Repr::parse(&packet, ChecksumPolicy::Verify) {
            Err(Error::BadChecksum {
                stored, computed, ..
            }) => {
                assert_eq!(stored, good_checksum);
                assert_ne!(computed, stored);
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        assert_eq!(Repr::parse(&packet, ChecksumPolicy::Ignore).unwrap(), repr);
    }

    #[test]
    fn rfc1701_bits_and_other_versions_are_refused() {
        let routing = [0x40, 0x00, 0x08, 0x00, 0, 0, 0, 0];
        let err =
            Repr::parse(&Packet::new_unchecked(&routing[..]), ChecksumPolicy::Verify).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let pptp = [0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0];
        let err =
            Repr::parse(&Packet::new_unchecked(&pptp[..]), ChecksumPolicy::Verify).unwrap_err();
        assert!(err.to_string().contains("version 1"), "{err}");
    }

    #[test]
    fn truncated_headers_are_errors() {
        assert!(Packet::new_checked(&[0x00, 0x00, 0x08][..]).is_err());
        // Key and sequence announced, only the key present.
        let short = [0x30, 0x00, 0x08, 0x00, 0, 0, 0, 1];
        let err = Packet::new_checked(&short[..]).unwrap_err();
        assert_eq!(
            err,
            Error::Truncated {
                protocol: "GRE",
                what: "header with its optional fields",
                needed: 12,
                available: 8
            }
        );
        let mut out = [0u8; 5];
        let repr = Repr {
            checksum: false,
            key: None,
            sequence: None,
            protocol: 1,
        };
        assert!(repr
            .emit(&mut Packet::new_unchecked(&mut out[..]), b"xy")
            .is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::wire::test_rng::XorShift::new(0x9e37_79b9);
        for _ in 0..20_000 {
            let len = (rng.next() % 40) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            if len > 0 && rng.next() % 2 == 0 {
                // Bias towards version 0 without RFC 1701 bits so deeper code runs.
                bytes[0] &= 0xb0;
                if len > 1 {
                    bytes[1] &= 0x00;
                }
            }
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = Repr::parse(&packet, ChecksumPolicy::Verify);
                let _ = Repr::parse(&packet, ChecksumPolicy::Ignore);
                let _ = packet.payload();
            }
        }
    }
}
