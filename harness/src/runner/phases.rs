//! Where a process's cases spend their time, summed over every case it ran:
//! building and tearing down labs, resetting reused ones, carrying out pod steps (the control
//! plane and the dataplane), and traffic: sends that expect an answer,
//! sends that expect silence (they wait out a timeout), and streams with the
//! waits between changes. `bench explore` reads it to say what a case costs;
//! nothing else depends on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static LAB_NS: AtomicU64 = AtomicU64::new(0);
static RESET_NS: AtomicU64 = AtomicU64::new(0);
static PODS_NS: AtomicU64 = AtomicU64::new(0);
static SENDS_NS: AtomicU64 = AtomicU64::new(0);
static SILENT_NS: AtomicU64 = AtomicU64::new(0);
static STREAMS_NS: AtomicU64 = AtomicU64::new(0);

/// Time summed over cases, per phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseTimes {
    /// Lab bring-up (namespaces, wiring, BIRD, the dataplane's start) and teardown.
    pub lab: Duration,
    /// Labs reset between two cases of the same shape (see
    /// [`super::LabPool`]): pods removed, rulesets, conntrack, sockets,
    /// routes and neighbours cleaned.
    pub reset: Duration,
    /// Pod steps: pods wired or removed, the control plane and the dataplane applied.
    pub pods: Duration,
    /// Sends that expect an answer or a delivery.
    pub sends: Duration,
    /// Sends that expect silence (nothing delivered, or an ICMP error only).
    pub silent: Duration,
    /// Streams started and stopped, and waits.
    pub streams: Duration,
}

impl PhaseTimes {
    /// The times so far in this process.
    pub fn now() -> Self {
        let read = |counter: &AtomicU64| Duration::from_nanos(counter.load(Ordering::Relaxed));
        Self {
            lab: read(&LAB_NS),
            reset: read(&RESET_NS),
            pods: read(&PODS_NS),
            sends: read(&SENDS_NS),
            silent: read(&SILENT_NS),
            streams: read(&STREAMS_NS),
        }
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(self, earlier: PhaseTimes) -> Self {
        Self {
            lab: self.lab.saturating_sub(earlier.lab),
            reset: self.reset.saturating_sub(earlier.reset),
            pods: self.pods.saturating_sub(earlier.pods),
            sends: self.sends.saturating_sub(earlier.sends),
            silent: self.silent.saturating_sub(earlier.silent),
            streams: self.streams.saturating_sub(earlier.streams),
        }
    }

    /// Every kind of traffic.
    pub fn traffic(&self) -> Duration {
        self.sends + self.silent + self.streams
    }

    pub fn total(&self) -> Duration {
        self.lab + self.reset + self.pods + self.traffic()
    }

    /// One line of where the time went, for a run that took `wall`: the
    /// phases in seconds, and how many cases ran at once on average (the
    /// case time over the wall time), which tells a run held up by waits
    /// from one held up by too few cases at a time.
    pub fn breakdown(&self, wall: Duration) -> String {
        let secs = |d: Duration| d.as_secs_f64();
        let mut parts = vec![format!("labs {:.1} s", secs(self.lab))];
        if !self.reset.is_zero() {
            parts.push(format!("lab resets {:.1} s", secs(self.reset)));
        }
        parts.extend([
            format!("pod steps {:.1} s", secs(self.pods)),
            format!("answered sends {:.1} s", secs(self.sends)),
            format!("silence windows {:.1} s", secs(self.silent)),
            format!("streams and waits {:.1} s", secs(self.streams)),
        ]);
        format!(
            "time in cases {:.1} s over {:.1} s, {:.1} cases at once: {}",
            secs(self.total()),
            secs(wall),
            secs(self.total()) / secs(wall).max(f64::EPSILON),
            parts.join(", ")
        )
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Phase {
    Lab,
    Reset,
    Pods,
    Sends,
    Silent,
    Streams,
}

/// Add the time since `started` to `phase`.
pub(super) fn add(phase: Phase, started: Instant) {
    add_time(phase, started.elapsed());
}

/// Add `time` to `phase`.
pub(super) fn add_time(phase: Phase, time: Duration) {
    let counter = match phase {
        Phase::Lab => &LAB_NS,
        Phase::Reset => &RESET_NS,
        Phase::Pods => &PODS_NS,
        Phase::Sends => &SENDS_NS,
        Phase::Silent => &SILENT_NS,
        Phase::Streams => &STREAMS_NS,
    };
    counter.fetch_add(time.as_nanos() as u64, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn the_breakdown_names_each_phase_and_the_cases_at_once() {
        let spent = PhaseTimes {
            lab: secs(200),
            reset: Duration::ZERO,
            pods: secs(90),
            sends: secs(130),
            silent: secs(150),
            streams: secs(230),
        };
        insta::assert_snapshot!(spent.breakdown(secs(50)), @"time in cases 800.0 s over 50.0 s, 16.0 cases at once: labs 200.0 s, pod steps 90.0 s, answered sends 130.0 s, silence windows 150.0 s, streams and waits 230.0 s");
    }

    #[test]
    fn resets_show_only_when_labs_were_reused() {
        let spent = PhaseTimes {
            reset: secs(7),
            ..PhaseTimes::default()
        };
        assert!(spent.breakdown(secs(1)).contains("lab resets 7.0 s"));
        assert!(!PhaseTimes::default().breakdown(secs(1)).contains("resets"));
    }
}
