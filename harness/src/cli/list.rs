//! `fip-harness list`: the scenarios in files or folders, one a line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fip_harness::scenario::{load_catalogue, Scenario};
use regex::Regex;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files or folders (searched recursively for *.yaml / *.yml).
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
    /// Keep scenarios whose name or a tag matches REGEX; `!REGEX` keeps the others.
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
}

/// A name/tag filter; `!` in front negates it.
pub struct Filter {
    regex: Regex,
    negate: bool,
}

impl Filter {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (negate, pattern) = match text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let regex = Regex::new(pattern).with_context(|| format!("bad --filter `{text}`"))?;
        Ok(Self { regex, negate })
    }

    pub fn keeps(&self, scenario: &Scenario) -> bool {
        let hit = self.regex.is_match(&scenario.name)
            || scenario.tags.iter().any(|t| self.regex.is_match(t));
        hit != self.negate
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let filter = args.filter.as_deref().map(Filter::parse).transpose()?;
    let catalogue = load_catalogue(&args.paths);
    let kept: Vec<&Scenario> = catalogue
        .scenarios
        .iter()
        .filter(|s| filter.as_ref().is_none_or(|f| f.keeps(s)))
        .collect();
    let width = kept.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for scenario in kept {
        println!(
            "{:width$}  [{}]  {}",
            scenario.name,
            scenario.tags.join(", "),
            scenario.description.trim()
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
