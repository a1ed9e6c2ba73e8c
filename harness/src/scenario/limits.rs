//! Sane limits, checked by `validate` as by `run`: packet counts and intervals
//! a lab can carry, waits and a total running time a person would wait for, a
//! cluster one host can emulate, and member names the lab can turn into
//! namespace names (the lab's own rule, so `validate` never passes a scenario
//! `run` would refuse).

use std::time::Duration;

use super::load::Loader;
use super::located::Spanned;
use super::model::{DEFAULT_COUNT, DEFAULT_INTERVAL};
use super::raw::{RawPacketWait, RawScenario, RawSend, RawStep, RawWait};
use super::values::{DurationValue, Name};
use crate::calico::IpPool;
use crate::vocab::addressing::{
    FABRIC_EXT_V4, FABRIC_EXT_V6, FABRIC_NODES_V4, FABRIC_NODES_V6, SEGMENT_V4_PREFIX,
    SEGMENT_V6_PREFIX,
};
use crate::vocab::names::{check_member_name, NameError};
use ipnet::IpNet;

/// Packets in one `send`.
pub const MAX_COUNT: u32 = 100_000;
/// The shortest gap between two packets of a send or stream: below it the
/// sender spins and the capture grows faster than anyone reads it.
pub const MIN_INTERVAL: Duration = Duration::from_micros(100);
pub const MAX_INTERVAL: Duration = Duration::from_secs(10);
/// One `wait` step.
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);
/// A counted wait (`wait: {stream, packets}`) fails when its packets take
/// longer than its `within`; by default that is this many times their time
/// at the stream's interval...
pub const PACKET_WAIT_SLACK: u32 = 10;
/// ...and at least this long: a loaded machine runs a stream's sender late
/// (it catches up in bursts), and the bound is there only so that a stuck
/// stream cannot hold the case.
pub const PACKET_WAIT_FLOOR: Duration = Duration::from_secs(10);
/// Waits plus sends, over the whole scenario.
pub const MAX_TOTAL: Duration = Duration::from_secs(30 * 60);
/// A hundred nodes of a hundred pods each is the largest lab this harness is
/// measured to build on a small machine (`fip-harness bench scale`).
pub const MAX_NODES: usize = 100;
pub const MAX_EXTERNALS: usize = 16;
pub const MAX_PODS: usize = 10_000;
/// The longest lab name (`[a-z0-9]{1,12}`): a member name must fit with it.
const LONGEST_LAB: &str = "labnamelabna";

fn ms(d: Duration) -> String {
    format!("{d:?}")
}

