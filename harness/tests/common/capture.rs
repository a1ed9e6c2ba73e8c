//! A tshark capture of the echo requests on a pod's eth0, for root tests that
//! check where a packet sent through a floating IP arrives.
//!
//! tshark, not tcpdump: run as root, Debian's tcpdump drops to the `tcpdump`
//! user, which a user namespace (ci/test-runner's, for a normal user) cannot
//! switch to.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fip_harness::lab::netns::Netns;

use super::program;

/// Calico's pod gateway (the lab wires it as the CNI plugin does): an echo
/// request to it leaves through the pod's eth0, so the capture sees it.
const GATEWAY: &str = "169.254.1.1";

/// How long tshark may take to capture its first packet. On a loaded CI
/// machine it has taken seconds to start.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// A running tshark, killed (by pid) when dropped.
pub struct EchoCapture {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl EchoCapture {
    /// Start capturing on the pod's eth0 and return once the capture is
    /// known to be live: the pod pings its gateway until tshark reports one
    /// of those requests. No fixed allowance is enough on a loaded machine
    /// (a capture started half a second after tshark's "Capturing on" once
    /// missed a whole flow). The pod needs an IPv4 address.
    pub fn start(ns: &Netns) -> Self {
        let mut child = ns
            .command(program("tshark"))
            .args(["-i", "eth0", "-n", "-l", "-T", "fields"])
            .args([
                "-e", "ip.src", "-e", "ip.dst", "-e", "ipv6.src", "-e", "ipv6.dst",
            ])
            .args([
                "-f",
                "icmp[icmptype] == icmp-echo or icmp6[icmp6type] == icmp6-echo",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Both pipes are read to the end on threads of their own: closing
        // one early would end tshark with SIGPIPE.
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || for _ in stderr.lines().map_while(Result::ok) {});
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if let Some(request) = echo_request(&line) {
                    sink.lock().unwrap().push(request);
                }
            }
        });
        let capture = EchoCapture {
            child,
            lines,
            reader: Some(reader),
        };
        let started = Instant::now();
        while !capture.saw(&format!("> {GATEWAY}:")) {
            assert!(
                started.elapsed() < START_PATIENCE,
                "tshark captured nothing in {START_PATIENCE:?}"
            );
            let _ = ns
                .command(program("ping"))
                .args(["-c1", "-W", "0.2", "-n", GATEWAY])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        capture
    }

    fn saw(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// Stop the capture (SIGINT, by pid, so tshark flushes) and return one
    /// line per echo request, as tcpdump writes them (`SRC > DST: ICMP echo
    /// request`, `... ICMP6, echo request`), without the start's own
    /// requests to the gateway.
    pub fn finish(mut self) -> String {
        // Let dumpcap hand the last packets to tshark before SIGINT.
        std::thread::sleep(Duration::from_millis(500));
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let gateway = format!("> {GATEWAY}:");
        let lines = self.lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| !l.contains(&gateway))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// One line of tshark's fields (ip.src, ip.dst, ipv6.src, ipv6.dst) as
/// tcpdump would print the echo request.
fn echo_request(line: &str) -> Option<String> {
    match line.split('\t').collect::<Vec<_>>()[..] {
        [src, dst, ..] if !src.is_empty() => Some(format!("{src} > {dst}: ICMP echo request")),
        [_, _, src, dst] => Some(format!("{src} > {dst}: ICMP6, echo request")),
        _ => None,
    }
}

impl Drop for EchoCapture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
