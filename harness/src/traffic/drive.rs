//! Pacing a probe run: sends on a ticker or as fast as the window allows, a
//! window of outstanding probes, and replies and ICMP errors matched to the
//! probe they answer by the token's sequence number.

use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::observation::{now_unix_ns, IcmpErrorObservation, ReplyObservation};
use super::probe::{Event, Transport};

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

/// A failed send (no route, buffer refused) still uses its sequence number and
/// counts as sent and lost, so a broken path cannot spin the sender.
fn record_send(
    result: &mut DriveResult,
    sent_at: &mut Vec<Instant>,
    answered: &mut Vec<bool>,
    outstanding: &mut usize,
    ok: bool,
) {
    sent_at.push(Instant::now());
    answered.push(!ok);
    result.sent += 1;
    if ok {
        *outstanding += 1;
    } else {
        result.send_errors += 1;
    }
}

pub(crate) async fn drive(
    transport: &mut Transport,
    pace: Pace,
    mut stop: Option<watch::Receiver<bool>>,
) -> DriveResult {
    let mut result = DriveResult::default();
    let mut sent_at: Vec<Instant> = Vec::new();
    // Monotonic send times are turned into wall-clock ones once, after the
    // run, so the send path stays one push of an Instant.
    let (base_instant, base_unix_ns) = (Instant::now(), now_unix_ns());
    let mut answered: Vec<bool> = Vec::new();
    let mut outstanding = 0usize;
    let mut stopping = false;
    let mut last_progress = tokio::time::Instant::now();
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut ticker = (!pace.interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(pace.interval);
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        t
    });
    let window = pace.window.max(1);
    let mut events = Vec::new();
    loop {
        let more = !stopping && pace.count.is_none_or(|c| result.sent < c);
        if !more && drain_deadline.is_none() {
            drain_deadline = Some(tokio::time::Instant::now() + pace.timeout);
        }
        if !more && outstanding == 0 {
            break;
        }
        let window_open = outstanding < window;
        // Free-running: fill the window before waiting for replies.
        if more && window_open && ticker.is_none() {
            let seq = result.sent;
            let ok = transport.send(seq).await.is_ok();
            record_send(
                &mut result,
                &mut sent_at,
                &mut answered,
                &mut outstanding,
                ok,
            );
            continue;
        }
        let stalled_at = last_progress + pace.timeout;
        tokio::select! {
            biased;
            // Stop first: on a busy machine the ticker runs behind and bursts
            // (it is always ready) and replies keep coming, so a stop polled
            // after them was never seen and the stream never ended.
            changed = async { stop.as_mut().unwrap().changed().await }, if stop.is_some() && !stopping => {
                if changed.is_err() || *stop.as_ref().unwrap().borrow() {
                    stopping = true;
                }
            }
            incoming = transport.recv() => {
                match incoming {
                    Ok(incoming) => transport.process(incoming, &mut events),
                    Err(_) => { stopping = true; outstanding = 0; }
                }
                for event in events.drain(..) {
                    match event {
                        Event::Reply { token, src } => {
                            let seq = token.seq as usize;
                            let Some(at) = sent_at.get(seq) else { continue };
                            if answered[seq] {
                                result.duplicates += 1;
                                continue;
                            }
                            answered[seq] = true;
                            outstanding = outstanding.saturating_sub(1);
                            last_progress = tokio::time::Instant::now();
                            result.replies.push(ReplyObservation {
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
                                if answered.get(seq) == Some(&false) {
                                    answered[seq] = true;
                                    outstanding = outstanding.saturating_sub(1);
                                    last_progress = tokio::time::Instant::now();
                                }
                            }
                            result.icmp_errors.push(error);
                        }
                    }
                }
            }
            _ = async { ticker.as_mut().unwrap().tick().await }, if more && window_open && ticker.is_some() => {
                let seq = result.sent;
                let ok = transport.send(seq).await.is_ok();
                record_send(&mut result, &mut sent_at, &mut answered, &mut outstanding, ok);
            }
            _ = tokio::time::sleep_until(stalled_at), if more && !window_open => {
                // A full window with no reply for the timeout: those are lost.
                outstanding = 0;
                last_progress = tokio::time::Instant::now();
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(tokio::time::Instant::now)), if drain_deadline.is_some() => {
                break;
            }
        }
    }
    result.sent_at_unix_ns = sent_at
        .iter()
        .map(|at| base_unix_ns + at.duration_since(base_instant).as_nanos() as u64)
        .collect();
    result
}
