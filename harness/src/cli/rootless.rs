//! Before anything else runs: when not root, put this process where the
//! command needs it (see `fip_harness::lab::rootless`). Commands that build
//! labs (`run`, `up`, `bench`, `mutants`, `conform`, `explore`) get a new user namespace of their
//! own; `exec`, `state` and `down` of one lab join the namespaces that
//! hold it (or a new one if nothing holds it any more, so the host's
//! /run/netns, where root's labs are, is never looked at); every command
//! then finds lab records in the user's runtime directory.

use fip_harness::lab::registry::{record_path, LabRecord, RUN_DIR_ENV};
use fip_harness::lab::rootless::{self, NsHolder};

use super::Command;

/// Enter the namespaces `command` needs. Must run while the process has one thread.
pub(super) fn prepare(command: &Command) -> anyhow::Result<()> {
    if nix::unistd::Uid::effective().is_root() {
        return Ok(());
    }
    let lab = match command {
        Command::Run(_)
        | Command::Up(_)
        | Command::Bench(_)
        | Command::Mutants(_)
        | Command::Conform(_)
        | Command::Explore(_) => None,
        // Reads records and, through /proc/<holder>/root, each lab's pins;
        // from inside a user namespace of its own it could not.
        Command::Ls(_) => return use_user_registry(),
        Command::Exec(args) => Some(args.lab.as_str()),
        Command::State(args) => Some(args.lab.as_str()),
        // Runs steps in a kept lab: joins the namespaces that hold it.
        Command::Replay(args) => Some(args.lab.as_str()),
        Command::Down(args) => match args.single_lab() {
            Some(lab) => Some(lab),
            // Several labs, each maybe in namespaces of its own: `down` runs
            // one child per lab (see down.rs), which comes back here.
            None => return use_user_registry().map(drop),
        },
        _ => return Ok(()),
    };
    use_user_registry()?;
    match lab.and_then(live_holder) {
        Some(holder) => rootless::enter_namespaces_of(&holder)?,
        None => drop(rootless::enter_new_namespace()?),
    }
    add_sbin_to_path();
    Ok(())
}

/// Root in the namespace now, so find programs where root's PATH does: bird,
/// conntrack, nft and iptables live in /usr/sbin, which a normal user's PATH
/// (Debian's default) does not list.
fn add_sbin_to_path() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<std::path::PathBuf> = std::env::split_paths(&path).collect();
    for sbin in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        if !dirs.iter().any(|d| d.as_os_str() == sbin) {
            dirs.push(sbin.into());
        }
    }
    if let Ok(joined) = std::env::join_paths(dirs) {
        // Single-threaded here, so changing the environment races nothing.
        std::env::set_var("PATH", joined);
    }
}

/// Point the registry at the user's runtime directory (unless the caller
/// chose a run directory).
fn use_user_registry() -> anyhow::Result<()> {
    if std::env::var_os(RUN_DIR_ENV).is_none() {
        let runtime = rootless::runtime_dir()?;
        // Single-threaded here, so changing the environment races nothing.
        std::env::set_var(RUN_DIR_ENV, rootless::registry_dir(&runtime));
    }
    Ok(())
}

/// The live process holding `lab`'s namespaces, from its record.
fn live_holder(lab: &str) -> Option<NsHolder> {
    fip_harness::lab::spec::check_lab_name(lab).ok()?;
    let record = LabRecord::read(&record_path(lab)).ok()?;
    record.holder.filter(NsHolder::alive)
}
