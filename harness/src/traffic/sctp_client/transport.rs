//! The probe transport's SCTP half: the association's handshake, DATA with
//! SACKs and path supervision, and its close, sent and pumped through the
//! transport's raw socket ([`super::super::probe`]). A child of the client so
//! it reaches the association's state; the transport (above) holds the
//! client (below), and neither imports the other back.

use std::time::{Duration, Instant};

use crate::wire::sctp::{ChunkRepr, DataChunk, InitChunk, SackChunk};

use super::super::probe::Transport;
use super::super::raw::A_RWND;
use super::{SctpClient, ATTEMPTS, PATH_SILENCE, STEP_WAIT};

impl Transport {
    fn client(&mut self) -> &mut SctpClient {
        self.sctp
            .as_mut()
            .expect("the SCTP transport opened its association")
    }

    /// Send one probe payload as DATA (with a SACK when one is due): after
    /// setting the association up again if the peer aborted it, and after a
    /// HEARTBEAT if the path has been silent.
    pub(in crate::traffic) async fn sctp_send(&mut self, payload: &[u8]) -> std::io::Result<()> {
        if self.sctp.as_ref().is_some_and(|c| c.reconnect_due) {
            self.sctp_connect().await;
        }
        let port = self.ctx.port;
        let client = self.client();
        let path_silent = client.established
            && client.last_heard.elapsed() > PATH_SILENCE
            && client.last_heartbeat.elapsed() > PATH_SILENCE;
        if path_silent {
            client.last_heartbeat = Instant::now();
            client.events.push("HEARTBEAT sent (path silent)".into());
            let peer_tag = client.peer_tag;
            self.send_control(peer_tag, ChunkRepr::Heartbeat { info: payload })
                .await;
        }
        let client = self.client();
        let mut chunks = Vec::with_capacity(2);
        if client.sack_due {
            chunks.push(ChunkRepr::Sack(SackChunk::cumulative(
                client.peer_cum_tsn,
                A_RWND,
            )));
            client.sack_due = false;
        }
        chunks.push(ChunkRepr::Data(DataChunk::whole_message(
            client.next_tsn,
            0,
            client.next_ssn,
            0,
            payload,
        )));
        client.next_tsn = client.next_tsn.wrapping_add(1);
        client.next_ssn = client.next_ssn.wrapping_add(1);
        let bytes = client.packet(port, client.peer_tag, chunks)?;
        self.send_raw(&bytes).await
    }

    /// How long one handshake or shutdown step waits for its answer.
    fn step_wait(&self) -> Duration {
        match self.ctx.handshake {
            Some(budget) => budget / ATTEMPTS as u32,
            None => STEP_WAIT.min(self.ctx.timeout),
        }
    }

    /// Pump incoming packets until `done` holds or `wait` passes.
    async fn pump_until(&mut self, wait: Duration, done: impl Fn(&SctpClient) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        let mut sink = Vec::new();
        loop {
            if self.sctp.as_ref().is_some_and(&done) {
                return true;
            }
            match tokio::time::timeout_at(deadline, self.recv()).await {
                Ok(Ok(incoming)) => self.process(incoming, &mut sink),
                _ => return self.sctp.as_ref().is_some_and(&done),
            }
        }
    }

    /// A control chunk alone in a packet. A failed send shows as a missing
    /// answer, which the caller already handles.
    async fn send_control(&mut self, vtag: u32, chunk: ChunkRepr<'_>) {
        let port = self.ctx.port;
        if let Ok(bytes) = self.client().packet(port, vtag, vec![chunk]) {
            let _ = self.send_raw(&bytes).await;
        }
    }

    fn note(&mut self, event: &str) {
        self.client().events.push(event.into());
    }

    /// INIT, INIT ACK, COOKIE ECHO, COOKIE ACK. Failures are recorded in the
    /// events and show as lost DATA, so a broken path is a finding, not an error.
    pub(in crate::traffic) async fn sctp_connect(&mut self) {
        // A reconnect keeps the history of the association it replaces.
        let (events, generation) = self
            .sctp
            .take()
            .map(|c| (c.events, c.generation + 1))
            .unwrap_or_default();
        let client = SctpClient::new(self.ctx.probe, self.ctx.seed, generation, events);
        let init = InitChunk {
            initiate_tag: client.local_tag,
            a_rwnd: A_RWND,
            outbound_streams: 1,
            inbound_streams: 1,
            initial_tsn: client.next_tsn,
            params: Vec::new(),
        };
        self.sctp = Some(client);
        for _attempt in 0..ATTEMPTS {
            self.note("INIT sent");
            self.send_control(0, ChunkRepr::Init(init.clone())).await;
            if self.pump_until(self.step_wait(), |c| c.peer_tag != 0).await {
                break;
            }
        }
        let client = self.client();
        let Some(cookie) = client.cookie.clone() else {
            return;
        };
        let peer_tag = client.peer_tag;
        for _attempt in 0..ATTEMPTS {
            self.note("COOKIE ECHO sent");
            self.send_control(peer_tag, ChunkRepr::CookieEcho { cookie: &cookie })
                .await;
            if self.pump_until(self.step_wait(), |c| c.established).await {
                break;
            }
        }
    }

    /// HEARTBEAT, then SHUTDOWN / SHUTDOWN ACK / SHUTDOWN COMPLETE.
    pub(in crate::traffic) async fn sctp_close(&mut self, heartbeat_info: &[u8]) {
        let Some(client) = &self.sctp else { return };
        if !client.established {
            return;
        }
        let peer_tag = client.peer_tag;
        self.note("HEARTBEAT sent");
        self.send_control(
            peer_tag,
            ChunkRepr::Heartbeat {
                info: heartbeat_info,
            },
        )
        .await;
        self.pump_until(self.step_wait(), |c| c.heartbeat_acked)
            .await;
        let cum_tsn_ack = self.client().peer_cum_tsn;
        self.note("SHUTDOWN sent");
        self.send_control(peer_tag, ChunkRepr::Shutdown { cum_tsn_ack })
            .await;
        if self
            .pump_until(self.step_wait(), |c| c.shutdown_acked)
            .await
        {
            self.note("SHUTDOWN COMPLETE sent");
            self.send_control(
                peer_tag,
                ChunkRepr::ShutdownComplete {
                    reflected_tag: false,
                },
            )
            .await;
        }
    }
}
