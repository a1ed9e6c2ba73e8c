//! The figures of one measured move, from the stream probing its floating IP
//! (what the sender got back and what each captured pod received), reduced
//! and judged by the same [`check::stream_packets`] and [`MigrationFigures`]
//! a scenario's move is; and the summary of a phase's moves.

use std::time::Duration;

use crate::check::{self, MigrationFigures, Move};
use crate::control::UpdateOrder;
use crate::dataplane::BackendKind;
use crate::traffic::ProbeOutcome;

use super::figures::quantile;

/// A move as it happened: asked for at `requested_ns`, and the control
/// plane's update that carried it returned at `applied_ns` (Unix ns).
#[derive(Clone, Debug)]
pub(super) struct MoveRecord {
    pub from_pod: String,
    pub to_pod: String,
    pub requested_ns: u64,
    pub applied_ns: u64,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct MoveFigures {
    /// From the request to the first probe the new pod received; None if none did.
    pub convergence: Option<Duration>,
    /// From the request to the update that carried it returning.
    pub applied: Duration,
    /// Probes of the stream without a reply.
    pub lost: u64,
    /// Probes the old pod received after the update returned.
    pub late: u64,
    pub sent: u64,
}

/// The figures of `record`, from the stream that probed its floating IP
/// throughout. Times in the judgement are microseconds since `epoch_ns`.
pub(super) fn move_figures(
    outcome: &ProbeOutcome,
    record: &MoveRecord,
    epoch_ns: u64,
) -> MoveFigures {
    let since = |ns: u64| ns.saturating_sub(epoch_ns) / 1_000;
    let packets = check::stream_packets(outcome, epoch_ns);
    let judge = |at_ns: u64| {
        let moved = Move {
            from_pod: record.from_pod.clone(),
            to_pod: record.to_pod.clone(),
            gained_at_us: since(at_ns),
        };
        MigrationFigures::compute(&packets, &moved, 10)
    };
    // Convergence counts from the request (what a user waits for); late
    // packets from the moment the control plane said the move was done.
    let requested = judge(record.requested_ns);
    let applied = judge(record.applied_ns);
    MoveFigures {
        convergence: requested
            .convergence_ms
            .map(|ms| Duration::from_secs_f64(ms / 1e3)),
        applied: Duration::from_nanos(record.applied_ns.saturating_sub(record.requested_ns)),
        lost: requested.lost,
        late: applied.late_at_old_pod,
        sent: requested.sent,
    }
}

/// A phase's moves summed up.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct PhaseSummary {
    pub moves: usize,
    pub measured: usize,
    pub converged: usize,
    pub convergence_p50: Duration,
    pub convergence_p99: Duration,
    pub convergence_max: Duration,
    pub applied_p50: Duration,
    pub applied_p99: Duration,
    pub lost_per_move: f64,
    pub lost_max: u64,
    pub late_per_move: f64,
    pub late_max: u64,
    /// Control-plane updates the moves took (moves due together share one).
    pub updates: usize,
    /// CPU seconds of the harness (user + system) and of the programs it
    /// ran (nft, iptables-restore), over the phase's wall time.
    pub cpu_self: Duration,
    pub cpu_children: Duration,
    pub wall: Duration,
}

impl PhaseSummary {
    pub fn of(moves: usize, measured: &[MoveFigures]) -> Self {
        let converged: Vec<Duration> = measured.iter().filter_map(|m| m.convergence).collect();
        let applied: Vec<Duration> = measured.iter().map(|m| m.applied).collect();
        let per_move = |total: u64| total as f64 / measured.len().max(1) as f64;
        PhaseSummary {
            moves,
            measured: measured.len(),
            converged: converged.len(),
            convergence_p50: quantile(&converged, 0.5),
            convergence_p99: quantile(&converged, 0.99),
            convergence_max: converged.iter().copied().max().unwrap_or_default(),
            applied_p50: quantile(&applied, 0.5),
            applied_p99: quantile(&applied, 0.99),
            lost_per_move: per_move(measured.iter().map(|m| m.lost).sum()),
            lost_max: measured.iter().map(|m| m.lost).max().unwrap_or_default(),
            late_per_move: per_move(measured.iter().map(|m| m.late).sum()),
            late_max: measured.iter().map(|m| m.late).max().unwrap_or_default(),
            ..PhaseSummary::default()
        }
    }
}

