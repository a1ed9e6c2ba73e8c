//! The token every probe payload carries, so each packet seen anywhere is
//! attributed to a lab, a step, a probe (or stream) and a sequence number.

use serde::{Deserialize, Serialize};

/// Marks the start of a token inside a payload.
pub const TOKEN_MAGIC: [u8; 4] = *b"FiPh";
/// Bytes of an encoded token: magic, lab hash, step, probe, sequence.
pub const TOKEN_LEN: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Token {
    /// [`lab_hash`] of the lab's name.
    pub lab: u32,
    pub step: u32,
    /// The probe or stream this packet belongs to.
    pub probe: u32,
    pub seq: u32,
}

impl Token {
    pub fn encode(&self) -> [u8; TOKEN_LEN] {
        let mut out = [0u8; TOKEN_LEN];
        out[..4].copy_from_slice(&TOKEN_MAGIC);
        out[4..8].copy_from_slice(&self.lab.to_be_bytes());
        out[8..12].copy_from_slice(&self.step.to_be_bytes());
        out[12..16].copy_from_slice(&self.probe.to_be_bytes());
        out[16..20].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// A token at the very start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Option<Token> {
        if bytes.len() < TOKEN_LEN || bytes[..4] != TOKEN_MAGIC {
            return None;
        }
        let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        Some(Token {
            lab: word(4),
            step: word(8),
            probe: word(12),
            seq: word(16),
        })
    }

    /// Every token anywhere in `bytes` (a TCP segment may carry several; an ICMP
    /// error carries the one of the packet it quotes).
    pub fn find_all(bytes: &[u8]) -> Vec<Token> {
        let mut found = Vec::new();
        let mut at = 0;
        while at + TOKEN_LEN <= bytes.len() {
            if let Some(token) = Token::parse(&bytes[at..]) {
                found.push(token);
                at += TOKEN_LEN;
            } else {
                at += 1;
            }
        }
        found
    }

    pub fn find_first(bytes: &[u8]) -> Option<Token> {
        (0..=bytes.len().saturating_sub(TOKEN_LEN)).find_map(|at| Token::parse(&bytes[at..]))
    }
}

/// FNV-1a of the lab name: stable across runs and processes, so a pcap read
/// later still tells which lab sent a packet.
pub fn lab_hash(lab: &str) -> u32 {
    lab.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ byte as u32).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_is_found_inside_a_payload() {
        let token = Token {
            lab: lab_hash("h5"),
            step: 3,
            probe: 7,
            seq: 0xdead_beef,
        };
        let mut payload = vec![0xaa; 5];
        payload.extend_from_slice(&token.encode());
        payload.extend_from_slice(&token.encode());
        assert_eq!(Token::find_all(&payload), vec![token, token]);
        assert_eq!(Token::find_first(&payload), Some(token));
        assert_eq!(Token::parse(&payload), None);
    }

    #[test]
    fn lab_hash_is_fnv1a() {
        // FNV-1a 32 of "a" is 0xe40c292c (reference value of the algorithm).
        assert_eq!(lab_hash("a"), 0xe40c_292c);
    }
}
