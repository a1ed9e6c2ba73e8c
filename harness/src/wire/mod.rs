//! Every packet the harness reads or writes.
//!
//! IPv4, IPv6, ICMP and ICMPv6 come from `pnet_packet` ([`ip`], [`icmp`] wrap
//! it in the few readers the traffic engine needs). SCTP and GRE are codecs the
//! ecosystem lacks (pnet has no SCTP, and its GRE view panics on a packet with
//! the routing bit set), in the style of smoltcp's `wire` module: each has a
//! zero-copy [`sctp::Packet`] / [`gre::Packet`] view over a byte buffer (`new_unchecked`, `new_checked`, field getters, setters when the
//! buffer is writable) and a `Repr` with `parse`, `buffer_len` and `emit`.
//!
//! Both codecs work on the transport payload alone, i.e. the bytes after the IP
//! header: raw `IPPROTO_SCTP` / `IPPROTO_GRE` sockets add and strip the IP header
//! themselves, and neither checksum needs an IP pseudo-header (SCTP's CRC32c and
//! GRE's Internet checksum both cover only their own header and payload).

pub mod gre;
pub mod icmp;
pub mod ip;
pub mod sctp;

/// What went wrong while reading or writing a packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer ends before a field the header or a length field promises.
    #[error("{protocol} {what} truncated: needs {needed} bytes, buffer has {available}")]
    Truncated {
        protocol: &'static str,
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// The checksum stored in the packet is not the one its bytes give.
    #[error(
        "{protocol} checksum mismatch: packet carries {stored:#010x}, bytes give {computed:#010x}"
    )]
    BadChecksum {
        protocol: &'static str,
        stored: u32,
        computed: u32,
    },
    /// A field holds a value the protocol forbids.
    #[error("{protocol} malformed: {reason}")]
    Malformed {
        protocol: &'static str,
        reason: String,
    },
    /// A valid packet of a variant this codec does not implement.
    #[error("{protocol} unsupported: {reason}")]
    Unsupported {
        protocol: &'static str,
        reason: String,
    },
}

/// Result of every codec operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Whether `parse` checks the packet's checksum.
///
/// Skipping it is for packets whose checksum is known to be absent or rewritten
/// (captures on a sending interface with checksum offload, legacy Adler-32 SCTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumPolicy {
    #[default]
    Verify,
    Ignore,
}

/// Rounds `len` up to the next multiple of four: SCTP chunks and parameters are
/// padded to 32-bit boundaries.
pub(crate) const fn pad4(len: usize) -> usize {
    (len + 3) & !3
}

/// Deterministic generator for the never-panic tests: no new dependency, same
/// bytes on every run so a failure reproduces.
#[cfg(test)]
pub(crate) mod test_rng {
    pub struct XorShift(u64);

    impl XorShift {
        pub fn new(seed: u64) -> Self {
            XorShift(seed.max(1))
        }

        pub fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }
    }
}
