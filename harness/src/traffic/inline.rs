//! A free-running probe of raw packets (ICMP echo, GRE), driven the way
//! `ping -f -l <window>` drives its own: on one thread, sending while the
//! window has room and reading what came back straight after, with the
//! probe's sockets out of the runtime for the run.
//!
//! Why not on the runtime: the kernel carries a probe through every namespace
//! and back inside the sender's own `sendto` (each veth hop is handled in the
//! softirq that runs as the call leaves), so the reply is queued by the time
//! the call returns. A socket registered with the runtime's epoll has each of
//! those replies wake an idle worker on another core (net/core/sock.c,
//! `sock_def_readable`, then fs/eventpoll.c, `ep_poll_callback`), one
//! cross-core wake-up per round trip that ping does not pay. Off the runtime
//! the socket has no waiter but this thread, and only when it sleeps in
//! `poll` for a reply that is really late.

use std::io::IoSlice;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{sendmmsg, MsgFlags, MultiHeaders, SockaddrStorage};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::observation::Event;
use super::probe::{LentSockets, Transport};
use super::sock::{recv_datagram, send_datagram};
use super::tally::{DriveResult, Pace, Tally};

/// Datagrams sent in one system call at most.
const SEND_BATCH: usize = 64;
/// Datagrams read from one socket before the next round of sends.
const READ_BATCH: usize = 256;
/// How long to wait before trying again when the kernel's queue is full
/// (ENOBUFS), which `poll` cannot tell the end of.
const QUEUE_FULL_WAIT: Duration = Duration::from_micros(200);

/// Run `pace` on the calling thread, out of the runtime; None when the
/// transport is not ICMP or GRE or the runtime cannot lend its thread (a
/// current-thread runtime, where `block_in_place` is not allowed).
pub(super) async fn drive(transport: &mut Transport, pace: &Pace) -> Option<DriveResult> {
    if Handle::try_current().ok()?.runtime_flavor() != RuntimeFlavor::MultiThread {
        return None;
    }
    let lent = transport.lend_raw()?;
    let result = tokio::task::block_in_place(|| run(transport, &lent, pace));
    if let Err(e) = transport.restore(lent) {
        tracing::warn!("giving a probe's sockets back to the runtime: {e}");
    }
    Some(result)
}

/// What one pass of sending left behind.
enum Sent {
    /// As many as the window and the count allow.
    All,
    /// The socket's send buffer is full: wait until it is writable.
    BufferFull,
    /// The kernel's queue is full: wait a moment.
    QueueFull,
}

fn run(transport: &mut Transport, lent: &LentSockets, pace: &Pace) -> DriveResult {
    let mut tally = Tally::new(pace.count);
    let window = pace.window.max(1);
    let to = SocketAddr::new(transport.ctx.to, 0);
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut drain_deadline: Option<Instant> = None;
    loop {
        let sent = send_window(transport, lent, &mut tally, window, pace, to);
        let got = read_queued(transport, lent, &mut buf, &mut events) > 0;
        if got {
            tally.apply(transport, &mut events);
        }
        let more = tally.next_seq(pace).is_some();
        if !more && tally.outstanding == 0 {
            break;
        }
        let now = Instant::now();
        if !more {
            let deadline = *drain_deadline.get_or_insert(now + pace.timeout);
            if now >= deadline {
                break;
            }
        }
        if matches!(sent, Sent::QueueFull) {
            std::thread::sleep(QUEUE_FULL_WAIT);
            continue;
        }
        if got {
            continue;
        }
        // Nothing came back and nothing more can go (`send_window` stops only
        // at a full window, the end of the count or a full buffer): wait for
        // a datagram (or room to send), at most until the window counts as
        // lost or the drain ends.
        let until = match drain_deadline {
            Some(deadline) => deadline,
            None => tally.last_progress + pace.timeout,
        };
        if now >= until {
            tally.give_up_window();
            continue;
        }
        wait(lent, matches!(sent, Sent::BufferFull), until - now);
    }
    tally.finish()
}

