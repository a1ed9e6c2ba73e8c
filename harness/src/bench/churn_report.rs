//! `bench churn`'s table: one column per backend and update order, then each
//! one's figure as a ratio to the first one measured (Felix's nftables in
//! Felix's order when all run: the baseline), and the targets.

use std::time::Duration;

use crate::control::UpdateOrder;
use crate::dataplane::BackendKind;

use super::churn_figures::BackendFigures;
use super::churn_figures::PhaseSummary;
use super::figures::print_target;

/// The target for the map backend's p99 convergence under churn.
const TARGET_P99: Duration = Duration::from_millis(50);

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

struct Table<'a> {
    figures: &'a [BackendFigures],
}

impl Table<'_> {
    fn header(&self) {
        let mut line = format!("{:<44}", "");
        for f in self.figures {
            line.push_str(&format!(" {:>16}", f.label()));
        }
        let first = self.figures[0].label();
        for f in &self.figures[1..] {
            line.push_str(&format!(" {:>36}", format!("{}/{first}", f.label())));
        }
        println!("{line}");
    }

    /// A row of numbers: `show` renders one, ratios divide each by the first.
    fn row(&self, label: &str, values: Vec<f64>, show: impl Fn(f64) -> String) {
        let mut line = format!("{label:<44}");
        for v in &values {
            line.push_str(&format!(" {:>16}", show(*v)));
        }
        for v in &values[1..] {
            let ratio = if values[0] == 0.0 {
                "-".to_string()
            } else {
                format!("{:.2}x", v / values[0])
            };
            line.push_str(&format!(" {ratio:>36}"));
        }
        println!("{line}");
    }

    /// A row of text, no ratios.
    fn text(&self, label: &str, values: Vec<String>) {
        let mut line = format!("{label:<44}");
        for v in values {
            line.push_str(&format!(" {v:>16}"));
        }
        println!("{line}");
    }

    fn duration(&self, label: &str, pick: impl Fn(&BackendFigures) -> Duration) {
        let values = self.figures.iter().map(|f| pick(f).as_secs_f64()).collect();
        self.row(label, values, |s| ms(Duration::from_secs_f64(s)));
    }

    fn phase(&self, name: &str, pick: impl Fn(&BackendFigures) -> &PhaseSummary) {
        self.text(
            &format!("{name}: moves / updates"),
            self.figures
                .iter()
                .map(|f| format!("{} / {}", pick(f).moves, pick(f).updates))
                .collect(),
        );
        self.text(
            &format!("{name}: sampled moves converged"),
            self.figures
                .iter()
                .map(|f| format!("{} / {}", pick(f).converged, pick(f).measured))
                .collect(),
        );
        self.duration(&format!("{name}: convergence p50"), |f| {
            pick(f).convergence_p50
        });
        self.duration(&format!("{name}: convergence p99"), |f| {
            pick(f).convergence_p99
        });
        self.duration(&format!("{name}: convergence max"), |f| {
            pick(f).convergence_max
        });
        self.duration(&format!("{name}: request to update done p50"), |f| {
            pick(f).applied_p50
        });
        self.duration(&format!("{name}: request to update done p99"), |f| {
            pick(f).applied_p99
        });
        let count = |v: f64| format!("{v:.2}");
        self.row(
            &format!("{name}: probes lost per move (mean)"),
            self.figures.iter().map(|f| pick(f).lost_per_move).collect(),
            count,
        );
        self.row(
            &format!("{name}: probes lost in one move (max)"),
            self.figures
                .iter()
                .map(|f| pick(f).lost_max as f64)
                .collect(),
            count,
        );
        self.row(
            &format!("{name}: late at old pod per move (mean)"),
            self.figures.iter().map(|f| pick(f).late_per_move).collect(),
            count,
        );
        self.row(
            &format!("{name}: late at old pod in one move (max)"),
            self.figures
                .iter()
                .map(|f| pick(f).late_max as f64)
                .collect(),
            count,
        );
        let share = |cpu: Duration, wall: Duration| {
            cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9) * 100.0
        };
        self.row(
            &format!("{name}: CPU harness, % of one core"),
            self.figures
                .iter()
                .map(|f| share(pick(f).cpu_self, pick(f).wall))
                .collect(),
            |v| format!("{v:.0}%"),
        );
        self.row(
            &format!("{name}: CPU nft/iptables run, % of one core"),
            self.figures
                .iter()
                .map(|f| share(pick(f).cpu_children, pick(f).wall))
                .collect(),
            |v| format!("{v:.0}%"),
        );
    }
}

/// The table of `figures`, for a run that applied `fips` floating IPs at
/// first and probed every `interval_ms`.
pub(super) fn print_report(fips: usize, interval_ms: u64, figures: &[BackendFigures]) {
    if figures.is_empty() {
        return;
    }
    let table = Table { figures };
    table.header();
    table.duration(&format!("apply {fips} floating IPs (fresh lab)"), |f| {
        f.initial_apply
    });
    table.phase("churn", |f| &f.churn);
    table.phase("drain", |f| &f.drain);
    println!(
        "baseline: the first column (Felix's nftables layout in Felix's update order when all run); ratios above 1 mean slower than it. \
         Convergence counts from the move's request (queueing behind a running update included); \
         probe resolution {interval_ms} ms"
    );
    let maps = figures
        .iter()
        .filter(|f| f.kind == BackendKind::NftMaps)
        .min_by_key(|f| f.order != UpdateOrder::Felix);
    match maps {
        Some(maps) => {
            let p99 = maps.churn.convergence_p99;
            let all = maps.churn.converged == maps.churn.measured;
            print_target(
                &format!(
                    "churn convergence p99 < {} ms (nft-maps), every sampled move converged",
                    TARGET_P99.as_millis()
                ),
                &format!(
                    "{} ({} / {} converged)",
                    ms(p99),
                    maps.churn.converged,
                    maps.churn.measured
                ),
                p99 < TARGET_P99 && all,
            );
        }
        None => println!("target churn convergence p99 < 50 ms applies to nft-maps, not measured"),
    }
    println!("(the Felix layouts, nftables and iptables, are reported as they are)");
}
