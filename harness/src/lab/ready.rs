//! Waiting for a lab's links to carry traffic before anything is sent over
//! them (see [`crate::ns::netlink::NotReady`] for why a link set up does not
//! yet).

use futures::future::try_join_all;

use super::error::LabError;
use super::netlink::{wait_ready_in, Member};
use super::netns::Netns;

/// How long links may take to carry traffic before the lab fails: the
/// kernel's link-watch queue runs within a millisecond on an idle machine,
/// and on a loaded one ran late enough to lose a case's first packets; ten
/// seconds is far beyond that and still ends a lab that never gets there.
pub(super) const READY_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Poll `members` until none has a link or address that is not ready, or
/// fail after [`READY_WITHIN`] naming what was not.
pub(super) async fn wait_ready(lab: &str, members: &[&Member]) -> Result<(), LabError> {
    let started = std::time::Instant::now();
    loop {
        let states = try_join_all(members.iter().map(|m| async move {
            let state = m.not_ready().await?;
            Ok::<_, LabError>((m.name().to_string(), state))
        }))
        .await?;
        let left: Vec<String> = states
            .into_iter()
            .filter(|(_, state)| !state.is_empty())
            .map(|(member, state)| format!("{member}: {state}"))
            .collect();
        if left.is_empty() {
            if started.elapsed() > std::time::Duration::from_millis(50) {
                tracing::debug!(lab, waited = ?started.elapsed(), "links ready");
            }
            return Ok(());
        }
        if started.elapsed() >= READY_WITHIN {
            return Err(LabError::NotReady {
                lab: lab.to_string(),
                waited: READY_WITHIN,
                what: left.join("; "),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Pods' namespaces polled at once by [`wait_ready_apart`].
const POLLS_AT_ONCE: usize = 8;

/// As [`wait_ready`] for namespaces the lab holds no socket in (its pods),
/// each polled through a socket of its own, off the runtime's workers; each
/// with whether it uses IPv6 (see [`wait_ready_in`]: a pod without IPv6 does
/// not wait for its link-local address).
pub(super) async fn wait_ready_apart(
    lab: &str,
    namespaces: Vec<(Netns, bool)>,
) -> Result<(), LabError> {
    let lab_name = lab.to_string();
    let states = tokio::task::spawn_blocking(move || {
        // A few at a time: each poll holds a thread, a runtime and a socket.
        namespaces
            .chunks(POLLS_AT_ONCE)
            .flat_map(|chunk| {
                std::thread::scope(|scope| {
                    let polls: Vec<_> = chunk
                        .iter()
                        .map(|(ns, uses_ipv6)| {
                            scope.spawn(move || {
                                let state = wait_ready_in(ns, READY_WITHIN, *uses_ipv6);
                                (ns.name().to_string(), state)
                            })
                        })
                        .collect();
                    polls.into_iter().map(|p| p.join()).collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|_| LabError::Panicked {
        lab: lab_name.clone(),
        what: "waiting for pods' links",
    })?;
    let mut left = Vec::new();
    for state in states {
        let (name, state) = state.map_err(|_| LabError::Panicked {
            lab: lab_name.clone(),
            what: "waiting for pods' links",
        })?;
        let state = state?;
        if !state.is_empty() {
            left.push(format!("{name}: {state}"));
        }
    }
    if left.is_empty() {
        Ok(())
    } else {
        Err(LabError::NotReady {
            lab: lab_name,
            waited: READY_WITHIN,
            what: left.join("; "),
        })
    }
}