/// Send while the window has room and the count allows, up to
/// [`SEND_BATCH`] datagrams a system call (`sendmmsg`): each datagram's whole
/// round trip still happens inside the call, but the call's own cost is paid
/// once a batch rather than once a probe, as ping pays it.
fn send_window(
    transport: &Transport,
    lent: &LentSockets,
    tally: &mut Tally,
    window: usize,
    pace: &Pace,
    to: SocketAddr,
) -> Sent {
    let address = SockaddrStorage::from(to);
    loop {
        let Some(first) = tally.next_seq(pace) else {
            return Sent::All;
        };
        let left = pace.count.map_or(u32::MAX, |c| c - first);
        let room = window.saturating_sub(tally.outstanding).min(SEND_BATCH) as u32;
        let packets: Vec<Vec<u8>> = (first..first + room.min(left))
            .map_while(|seq| transport.raw_packet(seq))
            .collect();
        if packets.is_empty() {
            return Sent::All;
        }
        let slices: Vec<[IoSlice; 1]> = packets.iter().map(|p| [IoSlice::new(p)]).collect();
        let addresses = vec![Some(address); packets.len()];
        let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(packets.len(), None);
        // Their send time, taken before the call: it returns only once each
        // of them has made its round trip, so a time taken after it would
        // come after their replies.
        let at = Instant::now();
        let sent = sendmmsg(
            lent.main.as_raw_fd(),
            &mut headers,
            &slices,
            &addresses,
            [],
            MsgFlags::empty(),
        )
        .map(|results| results.count());
        match sent {
            Ok(n) => {
                for _ in 0..n {
                    tally.record_send_at(true, at);
                }
                // A short count: the next datagram failed; sending it alone
                // tells why.
                if n < packets.len() {
                    if let Some(stop) = send_one(lent, &packets[n], to, tally) {
                        return stop;
                    }
                }
            }
            Err(_) => {
                if let Some(stop) = send_one(lent, &packets[0], to, tally) {
                    return stop;
                }
            }
        }
    }
}

/// Send one datagram and count it; Some when the socket cannot take more now.
fn send_one(lent: &LentSockets, packet: &[u8], to: SocketAddr, tally: &mut Tally) -> Option<Sent> {
    // Taken before the call, as the paced sends take theirs: the kernel
    // carries the packet across the lab inside it.
    let at = std::time::Instant::now();
    match send_datagram(&lent.main, packet, to) {
        Ok(_) => tally.record_send_at(true, at),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(Sent::BufferFull),
        Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Some(Sent::QueueFull),
        // No route, refused: counted as sent and lost.
        Err(_) => tally.record_send_at(false, at),
    }
    None
}

/// Everything queued on the probe's sockets now, without waiting, turned into
/// events where it is read; returns how many datagrams were read.
fn read_queued(
    transport: &mut Transport,
    lent: &LentSockets,
    buf: &mut [u8],
    events: &mut Vec<Event>,
) -> usize {
    let main_is_icmp = transport.main_is_icmp();
    let sockets = std::iter::once((&lent.main, main_is_icmp))
        .chain(lent.icmp.as_ref().map(|icmp| (icmp, true)));
    let mut read = 0;
    for (socket, is_icmp) in sockets {
        for _ in 0..READ_BATCH {
            let Ok((n, from)) = recv_datagram(socket, buf) else {
                break;
            };
            read += 1;
            if is_icmp {
                transport.process_icmp(&buf[..n], from.ip(), events);
            } else {
                transport.process_main(&buf[..n], from.ip(), events);
            }
        }
    }
    read
}

/// Sleep until a datagram arrives on either socket, the main one can send
/// again (`writable`), or `timeout` passes.
fn wait(lent: &LentSockets, writable: bool, timeout: Duration) {
    let mut main_events = PollFlags::POLLIN;
    if writable {
        main_events |= PollFlags::POLLOUT;
    }
    let mut fds = vec![PollFd::new(lent.main.as_fd(), main_events)];
    if let Some(icmp) = &lent.icmp {
        fds.push(PollFd::new(icmp.as_fd(), PollFlags::POLLIN));
    }
    // Whole milliseconds, rounded up: a shorter wait would spin.
    let ms = u16::try_from(timeout.as_millis() + 1).unwrap_or(u16::MAX);
    let _ = poll(&mut fds, PollTimeout::from(ms));
}
