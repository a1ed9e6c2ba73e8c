//! What a probe run sends and gets back: its pacing ([`Pace`]), and the
//! [`Tally`] of sends, replies and ICMP errors matched to the probe they
//! answer by the token's sequence number, that both the paced drive
//! (`super::drive`) and the free-running one (`super::inline`) keep.

use std::time::{Duration, Instant};

use super::observation::Event;
use super::observation::{now_unix_ns, IcmpErrorObservation, ReplyObservation};
use super::probe::Transport;

/// Pacing of a probe run.
#[derive(Clone, Debug)]
pub(crate) struct Pace {
    /// None: until `stop` says so.
    pub count: Option<u32>,
    /// Zero: as fast as the window allows.
    pub interval: Duration,
    /// Most probes without a reply at once.
    pub window: usize,
    /// How long to wait for replies after the last send, and how long a full
    /// window may go without any reply before its probes count as lost.
    pub timeout: Duration,
}

#[derive(Default)]
pub(crate) struct DriveResult {
    pub sent: u32,
    pub replies: Vec<ReplyObservation>,
    pub icmp_errors: Vec<IcmpErrorObservation>,
    pub duplicates: u32,
    pub send_errors: u32,
    /// When each sequence number was sent, in nanoseconds since the Unix epoch:
    /// lost probes have no other time, and a migration plot places them here.
    pub sent_at_unix_ns: Vec<u64>,
}

/// Probes a run reserves room for at its start.
const RESERVE_LIMIT: usize = 1 << 20;

/// What a run has sent and what has answered it so far.
pub(super) struct Tally {
    pub result: DriveResult,
    sent_at: Vec<Instant>,
    answered: Vec<bool>,
    pub outstanding: usize,
    /// The last reply or error, or the start: a full window that long without
    /// one is lost.
    pub last_progress: Instant,
    /// Probes below this sequence number are no longer waited for
    /// ([`Tally::stop_waiting_before`]); a late reply to one still counts.
    waited_from: usize,
    // Monotonic send times are turned into wall-clock ones once, after the
    // run, so the send path stays one push of an Instant.
    base_instant: Instant,
    base_unix_ns: u64,
}

impl Tally {
    /// For a run of `count` probes, if known: room for all of them up front
    /// (up to a bound), so the records never move while the run goes.
    pub fn new(count: Option<u32>) -> Self {
        let room = count.map_or(0, |c| (c as usize).min(RESERVE_LIMIT));
        Self {
            result: DriveResult {
                replies: Vec::with_capacity(room),
                ..DriveResult::default()
            },
            sent_at: Vec::with_capacity(room),
            answered: Vec::with_capacity(room),
            outstanding: 0,
            last_progress: Instant::now(),
            waited_from: 0,
            base_instant: Instant::now(),
            base_unix_ns: now_unix_ns(),
        }
    }

    /// The sequence number of the next send, or None once `pace` has sent all.
    pub fn next_seq(&self, pace: &Pace) -> Option<u32> {
        pace.count
            .is_none_or(|c| self.result.sent < c)
            .then_some(self.result.sent)
    }

    /// Count a datagram handed to the kernel at `at` (taken before the send
    /// call). A failed send (no route, buffer refused) still uses its
    /// sequence number and counts as sent and lost, so a broken path cannot
    /// spin the sender.
    pub fn record_send_at(&mut self, ok: bool, at: Instant) {
        self.sent_at.push(at);
        self.answered.push(!ok);
        self.result.sent += 1;
        if ok {
            self.outstanding += 1;
        } else {
            self.result.send_errors += 1;
        }
    }

    /// A full window with no reply for the timeout: those are lost.
    pub fn give_up_window(&mut self) {
        self.outstanding = 0;
        self.last_progress = Instant::now();
    }

    /// Stop waiting for probes sent before `cutoff` (the drain after the last
    /// send waits a timeout for the rest): a reply a whole timeout late is
    /// never coming, as the runner's silence window takes it. Without this a
    /// stream that lost a packet at a move waited its whole drain at the stop
    /// for a reply to it.
    pub fn stop_waiting_before(&mut self, cutoff: Instant) {
        let from = self.sent_at.partition_point(|at| *at < cutoff);
        if from <= self.waited_from {
            return;
        }
        self.waited_from = from;
        // Never more than before: a window given up stays given up.
        let recent = self.answered[from..].iter().filter(|a| !**a).count();
        self.outstanding = self.outstanding.min(recent);
    }

    /// One probe answered: it is no longer outstanding, unless it was
    /// already not waited for.
    fn answer(&mut self, seq: usize) {
        self.answered[seq] = true;
        if seq >= self.waited_from {
            self.outstanding = self.outstanding.saturating_sub(1);
        }
        self.last_progress = Instant::now();
    }

    /// Match what came back to the probes it answers.
    pub fn apply(&mut self, transport: &Transport, events: &mut Vec<Event>) {
        for event in events.drain(..) {
            match event {
                Event::Reply { token, src } => {
                    let seq = token.seq as usize;
                    let Some(&at) = self.sent_at.get(seq) else {
                        continue;
                    };
                    if self.answered[seq] {
                        self.result.duplicates += 1;
                        continue;
                    }
                    self.answer(seq);
                    self.result.replies.push(ReplyObservation {
                        receiver: transport.ctx.sender.clone(),
                        protocol: transport.ctx.protocol,
                        src,
                        token,
                        rtt_ns: at.elapsed().as_nanos() as u64,
                        at_unix_ns: now_unix_ns(),
                    });
                }
                Event::IcmpError(error) => {
                    // An error answers its probe: do not wait for a reply too.
                    if let Some(seq) = error.token.map(|t| t.seq as usize) {
                        if self.answered.get(seq) == Some(&false) {
                            self.answer(seq);
                        }
                    }
                    self.result.icmp_errors.push(error);
                }
            }
        }
    }

    pub fn finish(mut self) -> DriveResult {
        self.result.sent_at_unix_ns = self
            .sent_at
            .iter()
            .map(|at| self.base_unix_ns + at.duration_since(self.base_instant).as_nanos() as u64)
            .collect();
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A probe lost long before the drain is not waited for; one sent
    /// within the timeout still is, and a late reply to the old one is kept
    /// without ending the wait for the recent one.
    #[test]
    fn the_drain_waits_only_for_probes_sent_within_the_timeout() {
        let mut tally = Tally::new(None);
        let start = Instant::now();
        tally.record_send_at(true, start);
        tally.record_send_at(true, start + Duration::from_millis(500));
        assert_eq!(tally.outstanding, 2);
        tally.stop_waiting_before(start + Duration::from_millis(200));
        assert_eq!(tally.outstanding, 1, "only the recent probe is waited for");
        tally.answer(0);
        assert_eq!(
            tally.outstanding, 1,
            "a late reply to the old probe ends no wait"
        );
        assert!(tally.answered[0]);
        tally.answer(1);
        assert_eq!(tally.outstanding, 0);
    }

    #[test]
    fn a_window_given_up_is_not_waited_for_again() {
        let mut tally = Tally::new(None);
        let start = Instant::now();
        tally.record_send_at(true, start + Duration::from_millis(300));
        tally.give_up_window();
        tally.stop_waiting_before(start);
        assert_eq!(tally.outstanding, 0);
    }
}
