//! The map backend's table and map names, and the change between two node
//! states (the elements to delete and to add), shared by its netlink path
//! and its JSON rendering.

use std::collections::HashSet;

use super::{DnatMapping, NodeNatState, SnatMapping};

/// Name of the tables (one per family): the harness's, not Calico's.
pub const TABLE: &str = "fiph-maps";
pub(super) const DNAT_MAP: &str = "fip-dnat";
pub(super) const SNAT_MAP: &str = "fip-snat";
/// The map elements a change from `old` to `new` deletes and adds (both
/// families), computed once for the JSON and the netlink renderings.
#[derive(Debug, Default)]
pub(crate) struct Delta {
    pub gone_dnat: Vec<DnatMapping>,
    pub new_dnat: Vec<DnatMapping>,
    pub gone_snat: Vec<SnatMapping>,
    pub new_snat: Vec<SnatMapping>,
}

/// The items of `a` that `b` lacks. States are kept sorted
/// ([`NodeNatState::new`]), so one merge walk does it, without hashing 10,000
/// mappings for a move that touches one; unsorted input (the fields are
/// public) takes the hash-set way.
fn only_in<T: Copy + Ord + std::hash::Hash>(a: &[T], b: &[T]) -> Vec<T> {
    if !(a.is_sorted() && b.is_sorted()) {
        let b: HashSet<&T> = b.iter().collect();
        return a.iter().filter(|m| !b.contains(m)).copied().collect();
    }
    let mut out = Vec::new();
    let mut rest = b.iter().peekable();
    for item in a {
        while rest.next_if(|other| *other < item).is_some() {}
        if rest.peek() != Some(&item) {
            out.push(*item);
        }
    }
    out
}

impl Delta {
    pub(crate) fn between(old: &NodeNatState, new: &NodeNatState) -> Self {
        Self {
            gone_dnat: only_in(&old.dnat, &new.dnat),
            new_dnat: only_in(&new.dnat, &old.dnat),
            gone_snat: only_in(&old.snat, &new.snat),
            new_snat: only_in(&new.snat, &old.snat),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merge_walk_finds_what_the_hash_sets_find() {
        let a: Vec<u32> = (0..200).filter(|i| i % 3 != 0).collect();
        let b: Vec<u32> = (50..260).filter(|i| i % 5 != 0).collect();
        let mut shuffled = b.clone();
        shuffled.reverse();
        let by_hash = only_in(&a, &shuffled);
        assert_eq!(only_in(&a, &b), by_hash);
        assert_eq!(
            by_hash.len(),
            50 - 17 + (50..200).filter(|i| i % 3 != 0 && i % 5 == 0).count()
        );
        assert!(only_in(&b, &b).is_empty());
    }
}
