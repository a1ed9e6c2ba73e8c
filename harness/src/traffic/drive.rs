//! Pacing a probe run: sends on a ticker or as fast as the window allows, a
//! window of outstanding probes, and replies and ICMP errors matched to the
//! probe they answer by the token's sequence number. A free-running probe of
//! raw packets runs on [`super::inline`] instead, with the same [`Tally`].

use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use super::probe::Transport;

use super::tally::Tally;
pub(crate) use super::tally::{DriveResult, Pace};

pub(crate) async fn drive(
    transport: &mut Transport,
    pace: Pace,
    stop: Option<watch::Receiver<bool>>,
) -> DriveResult {
    if stop.is_none() && pace.interval.is_zero() && pace.count.is_some() {
        if let Some(result) = super::inline::drive(transport, &pace).await {
            return result;
        }
    }
    drive_async(transport, pace, stop, None).await
}

/// A background stream's run: as [`drive`], telling `sent` how many probes
/// it has handed to the kernel so far (a send that failed counts too: it
/// took its tick), after each one.
pub(crate) async fn drive_stream(
    transport: &mut Transport,
    pace: Pace,
    stop: watch::Receiver<bool>,
    sent: watch::Sender<u32>,
) -> DriveResult {
    drive_async(transport, pace, Some(stop), Some(&sent)).await
}

async fn drive_async(
    transport: &mut Transport,
    pace: Pace,
    mut stop: Option<watch::Receiver<bool>>,
    sent: Option<&watch::Sender<u32>>,
) -> DriveResult {
    let mut tally = Tally::new(pace.count);
    let mut stopping = false;
    let mut drain_deadline: Option<tokio::time::Instant> = None;
    let mut ticker = (!pace.interval.is_zero()).then(|| {
        let mut t = tokio::time::interval(pace.interval);
        t.set_missed_tick_behavior(MissedTickBehavior::Burst);
        t
    });
    let window = pace.window.max(1);
    let mut events = Vec::new();
    loop {
        let next = tally.next_seq(&pace).filter(|_| !stopping);
        let more = next.is_some();
        if !more && drain_deadline.is_none() {
            drain_deadline = Some(tokio::time::Instant::now() + pace.timeout);
            if let Some(cutoff) = std::time::Instant::now().checked_sub(pace.timeout) {
                tally.stop_waiting_before(cutoff);
            }
        }
        if !more && tally.outstanding == 0 {
            break;
        }
        let window_open = tally.outstanding < window;
        // Free-running: fill the window before waiting for replies.
        if let (Some(seq), true, None) = (next, window_open, &ticker) {
            // The send time is taken before the call: the kernel carries
            // the packet across the lab inside it (see `super::inline`).
            let at = std::time::Instant::now();
            let ok = transport.send(seq).await.is_ok();
            tally.record_send_at(ok, at);
            if let Some(sent) = sent {
                sent.send_replace(tally.result.sent);
            }
            continue;
        }
        let stalled_at = tokio::time::Instant::from_std(tally.last_progress) + pace.timeout;
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
                    Err(_) => { stopping = true; tally.outstanding = 0; }
                }
                tally.apply(transport, &mut events);
            }
            _ = async { ticker.as_mut().unwrap().tick().await }, if more && window_open && ticker.is_some() => {
                let at = std::time::Instant::now();
                let ok = transport.send(tally.result.sent).await.is_ok();
                tally.record_send_at(ok, at);
                if let Some(sent) = sent {
                    sent.send_replace(tally.result.sent);
                }
            }
            _ = tokio::time::sleep_until(stalled_at), if more && !window_open => {
                tally.give_up_window();
            }
            _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(tokio::time::Instant::now)), if drain_deadline.is_some() => {
                break;
            }
        }
    }
    tally.finish()
}
