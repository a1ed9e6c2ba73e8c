//! The command tree. One file per command; each turns its arguments into calls
//! on the library and its errors into a message and a non-zero exit.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Print a line to stdout, ignoring a closed pipe (`fip-harness run | head -1`):
/// a command that owns labs must go on to remove them and write its reports.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod bench;
mod choices;
mod completions;
mod conform;
mod coverage;
mod describe;
mod down;
mod driver;
mod exec;
mod explore;
mod list;
mod ls;
mod mutants;
mod mutants_explore;
mod progress;
mod replay;
mod rootless;
mod routing;
mod run;
mod schema;
mod signals;
mod state;
mod up;
mod validate;

/// Simulation and conformance test harness for Calico floating IPs.
#[derive(Debug, Parser)]
#[command(name = "fip-harness", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Log more (repeat for more detail); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check scenario files and report every error with file:line:column.
    Validate(validate::Args),
    /// List the scenarios in files or folders.
    List(list::Args),
    /// Run scenarios in labs and report the results.
    Run(run::Args),
    /// Run the catalogue against deliberately broken dataplanes: the mutation score.
    Mutants(mutants::Args),
    /// Judge a dataplane against Calico's: every case on it and on the reference, compared.
    Conform(conform::Args),
    /// Generate cases from the Calico model, run them on a dataplane, shrink the first failure.
    Explore(explore::Args),
    /// Which pairs of floating-IP behaviours the scenarios exercise, which no
    /// case can (and why), and the holes.
    Coverage(coverage::Args),
    /// Build a scenario's cluster (up to a step, with --until-step) and keep it running.
    Up(up::Args),
    /// Run a scenario's remaining steps in a lab `up --until-step` kept.
    Replay(replay::Args),
    /// List the live labs.
    Ls(ls::Args),
    /// Run a command inside a node, pod, external host or the fabric of a lab.
    Exec(exec::Args),
    /// Show a lab's floating-IP mappings, routes, NAT rules and conntrack entries.
    State(state::Args),
    /// Remove a lab (or all labs) from its name alone.
    Down(down::Args),
    /// Benchmarks: lab bring-up, dataplane programming, traffic rates.
    Bench(bench::Args),
    /// Print the JSON Schema of scenario files (schema/scenario.schema.json),
    /// or with --driver of the driver protocol.
    Schema(schema::Args),
    /// Serve a built-in backend over the driver protocol on stdin/stdout
    /// (for `--dataplane "exec:fip-harness driver <backend>"`).
    Driver(driver::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the man page (or write every page with --dir).
    Man(completions::ManArgs),
    /// The command line's definition, for the docs test (harness/tests/docs.rs).
    #[command(hide = true)]
    DescribeCli(describe::Args),
    /// Rootless labs: stay in this namespace until SIGTERM (started by `up`).
    #[command(hide = true)]
    Hold {
        /// The lab held (shown by `ps`).
        lab: String,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // First, while this process has a single thread: entering a user
    // namespace is refused to a multithreaded one.
    if let Err(error) = rootless::prepare(&cli.command) {
        eprintln!("error: {error:#}");
        return ExitCode::FAILURE;
    }
    init_logging(cli.verbose);
    raise_open_files_limit();
    if !matches!(
        cli.command,
        Command::Run(_)
            | Command::Up(_)
            | Command::Replay(_)
            | Command::Bench(_)
            | Command::Conform(_)
            | Command::Explore(_)
    ) {
        // Commands that own no lab end quietly when their reader goes (`list
        // | head -1`), as Unix tools do; Rust ignores SIGPIPE by default and
        // println! would panic instead.
        // SAFETY: at start-up, before any other thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let result = match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::List(args) => list::run(args),
        Command::Run(args) => run::run(args),
        Command::Mutants(args) => mutants::run(args),
        Command::Conform(args) => conform::run(args),
        Command::Explore(args) => explore::run(args),
        Command::Coverage(args) => coverage::run(args),
        Command::Up(args) => up::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Ls(args) => ls::run(args),
        Command::Exec(args) => exec::run(args),
        Command::State(args) => state::run(args),
        Command::Down(args) => down::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Schema(args) => schema::run(args),
        Command::Driver(args) => driver::run(args),
        Command::Completions(args) => completions::completions(args),
        Command::Man(args) => completions::man(args),
        Command::DescribeCli(args) => describe::run(args),
        Command::Hold { .. } => fip_harness::lab::rootless::hold(),
    };
    signals::defer_to_interrupt_handler();
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Logs go to stderr: coloured only when stderr is a terminal and
    // NO_COLOR is not set (`RUST_LOG=debug ... 2>file` gets plain text).
    let colour = progress::Style::decide(
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
        std::env::var_os("NO_COLOR").as_deref(),
    )
    .colour;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

/// Commands that run scenarios build labs, which needs root: say so before
/// anything is planned.
fn require_root_to_run_scenarios() -> anyhow::Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        anyhow::bail!("running scenarios builds network namespaces and needs root (try sudo)");
    }
    Ok(())
}

/// A scenario filter given on the command line as `flag` (`--filter`, ...).
fn scenario_filter(
    text: Option<&str>,
    flag: &str,
) -> anyhow::Result<Option<fip_harness::scenario::ScenarioFilter>> {
    text.map(fip_harness::scenario::ScenarioFilter::parse)
        .transpose()
        .map_err(|e| anyhow::anyhow!("bad {flag}: {e}"))
}

/// One scenario file, loaded and validated; its errors are printed.
fn load_one_scenario(path: &std::path::Path) -> anyhow::Result<fip_harness::scenario::Scenario> {
    match fip_harness::scenario::load_file(path) {
        Ok(scenario) => Ok(scenario),
        Err(errors) => {
            for error in &errors.0 {
                eprintln!("{error}");
            }
            anyhow::bail!("{} error(s) in {}", errors.0.len(), path.display());
        }
    }
}

/// A lab's teardown holds every namespace it removes open until all the pins
/// are gone (`Netns::delete_all`): 10,000 pods need more descriptors than the
/// usual soft limit of 1,024. Raise the soft limit to the hard one, as Go's
/// runtime (and so Felix) does for every program.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("raising the open-files limit from {soft} to {hard}: {e}");
            }
        }
    }
}
