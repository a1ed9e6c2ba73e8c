//! What Felix's iptables *legacy* mode writes when a table it already
//! programmed changes (felix/iptables/table.go `applyUpdates`): for each chain
//! whose rules changed, the rules compared one by one with the hashes it last
//! wrote; a rule whose hash differs is replaced in place (`-R <chain> <n>`),
//! rules past the new end are deleted from the end (`-D <chain> <n>`, the
//! same number each time), new ones appended (`-A`); all of it in one
//! `iptables-restore --noflush` transaction of the table, and no restore at
//! all when nothing changed (`buf.Empty()`). Felix's nftables-backed iptables
//! mode rewrites a changed chain whole instead; this backend is the legacy one.
//!
//! Felix's rule hash chains each rule to the one before it
//! (felix/generictables/rules.go `RuleHashes`), so a floating IP added or
//! removed in the middle of `cali-fip-dnat` changes every later rule's hash:
//! those rules are all replaced, as Felix replaces them. The built-in chains'
//! jumps never change after the first write, so an update leaves them alone.

use super::super::felix_hash::rule_hashes;
use super::super::{Features, NodeNatState};
use super::render::nat_bodies;
use crate::calico::IpFamily;

/// The restore input that takes the nat table of one family from `old` (what
/// this backend last wrote) to `new`, or `None` when no rule changes.
pub fn render_update(
    old: &NodeNatState,
    new: &NodeNatState,
    family: IpFamily,
    features: Features,
) -> Option<String> {
    let before = nat_bodies(old, family, features);
    let after = nat_bodies(new, family, features);
    let mut lines = Vec::new();
    // The same chains in the same order on both sides: felix_rules declares
    // every chain whatever the state. (Felix walks its dirty chains in Go's
    // set order; the harness in declaration order.)
    for ((name, was), (_, now)) in before.iter().zip(&after) {
        chain_update(&mut lines, name, was, now);
    }
    if lines.is_empty() {
        return None;
    }
    let mut text = String::from("*nat\n");
    for line in lines {
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str("COMMIT\n");
    Some(text)
}

/// table.go applyUpdates' loop over one chain: replace, delete or append.
fn chain_update(lines: &mut Vec<String>, name: &str, was: &[String], now_bodies: &[String]) {
    let was_hashes = rule_hashes(name, was);
    let now_hashes = rule_hashes(name, now_bodies);
    for index in 0..was_hashes.len().max(now_hashes.len()) {
        let current = now_hashes.get(index).zip(now_bodies.get(index));
        match (was_hashes.get(index), current) {
            (Some(previous), Some((hash, _))) if previous == hash => {}
            (Some(_), Some((hash, body))) => lines.push(format!(
                "-R {name} {} -m comment --comment \"cali:{hash}\" {body}",
                index + 1
            )),
            // "previousHashes was longer, remove the old rules from the end."
            (Some(_), None) => lines.push(format!("-D {name} {}", now_hashes.len() + 1)),
            (None, Some((hash, body))) => lines.push(format!(
                "-A {name} -m comment --comment \"cali:{hash}\" {body}"
            )),
            (None, None) => {}
        }
    }
}
