//! Removing this process's labs when it is interrupted: SIGINT / SIGTERM tear
//! down every lab still live in the process before it exits. (Panics unwind
//! through each [`super::Lab`]'s Drop; a SIGKILLed process leaves a record and
//! pins that `fip-harness down` removes.)

use std::collections::BTreeSet;
use std::sync::Mutex;

static LIVE_LABS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

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
    for lab in live_labs() {
        let report = super::registry::down_lab(&lab);
        errors.extend(report.errors.iter().map(|e| format!("lab '{lab}': {e}")));
        forget(&lab);
    }
    errors
}

/// Spawn a task that waits for SIGINT or SIGTERM, tears down this process's
/// labs and exits with 130 (SIGINT) or 143 (SIGTERM). Call once, from inside
/// the runtime, before building labs (`up` and the runner do).
pub fn spawn_teardown_on_signal() -> std::io::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(tokio::spawn(async move {
        let code = tokio::select! {
            _ = interrupt.recv() => 130,
            _ = terminate.recv() => 143,
        };
        for e in teardown_live_labs() {
            eprintln!("error: {e}");
        }
        std::process::exit(code);
    }))
}
