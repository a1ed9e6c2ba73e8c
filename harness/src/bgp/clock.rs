//! Where BIRD's seconds start. BIRD 1.x counts time in whole seconds of the
//! monotonic clock (sysdep/unix/io.c `update_times_gettime`) and fires a
//! timer once that count reaches its expiry, so a one-second timer set at
//! x.9 s fires 0.1 s later and one set at x.1 s fires 0.9 s later. The BGP
//! connect delay is such a timer, at least one second (proto/bgp/bgp.c
//! `bgp_active`): a session comes up at BIRD's first whole second after it
//! starts, 0 to 1 s later, depending only on when in the second it started.
//!
//! A daemon the lab starts runs in a time namespace of its own whose
//! monotonic clock is offset by a fraction of a second, so that its first
//! whole second comes [`FIRST_TICK`] after it starts: the start a node would
//! have had a fraction of a second later or sooner. Every timer keeps its
//! length and BIRD says nothing different; only the phase of its ticks is
//! chosen. Where time namespaces are not available (an older kernel, no
//! privilege for them) the daemon runs on the host's clock, as before.

use std::time::Duration;

/// How long after its start a daemon's first whole second comes: room to
/// read its configuration, daemonise and start its protocols (the connect
/// timer is set then), a few milliseconds on an idle machine. A daemon
/// slower than this connects a second later, as it could before.
pub const FIRST_TICK: Duration = Duration::from_millis(250);

const NANOS: i64 = 1_000_000_000;

/// The monotonic offset, in nanoseconds below a second, that puts the next
/// whole second of a clock reading `now_nanos` (nanoseconds) `lead` later.
fn offset_nanos(now_nanos: i64, lead: Duration) -> i64 {
    let lead = lead.as_nanos() as i64 % NANOS;
    (2 * NANOS - now_nanos.rem_euclid(NANOS) - lead) % NANOS
}

/// The host's monotonic clock, in nanoseconds.
fn monotonic_nanos() -> i64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec * NANOS + now.tv_nsec
}

/// What the thread that spawns a BIRD runs first (see
/// [`crate::ns::netns::Netns::spawn_prepared`]): a time namespace of its own
/// for that thread's children, whose first whole monotonic second comes
/// [`FIRST_TICK`] after now. The child enters it at its exec
/// (`exec_task_namespaces`). The offsets are written through the thread's
/// own /proc/<tid> entry: its children's namespace is the thread's, not the
/// process's. A refusal does not fail the spawn: the daemon then keeps the
/// host's clock.
pub fn first_tick_soon() -> impl Fn() + Sync {
    move || {
        let offset = offset_nanos(monotonic_nanos(), FIRST_TICK);
        // SAFETY: unshare takes flags only; it changes the calling thread's
        // namespace for its children, not this process's other threads.
        if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
            return;
        }
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() };
        // Offsets can be set only until a process is in the namespace.
        let _ = std::fs::write(
            format!("/proc/{tid}/timens_offsets"),
            format!("monotonic 0 {offset}\n"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The offset clock's next whole second is `lead` after `now`.
    fn next_tick_after(now: i64, lead: Duration) -> i64 {
        let shifted = now + offset_nanos(now, lead);
        let next = (shifted / NANOS + 1) * NANOS;
        next - shifted
    }

    #[test]
    fn the_first_whole_second_comes_the_lead_after_now() {
        let lead = Duration::from_millis(250);
        for now in [
            0,
            1,
            123_456_789,
            749_999_999,
            750_000_000,
            999_999_999,
            5 * NANOS + 3,
        ] {
            assert_eq!(next_tick_after(now, lead), 250_000_000, "now {now}");
        }
    }

    #[test]
    fn an_offset_is_a_fraction_of_a_second() {
        for now in [0, 250_000_000, 999_999_999, 42 * NANOS + 17] {
            let offset = offset_nanos(now, FIRST_TICK);
            assert!((0..NANOS).contains(&offset), "{offset}");
        }
    }
}
