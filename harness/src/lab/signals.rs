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

use super::live::forget;
pub(crate) use super::live::unless_cancelled;
pub use super::live::{cancel_creations, is_cancelled, live_labs, CREATIONS};

/// Remove every live lab of this process by name (namespaces and records);
/// returns the error messages.
pub fn teardown_live_labs() -> Vec<String> {
    let mut errors = Vec::new();
    let live = live_labs();
    super::claim::remove_unbuilt_lock_files(&live);
    for lab in live {
        let report = super::down::down_lab(&lab);
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
