//! A node's conntrack entries followed through the kernel's conntrack events,
//! so that deleting the few a move concerns needs no dump.
//!
//! A dump walks every bucket of the kernel's conntrack hash, which all
//! namespaces share (262,144 buckets on this machine): about 5 ms of CPU per
//! node and per move however few entries the node has. The map backend
//! instead keeps, per node, a socket subscribed to the new and destroy events
//! (the multicast groups `conntrack -E` listens to), synchronised once by a
//! dump, and deletes matching entries by their tuple. Felix itself runs the
//! `conntrack` program (felix/conntrack/conntrack.go `RemoveConntrackFlows`),
//! a dump per call; this is the harness's choice for its own backend, like
//! the maps themselves.
//!
//! When the kernel could not deliver an event (the socket's queue overflowed:
//! ENOBUFS), the record is no longer trusted and the next deletion dumps
//! again.
//!
//! A watch opened while the node tracks nothing (the kernel's count of the
//! namespace's entries is 0 once the socket is subscribed) needs no dump at
//! all: every entry made later is confirmed after the subscription, so its
//! event reaches the socket. The runner opens one per node before anything
//! flows in the lab ([`KernelFlows::follow`]), for all three netfilter
//! backends: Felix's iptables and nftables modes delete with the `conntrack`
//! program (felix/conntrack/conntrack.go `RemoveConntrackFlows`: `conntrack
//! --family F --delete --orig-src IP`, then `--reply-src IP`), which dumps
//! the table and deletes each entry that matches; a record kept from the
//! events holds the same entries as that dump at the moment of the
//! deletion, so the same entries go (the harness's rules, matched as
//! before). Only the cost differs: 5 ms of CPU per dump, about a tenth of a
//! catalogue run's CPU before (docs/benchmarks.md, session 9).

use std::collections::HashMap;

use netlink_packet_netfilter::conntrack::ConntrackMessage;
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use rtnetlink::packet_core::NetlinkPayload;

use super::conntrack::{
    entry_from_attributes, split_datagram, Conntrack, ConntrackEntry, ConntrackError,
    ConntrackMatch,
};
use super::nfnl::set_int_option;
use super::per_node::PerNode;
use super::DataplaneError;
use crate::lab::netns::Netns;

/// The kernel's count of the namespace's conntrack entries, read from inside it.
const COUNT_FILE: &str = "/proc/sys/net/netfilter/nf_conntrack_count";

/// NFNLGRP_CONNTRACK_NEW and NFNLGRP_CONNTRACK_DESTROY
/// (linux/netfilter/nfnetlink.h).
const NEW_EVENTS: u32 = 1;
const DESTROY_EVENTS: u32 = 3;
/// Receive queue for events between two deletions: a burst of new flows
/// beyond it costs a dump, not a wrong answer.
const EVENT_BUFFER: libc::c_int = 4 << 20;

/// The conntrack entries of one node, kept current from its events.
#[derive(Debug)]
pub struct ConntrackWatch {
    netns: String,
    events: Socket,
    requests: Conntrack,
    /// Entries by the kernel's id; `None` until a dump fills it, and again
    /// after an event was lost.
    entries: Option<HashMap<u32, ConntrackEntry>>,
}

