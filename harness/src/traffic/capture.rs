//! Capture on one interface of one namespace: an AF_PACKET socket bound to the
//! interface, read by a tokio task. Frames are kept in memory tagged with the step
//! they belong to (written as pcap on request); frames that arrived carrying a
//! token also become [`Observation`]s.
//!
//! A plain AF_PACKET socket rather than a TPACKET ring: with an 8 MiB receive
//! buffer and batched reads it keeps up with the benchmark's rates here, and it
//! needs no unsafe shared-memory ring handling.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{bind, LinkAddr, SockaddrLike};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, TsResolution};
use socket2::{Domain, Socket};

use crate::lab::netns::Netns;
use crate::wire::ip;

use super::observation::{now_unix_ns, Observation, PacketRole, Protocol};
use super::sock::{ifindex_in, open_raw_in, AsyncSock, Source};
use super::token::Token;
use super::TrafficError;

/// Bytes kept of each frame: headers plus the token, enough for every check and
/// for dissectors (our probes are small, so they are kept whole).
const SNAPLEN: usize = 512;
/// Frames kept per interface before the oldest step's are the ones that count:
/// beyond this, new frames are only counted, to bound memory in long runs.
const MAX_FRAMES: usize = 1_000_000;

#[derive(Clone, Debug)]
pub struct CapturedFrame {
    pub at_unix_ns: u64,
    pub step: u32,
    /// Sent by this namespace (PACKET_OUTGOING) rather than received.
    pub outgoing: bool,
    pub orig_len: u32,
    pub data: Vec<u8>,
}

#[derive(Default)]
struct Store {
    frames: Vec<CapturedFrame>,
    observations: Vec<Observation>,
}

/// A request to the reader task: read what the kernel has queued, then answer.
type CatchUp = tokio::sync::oneshot::Sender<()>;

pub struct Capture {
    endpoint: String,
    /// Whether frames carrying a token become [`Observation`]s: at pods and
    /// external hosts (where a probe is delivered, and `seenSource` looks),
    /// not at the nodes' uplinks, whose captures are for people reading a
    /// failure.
    observe: bool,
    namespace: String,
    interface: String,
    step: AtomicU32,
    dropped: AtomicU64,
    store: Mutex<Store>,
    catch_up: tokio::sync::mpsc::UnboundedSender<CatchUp>,
}

/// A frame as read: its bytes, sent by this side, kernel arrival time.
type ReadFrame = (Vec<u8>, bool, Option<u64>);

/// Bind an AF_PACKET socket to one interface, for frames of EtherType
/// `protocol` (network byte order).
fn bind_to_interface(socket: &Socket, protocol: u16, ifindex: usize) -> std::io::Result<()> {
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol,
        sll_ifindex: i32::try_from(ifindex).map_err(std::io::Error::other)?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: neither socket2 nor nix can build a link-layer address: nix's
    // LinkAddr has no public constructor and socket2 has no sockaddr_ll at
    // all, so the one way in is `from_raw`, given a pointer to a complete,
    // initialised sockaddr_ll on the stack and its exact length.
    let addr = unsafe { LinkAddr::from_raw((&raw const sll).cast(), Some(len)) }
        .ok_or_else(|| std::io::Error::other("sockaddr_ll not accepted as a link address"))?;
    bind(std::os::fd::AsRawFd::as_raw_fd(socket), &addr).map_err(std::io::Error::from)
}

/// The frame if it came from the captured interface: frames queued before
/// bind() may come from other links.
fn from_interface(frame: &[u8], from: &Source, ifindex: usize) -> Option<ReadFrame> {
    match from.link() {
        Some((pkttype, index)) if index == ifindex => Some((
            frame.to_vec(),
            pkttype == libc::PACKET_OUTGOING,
            from.kernel_time_ns(),
        )),
        _ => None,
    }
}

/// The reader task: keep every frame as it comes, and answer each catch-up
/// request once what was queued has been read (frames are kept in the order
/// they were read, by this task alone).
async fn read_frames(
    capture: Arc<Capture>,
    sock: AsyncSock,
    ifindex: usize,
    mut requests: tokio::sync::mpsc::UnboundedReceiver<CatchUp>,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut batch = Vec::new();
        tokio::select! {
            biased;
            Some(done) = requests.recv() => {
                loop {
                    match sock.try_recv_from(&mut buf) {
                        Ok((n, from)) => batch.extend(from_interface(&buf[..n], &from, ifindex)),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => return,
                    }
                }
                capture.ingest(batch);
                let _ = done.send(());
            }
            // Cancel-safe: frames are taken from the socket only after the
            // last await inside, and handed over before it returns.
            read = sock.recv_batch(&mut buf, 256, |frame, from| {
                batch.extend(from_interface(frame, from, ifindex));
            }) => {
                if read.is_err() {
                    // The interface went away with its namespace: nothing more to see.
                    return;
                }
                capture.ingest(batch);
            }
        }
    }
}

