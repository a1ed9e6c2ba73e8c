//! `bench catalogue`: `fip-harness run` of a catalogue by a baseline binary
//! (the release a person would otherwise use) and by this one, back to back
//! on the same machine, each at its own default `--jobs`: wall time, cases
//! passed, the ratio and the load around each.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::error::Context;
use super::figures::load;

#[derive(Clone, Debug)]
pub struct Options {
    /// The binary to compare with (another build of fip-harness).
    pub baseline: PathBuf,
    /// Scenario files or folders, as `run` takes them.
    pub paths: Vec<PathBuf>,
}

/// One binary's run of the catalogue.
#[derive(Debug)]
struct Figure {
    wall: Duration,
    /// `run`'s last line: "N passed, M failed (...)", up to the parenthesis.
    counts: String,
    load_before: String,
    load_after: String,
}

pub fn run(options: Options) -> super::Result<()> {
    if !options.baseline.is_file() {
        return Err(super::BenchError::Figure(format!(
            "--baseline {}: no such file",
            options.baseline.display()
        )));
    }
    // The runs' reports, removed at the end.
    let reports = std::env::temp_dir().join(format!(
        "fip-harness-bench-catalogue-{}",
        std::process::id()
    ));
    let this = std::env::current_exe().context("finding this binary")?;
    let figures =
        run_once(&options.baseline, &options.paths, &reports.join("baseline")).and_then(|before| {
            Ok((
                before,
                run_once(&this, &options.paths, &reports.join("this"))?,
            ))
        });
    let _ = std::fs::remove_dir_all(&reports);
    let (before, after) = figures?;
    say!(
        "`run` of {} back to back, each at its default --jobs:",
        paths_text(&options.paths)
    );
    for (who, binary, figure) in [
        ("baseline", &options.baseline, &before),
        ("this", &this, &after),
    ] {
        say!(
            "  {who} ({}): {:.1} s, {}; {} -> {}",
            binary.display(),
            figure.wall.as_secs_f64(),
            figure.counts,
            figure.load_before,
            figure.load_after
        );
    }
    say!(
        "ratio: {:.2}x the baseline's speed",
        before.wall.as_secs_f64() / after.wall.as_secs_f64().max(f64::EPSILON)
    );
    Ok(())
}

fn paths_text(paths: &[PathBuf]) -> String {
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    names.join(" ")
}

fn run_once(binary: &Path, paths: &[PathBuf], report_dir: &Path) -> super::Result<Figure> {
    let load_before = load();
    let started = Instant::now();
    let output = std::process::Command::new(binary)
        .arg("run")
        .args(paths)
        .arg("--report-dir")
        .arg(report_dir)
        .output()
        .context(&format!("running {} run", binary.display()))?;
    let wall = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let counts = stdout
        .lines()
        .rev()
        .find(|line| line.contains(" passed, "))
        .map(|line| line.split(" (").next().unwrap_or(line).to_string())
        .ok_or_else(|| {
            super::BenchError::Figure(format!(
                "{} run printed no \"passed\" line: {}",
                binary.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        })?;
    Ok(Figure {
        wall,
        counts,
        load_before,
        load_after: load(),
    })
}
