//! Root test: our namespace pins and iproute2's `ip netns add` share
//! /run/netns without hiding each other. All of it happens on one thread that
//! has a private mount namespace of its own with a fresh tmpfs on /run, so the
//! host's /run/netns is never touched and /run/netns starts as a plain
//! directory, as on a machine where nobody has run `ip netns add` yet.

use std::path::Path;
use std::process::Command;

use fip_harness::lab::netns::Netns;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// Enter a private mount namespace on this thread (CLONE_NEWNS also unshares
/// the thread's filesystem context, which a thread may do) and put a fresh
/// tmpfs on /run in it.
fn private_run() {
    unshare(CloneFlags::CLONE_NEWNS).expect("unshare a mount namespace");
    // Nothing mounted from here on may propagate back to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .expect("make / private");
    mount(
        Some("tmpfs"),
        "/run",
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=0755"),
    )
    .expect("tmpfs on /run");
}

/// This thread's mounts as (mount id, mount point).
fn mounts() -> Vec<(u64, String)> {
    let text = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    text.lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields[0].parse().unwrap(), fields[4].to_string())
        })
        .collect()
}

/// Mounts at `path` made since `before` (the host's own mounts, hidden under
/// our tmpfs, are still listed and must not count).
fn new_mounts_at(before: &[(u64, String)], path: &Path) -> usize {
    mounts()
        .iter()
        .filter(|(id, at)| at == path.to_str().unwrap() && !before.iter().any(|(b, _)| b == id))
        .count()
}

fn ip_netns(action: &str, name: &str) {
    let status = Command::new("ip")
        .args(["netns", action, name])
        .status()
        .expect("ip (package iproute2)");
    assert!(status.success(), "ip netns {action} {name}");
}

#[test]
fn a_pin_made_before_the_first_ip_netns_add_is_removed_for_good() {
    std::thread::spawn(|| {
        private_run();
        let before = mounts();
        let ours = "fiph-pintest-a";
        Netns::create(ours, &fip_harness::lab::signals::CREATIONS).expect("create our namespace");
        // iproute2's first netns_add: without our shared bind it would bind
        // /run/netns onto itself now, covering our pin with a copy.
        ip_netns("add", "pintest-theirs");
        Netns::delete(ours).unwrap();
        let pin = Path::new("/run/netns").join(ours);
        assert!(!pin.exists());
        assert_eq!(
            new_mounts_at(&before, &pin),
            0,
            "a hidden mount of our pin keeps its namespace alive"
        );
        // /run/netns is one shared mount of itself, as iproute2 leaves it.
        assert_eq!(new_mounts_at(&before, Path::new("/run/netns")), 1);
        ip_netns("delete", "pintest-theirs");
        assert_eq!(
            new_mounts_at(&before, &Path::new("/run/netns").join("pintest-theirs")),
            0
        );
    })
    .join()
    .expect("the test thread");
}
