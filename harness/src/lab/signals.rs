//! Removing this process's labs when it is interrupted: SIGINT / SIGTERM tear
//! down every lab still live in the process before it exits. (Panics unwind
//! through each [`super::Lab`]'s Drop; a SIGKILLed process leaves a record and
//! pins that `fip-harness down` removes.)
//!
//! Bring-up runs on other threads while the clean-up runs, so clean-up first
//! stops creation: every namespace, record and daemon of a lab is created
//! through [`CREATIONS`] (`ns::netns::CreationGate`), which the clean-up
//! closes, waiting for creations in flight. So nothing is created after the
//! clean-up starts looking for what to remove.

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::ns::netns::{Closed, CreationGate};

static LIVE_LABS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// This process's gate for creating lab namespaces, records and daemons.
pub static CREATIONS: CreationGate = CreationGate::new();

/// Run `create` unless clean-up has started; clean-up waits for it to end.
pub(crate) fn unless_cancelled<R>(create: impl FnOnce() -> R) -> Result<R, Closed> {
    CREATIONS.unless_closed(create)
}

/// Whether clean-up has started (creation is stopped).
pub fn is_cancelled() -> bool {
    CREATIONS.is_closed()
}

/// Stop every later creation of this process (after those in flight end).
pub fn cancel_creations() {
    CREATIONS.close();
}

pub(crate) fn remember(lab: &str) {
    LIVE_LABS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(lab.to_string());
}

pub(crate) fn forget(lab: &str) {
    LIVE_LABS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(lab);
}

/// Labs built by this process and not torn down yet.
pub fn live_labs() -> Vec<String> {
    LIVE_LABS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .cloned()
        .collect()
}

/// Remove every live lab of this process by name (namespaces and records);
/// returns the error messages.
pub fn teardown_live_labs() -> Vec<String> {
    let mut errors = Vec::new();
    let live = live_labs();
    super::claim::remove_unbuilt_lock_files(&live);
    for lab in live {
        let report = super::registry::down_lab(&lab);
        errors.extend(report.errors.iter().map(|e| format!("lab '{lab}': {e}")));
        forget(&lab);
    }
    errors
}

/// Spawn a task that waits for SIGINT or SIGTERM, stops all creation, tears
/// down this process's labs and calls `after` with the exit code the process
/// should end with, 130 (SIGINT) or 143 (SIGTERM). A library does not end the
/// process: `after` does, in the binary. Call once, from inside the runtime,
/// before building labs (`up` and the runner do).
pub fn spawn_teardown_on_signal(
    after: impl FnOnce(i32) + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        let code = tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
        };
        cancel_creations();
        for e in teardown_live_labs() {
            eprintln!("error: {e}");
        }
        after(code);
    }))
}