impl Capture {
    /// Open the capture socket inside `ns` and start reading it on the runtime.
    pub(crate) fn start(
        endpoint: &str,
        ns: &Netns,
        interface: &str,
        step: u32,
        observe: bool,
    ) -> Result<(Arc<Capture>, tokio::task::JoinHandle<()>), TrafficError> {
        let ifindex = ifindex_in(ns, interface)?;
        // Every EtherType; the protocol goes to the kernel in network byte order.
        let all = (libc::ETH_P_ALL as u16).to_be();
        let socket = open_raw_in(
            ns,
            Domain::PACKET,
            socket2::Protocol::from(i32::from(all)),
            "AF_PACKET capture",
        )?;
        let fail = |source| TrafficError::Socket {
            namespace: ns.name().to_string(),
            what: "AF_PACKET capture bind",
            source,
        };
        bind_to_interface(&socket, all, ifindex).map_err(fail)?;
        let sock = AsyncSock::new(socket).map_err(fail)?;
        sock.stamp_arrivals().map_err(fail)?;
        let (catch_up, requests) = tokio::sync::mpsc::unbounded_channel();
        let capture = Arc::new(Capture {
            endpoint: endpoint.to_string(),
            observe,
            namespace: ns.name().to_string(),
            interface: interface.to_string(),
            step: AtomicU32::new(step),
            dropped: AtomicU64::new(0),
            store: Mutex::new(Store::default()),
            catch_up,
        });
        let task = tokio::spawn(read_frames(capture.clone(), sock, ifindex, requests));
        Ok((capture, task))
    }

    /// Return once every frame the kernel had queued for this capture when
    /// called has been read and kept. A frame is queued as it arrives, before
    /// the receiver's stack answers it, so after a reply came back its
    /// request is seen here: no allowance of time is needed, however loaded
    /// the machine.
    pub(crate) async fn catch_up(&self) {
        let (done, answered) = tokio::sync::oneshot::channel();
        if self.catch_up.send(done).is_ok() {
            // An error: the reader ended (its interface went), nothing left to read.
            let _ = answered.await;
        }
    }

    /// Keep a batch of (frame, sent by this side, kernel arrival time) and
    /// the observations in it; a frame without a kernel time gets the time
    /// it was read.
    fn ingest(&self, batch: Vec<ReadFrame>) {
        let read_at = now_unix_ns();
        let step = self.step.load(Ordering::Relaxed);
        let mut store = self.store.lock().unwrap();
        for (mut data, outgoing, kernel_at) in batch {
            let at = kernel_at.unwrap_or(read_at);
            if !outgoing && self.observe {
                if let Some(ip) = ip::in_ethernet(&data) {
                    if let Some(protocol) = Protocol::from_ip_protocol(ip.protocol) {
                        let role = PacketRole::of(protocol, ip.is_ipv6(), ip.payload);
                        for token in Token::find_all(ip.payload) {
                            store.observations.push(Observation {
                                endpoint: self.endpoint.clone(),
                                namespace: self.namespace.clone(),
                                interface: self.interface.clone(),
                                src: ip.src,
                                dst: ip.dst,
                                protocol,
                                role,
                                token,
                                at_unix_ns: at,
                            });
                        }
                    }
                }
            }
            if store.frames.len() >= MAX_FRAMES {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let orig_len = data.len() as u32;
            data.truncate(SNAPLEN);
            let step = ip::in_ethernet(&data)
                .and_then(|ip| Token::find_first(ip.payload))
                .map_or(step, |token| token.step);
            store.frames.push(CapturedFrame {
                at_unix_ns: at,
                step,
                outgoing,
                orig_len,
                data,
            });
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// Frames without a token (ARP, handshakes) from now on belong to `step`.
    pub fn set_step(&self, step: u32) {
        self.step.store(step, Ordering::Relaxed);
    }

    /// Frames not kept because the in-memory limit was reached.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn observations(&self, keep: impl Fn(&Observation) -> bool) -> Vec<Observation> {
        let store = self.store.lock().unwrap();
        store
            .observations
            .iter()
            .filter(|o| keep(o))
            .cloned()
            .collect()
    }

    pub fn frames(&self, step: Option<u32>) -> Vec<CapturedFrame> {
        let store = self.store.lock().unwrap();
        store
            .frames
            .iter()
            .filter(|f| step.is_none_or(|s| f.step == s))
            .cloned()
            .collect()
    }

    /// Forget frames and observations of steps before `step` (long scenarios).
    pub fn forget_before(&self, step: u32) {
        let mut store = self.store.lock().unwrap();
        store.frames.retain(|f| f.step >= step);
        store.observations.retain(|o| o.token.step >= step);
    }

    /// Write the frames of `step` (all when None) as a pcap file (Ethernet,
    /// nanosecond timestamps). Returns how many frames were written.
    pub fn write_pcap(&self, step: Option<u32>, path: &Path) -> Result<usize, TrafficError> {
        let frames = self.frames(step);
        let io_err = |e: std::io::Error| TrafficError::Pcap {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let pcap_err = |e: pcap_file::PcapError| TrafficError::Pcap {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io_err)?);
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            snaplen: SNAPLEN as u32,
            ..PcapHeader::default()
        };
        let mut writer = PcapWriter::with_header(file, header).map_err(pcap_err)?;
        for frame in &frames {
            let packet = PcapPacket::new(
                Duration::from_nanos(frame.at_unix_ns),
                frame.orig_len,
                &frame.data,
            );
            writer.write_packet(&packet).map_err(pcap_err)?;
        }
        use std::io::Write;
        writer.into_writer().flush().map_err(io_err)?;
        Ok(frames.len())
    }
}
