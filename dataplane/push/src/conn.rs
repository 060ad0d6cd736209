//! One client connection: replay, live deliveries in seq order, acks, heartbeats, close.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt, StreamExt};
use pushcluster_proto::close;
use pushcluster_proto::delivery::now_ms;
use pushcluster_proto::frame::{self, ClientFrame, Welcome};
use pushcluster_store::{AckOutcome, Result as StoreResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::PushService;
use crate::hub::Outbound;

/// Why a connection ends.
#[derive(Debug)]
enum End {
    /// The client closed or the socket broke: nothing to send.
    ClientGone,
    /// We close with this code and reason.
    Close(u16, String),
}

impl End {
    fn close(code: u16, reason: &str) -> End {
        End::Close(code, reason.to_owned())
    }
}

/// Serves one authenticated connection until it ends.
pub async fn serve<S>(ws: WebSocketStream<S>, user: String, last_seq: u64, svc: Arc<PushService>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    svc.metrics.connections.inc();
    let queue = (svc.config.send_queue, svc.config.send_queue_bytes);
    let reg = match svc.hub.register(&user, queue.0, queue.1).await {
        Ok(reg) => reg,
        Err(e) => {
            tracing::warn!(%user, error = %e, "cannot route connection");
            let mut conn = Conn::new(ws, user, last_seq, svc.clone());
            conn.finish(End::close(1011, "route table unavailable, reconnect later"))
                .await;
            svc.metrics.connections.dec();
            return;
        }
    };
    let mut conn = Conn::new(ws, user.clone(), last_seq, svc.clone());
    let end = match conn.run(reg.rx, &reg.queued).await {
        Ok(never) => match never {},
        Err(end) => end,
    };
    svc.hub.unregister(&user, reg.conn).await;
    conn.settle_acks().await;
    tracing::debug!(%user, conn = reg.conn, ?end, "connection ended");
    conn.finish(end).await;
    svc.metrics.connections.dec();
}

enum Never {}

/// Acks recorded concurrently per connection before it stops reading frames.
const MAX_ACKS_IN_FLIGHT: usize = 64;

struct Conn<S> {
    ws: WebSocketStream<S>,
    user: String,
    /// Highest seq this client has been sent (or told us it has seen). Every pending message
    /// at or below it has been sent on this connection.
    high: u64,
    /// Seqs at or below `high` that were never sent here (they were not visible when `high`
    /// moved past them). With MongoDB a concurrent submit can make a seq visible late; it is
    /// still delivered when it arrives. Bounded: the oldest are forgotten (they stay pending
    /// and are replayed on the next connect).
    gaps: std::collections::VecDeque<u64>,
    /// Whether this device has a position in the user's stream: from then on catch-ups read
    /// the backlog (acked by another device or not), not only unacked messages. False only
    /// for a device that connected without `last_seq`, until its first replay.
    positioned: bool,
    /// Acks being recorded. They run beside the delivery loop, so a slow store write never
    /// holds up the next message; past [`MAX_ACKS_IN_FLIGHT`] the loop stops reading frames
    /// until one finishes (backpressure on a client that acks faster than the store writes).
    acks: FuturesUnordered<BoxFuture<'static, (String, StoreResult<AckOutcome>)>>,
    last_seen: Instant,
    svc: Arc<PushService>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    fn new(ws: WebSocketStream<S>, user: String, last_seq: u64, svc: Arc<PushService>) -> Self {
        Conn {
            ws,
            user,
            high: last_seq,
            gaps: Default::default(),
            positioned: last_seq > 0,
            acks: FuturesUnordered::new(),
            last_seen: Instant::now(),
            svc,
        }
    }

    async fn run(
        &mut self,
        mut rx: mpsc::Receiver<Arc<Outbound>>,
        queued: &AtomicUsize,
    ) -> Result<Never, End> {
        let welcome = frame::encode_welcome(&Welcome {
            user: self.user.clone(),
            node: self.svc.hub.node().to_string(),
            ping_interval_secs: self.svc.config.ping_interval.as_secs(),
        });
        self.send(Message::text(welcome)).await?;
        self.catch_up(None).await?;

        let period = self.svc.config.ping_interval;
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(out) => {
                        queued.fetch_sub(out.frame.len(), Ordering::AcqRel);
                        self.live(&out).await?
                    }
                    None if self.svc.hub.is_draining() => {
                        return Err(End::close(close::GOING_AWAY, close::REASON_GOING_AWAY));
                    }
                    None => {
                        return Err(End::close(close::TRY_AGAIN_LATER, close::REASON_OVERFLOW));
                    }
                },
                Some((id, result)) = self.acks.next(), if !self.acks.is_empty() => {
                    self.on_ack_result(id, result).await?;
                }
                msg = self.ws.next(), if self.acks.len() < MAX_ACKS_IN_FLIGHT => match msg {
                    Some(Ok(msg)) => self.on_frame(msg).await?,
                    Some(Err(e)) => {
                        tracing::debug!(user = %self.user, error = %e, "read failed");
                        return Err(End::ClientGone);
                    }
                    None => return Err(End::ClientGone),
                },
                _ = tick.tick() => {
                    if self.last_seen.elapsed() > self.svc.config.idle_timeout {
                        return Err(End::close(close::IDLE_TIMEOUT, close::REASON_IDLE));
                    }
                    self.send(Message::Ping(Default::default())).await?;
                }
            }
        }
    }

    /// Sends pending messages with `seq > high` (up to `until`, if given), in order.
    async fn catch_up(&mut self, until: Option<u64>) -> Result<(), End> {
        let page_size = self.svc.config.replay_page.max(1);
        loop {
            let store = &self.svc.store;
            let start = std::time::Instant::now();
            let page = if self.positioned {
                store.backlog(&self.user, self.high, page_size).await
            } else {
                store.pending(&self.user, self.high, page_size).await
            };
            self.svc.metrics.observe_stage("replay", start);
            let page = page.map_err(|e| {
                self.svc.metrics.store_error(e.metric_label());
                tracing::warn!(user = %self.user, error = %e, "replay failed");
                End::close(1011, "message store unavailable, reconnect later")
            })?;
            let full = page.items.len() >= page_size;
            for p in page.items {
                if let Some(u) = until
                    && p.seq > u
                {
                    self.advance_high(u, false);
                    return Ok(());
                }
                let text = frame::encode_message(&p.id, p.seq, &p.payload);
                self.deliver(&p.id, p.seq, p.created_at_ms, text.into())
                    .await?;
            }
            if !full {
                // Everything pending at or below the snapshot's high seq has been sent.
                let bound = match until {
                    Some(u) => u.min(page.high_seq),
                    None => page.high_seq,
                };
                self.advance_high(bound, false);
                self.positioned = true;
                return Ok(());
            }
        }
    }

    async fn live(&mut self, out: &Outbound) -> Result<(), End> {
        if out.resync {
            return self.catch_up(None).await;
        }
        if out.seq <= self.high {
            if let Some(i) = self.gaps.iter().position(|g| *g == out.seq) {
                // A late arrival: never sent here, deliver it now.
                self.gaps.remove(i);
                return self
                    .deliver(&out.id, out.seq, out.created_at_ms, out.frame.clone())
                    .await;
            }
            return Ok(()); // already sent by a replay
        }
        if out.seq > self.high + 1 {
            // Earlier messages may still be in flight to this queue, or were stored before
            // this connection was routed: fill the gap from the store first.
            self.catch_up(Some(out.seq - 1)).await?;
        }
        if out.seq > self.high {
            self.deliver(&out.id, out.seq, out.created_at_ms, out.frame.clone())
                .await?;
        }
        Ok(())
    }

    async fn deliver(
        &mut self,
        id: &str,
        seq: u64,
        created_at_ms: u64,
        text: tokio_tungstenite::tungstenite::Utf8Bytes,
    ) -> Result<(), End> {
        let start = std::time::Instant::now();
        self.send(Message::Text(text)).await?;
        self.svc.metrics.observe_stage("socket_write", start);
        self.advance_high(seq, true);
        let m = &self.svc.metrics;
        m.messages_delivered.inc();
        m.delivery_latency
            .observe(now_ms().saturating_sub(created_at_ms) as f64 / 1000.0);
        if let Err(e) = self.svc.store.mark_delivered(id, &self.user).await {
            m.store_error(e.metric_label());
        }
        Ok(())
    }

    /// Moves `high` up to `to` (itself sent here or not), remembering skipped seqs as gaps.
    fn advance_high(&mut self, to: u64, sent: bool) {
        const MAX_GAPS: usize = 64;
        if to <= self.high {
            return;
        }
        if to - self.high <= MAX_GAPS as u64 {
            let end = if sent { to } else { to + 1 };
            self.gaps.extend(self.high + 1..end);
        }
        while self.gaps.len() > MAX_GAPS {
            self.gaps.pop_front();
        }
        self.high = to;
    }

    async fn on_frame(&mut self, msg: Message) -> Result<(), End> {
        self.last_seen = Instant::now();
        match msg {
            Message::Text(text) => match frame::decode_client(&text) {
                Ok(ClientFrame::Ack { id }) => {
                    self.on_ack(id);
                    Ok(())
                }
                Ok(ClientFrame::Ping) => self.send(Message::text(r#"{"type":"pong"}"#)).await,
                Err(e) => Err(End::close(close::INVALID_FRAME, &truncate(&e.to_string()))),
            },
            Message::Binary(_) => Err(End::close(close::UNSUPPORTED_DATA, close::REASON_BINARY)),
            Message::Close(_) => Err(End::ClientGone),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    /// Lets acks still being written finish (briefly), so a client that acked and left is
    /// not sent those messages again.
    async fn settle_acks(&mut self) {
        let acks = &mut self.acks;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some((_, result)) = acks.next().await {
                if let Ok(AckOutcome::Acked) = result {
                    self.svc.metrics.messages_acked.inc();
                }
            }
        })
        .await;
    }

    /// Starts recording an ack; its result is handled by [`Conn::on_ack_result`].
    fn on_ack(&mut self, id: String) {
        let (store, user) = (self.svc.store.clone(), self.user.clone());
        self.acks.push(Box::pin(async move {
            let result = store.ack(&user, &id).await;
            (id, result)
        }));
    }

    async fn on_ack_result(
        &mut self,
        id: String,
        result: StoreResult<AckOutcome>,
    ) -> Result<(), End> {
        match result {
            Ok(AckOutcome::Acked) => {
                self.svc.metrics.messages_acked.inc();
                Ok(())
            }
            Ok(AckOutcome::AlreadyFinal) => Ok(()),
            Ok(AckOutcome::Unknown) => {
                let text =
                    frame::encode_error("unknown_id", "no such message for this user", Some(&id));
                self.send(Message::text(text)).await
            }
            Err(e) => {
                self.svc.metrics.store_error(e.metric_label());
                let text = frame::encode_error(
                    "unavailable",
                    "ack not recorded, send it again",
                    Some(&id),
                );
                self.send(Message::text(text)).await
            }
        }
    }

    async fn send(&mut self, msg: Message) -> Result<(), End> {
        match tokio::time::timeout(self.svc.config.write_timeout, self.ws.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::debug!(user = %self.user, error = %e, "write failed");
                Err(End::ClientGone)
            }
            Err(_) => {
                tracing::info!(user = %self.user, "write timed out; closing slow connection");
                Err(End::ClientGone)
            }
        }
    }

    /// Sends the close frame (if any) and waits briefly for the client's reply.
    async fn finish(&mut self, end: End) {
        let End::Close(code, reason) = end else {
            return;
        };
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            if ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = ws.next().await {}
            }
        })
        .await;
    }
}

/// Close reasons must fit in 123 bytes.
fn truncate(s: &str) -> String {
    let mut end = s.len().min(120);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