impl Loader<'_> {
    pub(super) fn check_send_limits(&mut self, send: &RawSend) {
        if let Some(count) = &send.count {
            if count.value > MAX_COUNT {
                self.error_at(
                    count,
                    format!(
                        "count {} is over the limit of {MAX_COUNT} packets per send",
                        count.value
                    ),
                );
            }
            if count.value == 0 && send.expect.delivered_to.is_some() {
                self.error_at(
                    count,
                    "count 0 sends nothing, so `expect.deliveredTo` can never be checked; send at least one packet",
                );
            }
        }
        self.check_interval(send.interval.as_ref());
    }

    pub(super) fn check_interval(&mut self, interval: Option<&Spanned<DurationValue>>) {
        let Some(interval) = interval else { return };
        let d = interval.value.0;
        if d < MIN_INTERVAL || d > MAX_INTERVAL {
            self.error_at(
                interval,
                format!(
                    "interval {} is out of range: between {} and {}",
                    ms(d),
                    ms(MIN_INTERVAL),
                    ms(MAX_INTERVAL)
                ),
            );
        }
    }

    pub(super) fn check_wait(&mut self, wait: &Spanned<DurationValue>) {
        if wait.value.0 > MAX_WAIT {
            self.error_at(
                wait,
                format!(
                    "wait {} is over the limit of {}",
                    ms(wait.value.0),
                    ms(MAX_WAIT)
                ),
            );
        }
    }

    /// A counted wait's packets and bound (returned, the default filled in),
    /// for a stream sending every `interval`.
    pub(super) fn check_packet_wait(
        &mut self,
        wait: &RawPacketWait,
        interval: Duration,
    ) -> Duration {
        let packets = wait.packets.value;
        let nominal = interval.saturating_mul(packets);
        if packets == 0 {
            self.error_at(
                &wait.packets,
                "a wait for 0 packets waits for nothing: count at least 1 (or use a duration)",
            );
        } else if packets > MAX_COUNT {
            self.error_at(
                &wait.packets,
                format!("{packets} packets is over the limit of {MAX_COUNT} packets per wait"),
            );
        } else if nominal > MAX_WAIT {
            self.error_at(
                &wait.packets,
                format!(
                    "{packets} packets at stream `{}`'s interval of {} take {}, over the wait limit of {}",
                    wait.stream.value,
                    ms(interval),
                    ms(nominal),
                    ms(MAX_WAIT)
                ),
            );
        }
        let default = (nominal.saturating_mul(PACKET_WAIT_SLACK))
            .max(PACKET_WAIT_FLOOR)
            .min(MAX_WAIT);
        let Some(within) = &wait.within else {
            return default;
        };
        if within.value.0 > MAX_WAIT {
            let message = format!(
                "within {} is over the wait limit of {}",
                ms(within.value.0),
                ms(MAX_WAIT)
            );
            self.error_at(within, message);
        } else if within.value.0 < nominal {
            let message = format!(
                "within {} is shorter than {packets} packets take at stream `{}`'s interval of {} ({}): the wait could never end in time",
                ms(within.value.0),
                wait.stream.value,
                ms(interval),
                ms(nominal)
            );
            self.error_at(within, message);
        }
        within.value.0
    }

    /// Cluster size, member names and total running time.
    pub(super) fn check_scale(&mut self, raw: &RawScenario) {
        let nodes = &raw.cluster.nodes.value;
        if let Some(extra) = nodes.get(MAX_NODES) {
            self.error_at(extra, format!("{} nodes: at most {MAX_NODES}", nodes.len()));
        }
        if let Some(extra) = raw.cluster.externals.get(MAX_EXTERNALS) {
            let n = raw.cluster.externals.len();
            self.error_at(
                extra,
                format!("{n} external hosts: at most {MAX_EXTERNALS}"),
            );
        }
        for member in nodes.iter().chain(&raw.cluster.externals) {
            self.check_member_name(member, &member.value.name);
        }
        let mut pods = 0;
        let mut total = Duration::ZERO;
        let mut over = false;
        let mut intervals = std::collections::BTreeMap::new();
        for step in &raw.steps {
            match &step.value {
                RawStep::CreatePod(create) => {
                    pods += 1;
                    if pods == MAX_PODS + 1 {
                        self.error_at(step, format!("more than {MAX_PODS} pods"));
                    }
                    if let Some(name) = &create.name {
                        self.check_member_name(name, &name.value);
                    }
                }
                RawStep::Send(send) => {
                    let count = send.count.as_ref().map_or(DEFAULT_COUNT, |c| c.value);
                    let interval = send.interval.as_ref().map_or(DEFAULT_INTERVAL, |i| i.0);
                    total += interval.saturating_mul(count.min(MAX_COUNT));
                }
                RawStep::StartStream(start) => {
                    let interval = start.interval.as_ref().map_or(DEFAULT_INTERVAL, |i| i.0);
                    intervals.insert(start.name.as_str(), interval);
                }
                RawStep::Wait(RawWait::Time(wait)) => total += wait.value.0.min(MAX_WAIT),
                RawStep::Wait(RawWait::Packets(wait)) => {
                    let interval = intervals.get(wait.stream.as_str()).copied();
                    let nominal = interval
                        .unwrap_or_default()
                        .saturating_mul(wait.packets.value);
                    total += nominal.min(MAX_WAIT);
                }
                _ => {}
            }
            if total > MAX_TOTAL && !over {
                over = true;
                self.error_at(
                    step,
                    format!(
                        "the scenario runs for more than {} by this step",
                        ms(MAX_TOTAL)
                    ),
                );
            }
        }
    }

    /// Whether `name` can name a lab member; if not, an error at `at`.
    pub(super) fn check_member_name<T>(&mut self, at: &Spanned<T>, name: &Name) -> bool {
        if let Err(e) = check_member_name(LONGEST_LAB, name.as_str()) {
            let NameError::BadMemberName { max, .. } = e else {
                self.error_at(at, e.to_string());
                return false;
            };
            self.error_at(
                at,
                format!(
                    "`{name}` cannot name a lab member: a lab names namespaces `fiph-<lab>-<member>`, \
                     so a member name is at most {max} characters and not `fabric` (the lab's own router)"
                ),
            );
            return false;
        }
        true
    }
}

