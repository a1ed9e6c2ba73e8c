//! When a mutant's applies land: late (in order), out of order, or not at
//! all when they come too soon after the last. Each models an agent that
//! answers before its work is done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::dataplane::{Dataplane, NodeNatState};
use crate::lab::netns::Netns;

/// A delayed apply waiting in the worker's queue.
type Pending = (Netns, NodeNatState, Instant);

/// Applies that land later than `apply` returns.
pub(super) struct Delayed {
    inner: Arc<dyn Dataplane>,
    /// The in-order worker's queue (for `Late`).
    queue: Mutex<Sender<Pending>>,
    /// Applies not landed yet.
    waiting: Arc<AtomicUsize>,
    /// Per node: how many applies it had (for the alternating delay).
    counts: Mutex<HashMap<String, u64>>,
    /// Per node: when the last apply that was let through came.
    last: Mutex<HashMap<String, Instant>>,
}

impl Delayed {
    pub(super) fn new(inner: Arc<dyn Dataplane>) -> Self {
        let (sender, receiver) = channel::<Pending>();
        let waiting = Arc::new(AtomicUsize::new(0));
        let (backend, count) = (Arc::clone(&inner), waiting.clone());
        // One worker keeps the in-order applies in order; it ends with the sender.
        std::thread::spawn(move || {
            for (node, state, due) in receiver {
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                if let Err(error) = backend.apply(&node, &state) {
                    tracing::warn!(%error, "late mutant apply failed");
                }
                count.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Self {
            inner,
            queue: Mutex::new(sender),
            waiting,
            counts: Mutex::default(),
            last: Mutex::default(),
        }
    }

    /// Apply `state` `delay` from now, after every apply queued before it.
    pub(super) fn in_order(&self, node: &Netns, state: NodeNatState, delay: Duration) {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let queued = self.queue.lock().expect("queue lock").send((
            node.clone(),
            state,
            Instant::now() + delay,
        ));
        if queued.is_err() {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Apply `state` at once or `delay` from now, every other apply of the
    /// node delayed, each on its own: a delayed apply lands after the one
    /// that follows it.
    pub(super) fn alternating(&self, node: &Netns, state: NodeNatState, delay: Duration) {
        let n = {
            let mut counts = self.counts.lock().expect("counts lock");
            let n = counts.entry(node.name().to_string()).or_default();
            *n += 1;
            *n
        };
        if n % 2 == 0 {
            if let Err(error) = self.inner.apply(node, &state) {
                tracing::warn!(%error, "reordered mutant apply failed");
            }
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let (inner, waiting, node) = (Arc::clone(&self.inner), self.waiting.clone(), node.clone());
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            if let Err(error) = inner.apply(&node, &state) {
                tracing::warn!(%error, "reordered mutant apply failed");
            }
            waiting.fetch_sub(1, Ordering::SeqCst);
        });
    }

    /// Whether an apply to `node` now comes at least `quiet` after the last
    /// one let through (and if so, it is the last one now).
    pub(super) fn debounced(&self, node: &Netns, quiet: Duration) -> bool {
        let mut last = self.last.lock().expect("last lock");
        let now = Instant::now();
        match last.get(node.name()) {
            Some(at) if now.duration_since(*at) < quiet => false,
            _ => {
                last.insert(node.name().to_string(), now);
                true
            }
        }
    }

    /// Wait (at most 2 s) until every delayed apply has landed, so that
    /// nothing comes back after the node's NAT is removed.
    pub(super) fn drain(&self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.waiting.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
