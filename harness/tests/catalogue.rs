//! The conformance catalogue as tests: every scenario file under scenarios/ is a
//! test of its own, once per backend it runs on, named `<file>::<backend>` (and
//! `::strict` for the strict conntrack profile), so `cargo test -- migration`
//! filters as people expect. Each runs in its own lab, in parallel.
//!
//! `FIP_HARNESS_SCENARIOS=dir1:dir2` adds a project's own scenario folders.
//! Listing (`--list`, `--format terse`, `--exact`) follows libtest, so
//! `cargo nextest run --test catalogue --partition count:1/2` shards the cases.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Failed, Trial};

use fip_harness::runner::{self, RunOptions};
use fip_harness::scenario::{catalogue_folders, SCENARIOS_ENV};

fn main() -> std::process::ExitCode {
    let mut args = Arguments::from_args();
    // Labs wait on the kernel far more than they compute: run several at once even
    // on a 2-core machine unless the user says otherwise.
    if args.test_threads.is_none() {
        args.test_threads = Some(6);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let folders = catalogue_folders(root, std::env::var_os(SCENARIOS_ENV).as_deref());
    let trials = match runner::plan(&folders, &runner::PlanFilter::default()) {
        Ok(plan) => plan
            .into_iter()
            .map(|case| {
                let name = case.test_name();
                Trial::test(name, move || run_case(case))
            })
            .collect(),
        Err(errors) => {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            vec![Trial::test("catalogue::load", move || {
                Err(Failed::from(text.join("\n")))
            })]
        }
    };
    libtest_mimic::run(&args, trials).exit_code()
}

fn run_case(case: runner::PlannedCase) -> Result<(), Failed> {
    // Labs need CAP_NET_ADMIN and CAP_SYS_ADMIN; say so plainly instead of
    // failing somewhere deep inside netlink, and never skip silently.
    if !nix::unistd::Uid::effective().is_root() {
        return Err(
            "the catalogue builds network namespaces and needs root: run `sudo -E cargo test` \
             (CI runs as root)"
                .into(),
        );
    }
    let report_dir: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join("catalogue-reports");
    let options = RunOptions {
        report_dir: Some(report_dir),
        keep_on_failure: false,
    };
    let result = runner::run_case_blocking(&case, &options);
    if result.outcome.is_pass() {
        Ok(())
    } else {
        Err(result.failure_text().into())
    }
}
