//! Where a process's cases spend their time, summed over every case it ran:
//! building and tearing down labs, carrying out pod steps (the control
//! plane and the dataplane), and traffic (sends, streams, waits). `bench
//! explore` reads it to say what a case costs; nothing else depends on it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static LAB_NS: AtomicU64 = AtomicU64::new(0);
static PODS_NS: AtomicU64 = AtomicU64::new(0);
static TRAFFIC_NS: AtomicU64 = AtomicU64::new(0);

/// Time summed over cases, per phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseTimes {
    /// Lab bring-up (namespaces, wiring, BIRD, the dataplane's start) and teardown.
    pub lab: Duration,
    /// Pod steps: pods wired or removed, the control plane and the dataplane applied.
    pub pods: Duration,
    /// Sends, streams and waits.
    pub traffic: Duration,
}

impl PhaseTimes {
    /// The times so far in this process.
    pub fn now() -> Self {
        let read = |counter: &AtomicU64| Duration::from_nanos(counter.load(Ordering::Relaxed));
        Self {
            lab: read(&LAB_NS),
            pods: read(&PODS_NS),
            traffic: read(&TRAFFIC_NS),
        }
    }

    /// What was spent between `earlier` and `self`.
    pub fn since(self, earlier: PhaseTimes) -> Self {
        Self {
            lab: self.lab.saturating_sub(earlier.lab),
            pods: self.pods.saturating_sub(earlier.pods),
            traffic: self.traffic.saturating_sub(earlier.traffic),
        }
    }

    pub fn total(&self) -> Duration {
        self.lab + self.pods + self.traffic
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) enum Phase {
    Lab,
    Pods,
    Traffic,
}

/// Add the time since `started` to `phase`.
pub(super) fn add(phase: Phase, started: Instant) {
    let counter = match phase {
        Phase::Lab => &LAB_NS,
        Phase::Pods => &PODS_NS,
        Phase::Traffic => &TRAFFIC_NS,
    };
    counter.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
}
