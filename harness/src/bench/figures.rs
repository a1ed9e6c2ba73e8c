//! What every benchmark prints the same way: medians and percentiles, the
//! machine's load at the time, and a target line saying whether it is met.

use std::time::Duration;

/// The value at quantile `q` (0.5 the median, 0.99 the p99) of `values`,
/// nearest rank; zero when there are none.
pub fn quantile(values: &[Duration], q: f64) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn median(values: &[Duration]) -> Duration {
    quantile(values, 0.5)
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages and the core count: on a
/// shared machine a figure means little without them.
pub fn load() -> String {
    let averages = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("load {averages} on {cores} cores")
}

/// Print the load now, labelled with the moment (`start`, `end`).
pub fn print_load(moment: &str) {
    say!("machine at {moment}: {}", load());
}

/// CPU time (user + system) of this process and of its waited-for children
/// (`nft`, `iptables-restore`), from getrusage: what the harness costs, apart
/// from how long other work on a shared machine kept it waiting.
pub fn cpu_times() -> (Duration, Duration) {
    use nix::sys::resource::{getrusage, UsageWho};
    let total = |who| {
        getrusage(who).map_or(Duration::ZERO, |u| {
            let tv = |t: nix::sys::time::TimeVal| {
                Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1_000)
            };
            tv(u.user_time()) + tv(u.system_time())
        })
    };
    (
        total(UsageWho::RUSAGE_SELF),
        total(UsageWho::RUSAGE_CHILDREN),
    )
}

/// One target: what it asks, the figure, and whether the figure meets it.
pub fn print_target(what: &str, figure: &str, met: bool) {
    say!(
        "target {what}: {figure} -> {}",
        if met { "met" } else { "NOT met" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let values = ms_list(&[5, 1, 4, 2, 3]);
        assert_eq!(median(&values), Duration::from_millis(3));
        assert_eq!(quantile(&values, 0.99), Duration::from_millis(5));
        assert_eq!(quantile(&values, 0.0), Duration::from_millis(1));
        let hundred: Vec<u64> = (1..=100).collect();
        assert_eq!(
            quantile(&ms_list(&hundred), 0.99),
            Duration::from_millis(99)
        );
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn load_names_the_averages() {
        assert!(load().starts_with("load "));
    }
}
