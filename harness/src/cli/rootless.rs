//! Before anything else runs: when not root, put this process where the
//! command needs it (see `fip_harness::lab::rootless`). Commands that build
//! labs (`run`, `up`, `bench`, `mutants`, `conform`, `explore`) get a new user namespace of their
//! own; `exec`, `state` and `down` of one lab join the namespaces that
//! hold it (or a new one if nothing holds it any more, so the host's
//! /run/netns, where root's labs are, is never looked at); every command
//! then finds lab records in the user's runtime directory.

use fip_harness::dataplane::BackendKind;
use fip_harness::lab::registry::{record_path, LabRecord, RUN_DIR_ENV};
use fip_harness::lab::rootless::probe::{first_refusal, KernelFeature};
use fip_harness::lab::rootless::{self, HolderCheck, NsHolder};
use fip_harness::runner::DataplaneChoice;

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
        | Command::Explore(_) => {
            use_user_registry()?;
            rootless::enter_new_namespace()?;
            add_sbin_to_path();
            // Before any lab: what this kernel refuses in a user namespace
            // is one line now, not a failure deep inside a case.
            if let Some(refusal) = first_refusal(&kernel_features(command)) {
                return Err(refusal.into());
            }
            return Ok(());
        }
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
    let holder = match lab.map(live_holder).transpose() {
        Ok(holder) => holder.flatten(),
        // `down` still removes what the user's own registry holds of the
        // lab; the process the record names is left alone.
        Err(wrong) if matches!(command, Command::Down(_)) => {
            eprintln!("warning: {wrong}");
            None
        }
        Err(wrong) => return Err(wrong.into()),
    };
    match holder {
        Some(holder) => rootless::enter_namespaces_of(&holder)?,
        None => drop(rootless::enter_new_namespace()?),
    }
    add_sbin_to_path();
    Ok(())
}

/// The kernel features `command`'s labs need: the lab's own, and those of
/// the dataplane chosen, or of every built-in backend when the scenarios choose.
fn kernel_features(command: &Command) -> Vec<KernelFeature> {
    let chosen = match command {
        Command::Run(args) => args.dataplane_choice(),
        Command::Up(args) => args.dataplane_choice(),
        // Mutants break nft-maps.
        Command::Mutants(_) => Some(DataplaneChoice::Builtin(BackendKind::NftMaps)),
        _ => None,
    };
    let mut features = match chosen {
        None => KernelFeature::ALL.to_vec(),
        Some(choice) => features_of(&choice),
    };
    // Conform runs the judged dataplane beside its reference, Felix's nftables mode.
    if let Command::Conform(args) = command {
        features = features_of(&args.dataplane);
        features.push(KernelFeature::NfTablesNat);
        features.sort();
        features.dedup();
    }
    features
}

/// What a lab on `choice` needs of the kernel.
fn features_of(choice: &DataplaneChoice) -> Vec<KernelFeature> {
    let lab = KernelFeature::NfTablesConntrack;
    match choice {
        // A driver's dataplane is its own business.
        DataplaneChoice::Exec(_) => vec![lab],
        choice => match choice.base() {
            BackendKind::Iptables => vec![lab, KernelFeature::XtablesNat],
            BackendKind::Nftables | BackendKind::NftMaps => vec![lab, KernelFeature::NfTablesNat],
        },
    }
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

/// The live process holding `lab`'s namespaces, from its record; an error
/// when the record names a live process that is not the lab's holder.
fn live_holder(lab: &str) -> Result<Option<NsHolder>, rootless::RootlessError> {
    if fip_harness::lab::spec::check_lab_name(lab).is_err() {
        return Ok(None);
    }
    let Ok(record) = LabRecord::read(&record_path(lab)) else {
        return Ok(None);
    };
    let Some(holder) = record.holder else {
        return Ok(None);
    };
    match holder.check(lab, record.pid) {
        HolderCheck::Holds => Ok(Some(holder)),
        HolderCheck::Gone => Ok(None),
        HolderCheck::NotTheHolder(what) => Err(rootless::RootlessError::NotTheHolder {
            lab: lab.to_string(),
            pid: holder.pid,
            what,
        }),
    }
}
