//! A run's seed: every choice the harness would otherwise make at random (SCTP
//! verification tags and initial TSNs at both ends, UDP and TCP source ports,
//! the names of the labs it makes up) is derived from it, so a run given the
//! same seed sends the same packets and a failure replays exactly.
//!
//! Derivation is SplitMix64 (Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators", OOPSLA 2014) over the seed, a purpose and
//! keys: no state is shared, so what one probe draws does not depend on what
//! others drew before it, nor on which other cases the run has.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Seed(pub u64);

impl Seed {
    /// A seed from the OS's random source, for runs not given one (it is still
    /// printed in their reports, so they replay too).
    pub fn random() -> Seed {
        use std::hash::{BuildHasher, Hasher};
        // RandomState's keys come from the OS's random source.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        // Small enough to type back in comfortably.
        Seed(hasher.finish() % 1_000_000_000)
    }

    /// A seed over the whole 64-bit range, for one-off draws.
    fn random_full() -> Seed {
        use std::hash::{BuildHasher, Hasher};
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        Seed(hasher.finish())
    }

    /// The value for `purpose` and `keys`: the same inputs always give the same
    /// value, different ones independent values.
    pub fn derive(self, purpose: &str, keys: &[u64]) -> u64 {
        let mut state = splitmix(self.0 ^ 0x6669_702d_6861_726e); // "fip-harn"
        for byte in purpose.bytes() {
            state = splitmix(state ^ u64::from(byte));
        }
        for key in keys {
            state = splitmix(state ^ key);
        }
        state
    }
}

impl std::fmt::Display for Seed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Seed {
    type Err = std::num::ParseIntError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.parse().map(Seed)
    }
}

/// One step of SplitMix64.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A non-zero 32-bit value (SCTP tags and TSNs): from `seed` when there is
/// one, else from the OS's random source.
pub fn draw_u32(seed: Option<Seed>, purpose: &str, keys: &[u64]) -> u32 {
    let seed = seed.unwrap_or_else(Seed::random_full);
    (seed.derive(purpose, keys) as u32) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_inputs_give_the_same_value_and_others_differ() {
        let seed = Seed(42);
        assert_eq!(seed.derive("tag", &[1, 2]), seed.derive("tag", &[1, 2]));
        assert_ne!(seed.derive("tag", &[1, 2]), seed.derive("tag", &[2, 1]));
        assert_ne!(seed.derive("tag", &[1]), seed.derive("tsn", &[1]));
        assert_ne!(seed.derive("tag", &[1]), Seed(43).derive("tag", &[1]));
        assert_eq!(
            draw_u32(Some(seed), "tag", &[7]),
            draw_u32(Some(seed), "tag", &[7])
        );
        assert_eq!(draw_u32(Some(seed), "tag", &[7]) & 1, 1);
    }

    #[test]
    fn seeds_read_back_as_printed() {
        let seed = Seed::random();
        assert_eq!(seed.to_string().parse::<Seed>().unwrap(), seed);
        assert!("x".parse::<Seed>().is_err());
    }
}