impl ConntrackWatch {
    /// Subscribe to `node`'s conntrack events. When the node tracks no
    /// entry at that moment the record starts empty and complete; otherwise
    /// the first deletion dumps the table once. Events queued from here on
    /// keep it current.
    pub fn open(node: &Netns) -> Result<Self, ConntrackError> {
        let netns = node.name().to_string();
        let io = |action: &'static str| {
            let netns = netns.clone();
            move |source| ConntrackError::Io {
                netns: netns.clone(),
                action,
                source,
            }
        };
        // The count is read after the subscription: an entry it does not
        // count was allocated after it, so its event is queued. Both sockets
        // are opened on the one thread that entered the node.
        let (events, count, requests) = node.run(|| {
            let subscribe = || -> std::io::Result<Socket> {
                let mut socket = Socket::new(NETLINK_NETFILTER)?;
                socket.bind(&SocketAddr::new(0, 0))?;
                socket.add_membership(NEW_EVENTS)?;
                socket.add_membership(DESTROY_EVENTS)?;
                Ok(socket)
            };
            let events = subscribe().map_err(io("subscribe to conntrack events"))?;
            let count: Option<u64> = std::fs::read_to_string(COUNT_FILE)
                .ok()
                .and_then(|text| text.trim().parse().ok());
            Ok::<_, ConntrackError>((events, count, Conntrack::open_here(node.name())?))
        })??;
        events
            .set_non_blocking(true)
            .map_err(io("make the event socket non-blocking"))?;
        // SO_RCVBUFFORCE (root) past net.core.rmem_max; in a user namespace
        // only SO_RCVBUF, capped at rmem_max.
        set_receive_buffer(&events).map_err(io("size the event queue"))?;
        Ok(Self {
            netns,
            events,
            requests,
            entries: (count == Some(0)).then(HashMap::new),
        })
    }

    /// Whether the record is complete now, with no dump (a test's question).
    pub fn trusted(&self) -> bool {
        self.entries.is_some()
    }

    /// Delete the entries any of `rules` selects; returns how many went.
    pub fn delete_matching(&mut self, rules: &[ConntrackMatch]) -> Result<usize, ConntrackError> {
        let trusted = self.catch_up()?;
        let mut entries = self.entries.take().unwrap_or_default();
        let doomed: Vec<u32> = entries
            .iter()
            .filter(|(_, entry)| rules.iter().any(|r| r.matches(entry)))
            .map(|(id, _)| *id)
            .collect();
        let mut deleted = 0;
        for id in doomed {
            if let Some(entry) = entries.remove(&id) {
                if self.requests.delete(&entry)? {
                    deleted += 1;
                }
            }
        }
        if trusted {
            self.entries = Some(entries);
        }
        Ok(deleted)
    }

    /// Bring the record up to date: apply the queued events, or when there
    /// is no trusted record, dump the table and apply what came meanwhile.
    /// `false` when events were lost even then: the record is as good as a
    /// dump for this deletion, but must not be kept.
    fn catch_up(&mut self) -> Result<bool, ConntrackError> {
        if self.entries.is_some() && self.apply_events()? {
            return Ok(true);
        }
        // Events queued before the dump are older than it: drop them. Those
        // queued during and after it are newer, and replaying them on top of
        // the dump gives the table as it is now (each entry's last event is
        // its latest state).
        self.drain();
        let dumped = self
            .requests
            .list()?
            .into_iter()
            .filter_map(|entry| entry.id.map(|id| (id, entry)))
            .collect();
        self.entries = Some(dumped);
        self.apply_events()
    }

    /// Read every queued event into the record. `false` when the kernel
    /// dropped events (the record cannot be trusted).
    fn apply_events(&mut self) -> Result<bool, ConntrackError> {
        loop {
            let data = match self.events.recv_from_full() {
                Ok((data, _)) => data,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.drain();
                    return Ok(false);
                }
                Err(source) => {
                    return Err(ConntrackError::Io {
                        netns: self.netns.clone(),
                        action: "read conntrack events",
                        source,
                    })
                }
            };
            if !self.apply_datagram(&data)? {
                return Ok(false);
            }
        }
    }

    /// One datagram of events; `false` when an event lacked what the record
    /// needs (its id).
    fn apply_datagram(&mut self, data: &[u8]) -> Result<bool, ConntrackError> {
        let Some(entries) = self.entries.as_mut() else {
            return Ok(true);
        };
        for message in split_datagram(&self.netns, data)? {
            let NetlinkPayload::InnerMessage(NetfilterMessage {
                inner: NetfilterMessageInner::Conntrack(event),
                ..
            }) = message.payload
            else {
                continue;
            };
            let (created, attributes) = match event {
                ConntrackMessage::New(attributes) => (true, attributes),
                ConntrackMessage::Delete(attributes) => (false, attributes),
                _ => continue,
            };
            let Some(entry) = entry_from_attributes(&attributes) else {
                return Ok(false);
            };
            let Some(id) = entry.id else {
                return Ok(false);
            };
            if created {
                entries.insert(id, entry);
            } else {
                entries.remove(&id);
            }
        }
        Ok(true)
    }

    /// Throw away what is queued (after a loss, a dump replaces it).
    fn drain(&self) {
        while self.events.recv_from_full().is_ok() {}
    }
}

fn set_receive_buffer(socket: &Socket) -> std::io::Result<()> {
    set_int_option(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, EVENT_BUFFER).or_else(
        |e| match e.raw_os_error() {
            Some(libc::EPERM) => {
                set_int_option(socket, libc::SOL_SOCKET, libc::SO_RCVBUF, EVENT_BUFFER)
            }
            _ => Err(e),
        },
    )
}

/// The kernel conntrack tables of a backend's nodes, each followed by a
/// [`ConntrackWatch`] kept open until the node is removed (closing a
/// NETLINK_NETFILTER socket can cost the kernel an RCU grace period, see
/// `NfSocket`).
#[derive(Debug, Default)]
pub(crate) struct KernelFlows {
    watches: PerNode<ConntrackWatch>,
}

impl KernelFlows {
    /// Start following `node`'s table, if not yet followed: best before
    /// anything flows there, when the record needs no dump.
    pub(crate) fn follow(&self, node: &Netns) -> Result<(), DataplaneError> {
        let watch = match self.watches.take(node) {
            Some(watch) => watch,
            None => ConntrackWatch::open(node).map_err(|e| conntrack_error(node, e))?,
        };
        self.watches.put(node, watch);
        Ok(())
    }

    /// Delete the entries any of `rules` selects (following the node's
    /// table from now on if it was not); returns how many went.
    pub(crate) fn flush(
        &self,
        node: &Netns,
        rules: &[ConntrackMatch],
    ) -> Result<usize, DataplaneError> {
        let mut watch = match self.watches.take(node) {
            Some(watch) => watch,
            None => ConntrackWatch::open(node).map_err(|e| conntrack_error(node, e))?,
        };
        let deleted = watch
            .delete_matching(rules)
            .map_err(|e| conntrack_error(node, e))?;
        self.watches.put(node, watch);
        Ok(deleted)
    }

    /// Stop following `node`'s table.
    pub(crate) fn forget(&self, node: &Netns) {
        self.watches.forget(node);
    }
}

fn conntrack_error(node: &Netns, source: ConntrackError) -> DataplaneError {
    DataplaneError::Conntrack {
        netns: node.name().to_string(),
        source,
    }
}