/// Ranges a pool that pods take addresses from must stay out of, and why.
/// Ours, not Calico's (Calico accepts these pools): the lab's own segments
/// (`vocab::addressing`), addresses the kernel does not treat as one host's
/// unicast address, and 240.0.0.0/4, which BIRD never carries.
fn unusable_for_pods() -> Vec<(IpNet, &'static str)> {
    let segment = |address: std::net::IpAddr, prefix: u8| {
        IpNet::new(address, prefix).expect("a prefix").trunc()
    };
    let mut ranges = vec![
        (
            segment(FABRIC_NODES_V4.into(), SEGMENT_V4_PREFIX),
            "the lab's nodes segment",
        ),
        (
            segment(FABRIC_EXT_V4.into(), SEGMENT_V4_PREFIX),
            "the lab's external hosts segment",
        ),
        (
            segment(FABRIC_NODES_V6.into(), SEGMENT_V6_PREFIX),
            "the lab's nodes segment",
        ),
        (
            segment(FABRIC_EXT_V6.into(), SEGMENT_V6_PREFIX),
            "the lab's external hosts segment",
        ),
    ];
    for (cidr, why) in [
        (
            "0.0.0.0/8",
            "\"this network\", which the kernel does not route",
        ),
        ("127.0.0.0/8", "loopback, which the kernel does not route"),
        ("224.0.0.0/4", "multicast, not one host's address"),
        ("240.0.0.0/4", "reserved, whose routes BIRD never carries"),
        ("::/8", "loopback, unspecified and IPv4-mapped addresses"),
        ("ff00::/8", "multicast, not one host's address"),
    ] {
        ranges.push((cidr.parse().expect("a CIDR"), why));
    }
    ranges
}

impl Loader<'_> {
    /// Pools that Calico takes but this lab cannot build: two pools that
    /// overlap (Calico refuses the second at creation:
    /// libcalico-go/lib/clientv3/ippool.go validateAndSetDefaults), an
    /// enabled pool pods take addresses from in a range the lab cannot give pods, and an enabled pool
    /// with `disableBGPExport` (ours: the harness's route model and its BIRD
    /// wait both assume a pod's block reaches the fabric).
    pub(super) fn check_pools_fit<T>(&mut self, pools: &[(IpPool, &Spanned<T>)]) {
        for (i, (pool, at)) in pools.iter().enumerate() {
            if let Some((other, _)) = pools[..i]
                .iter()
                .find(|(other, _)| overlap(&other.cidr, &pool.cidr))
            {
                self.error_at(
                    at,
                    format!(
                        "pool `{}`: IPPool({}) CIDR overlaps with IPPool({}) CIDR {}",
                        pool.name, pool.name, other.name, other.cidr
                    ),
                );
                continue;
            }
            if pool.disabled || pool.load_balancer_only {
                continue;
            }
            if let Some((range, why)) = unusable_for_pods()
                .into_iter()
                .find(|(range, _)| overlap(range, &pool.cidr))
            {
                self.error_at(
                    at,
                    format!(
                        "pool `{}`: cidr {} overlaps {range} ({why}): the lab cannot give pods addresses there; choose another range",
                        pool.name, pool.cidr
                    ),
                );
            } else if pool.disable_bgp_export {
                self.error_at(
                    at,
                    format!(
                        "pool `{}`: disableBGPExport on a pool pods take addresses from is not supported by the harness (its route model and BIRD wait assume every pod's block reaches the fabric); use it on a disabled pool of floating IPs",
                        pool.name
                    ),
                );
            }
        }
    }
}

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}
