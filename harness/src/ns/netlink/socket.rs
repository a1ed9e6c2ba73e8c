//! Netlink sockets inside namespaces: the lab's long-lived ones, opened on a few
//! dedicated threads as the namespaces are made, and one-off ones for a single
//! piece of work (the control plane's), each on a short-lived thread, so no
//! tokio worker ever changes namespace.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::Member;
use super::NetlinkError;
use crate::ns::netns::{write_sysctls_here, CreationGate, Netns};

/// A namespace to create, with the sysctls to write in it before any link exists
/// (new links copy the namespace's `default` settings when they are made).
pub(crate) struct NamespaceJob {
    pub name: String,
    pub sysctls: Vec<(&'static str, &'static str)>,
}

/// Create namespaces on up to `threads` dedicated threads (never tokio workers),
/// write their sysctls and open a netlink socket inside each; the connections
/// run on `rt`; not once `gate` is closed. Results come back in job order.
pub(crate) fn create_members(
    rt: &tokio::runtime::Handle,
    jobs: &[NamespaceJob],
    threads: usize,
    gate: &CreationGate,
) -> Vec<Result<Member, NetlinkError>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Member, NetlinkError>>>> =
        Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| {
                let _runtime = rt.enter();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let result = create_member_here(rt, job, gate);
                    results.lock().expect("results lock")[i] = Some(result);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| {
            r.unwrap_or_else(|| {
                Err(NetlinkError::Socket {
                    namespace: job.name.clone(),
                    source: std::io::Error::other("worker thread ended early"),
                })
            })
        })
        .collect()
}

fn create_member_here(
    rt: &tokio::runtime::Handle,
    job: &NamespaceJob,
    gate: &CreationGate,
) -> Result<Member, NetlinkError> {
    let netns = Netns::create_and_enter(&job.name, gate)?;
    write_sysctls_here(&job.name, &job.sysctls)?;
    let (connection, nl, _) =
        rtnetlink::new_connection().map_err(|source| NetlinkError::Socket {
            namespace: job.name.clone(),
            source,
        })?;
    rt.spawn(connection);
    Ok(Member { netns, nl })
}

impl Member {
    /// Open a netlink socket inside `netns`, its connection driven on `rt`;
    /// the socket closes when the last clone of the handle goes.
    pub(crate) fn open(netns: Netns, rt: &tokio::runtime::Handle) -> Result<Self, NetlinkError> {
        let socket_error = |source| NetlinkError::Socket {
            namespace: netns.name().to_string(),
            source,
        };
        let nl = netns.run(|| {
            let _runtime = rt.enter();
            let (connection, nl, _) = rtnetlink::new_connection()?;
            rt.spawn(connection);
            Ok::<_, std::io::Error>(nl)
        })?;
        Ok(Member {
            nl: nl.map_err(socket_error)?,
            netns,
        })
    }
}

/// Run `work` with a fresh netlink socket inside `ns`, on a thread of its own
/// that drives a single-threaded runtime; the socket closes when `work` ends.
/// `work` fails with its caller's error type, which takes netlink's.
pub(crate) fn with_member<F, Fut, R, E>(ns: &Netns, work: F) -> Result<R, E>
where
    F: FnOnce(Member) -> Fut + Send,
    Fut: Future<Output = Result<R, E>>,
    R: Send,
    E: From<NetlinkError> + Send,
{
    let socket_error = |source| NetlinkError::Socket {
        namespace: ns.name().to_string(),
        source,
    };
    ns.run(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(socket_error)?;
        runtime.block_on(async {
            let (connection, nl, _) = rtnetlink::new_connection().map_err(socket_error)?;
            let driver = tokio::spawn(connection);
            let result = work(Member {
                netns: ns.clone(),
                nl,
            })
            .await;
            driver.abort();
            result
        })
    })
    .map_err(NetlinkError::from)?
}

/// A netlink socket inside one namespace kept for many pieces of work (the
/// control plane's route changes, one per update): the socket, a
/// single-threaded runtime that drives it while a piece of work runs, and no
/// thread of its own. Opening one costs a thread that enters the namespace, a
/// runtime and a socket: more than a route change itself.
pub(crate) struct KeptMember {
    runtime: Option<tokio::runtime::Runtime>,
    member: Member,
}

impl KeptMember {
    pub(crate) fn open(ns: &Netns) -> Result<Self, NetlinkError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|source| NetlinkError::Socket {
                namespace: ns.name().to_string(),
                source,
            })?;
        // The socket is made inside the namespace and driven by this
        // runtime, from whichever thread runs the work.
        let member = Member::open(ns.clone(), runtime.handle())?;
        Ok(Self {
            runtime: Some(runtime),
            member,
        })
    }

    /// Run `work` with the kept socket; one piece of work at a time.
    pub(crate) fn run<F, Fut, R, E>(&self, work: F) -> Result<R, E>
    where
        F: FnOnce(Member) -> Fut,
        Fut: Future<Output = Result<R, E>>,
    {
        let runtime = self
            .runtime
            .as_ref()
            .expect("a kept member has its runtime");
        runtime.block_on(work(self.member.clone()))
    }
}

impl Drop for KeptMember {
    fn drop(&mut self) {
        // Without blocking: the owner may be dropped inside another runtime,
        // where a plain drop of a runtime panics.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
