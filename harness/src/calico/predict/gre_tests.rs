//! Keyless GRE across sends ([`crate::calico::conntrack::GreTable`]): which earlier packets leave an
//! entry whose tuple a later flow's reply tuple meets, and what takes it.
//! web (198.19.0.0) on node-a holds 203.0.113.10 and 203.0.113.11.

use std::time::Duration;

use rstest::rstest;

use super::*;
use crate::calico::cluster::tests::{annotate, config, create, ip};
use crate::calico::cluster::{Cluster, ClusterStep};

/// One thing that happens before the packet judged.
enum Then {
    /// A send of one packet: from, to, protocol.
    Send(&'static str, &'static str, Protocol),
    Wait(u64),
    Step(ClusterStep),
}

use Then::{Send, Step, Wait};

const TWO: &str = r#"["203.0.113.10", "203.0.113.11"]"#;

/// Where the packet lands: `pod web src ...`, `host client seen ...`, or
/// `dropped at node-a (Reason)`.
fn landing(prediction: &Prediction) -> Vec<String> {
    let text = |outcome: &Outcome| match &outcome.landing {
        Landing::Pod {
            pod, seen_source, ..
        } => format!("pod {pod} src {seen_source}"),
        Landing::Host {
            host, seen_source, ..
        } => match seen_source {
            Some(source) => format!("host {host} seen {source}"),
            None => format!("host {host}"),
        },
        Landing::Dropped { at, reason } => format!("dropped at {at} ({reason:?})"),
    };
    prediction.outcomes.iter().map(text).collect()
}

#[rstest]
// The finding: web's GRE to client leaves `web -> client`, the reply tuple
// of client's GRE to a floating IP DNATed to web.
#[case::egress_then_inbound(
    vec![Send("web", "198.18.1.10", Protocol::Gre)],
    ("client", "203.0.113.10", Protocol::Gre),
    "dropped at node-a (ConntrackClash)"
)]
// ICMP echo is a new flow each time (a new identifier): nothing stays.
#[case::icmp_egress_leaves_nothing(
    vec![Send("web", "198.18.1.10", Protocol::Icmp)],
    ("client", "203.0.113.10", Protocol::Gre),
    "pod web src 198.18.1.10"
)]
#[case::nothing_before(vec![], ("client", "203.0.113.10", Protocol::Gre), "pod web src 198.18.1.10")]
// Two floating IPs of one pod: both DNAT to web, one reply tuple.
#[case::second_floating_ip(
    vec![Send("client", "203.0.113.10", Protocol::Gre)],
    ("client", "203.0.113.11", Protocol::Gre),
    "dropped at node-a (ConntrackClash)"
)]
#[case::other_protocol_passes(
    vec![Send("client", "203.0.113.10", Protocol::Gre)],
    ("client", "203.0.113.11", Protocol::Icmp),
    "pod web src 198.18.1.10"
)]
// The same flow again follows its own entry.
#[case::same_flow_again(
    vec![Send("client", "203.0.113.10", Protocol::Gre)],
    ("client", "203.0.113.10", Protocol::Gre),
    "pod web src 198.18.1.10"
)]
// web's GRE to client is then the entry's reply: it leaves from the
// floating IP.
#[case::reply_direction(
    vec![Send("client", "203.0.113.10", Protocol::Gre)],
    ("web", "198.18.1.10", Protocol::Gre),
    "host client seen 203.0.113.10"
)]
#[case::to_own_address_is_the_reply(
    vec![Send("web", "198.18.1.10", Protocol::Gre)],
    ("client", "198.19.0.0", Protocol::Gre),
    "pod web src 198.18.1.10"
)]
// Unreplied (client does not answer GRE): 30 s.
#[case::unreplied_lives_30s(
    vec![Send("web", "198.18.1.10", Protocol::Gre), Wait(29)],
    ("client", "203.0.113.10", Protocol::Gre),
    "dropped at node-a (ConntrackClash)"
)]
#[case::unreplied_gone_after_30s(
    vec![Send("web", "198.18.1.10", Protocol::Gre), Wait(30)],
    ("client", "203.0.113.10", Protocol::Gre),
    "pod web src 198.18.1.10"
)]
// Replied (web answers): 180 s.
#[case::replied_lives_180s(
    vec![Send("client", "203.0.113.10", Protocol::Gre), Wait(179)],
    ("client", "203.0.113.11", Protocol::Gre),
    "dropped at node-a (ConntrackClash)"
)]
#[case::replied_gone_after_180s(
    vec![Send("client", "203.0.113.10", Protocol::Gre), Wait(180)],
    ("client", "203.0.113.11", Protocol::Gre),
    "pod web src 198.18.1.10"
)]
// A packet refreshes its entry.
#[case::refreshed(
    vec![
        Send("web", "198.18.1.10", Protocol::Gre),
        Wait(20),
        Send("web", "198.18.1.10", Protocol::Gre),
        Wait(20),
    ],
    ("client", "203.0.113.10", Protocol::Gre),
    "dropped at node-a (ConntrackClash)"
)]
// Calico deletes a floating IP's entries by its route (orig or reply source
// the floating IP): not `web -> client`.
#[case::floating_ip_removed_keeps_it(
    vec![
        Send("web", "198.18.1.10", Protocol::Gre),
        Step(annotate("web", Some(r#"["203.0.113.11"]"#))),
    ],
    ("client", "203.0.113.11", Protocol::Gre),
    "dropped at node-a (ConntrackClash)"
)]
// A pod that goes takes its address's entries with it.
#[case::pod_gone_takes_it(
    vec![
        Send("web", "198.18.1.10", Protocol::Gre),
        Step(ClusterStep::DeletePod { name: "web".into() }),
        Step(create("web2", "node-a", Some(TWO))),
    ],
    ("client", "203.0.113.10", Protocol::Gre),
    "pod web2 src 198.18.1.10"
)]
// A packet dropped before its entry is confirmed (node-a's blackhole for
// its block: no pod at 198.19.0.2 yet) leaves none, so the pod that gets
// that address later is reached.
#[case::blackholed_leaves_nothing(
    vec![
        Send("client", "198.19.0.2", Protocol::Gre),
        Step(create("mate", "node-a", None)),
        Step(create("late", "node-a", Some(r#"["203.0.113.20"]"#))),
    ],
    ("client", "203.0.113.20", Protocol::Gre),
    "pod late src 198.18.1.10"
)]
fn keyless_gre(
    #[case] before: Vec<Then>,
    #[case] packet: (&str, &str, Protocol),
    #[case] expected: &str,
) {
    let mut cluster = Cluster::new(config(true, true, false));
    cluster.apply(&create("web", "node-a", Some(TWO))).unwrap();
    for then in before {
        match then {
            Send(from, to, protocol) => {
                cluster.sent(&Packet::new(from, ip(to), protocol)).unwrap();
            }
            Wait(seconds) => cluster.elapse(Duration::from_secs(seconds)),
            Step(step) => {
                cluster.apply(&step).unwrap();
            }
        }
    }
    let (from, to, protocol) = packet;
    let prediction = cluster
        .predict(&Packet::new(from, ip(to), protocol))
        .unwrap();
    assert_eq!(landing(&prediction), [expected]);
}
