//! What a lab's members hold, read with `ip -j` as a person would read
//! it, and the check that a torn-down lab left nothing behind.

use std::collections::BTreeSet;
use std::process::Command;

use fip_harness::lab::netns::Netns;
use fip_harness::lab::spec::namespace_prefix;
use fip_harness::lab::Lab;
use serde_json::Value;

use super::program;

pub fn host_links() -> BTreeSet<String> {
    let out = Command::new(program("ip"))
        .args(["-j", "link"])
        .output()
        .unwrap();
    let links: Value = serde_json::from_slice(&out.stdout).unwrap();
    links
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// `ip ARGS` in `member`'s namespace `netns`, which must succeed; its output.
pub fn ip_in(netns: &Netns, member: &str, args: &[&str]) -> Vec<u8> {
    let out = netns.command(program("ip")).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?} in {member}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn ip_json(lab: &Lab, member: &str, args: &[&str]) -> Value {
    let args: Vec<&str> = std::iter::once("-j").chain(args.iter().copied()).collect();
    serde_json::from_slice(&ip_in(lab.netns(member).unwrap(), member, &args)).unwrap()
}

pub fn routes(lab: &Lab, member: &str, family: &str) -> BTreeSet<String> {
    ip_json(lab, member, &[family, "route", "show"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut s = r["dst"].as_str().unwrap().to_string();
            if let Some(t) = r["type"].as_str() {
                s += &format!(" {t}");
            }
            if let Some(gw) = r["gateway"].as_str() {
                s += &format!(" via {gw}");
            }
            if let Some(dev) = r["dev"].as_str() {
                s += &format!(" dev {dev}");
            }
            s
        })
        .collect()
}

pub fn assert_gone(lab: &str, host_before: &BTreeSet<String>) {
    assert_eq!(
        Netns::list_with_prefix(&namespace_prefix(lab)),
        Vec::<String>::new()
    );
    assert!(!fip_harness::lab::registry::record_path(lab).exists());
    let gained: Vec<_> = host_links().difference(host_before).cloned().collect();
    assert!(gained.is_empty(), "host namespace gained links {gained:?}");
}
