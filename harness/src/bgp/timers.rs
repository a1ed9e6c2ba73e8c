//! BIRD's timers. Calico's templates fix most of them; the lab may shorten the
//! ones that only decide how soon BIRD starts talking (see [`BirdTimers::lab`]),
//! never the ones that decide what it says.

/// Timer values written into every rendered configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BirdTimers {
    /// Kernel protocol `scan time`: a full re-read of the kernel table. Route
    /// changes reach BIRD at once over netlink notifications; the scan only
    /// catches what a notification missed.
    pub kernel_scan: u32,
    /// Device protocol `scan time`.
    pub device_scan: u32,
    /// BGP `connect delay time`: wait before the first outgoing connection.
    pub connect_delay: u32,
    /// BGP `connect retry time`.
    pub connect_retry: u32,
    /// BGP `error wait time` (minimum, maximum).
    pub error_wait: (u32, u32),
    /// BGP `hold time` / `keepalive time`; None keeps BIRD's defaults
    /// (240 / 80), which Calico's templates do not change.
    pub hold_keepalive: Option<(u32, u32)>,
}

impl BirdTimers {
    /// Exactly the values of calico/node's bird.cfg.template
    /// (node/filesystem/etc/calico/confd/templates/bird.cfg.template:
    /// `kernel_template`, `protocol device`, `bgp_template`).
    pub const fn calico() -> Self {
        Self {
            kernel_scan: 2,
            device_scan: 2,
            connect_delay: 2,
            connect_retry: 5,
            error_wait: (5, 30),
            hold_keepalive: None,
        }
    }

    /// Calico's values with a 1 s connect delay: sessions come up a second
    /// sooner after start. A connect delay only spaces out the first SYN; it
    /// changes nothing a session carries or when updates go out. Everything
    /// else is Calico's.
    pub const fn lab() -> Self {
        Self {
            connect_delay: 1,
            ..Self::calico()
        }
    }
}

impl BirdTimers {
    /// The session timers of a `bgp` template (node or fabric), each line
    /// indented for the template's body: connect delay and retry, error wait,
    /// and hold/keepalive when the lab sets them.
    pub(crate) fn write_session_timers(&self, out: &mut String) {
        use std::fmt::Write;
        let (wait_min, wait_max) = self.error_wait;
        let _ = write!(
            out,
            "  connect delay time {};\n  connect retry time {};\n  error wait time {wait_min},{wait_max};\n",
            self.connect_delay, self.connect_retry
        );
        if let Some((hold, keepalive)) = self.hold_keepalive {
            let _ = write!(
                out,
                "  hold time {hold};  # fip-harness: shorter than BIRD's default 240\n\
                 \x20 keepalive time {keepalive};\n"
            );
        }
    }
}

impl Default for BirdTimers {
    fn default() -> Self {
        Self::lab()
    }
}
