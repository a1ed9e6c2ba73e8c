//! How large one nf_tables transaction may be. A transaction is one netlink
//! message, and the kernel refuses a message larger than the sending socket's
//! buffer less 32 bytes (net/netlink/af_netlink.c, `netlink_sendmsg`:
//! EMSGSIZE). Root lifts the buffer with SO_SNDBUFFORCE, as `nft` does
//! (nftables' mnl.c, `mnl_set_sndbuffer`). In a user namespace (rootless
//! mode) that is refused, and then:
//! - `nft` 1.0.6 (Debian 12) asks for nothing else (seen with strace: one
//!   refused SO_SNDBUFFORCE per batch), so its batches stop at the default
//!   buffer, net.core.wmem_default;
//! - the harness's own netlink writer asks for SO_SNDBUF, which the kernel
//!   caps at twice net.core.wmem_max.
//!
//! So a large apply (thousands of mappings on one node) can fail without
//! root; this module turns that into an error that says why and what to do.

/// Who sent the batch, and so which host setting bounds it without root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// `nft -f -`: the default send buffer, net.core.wmem_default.
    Nft,
    /// The harness's nf_tables netlink writer: SO_SNDBUF, up to twice
    /// net.core.wmem_max.
    Harness,
}

impl Sender {
    /// The host setting that bounds the batch without root.
    pub fn setting(self) -> &'static str {
        match self {
            Sender::Nft => "net.core.wmem_default",
            Sender::Harness => "net.core.wmem_max",
        }
    }

    /// Why the batch is bounded.
    pub fn why(self) -> &'static str {
        match self {
            Sender::Nft => "without root (in a user namespace) `nft` keeps the default socket buffer, the host's net.core.wmem_default",
            Sender::Harness => "without root (in a user namespace) a socket's send buffer stops at twice the host's net.core.wmem_max",
        }
    }
}

/// What `netlink_sendmsg` keeps of the send buffer for itself.
const NETLINK_RESERVE: usize = 32;

/// The value a user is told to set: 16 MiB takes `bench dataplane`'s
/// 10,000-mapping apply in either nftables layout (Felix's `nft` batch for it
/// is 6.9 MB, measured here with strace).
pub(crate) const SUGGESTED_BUFFER: usize = 16 << 20;

/// The largest message a socket can send whose buffer reads back (SO_SNDBUF,
/// which the kernel doubles when set) as `send_buffer`.
pub(crate) fn largest_message(send_buffer: usize) -> usize {
    send_buffer.saturating_sub(NETLINK_RESERVE)
}

/// The largest message `nft` can send without root on this host: its
/// default buffer (net.core.wmem_default, which is not doubled), less the
/// reserve. None if the setting cannot be read.
pub(crate) fn largest_nft_message_without_root() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/net/core/wmem_default").ok()?;
    let wmem_default: usize = text.trim().parse().ok()?;
    Some(largest_message(wmem_default))
}

/// Whether `nft`'s error output says the kernel refused its batch as too
/// long (EMSGSIZE; `nft` prints the C library's text for it).
pub(crate) fn nft_refused_as_too_long(stderr: &str) -> bool {
    stderr.contains("Message too long")
}

/// The part of the error that gives the limit, when it is known.
pub(crate) fn limit_note(limit: &Option<usize>) -> String {
    limit.map_or_else(String::new, |bytes| {
        format!(" (at most {bytes} bytes here)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::DataplaneError;
    use rstest::rstest;

    #[rstest]
    #[case::default_wmem_max(425_984, 425_952)]
    #[case::tiny(16, 0)]
    fn the_kernel_keeps_32_bytes_of_the_buffer(#[case] buffer: usize, #[case] largest: usize) {
        assert_eq!(largest_message(buffer), largest);
    }

    #[rstest]
    #[case::nft_1_0("netlink: Error: Could not process rule: Message too long\n", true)]
    #[case::other_error("Error: No such file or directory; did you mean table 'x'?", false)]
    fn nft_too_long_is_recognised(#[case] stderr: &str, #[case] too_long: bool) {
        assert_eq!(nft_refused_as_too_long(stderr), too_long);
    }

    #[test]
    fn the_error_says_why_and_what_to_do() {
        let netlink = DataplaneError::BatchTooLarge {
            netns: "fiph-x-node-0".into(),
            what: "the nf_tables batch (1048576 bytes)".into(),
            limit: Some(425_952),
            sender: Sender::Harness,
        };
        let nft = DataplaneError::BatchTooLarge {
            netns: "fiph-x-node-0".into(),
            what: "`nft -f -`'s batch".into(),
            limit: Some(212_960),
            sender: Sender::Nft,
        };
        let unknown = DataplaneError::BatchTooLarge {
            netns: "fiph-x-node-0".into(),
            what: "`nft -f -`'s batch".into(),
            limit: None,
            sender: Sender::Nft,
        };
        insta::assert_snapshot!(format!("{netlink}\n{nft}\n{unknown}"));
    }
}
