//! What a batch of probes (or a stopped stream) delivered, and the mismatches
//! between that and a [`TrafficExpectation`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::expectation::{Delivery, SeenAddress, TrafficExpectation};

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
    /// Per receiving pod, the destination addresses it saw: a packet counts as
    /// delivered to a pod only when it arrived addressed to the pod itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub destinations_by_pod: BTreeMap<String, BTreeSet<IpAddr>>,
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

/// The addresses each pod (by name) had at some moment: a stream's packets
/// reached a pod addressed to its own address of that moment, which a pod
/// deleted and created again under the same name no longer has.
pub type PodsHad = BTreeMap<String, BTreeSet<IpAddr>>;

impl AddressBook {
    /// The book, each pod's addresses joined by those it had earlier.
    pub fn with_earlier(mut self, had: &PodsHad) -> Self {
        for (pod, addresses) in had {
            let own = self.pod_addresses.entry(pod.clone()).or_default();
            for address in addresses {
                if !own.contains(address) {
                    own.push(*address);
                }
            }
        }
        self
    }
}

/// One way the observation fell short of the expectation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    pub what: String,
    pub expected: String,
    pub actual: String,
}

/// Every mismatch between `expect` and `observed`; empty means the check passed.
pub fn mismatches(
    expect: &TrafficExpectation,
    observed: &DeliveryObserved,
    book: &AddressBook,
) -> Vec<Mismatch> {
    let mut out = Vec::new();
    let mut push = |what: &str, expected: String, actual: String| {
        out.push(Mismatch {
            what: what.to_string(),
            expected,
            actual,
        })
    };
    if let Some(delivery) = &expect.delivered_to {
        let actual_pods: BTreeSet<&str> = observed
            .delivered
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(pod, _)| pod.as_str())
            .collect();
        let ok = match delivery {
            Delivery::None => actual_pods.is_empty(),
            Delivery::Pods(pods) => {
                let wanted: BTreeSet<&str> = pods.iter().map(String::as_str).collect();
                actual_pods == wanted
            }
            Delivery::OneOf(pods) => {
                actual_pods.len() == 1 && actual_pods.iter().all(|p| pods.iter().any(|w| w == p))
            }
        };
        if !ok {
            push(
                "delivered to",
                describe_delivery(delivery),
                describe_pods(&observed.delivered),
            );
        } else if let Some(stray) = not_addressed_to_pod(observed, book) {
            // A pod that got a packet still addressed to something else was
            // reached by routing alone, not by the floating IP's DNAT.
            push(
                "delivered to",
                format!(
                    "{} (addressed to the pod itself)",
                    describe_delivery(delivery)
                ),
                stray,
            );
        }
    }
    let delivered_pods: Vec<&String> = observed
        .delivered
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(pod, _)| pod)
        .collect();
    // `pod` means the pods the step names when it names them, so that a packet
    // at the wrong pod cannot pass as "the pod's own address".
    let expected_pods: Vec<&String> = match &expect.delivered_to {
        Some(Delivery::Pods(pods)) => pods.iter().collect(),
        _ => delivered_pods.clone(),
    };
    if let Some(expect) = &expect.seen_destination {
        let allowed = resolve(expect, &expected_pods, book);
        if observed.seen_destinations.is_empty()
            || !observed
                .seen_destinations
                .iter()
                .all(|a| allowed.contains(a))
        {
            push(
                "destination seen by pod",
                describe_expectation(expect, &allowed),
                describe_set(&observed.seen_destinations),
            );
        }
    }
    if let Some(expect) = &expect.seen_source {
        let allowed = resolve(expect, &expected_pods, book);
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
    if let Some(expect) = expect.reply_source {
        if observed.reply_sources.len() != 1 || !observed.reply_sources.contains(&expect) {
            push(
                "reply source",
                expect.to_string(),
                describe_set(&observed.reply_sources),
            );
        }
    }
    if let Some(expect) = expect.quoted_destination {
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
    if let Some(limit) = expect.loss {
        if !limit.allows(observed.sent, observed.lost()) {
            push(
                "lost",
                limit.describe(),
                format!("{} of {}", observed.lost(), observed.sent),
            );
        }
    }
    out
}

/// The pods that received packets addressed to something other than their
/// own addresses, and those addresses, for a mismatch line.
fn not_addressed_to_pod(observed: &DeliveryObserved, book: &AddressBook) -> Option<String> {
    let stray: Vec<String> = observed
        .destinations_by_pod
        .iter()
        .filter_map(|(pod, destinations)| {
            let own = book.pod_addresses.get(pod)?;
            let foreign: BTreeSet<IpAddr> = destinations
                .iter()
                .copied()
                .filter(|d| !own.contains(d))
                .collect();
            (!foreign.is_empty()).then(|| format!("{pod} addressed to {}", describe_set(&foreign)))
        })
        .collect();
    (!stray.is_empty()).then(|| stray.join("; "))
}

fn resolve(expect: &SeenAddress, pods: &[&String], book: &AddressBook) -> BTreeSet<IpAddr> {
    match expect {
        SeenAddress::Address(addr) => BTreeSet::from([*addr]),
        SeenAddress::From => book.sender_addresses.iter().copied().collect(),
        SeenAddress::Pod => pods
            .iter()
            .filter_map(|pod| book.pod_addresses.get(*pod))
            .flatten()
            .copied()
            .collect(),
    }
}

fn describe_delivery(delivery: &Delivery) -> String {
    match delivery {
        Delivery::None => "no pod".to_string(),
        Delivery::Pods(pods) => pods.join(", "),
        Delivery::OneOf(pods) => format!("one of {}", pods.join(", ")),
    }
}

/// The pods that received something, with counts; `no pod` when none did.
pub(super) fn describe_pods(delivered: &BTreeMap<String, u64>) -> String {
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

fn describe_expectation(expect: &SeenAddress, allowed: &BTreeSet<IpAddr>) -> String {
    let label = match expect {
        SeenAddress::Pod => "pod's own address",
        SeenAddress::From => "sender's address",
        SeenAddress::Address(_) => return describe_set(allowed),
    };
    if allowed.is_empty() {
        label.to_string()
    } else {
        format!("{label} {}", describe_set(allowed))
    }
}

fn describe_set(set: &BTreeSet<IpAddr>) -> String {
    join_addresses(set, ", ", "nothing")
}

/// The addresses joined by `separator`; `none` when there are none.
pub(super) fn join_addresses(set: &BTreeSet<IpAddr>, separator: &str, none: &str) -> String {
    if set.is_empty() {
        none.to_string()
    } else {
        set.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(separator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Loss;
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
            destinations_by_pod: BTreeMap::from([(
                "web".to_string(),
                BTreeSet::from([ip("198.19.0.1")]),
            )]),
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

    fn floating_ip_expectation() -> TrafficExpectation {
        TrafficExpectation {
            delivered_to: Some(Delivery::Pods(vec!["web".into()])),
            seen_destination: Some(SeenAddress::Pod),
            seen_source: Some(SeenAddress::From),
            reply_source: Some(ip("203.0.113.10")),
            loss: Some(Loss::Packets(0)),
            quoted_destination: None,
        }
    }

    #[test]
    fn floating_ip_delivery_passes() {
        let mismatches = mismatches(&floating_ip_expectation(), &observed_at_web(), &book());
        assert_eq!(mismatches, vec![]);
    }

    #[rstest]
    #[case::wrong_pod("delivered to", |o: &mut DeliveryObserved| { o.delivered = BTreeMap::from([("db".into(), 3)]); })]
    #[case::not_natted("destination seen by pod", |o: &mut DeliveryObserved| { o.seen_destinations = BTreeSet::from([ip("203.0.113.10")]); })]
    #[case::snat_applied("source seen by pod", |o: &mut DeliveryObserved| { o.seen_sources = BTreeSet::from([ip("198.18.0.10")]); })]
    #[case::reply_from_pod("reply source", |o: &mut DeliveryObserved| { o.reply_sources = BTreeSet::from([ip("198.19.0.1")]); })]
    #[case::lost("lost", |o: &mut DeliveryObserved| { o.answered = 2; })]
    fn each_shortfall_is_named(#[case] what: &str, #[case] spoil: fn(&mut DeliveryObserved)) {
        let mut observed = observed_at_web();
        spoil(&mut observed);
        let mismatches = mismatches(&floating_ip_expectation(), &observed, &book());
        let names: Vec<&str> = mismatches.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(names, vec![what], "{mismatches:?}");
    }

    /// The node routed the floating IP to the pod without translating it: the
    /// pod got the packet, but not as the pod.
    #[test]
    fn delivery_without_dnat_is_not_delivery() {
        let mut observed = observed_at_web();
        observed.seen_destinations = BTreeSet::from([ip("203.0.113.10")]);
        observed.destinations_by_pod =
            BTreeMap::from([("web".to_string(), observed.seen_destinations.clone())]);
        let expect = TrafficExpectation {
            delivered_to: Some(Delivery::Pods(vec!["web".into()])),
            ..Default::default()
        };
        insta::assert_yaml_snapshot!(mismatches(&expect, &observed, &book()), @r"
        - what: delivered to
          expected: web (addressed to the pod itself)
          actual: web addressed to 203.0.113.10
        ");
    }

    /// `seenDestination: pod` is the named pod's address, not whichever pod
    /// happened to receive.
    #[test]
    fn seen_destination_is_judged_against_the_named_pod() {
        let mut observed = observed_at_web();
        observed.delivered = BTreeMap::from([("db".to_string(), 3)]);
        observed.seen_destinations = BTreeSet::from([ip("198.19.0.65")]);
        observed.destinations_by_pod.clear();
        let expect = TrafficExpectation {
            seen_destination: Some(SeenAddress::Pod),
            delivered_to: Some(Delivery::Pods(vec!["web".into()])),
            ..Default::default()
        };
        let found = mismatches(&expect, &observed, &book());
        let names: Vec<&str> = found.iter().map(|m| m.what.as_str()).collect();
        assert_eq!(names, ["delivered to", "destination seen by pod"]);
    }

    #[test]
    fn nowhere_fails_when_any_pod_received() {
        let expect = TrafficExpectation {
            delivered_to: Some(Delivery::None),
            seen_destination: None,
            seen_source: None,
            reply_source: None,
            loss: None,
            quoted_destination: None,
        };
        let mismatches = mismatches(&expect, &observed_at_web(), &book());
        insta::assert_yaml_snapshot!(mismatches, @r"
        - what: delivered to
          expected: no pod
          actual: web (3)
        ");
    }

    /// `oneOf`: a single pod of the list gets every packet; two of them, or
    /// none, is a mismatch.
    #[rstest]
    #[case::one(&[("web", 3)], true)]
    #[case::the_other(&[("db", 3)], true)]
    #[case::split(&[("web", 2), ("db", 1)], false)]
    #[case::nobody(&[], false)]
    #[case::outsider(&[("cache", 3)], false)]
    fn one_of_means_exactly_one(#[case] got: &[(&str, u64)], #[case] passes: bool) {
        let expect = TrafficExpectation {
            delivered_to: Some(Delivery::OneOf(vec!["web".into(), "db".into()])),
            ..Default::default()
        };
        let mut observed = observed_at_web();
        observed.delivered = got.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        let mismatches = mismatches(&expect, &observed, &book());
        assert_eq!(mismatches.is_empty(), passes, "{mismatches:?}");
    }
}
