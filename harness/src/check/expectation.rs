//! What a step expects of a batch of probes, what was observed, and the
//! mismatches between the two.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Where the probes must land.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Delivery {
    /// No pod may receive any probe.
    Nowhere,
    /// Every delivered probe lands on one of these pods, and each of them gets some.
    Pods(Vec<String>),
}

/// An address a pod or the sender must have seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AddressExpectation {
    /// The receiving pod's own address (of the probe's family).
    PodAddress,
    /// The sender's own address.
    SenderAddress,
    Exactly(IpAddr),
}

/// How many probes may go unanswered.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LossLimit {
    AtMost(u64),
    AtMostPercent(f64),
}

impl LossLimit {
    pub fn allows(&self, sent: u64, lost: u64) -> bool {
        match *self {
            LossLimit::AtMost(limit) => lost <= limit,
            LossLimit::AtMostPercent(percent) => {
                sent == 0 || (lost as f64) * 100.0 <= percent * sent as f64 + f64::EPSILON
            }
        }
    }
}

impl fmt::Display for LossLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossLimit::AtMost(n) => write!(f, "<={n}"),
            LossLimit::AtMostPercent(p) => write!(f, "<={p}%"),
        }
    }
}

/// The expectations of one (source, destination, protocol) check.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryExpectation {
    pub delivered_to: Option<Delivery>,
    pub seen_destination: Option<AddressExpectation>,
    pub seen_source: Option<AddressExpectation>,
    pub reply_source: Option<IpAddr>,
    pub loss: Option<LossLimit>,
    pub quoted_destination: Option<IpAddr>,
}

/// What the traffic engine saw for that check, reduced to what expectations need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryObserved {
    pub sent: u64,
    /// Probes answered (a reply reached the sender).
    pub answered: u64,
    /// Probes received per pod (attributed by token).
    pub delivered: BTreeMap<String, u64>,
    /// Destination addresses as the receiving pods saw them.
    pub seen_destinations: BTreeSet<IpAddr>,
    /// Source addresses as the receiving pods saw them.
    pub seen_sources: BTreeSet<IpAddr>,
    /// Source addresses of the replies as the sender saw them.
    pub reply_sources: BTreeSet<IpAddr>,
    /// Destinations inside the headers quoted by ICMP errors the sender got.
    pub quoted_destinations: BTreeSet<IpAddr>,
}

impl DeliveryObserved {
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.answered)
    }
}

/// Addresses needed to resolve `PodAddress` / `SenderAddress`.
#[derive(Clone, Debug, Default)]
pub struct AddressBook {
    /// Each pod's own addresses.
    pub pod_addresses: BTreeMap<String, Vec<IpAddr>>,
    /// The sender's own addresses.
    pub sender_addresses: Vec<IpAddr>,
}

/// One way the observation fell short of the expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub what: String,
    pub expected: String,
    pub actual: String,
}

impl DeliveryExpectation {
    /// Every mismatch between `self` and `observed`; empty means the check passed.
    pub fn mismatches(&self, observed: &DeliveryObserved, book: &AddressBook) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let mut push = |what: &str, expected: String, actual: String| {
            out.push(Mismatch {
                what: what.to_string(),
                expected,
                actual,
            })
        };
        if let Some(delivery) = &self.delivered_to {
            let actual_pods: BTreeSet<&str> = observed
                .delivered
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(pod, _)| pod.as_str())
                .collect();
            let ok = match delivery {
                Delivery::Nowhere => actual_pods.is_empty(),
                Delivery::Pods(pods) => {
                    let wanted: BTreeSet<&str> = pods.iter().map(String::as_str).collect();
                    actual_pods == wanted
                }
            };
            if !ok {
                push(
                    "delivered to",
                    describe_delivery(delivery),
                    describe_pods(&observed.delivered),
                );
            }
        }
        let delivered_pods: Vec<&String> = observed
            .delivered
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(pod, _)| pod)
            .collect();
        if let Some(expect) = &self.seen_destination {
            let allowed = resolve(expect, &delivered_pods, book);
            if observed.seen_destinations.is_empty()
                || !observed.seen_destinations.iter().all(|a| allowed.contains(a))
            {
                push(
                    "destination seen by pod",
                    describe_expectation(expect, &allowed),
                    describe_set(&observed.seen_destinations),
                );
            }
        }
        if let Some(expect) = &self.seen_source {
            let allowed = resolve(expect, &delivered_pods, book);
            if observed.seen_sources.is_empty()
                || !observed.seen_sources.iter().all(|a| allowed.contains(a))
            {
                push(
                    "source seen by pod",
                    describe_expectation(expect, &allowed),
                    describe_set(&observed.seen_sources),
                );
            }
        }
        if let Some(expect) = self.reply_source {
            if observed.reply_sources.len() != 1 || !observed.reply_sources.contains(&expect) {
                push(
                    "reply source",
                    expect.to_string(),
                    describe_set(&observed.reply_sources),
                );
            }
        }
        if let Some(expect) = self.quoted_destination {
            if observed.quoted_destinations.len() != 1
                || !observed.quoted_destinations.contains(&expect)
            {
                push(
                    "quoted destination",
                    expect.to_string(),
                    describe_set(&observed.quoted_destinations),
                );
            }
        }
        if let Some(limit) = self.loss {
            if !limit.allows(observed.sent, observed.lost()) {
                push(
                    "lost",
                    limit.to_string(),
                    format!("{} of {}", observed.lost(), observed.sent),
                );
            }
        }
        out
    }
}

