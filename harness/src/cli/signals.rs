//! Ctrl-C and SIGTERM for commands that build labs.

/// On SIGINT or SIGTERM, stop creating, remove every lab this process built,
/// run `after` (e.g. write the reports of what finished), then exit with 130 or
/// 143. The handler lives on a thread and runtime of its own, so it works
/// whatever the command's own threads are doing.
pub fn tear_down_labs_on_ctrl_c(after: impl FnOnce(i32) + Send + 'static) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = ready_tx.send(Err(error));
                return;
            }
        };
        runtime.block_on(async move {
            match fip_harness::lab::signals::spawn_teardown_on_signal(move |code| {
                after(code);
                std::process::exit(code);
            }) {
                Ok(handler) => {
                    let _ = ready_tx.send(Ok(()));
                    let _ = handler.await;
                }
                Err(error) => {
                    let _ = ready_tx.send(Err(error));
                }
            }
        });
    });
    // Labs must not be built before the handler is in place.
    if let Ok(Err(error)) = ready_rx.recv() {
        tracing::warn!(%error, "no Ctrl-C handler: an interrupted run may leave labs for `fip-harness down --all`");
    }
}

/// Once interrupted, the handler owns the end of the process (clean-up, its
/// own reports, the exit status): a command that gets here meanwhile, e.g.
/// failing because creation was stopped, waits for it instead of exiting first.
pub fn defer_to_interrupt_handler() {
    if fip_harness::lab::signals::is_cancelled() {
        loop {
            std::thread::park();
        }
    }
}
