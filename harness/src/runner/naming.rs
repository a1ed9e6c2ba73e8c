//! How a case's lab is named: made up (unique on this host, from the process
//! or from the run's seed), or after a name or prefix people chose so that a
//! kept lab is easy to find and type (`run --keep-on-failure=NAME`, `up
//! --prefix`).

use std::sync::atomic::{AtomicU32, Ordering};

use crate::lab::spec::MAX_LAB_NAME;
use crate::seed::Seed;

/// Room a prefix leaves for the part the harness adds.
pub const PREFIX_SUFFIX_LEN: usize = 4;

/// How the labs of a run are named.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LabNaming {
    /// Made up: from the seed when there is one, else unique to this process.
    #[default]
    MadeUp,
    /// Exactly this name (one case).
    Exact(String),
    /// This prefix and a few characters drawn from the case's name (and the
    /// seed), the first such name free on this host.
    Prefix(String),
}

impl LabNaming {
    /// The lab name of case `case`.
    pub fn name_for(&self, seed: Option<Seed>, case: &str) -> String {
        match (self, seed) {
            (LabNaming::Exact(name), _) => name.clone(),
            (LabNaming::Prefix(prefix), seed) => free_name(prefix, seed.unwrap_or(Seed(0)), case),
            (LabNaming::MadeUp, Some(seed)) => seeded_lab_name(seed, case),
            (LabNaming::MadeUp, None) => unique_lab_name(),
        }
    }
}

/// Check a prefix people gave: lab-name characters, with room for the suffix.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let room = MAX_LAB_NAME - PREFIX_SUFFIX_LEN;
    if prefix.is_empty()
        || prefix.len() > room
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "lab prefix `{}` must be 1-{room} characters of [a-z0-9] \
             (the harness adds {PREFIX_SUFFIX_LEN} to make a lab name)",
            crate::text::printable(prefix)
        ));
    }
    Ok(())
}

/// A lab name unique on this host: `r<pid><n><random>` in base 36, at most 12
/// characters (the lab name rule). The random part, drawn once per process,
/// keeps a later process with a reused pid from meeting a lab a killed one left.
pub fn unique_lab_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static SALT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let salt = SALT.get_or_init(|| {
        // RandomState's keys come from the OS's random source.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        base36((random % (36u64.pow(4))) as u32)
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut name = format!("r{}{}", base36(std::process::id()), base36(n));
    let room = 12usize.saturating_sub(name.len());
    name.push_str(&format!("{salt:0>4}")[..room.min(4)]);
    name
}

/// The lab name a seeded case makes up: `s` and base-36 digits drawn from
/// the seed and the case's name, the same on every run with that seed.
pub fn seeded_lab_name(seed: Seed, case: &str) -> String {
    free_name("s", seed, case)
}

/// `prefix` and base-36 digits drawn from `seed` and `case`, up to the lab
/// name's length. A name already taken on this host (a lab kept from an
/// earlier run with the same seed) moves on to the next draw, so a run never
/// fails for it; the name is in the case's result either way.
fn free_name(prefix: &str, seed: Seed, case: &str) -> String {
    let case_key = seed.derive(case, &[]);
    (0u64..)
        .map(|attempt| {
            let value = seed.derive("lab name", &[case_key, attempt]);
            let mut name = prefix.to_string();
            name.push_str(&base36((value % 36u64.pow(6)) as u32));
            name.push_str(&base36(((value >> 32) % 36u64.pow(5)) as u32));
            name.truncate(MAX_LAB_NAME);
            name
        })
        .find(|name| lab_name_is_free(name))
        .expect("an endless sequence of names has a free one")
}

/// No namespace, record or lock of a lab of this name exists on this host.
fn lab_name_is_free(name: &str) -> bool {
    use crate::lab::{claim, netns::Netns, registry, spec};
    Netns::list_with_prefix(&spec::namespace_prefix(name)).is_empty()
        && !registry::record_path(name).exists()
        && !claim::lock_path(name).exists()
}

/// `n` in base 36 (lowercase), as lab names spell numbers (a pid, a draw).
pub fn base36(mut n: u32) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_choice_and_the_seed() {
        let seed = Some(Seed(5));
        let named = LabNaming::Exact("rrone".into()).name_for(seed, "a::nftables");
        assert_eq!(named, "rrone");
        let prefixed = LabNaming::Prefix("rr".into()).name_for(seed, "a::nftables");
        assert!(
            prefixed.starts_with("rr") && prefixed.len() == MAX_LAB_NAME,
            "{prefixed}"
        );
        let seeded = LabNaming::MadeUp.name_for(seed, "a::nftables");
        assert_eq!(seeded, LabNaming::MadeUp.name_for(seed, "a::nftables"));
        assert_ne!(seeded, LabNaming::MadeUp.name_for(seed, "a::iptables"));
        assert!(crate::lab::spec::valid_lab_name(&seeded), "{seeded}");
        assert_ne!(
            LabNaming::MadeUp.name_for(None, "x"),
            LabNaming::MadeUp.name_for(None, "x")
        );
    }

    #[test]
    fn prefixes_leave_room_for_the_suffix() {
        assert!(check_prefix("rr").is_ok());
        assert!(check_prefix("abcdefgh").is_ok());
        assert!(check_prefix("abcdefghi").is_err());
        assert!(check_prefix("r-r").is_err());
        assert!(check_prefix("").is_err());
    }
}