fn resolve(expect: &AddressExpectation, pods: &[&String], book: &AddressBook) -> BTreeSet<IpAddr> {
    match expect {
        AddressExpectation::Exactly(addr) => BTreeSet::from([*addr]),
        AddressExpectation::SenderAddress => book.sender_addresses.iter().copied().collect(),
        AddressExpectation::PodAddress => pods
            .iter()
            .filter_map(|pod| book.pod_addresses.get(*pod))
            .flatten()
            .copied()
            .collect(),
    }
}

fn describe_delivery(delivery: &Delivery) -> String {
    match delivery {
        Delivery::Nowhere => "no pod".to_string(),
        Delivery::Pods(pods) => pods.join(", "),
    }
}

fn describe_pods(delivered: &BTreeMap<String, u64>) -> String {
    let pods: Vec<String> = delivered
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(pod, n)| format!("{pod} ({n})"))
        .collect();
    if pods.is_empty() {
        "no pod".to_string()
    } else {
        pods.join(", ")
    }
}

fn describe_expectation(expect: &AddressExpectation, allowed: &BTreeSet<IpAddr>) -> String {
    let label = match expect {
        AddressExpectation::PodAddress => "pod's own address",
        AddressExpectation::SenderAddress => "sender's address",
        AddressExpectation::Exactly(_) => return describe_set(allowed),
    };
    if allowed.is_empty() {
        label.to_string()
    } else {
        format!("{label} {}", describe_set(allowed))
    }
}

fn describe_set(set: &BTreeSet<IpAddr>) -> String {
    if set.is_empty() {
        "nothing".to_string()
    } else {
        set.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn observed_at_web() -> DeliveryObserved {
        DeliveryObserved {
            sent: 3,
            answered: 3,
            delivered: BTreeMap::from([("web".to_string(), 3)]),
            seen_destinations: BTreeSet::from([ip("198.19.0.1")]),
            seen_sources: BTreeSet::from([ip("198.18.1.10")]),
            reply_sources: BTreeSet::from([ip("203.0.113.10")]),
            quoted_destinations: BTreeSet::new(),
        }
    }

    fn book() -> AddressBook {
        AddressBook {
            pod_addresses: BTreeMap::from([
                ("web".to_string(), vec![ip("198.19.0.1")]),
                ("db".to_string(), vec![ip("198.19.0.65")]),
            ]),
            sender_addresses: vec![ip("198.18.1.10")],
        }
    }

    fn floating_ip_expectation() -> DeliveryExpectation {
        DeliveryExpectation {
            delivered_to: Some(Delivery::Pods(vec!["web".into()])),
            seen_destination: Some(AddressExpectation::PodAddress),
            seen_source: Some(AddressExpectation::SenderAddress),
            reply_source: Some(ip("203.0.113.10")),
            loss: Some(LossLimit::AtMost(0)),
            quoted_destination: None,
        }
    }

    #[test]
    fn floating_ip_delivery_passes() {
        let mismatches = floating_ip_expectation().mismatches(&observed_at_web(), &book());
        assert_eq!(mismatches, vec![]);
    }

    #[rstest]
    #[case::wrong_pod("delivered to", |o: &mut DeliveryObserved| { o.delivered = BTreeMap::from([("db".into(), 3)]); o.seen_destinations = BTreeSet::from([ip("198.19.0.65")]); })]
    #[case::not_natted("destination seen by pod", |o: &mut DeliveryObserved| { o.seen_destinations = BTreeSet::from([ip("203.0.113.10")]); })]
    #[case::snat_applied("source seen by pod", |o: &mut DeliveryObserved| { o.seen_sources = BTreeSet::from([ip("198.18.0.10")]); })]
    #[case::reply_from_pod("reply source", |o: &mut DeliveryObserved| { o.reply_sources = BTreeSet::from([ip("198.19.0.1")]); })]
    #[case::lost("lost", |o: &mut DeliveryObserved| { o.answered = 2; })]
    fn each_shortfall_is_named(#[case] what: &str, #[case] spoil: fn(&mut DeliveryObserved)) {
        let mut observed = observed_at_web();
        spoil(&mut observed);
        let mismatches = floating_ip_expectation().mismatches(&observed, &book());
        let names: Vec<&str> = mismatches.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(names, vec![what], "{mismatches:?}");
    }

    #[test]
    fn nowhere_fails_when_any_pod_received() {
        let expect = DeliveryExpectation {
            delivered_to: Some(Delivery::Nowhere),
            seen_destination: None,
            seen_source: None,
            reply_source: None,
            loss: None,
            quoted_destination: None,
        };
        let mismatches = expect.mismatches(&observed_at_web(), &book());
        insta::assert_yaml_snapshot!(mismatches, @r"
        - what: delivered to
          expected: no pod
          actual: web (3)
        ");
    }

    #[rstest]
    #[case(LossLimit::AtMost(0), 10, 0, true)]
    #[case(LossLimit::AtMost(0), 10, 1, false)]
    #[case(LossLimit::AtMostPercent(5.0), 100, 5, true)]
    #[case(LossLimit::AtMostPercent(5.0), 100, 6, false)]
    #[case(LossLimit::AtMostPercent(100.0), 7, 7, true)]
    fn loss_limits(#[case] limit: LossLimit, #[case] sent: u64, #[case] lost: u64, #[case] ok: bool) {
        assert_eq!(limit.allows(sent, lost), ok);
    }
}
