//! `fip-harness list`: the scenarios in files or folders, one a line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fip_harness::scenario::{load_catalogue, Scenario, ScenarioFilter};
use fip_harness::text::printable;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched recursively for *.yaml / *.yml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Only the scenarios whose name or a tag matches REGEX (`!REGEX`: the others).
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// Print the scenarios as JSON: name, description, tags, file, backends,
    /// profiles, routings and step count of each.
    #[arg(long)]
    json: bool,
}

/// One scenario as `list --json` shows it.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a> {
    name: &'a str,
    description: &'a str,
    tags: &'a [String],
    file: &'a std::path::Path,
    backends: Vec<String>,
    profiles: &'a [fip_harness::scenario::ConntrackProfile],
    routings: Vec<String>,
    steps: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = args
        .filter
        .as_deref()
        .map(|f| ScenarioFilter::parse(f).with_context(|| format!("bad --filter `{f}`")))
        .transpose()?;
    let catalogue = load_catalogue(&args.paths);
    let kept: Vec<&Scenario> = catalogue
        .scenarios
        .iter()
        .filter(|s| filter.as_ref().is_none_or(|f| f.keeps(s)))
        .collect();
    if args.json {
        let listed: Vec<Listed> = kept
            .iter()
            .map(|s| Listed {
                name: &s.name,
                description: s.description.trim(),
                tags: &s.tags,
                file: &s.source,
                backends: s.backends.iter().map(ToString::to_string).collect(),
                profiles: &s.profiles,
                routings: s.routings.iter().map(ToString::to_string).collect(),
                steps: s.steps.len(),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&listed)?);
        for error in &catalogue.errors {
            eprintln!("{error}");
        }
        return Ok(if catalogue.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let width = kept.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for scenario in kept {
        // A file's words, shown with control characters escaped.
        println!(
            "{:width$}  [{}]  {}",
            printable(&scenario.name),
            printable(&scenario.tags.join(", ")),
            printable(scenario.description.trim())
        );
    }
    for error in &catalogue.errors {
        eprintln!("{error}");
    }
    Ok(if catalogue.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