/// The figures of one backend.
pub(super) struct BackendFigures {
    pub kind: BackendKind,
    pub order: UpdateOrder,
    /// The first update: every floating IP on a fresh lab.
    pub initial_apply: Duration,
    pub churn: PhaseSummary,
    pub drain: PhaseSummary,
}

impl BackendFigures {
    /// The backend and the order, as the table's columns name them.
    pub fn label(&self) -> String {
        format!("{} {}", self.kind, self.order)
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use crate::traffic::{Observation, PacketRole, Protocol, ReplyObservation, Token};

    use super::*;

    const EPOCH: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn token(seq: u32) -> Token {
        Token {
            lab: 1,
            step: 0,
            probe: 7,
            seq,
        }
    }

    fn delivery(pod: &str, seq: u32, at_ms: u64) -> Observation {
        let address: IpAddr = "198.19.0.1".parse().unwrap();
        Observation {
            endpoint: pod.into(),
            namespace: String::new(),
            interface: "eth0".into(),
            src: address,
            dst: address,
            protocol: Protocol::Udp,
            role: PacketRole::Request,
            token: token(seq),
            at_unix_ns: EPOCH + at_ms * MS,
        }
    }

    fn reply(seq: u32) -> ReplyObservation {
        ReplyObservation {
            receiver: "client".into(),
            protocol: Protocol::Udp,
            src: "198.19.64.1".parse().unwrap(),
            token: token(seq),
            rtt_ns: 0,
            at_unix_ns: 0,
        }
    }

    #[test]
    fn convergence_from_the_request_late_from_the_update_and_loss() {
        // A probe every 2 ms: 0-2 at the old pod, 3-4 lost, 5-7 at the new one;
        // the move asked at 5 ms, its update back at 9 ms; probe 5 (10 ms) is
        // the first at the new pod; nothing reached the old pod after 9 ms.
        let deliveries = vec![
            delivery("old", 0, 0),
            delivery("old", 1, 2),
            delivery("old", 2, 4),
            delivery("old", 2, 10), // the same probe seen again later: first counts
            delivery("new", 5, 10),
            delivery("new", 6, 12),
            delivery("old", 7, 14), // a late one
            delivery("new", 7, 13),
        ];
        let outcome = ProbeOutcome {
            probe: 7,
            from: "client".into(),
            to: "198.19.64.1".parse().unwrap(),
            protocol: Protocol::Udp,
            sent: 8,
            replies: [0, 1, 2, 5, 6, 7].into_iter().map(reply).collect(),
            duplicates: 0,
            send_errors: 0,
            icmp_errors: vec![],
            deliveries,
            sctp_events: vec![],
            sent_at_unix_ns: vec![],
            collected_unix_ns: 0,
        };
        let record = MoveRecord {
            from_pod: "old".into(),
            to_pod: "new".into(),
            requested_ns: EPOCH + 5 * MS,
            applied_ns: EPOCH + 9 * MS,
        };
        let figures = move_figures(&outcome, &record, EPOCH);
        assert_eq!(figures.convergence, Some(Duration::from_millis(5)));
        assert_eq!(figures.applied, Duration::from_millis(4));
        assert_eq!(figures.lost, 2);
        assert_eq!(figures.late, 0, "probe 7 reached the new pod first");
        assert_eq!(figures.sent, 8);

        let never = MoveRecord {
            to_pod: "elsewhere".into(),
            applied_ns: EPOCH + 3 * MS,
            ..record
        };
        let figures = move_figures(&outcome, &never, EPOCH);
        assert_eq!(figures.convergence, None);
        assert_eq!(
            figures.late, 1,
            "probe 2 at the old pod at 4 ms, after the update at 3 ms; probe 7 counts where it arrived first"
        );
    }

    #[test]
    fn the_summary_takes_quantiles_of_the_converged_moves() {
        let one = |ms: Option<u64>, lost, late| MoveFigures {
            convergence: ms.map(Duration::from_millis),
            applied: Duration::from_millis(1),
            lost,
            late,
            sent: 10,
        };
        let summary = PhaseSummary::of(
            10,
            &[one(Some(4), 1, 0), one(Some(8), 3, 2), one(None, 10, 0)],
        );
        assert_eq!(summary.measured, 3);
        assert_eq!(summary.converged, 2);
        assert_eq!(summary.convergence_p50, Duration::from_millis(4));
        assert_eq!(summary.convergence_max, Duration::from_millis(8));
        assert!((summary.lost_per_move - 14.0 / 3.0).abs() < 1e-9);
        assert_eq!((summary.late_max, summary.lost_max), (2, 10));
    }
}
