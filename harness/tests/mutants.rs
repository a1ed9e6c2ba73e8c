//! The mutation score must be 100%: every deliberately broken dataplane
//! (`fip_harness::mutant::MUTANTS`) fails at least one catalogue case.
//!
//! A target of its own with `test = false` (see harness/Cargo.toml), so plain
//! `cargo test --workspace` does not run it (it runs the catalogue once more
//! per mutant); CI runs it explicitly with `cargo test --test mutants`.

use std::path::Path;

use fip_harness::dataplane::BackendKind;
use fip_harness::mutant::{Mutant, MUTANTS};
use fip_harness::mutation;
use fip_harness::runner::DataplaneChoice;
use fip_harness::runner::{self, PlanFilter, RunOptions};

#[test]
fn every_mutant_fails_some_case() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "the mutants build network namespaces: run them with `cargo test --test mutants`, which starts \
         the test through ci/test-runner (root, or a user namespace of its own)"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let filter = PlanFilter {
        dataplane: Some(DataplaneChoice::Builtin(BackendKind::NftMaps)),
        ..Default::default()
    };
    let cases = runner::plan(&[root], &filter).expect("the catalogue loads");
    let mutants: Vec<&'static Mutant> = MUTANTS.iter().collect();
    let options = RunOptions {
        report_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("mutant-reports")),
        keep_on_failure: false,
        ..RunOptions::default()
    };
    let run = mutation::score_catalogue(&mutants, cases, 6, &options, &|_, _| {});
    let (killed, total) = mutation::mutation_score(&run.verdicts);
    assert_eq!(
        killed,
        total,
        "survivors:\n{}",
        mutation::render_verdicts(&run.verdicts)
    );
    // Kills count only on cases the unbroken backend passes; none may fail there.
    assert!(
        run.excluded.is_empty(),
        "cases failing on the unbroken nft-maps: {:?}",
        run.excluded
    );
}
