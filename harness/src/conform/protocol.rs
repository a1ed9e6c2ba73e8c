//! Which messages and field values of the driver protocol a `conform` run of
//! an external driver exercised, case by case, and why the others were not
//! (`driver::usage` records them under each case's lab).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::{Deserialize, Serialize};

use crate::check::ConformCase;
use crate::driver::usage::ITEMS;

/// One message or field value, and the cases that exercised it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolItem {
    pub item: String,
    pub about: String,
    pub cases: Vec<String>,
    /// Why no case did, when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unused_because: Option<String>,
}

/// Every item of the protocol, with the cases of `cases` (by their vendor
/// run's lab) that exercised it in `used` (item -> labs).
pub fn protocol_items(
    cases: &[ConformCase],
    used: &BTreeMap<&'static str, BTreeSet<String>>,
) -> Vec<ProtocolItem> {
    let case_of: BTreeMap<&str, &str> = cases
        .iter()
        .filter_map(|c| Some((c.vendor_result.lab.as_deref()?, c.name.as_str())))
        .collect();
    let by_item: BTreeMap<&str, Vec<String>> = ITEMS
        .iter()
        .map(|(item, _)| {
            let mut names: Vec<String> = used
                .get(item)
                .into_iter()
                .flatten()
                .filter_map(|lab| case_of.get(lab.as_str()).map(|n| n.to_string()))
                .collect();
            names.sort();
            names.dedup();
            (*item, names)
        })
        .collect();
    let said = |item: &str| by_item.get(item).is_some_and(|c| !c.is_empty());
    ITEMS
        .iter()
        .map(|(item, about)| {
            let cases = by_item[item].clone();
            let unused_because = cases.is_empty().then(|| why_unused(item, &said));
            ProtocolItem {
                item: item.to_string(),
                about: about.to_string(),
                cases,
                unused_because,
            }
        })
        .collect()
}

/// Why a run exercised no case of `item`, from what the driver said.
fn why_unused(item: &str, said: &dyn Fn(&str) -> bool) -> String {
    let owns = said("answer hello owns_conntrack true");
    match item {
        "flush any" => "Calico never asks it; only a broken control plane does".into(),
        "answer error" => "the driver refused nothing".into(),
        "answer hello owns_conntrack true" | "answer hello owns_conntrack false" => {
            "the driver says the other".into()
        }
        "flush orig_src_or_reply_src" | "flush orig_dst" | "answer flushed" if !owns => {
            "the driver does not own conntrack: the harness deletes the kernel's flows itself"
                .into()
        }
        _ if item.starts_with("answer hello ") => "the driver does not claim it".into(),
        _ if item.contains("ipv6") && !said("answer hello families ipv6") => {
            "the driver does not translate IPv6".into()
        }
        _ => "no case of this run exercised it".into(),
    }
}

/// Items no case exercised for no reason but the run's cases: holes.
pub fn holes(items: &[ProtocolItem]) -> Vec<&ProtocolItem> {
    items
        .iter()
        .filter(|i| i.unused_because.as_deref() == Some("no case of this run exercised it"))
        .collect()
}

/// `driver protocol: 26/30 messages and values exercised; not: ...`.
pub fn protocol_line(items: &[ProtocolItem]) -> String {
    let used = items.iter().filter(|i| !i.cases.is_empty()).count();
    let mut line = format!(
        "driver protocol: {used}/{} messages and values exercised",
        items.len()
    );
    let unused: Vec<String> = items
        .iter()
        .filter_map(|i| Some(format!("{} ({})", i.item, i.unused_because.as_ref()?)))
        .collect();
    if !unused.is_empty() {
        let _ = write!(line, "; not: {}", unused.join(", "));
    }
    line
}
