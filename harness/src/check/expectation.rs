//! What a step expects of the traffic it sends. The scenario loader produces
//! these (and reads their spelling in the scenario language, see
//! `scenario/values.rs`); this module's siblings judge observations against them.

use std::net::IpAddr;

use serde::Serialize;

/// What must be observed for a `send`. `None` fields are not checked.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrafficExpectation {
    pub delivered_to: Option<Delivery>,
    pub seen_destination: Option<SeenAddress>,
    pub seen_source: Option<SeenAddress>,
    pub reply_source: Option<IpAddr>,
    /// Allowed loss. When packets must reach pods and no loss is given: 0 packets.
    pub loss: Option<Loss>,
    /// For ICMP errors: the destination inside the quoted header.
    pub quoted_destination: Option<IpAddr>,
}

impl TrafficExpectation {
    /// Whether the step expects no answer at all (nothing delivered, or only an
    /// ICMP error), so a sender need not wait long for one.
    pub fn expects_silence(&self) -> bool {
        matches!(self.delivered_to, Some(Delivery::None)) || self.quoted_destination.is_some()
    }

    /// Whether the step passes with none of its `count` probes answered
    /// (silence, or a loss limit that allows them all), so that waiting
    /// longer for answers could only show what the silence window shows: a
    /// copy delivered elsewhere, an answer it allows anyway.
    pub fn answers_optional(&self, count: u32) -> bool {
        let all = u64::from(count);
        self.expects_silence() || self.loss.is_some_and(|loss| loss.allows(all, all))
    }

    /// Whether nothing at all is checked (a step like that always passes).
    pub fn is_empty(&self) -> bool {
        self.delivered_to.is_none()
            && self.seen_destination.is_none()
            && self.seen_source.is_none()
            && self.reply_source.is_none()
            && self.loss.is_none()
            && self.quoted_destination.is_none()
    }
}

/// What a stream must have done. `None` fields are not checked.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamExpectation {
    /// Pods that received some of the stream.
    pub delivered_to: Option<Delivery>,
    pub loss: Option<Loss>,
    /// From the first packet it receives after a move (annotate/delete/create) of
    /// the stream's floating IP began, packets land only here.
    pub after_move_at: Option<String>,
}

impl StreamExpectation {
    /// Whether nothing at all is checked (a step like that always passes).
    pub fn is_empty(&self) -> bool {
        self.delivered_to.is_none() && self.loss.is_none() && self.after_move_at.is_none()
    }
}

/// Which pods must receive traffic: none, or these (names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Delivery {
    None,
    Pods(Vec<String>),
    /// Exactly one of these pods gets the packets, and no other pod: ECMP
    /// hashing (or any per-flow choice) picks which.
    OneOf(Vec<String>),
}

/// How many packets may be lost: a count (`0`) or a percentage (`"5%"`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Loss {
    Packets(u64),
    Percent(f64),
}

impl Loss {
    /// Whether `lost` of `sent` packets is within this limit.
    pub fn allows(&self, sent: u64, lost: u64) -> bool {
        match *self {
            Loss::Packets(limit) => lost <= limit,
            Loss::Percent(percent) => {
                sent == 0 || (lost as f64) * 100.0 <= percent * sent as f64 + f64::EPSILON
            }
        }
    }

    /// How the limit reads in a report line.
    pub fn describe(&self) -> String {
        match self {
            Loss::Packets(n) => format!("<={n}"),
            Loss::Percent(p) => format!("<={p}%"),
        }
    }
}

/// An address as a pod or the sender saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SeenAddress {
    /// The receiving pod's own address (of the traffic's family).
    Pod,
    /// The sender's own address (of the traffic's family).
    From,
    Address(IpAddr),
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Loss::Packets(0), 10, 0, true)]
    #[case(Loss::Packets(0), 10, 1, false)]
    #[case(Loss::Percent(5.0), 100, 5, true)]
    #[case(Loss::Percent(5.0), 100, 6, false)]
    #[case(Loss::Percent(100.0), 7, 7, true)]
    fn loss_limits(#[case] limit: Loss, #[case] sent: u64, #[case] lost: u64, #[case] ok: bool) {
        assert_eq!(limit.allows(sent, lost), ok);
    }

    #[rstest]
    #[case(TrafficExpectation { delivered_to: Some(Delivery::None), ..Default::default() }, true)]
    #[case(TrafficExpectation { quoted_destination: Some("198.19.0.1".parse().unwrap()), ..Default::default() }, true)]
    #[case(TrafficExpectation { delivered_to: Some(Delivery::Pods(vec!["web".into()])), ..Default::default() }, false)]
    #[case(TrafficExpectation::default(), false)]
    fn silence_is_expected_only_when_nothing_answers(
        #[case] expect: TrafficExpectation,
        #[case] silent: bool,
    ) {
        assert_eq!(expect.expects_silence(), silent);
    }

    #[rstest]
    #[case(Some(Loss::Percent(100.0)), 3, true)]
    #[case(Some(Loss::Packets(3)), 3, true)]
    #[case(Some(Loss::Packets(2)), 3, false)]
    #[case(Some(Loss::Percent(50.0)), 3, false)]
    #[case(None, 3, false)]
    fn answers_are_optional_when_every_probe_may_be_lost(
        #[case] loss: Option<Loss>,
        #[case] count: u32,
        #[case] optional: bool,
    ) {
        let expect = TrafficExpectation {
            delivered_to: Some(Delivery::Pods(vec!["web".into()])),
            loss,
            ..Default::default()
        };
        assert_eq!(expect.answers_optional(count), optional);
    }
}
