//! One client connection: replay, live deliveries in seq order, acks, heartbeats, close.
//!
//! Writes are batched: a burst of queued deliveries is written frame after frame into the
//! socket's buffer and flushed once. Acks are cumulative, so a connection keeps at most one
//! ack write in flight and folds the acks that arrive meanwhile into the next one;
//! deliveries are marked [`MARK_DELAY`] after a flush (the highest seq written), unless an
//! ack covered them first (an ack moves the delivered mark too), so an acking client costs
//! the store one write per burst, not two.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::{BoxFuture, OptionFuture};
use futures_util::{SinkExt, StreamExt};
use pushcluster_proto::close;
use pushcluster_proto::delivery::now_ms;
use pushcluster_proto::frame::{self, AckTarget, ClientFrame, FrameTemplate, Welcome};
use pushcluster_store::{AckOutcome, Result as StoreResult};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

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
    conn.mark().await;
    tracing::debug!(%user, conn = reg.conn, ?end, "connection ended");
    conn.finish(end).await;
    svc.metrics.connections.dec();
}

enum Never {}

/// Queued deliveries written before one flush.
const BURST: usize = 64;
/// How long after a flush its deliveries are marked, giving the client's ack the chance to
/// mark them instead.
const MARK_DELAY: Duration = Duration::from_millis(500);
/// While messages are held behind a missing seq, how often the store is read for it.
const RECHECK: Duration = Duration::from_millis(50);
/// Message ids remembered per connection, for acks that name an id instead of a seq.
const SENT_IDS: usize = 1024;

type AckWrite = BoxFuture<'static, (u64, StoreResult<AckOutcome>)>;

struct Conn<S> {
    ws: WebSocketStream<S>,
    user: String,
    /// Highest seq this client has been sent (or told us it has seen). Every message of the
    /// user at or below it has been sent on this connection, or is a gap below.
    high: u64,
    /// Seqs at or below `high` that were never sent here (they were not visible when `high`
    /// moved past them). A submit on another collect node can make a seq visible late; it is
    /// still delivered when it arrives. Bounded: the oldest are forgotten (they stay in the
    /// store and are replayed on the next connect).
    gaps: VecDeque<u64>,
    /// Whether this device has a position in the user's stream: from then on catch-ups read
    /// the backlog (acked by another device or not), not only unacked messages. False only
    /// for a device that connected without `last_seq`, until its first replay.
    positioned: bool,
    /// (seq, id) of recently sent messages, newest last.
    sent: VecDeque<(u64, Arc<str>)>,
    /// The highest seq the client acked; what `ack_in_flight` writes, or the next write.
    ack_wanted: u64,
    /// The highest seq whose ack is written (or being written).
    ack_sent: u64,
    ack_in_flight: Option<AckWrite>,
    /// The highest seq marked delivered in the store (or covered by a written ack).
    marked: u64,
    /// When to mark what was written since `marked` (set by a flush that wrote past it).
    mark_at: Option<Instant>,
    /// Since when messages wait behind a missing seq that may still be being stored (another
    /// collect node's batch): they are held for up to the reorder window, so the device gets
    /// its messages in seq order.
    held_since: Option<Instant>,
    /// When to read the store again for the missing seq (while holding).
    recheck_at: Option<Instant>,
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
            sent: VecDeque::with_capacity(16),
            ack_wanted: 0,
            ack_sent: 0,
            ack_in_flight: None,
            marked: last_seq,
            mark_at: None,
            held_since: None,
            recheck_at: None,
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
        self.feed(Message::text(welcome)).await?;
        self.catch_up().await?;
        self.flush().await?;

        let period = self.svc.config.ping_interval;
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // One timer for the delivered marks, moved rather than made per loop turn.
        let mark_timer = tokio::time::sleep(MARK_DELAY);
        tokio::pin!(mark_timer);
        loop {
            if let Some(at) = self.mark_at
                && mark_timer.deadline() != at
            {
                mark_timer.as_mut().reset(at);
            }
            tokio::select! {
                item = rx.recv() => match item {
                    Some(out) => {
                        queued.fetch_sub(out.bytes(), Ordering::AcqRel);
                        self.live(&out).await?;
                        let mut n = 1;
                        while n < BURST {
                            let Ok(more) = rx.try_recv() else { break };
                            queued.fetch_sub(more.bytes(), Ordering::AcqRel);
                            self.live(&more).await?;
                            n += 1;
                        }
                        self.flush().await?;
                    }
                    None if self.svc.hub.is_draining() => {
                        return Err(End::close(close::GOING_AWAY, close::REASON_GOING_AWAY));
                    }
                    None => {
                        return Err(End::close(close::TRY_AGAIN_LATER, close::REASON_OVERFLOW));
                    }
                },
                Some((seq, result)) = OptionFuture::from(self.ack_in_flight.as_mut()),
                    if self.ack_in_flight.is_some() =>
                {
                    self.ack_in_flight = None;
                    self.on_ack_result(seq, result).await?;
                    self.start_ack();
                }
                msg = self.ws.next() => match msg {
                    Some(Ok(msg)) => self.on_frame(msg).await?,
                    Some(Err(e)) => {
                        tracing::debug!(user = %self.user, error = %e, "read failed");
                        return Err(End::ClientGone);
                    }
                    None => return Err(End::ClientGone),
                },
                _ = until(self.recheck_at), if self.recheck_at.is_some() => {
                    self.recheck_at = None;
                    self.catch_up().await?;
                    self.flush().await?;
                }
                () = &mut mark_timer, if self.mark_at.is_some() => {
                    self.mark_at = None;
                    self.mark().await;
                }
                _ = tick.tick() => {
                    if self.last_seen.elapsed() > self.svc.config.idle_timeout {
                        return Err(End::close(close::IDLE_TIMEOUT, close::REASON_IDLE));
                    }
                    self.feed(Message::Ping(Default::default())).await?;
                    self.flush().await?;
                }
            }
        }
    }

    /// Sends the user's messages with `seq > high` from the store, in order (written, not
    /// flushed).
    async fn catch_up(&mut self) -> Result<(), End> {
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
                if p.seq > self.high + 1 && p.seq - 1 > page.high_seq && self.hold() {
                    // Seqs below this one are not in the store yet: wait for them.
                    self.recheck_at = Some(Instant::now() + RECHECK);
                    return Ok(());
                }
                let text = FrameTemplate::new(&p.id, &p.payload).render(p.seq);
                self.deliver(
                    Arc::from(p.id.as_str()),
                    p.seq,
                    p.created_at_ms,
                    text.into(),
                )
                .await?;
            }
            if !full {
                // Everything at or below the page's bound has been sent (or is a gap).
                self.advance_high(page.high_seq, false);
                self.positioned = true;
                self.held_since = None;
                self.recheck_at = None;
                return Ok(());
            }
        }
    }

    async fn live(&mut self, out: &Outbound) -> Result<(), End> {
        if out.resync {
            return self.catch_up().await;
        }
        let Some(template) = &out.frame else {
            return Ok(());
        };
        if out.seq <= self.high {
            if let Some(i) = self.gaps.iter().position(|g| *g == out.seq) {
                // A late arrival: never sent here, deliver it now.
                self.gaps.remove(i);
                let text = template.render(out.seq).into();
                return self
                    .deliver(out.id.clone(), out.seq, out.created_at_ms, text)
                    .await;
            }
            return Ok(()); // already sent by a replay
        }
        if out.seq == self.high + 1 {
            let text = template.render(out.seq).into();
            self.deliver(out.id.clone(), out.seq, out.created_at_ms, text)
                .await?;
            if self.recheck_at.is_some() {
                // The seq the held messages waited for: send them now.
                self.catch_up().await?;
            }
            return Ok(());
        }
        if self.recheck_at.is_some() {
            // Held behind a missing seq: this one is in the store and comes with the next read.
            return Ok(());
        }
        // Earlier messages are still in flight to this queue, or were stored before this
        // connection was routed: read the store first. The store's copy of this one comes
        // with them; a seq the store does not have is never trusted to move this
        // connection's position.
        self.catch_up().await?;
        if out.seq > self.high && self.recheck_at.is_none() {
            self.svc.metrics.untrusted_deliveries.inc();
            tracing::warn!(user = %self.user, seq = out.seq, high = self.high, "delivery not in the store; dropped");
        }
        Ok(())
    }

    async fn deliver(
        &mut self,
        id: Arc<str>,
        seq: u64,
        created_at_ms: u64,
        text: Utf8Bytes,
    ) -> Result<(), End> {
        self.feed(Message::Text(text)).await?;
        self.advance_high(seq, true);
        if self.sent.len() >= SENT_IDS {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, id));
        let m = &self.svc.metrics;
        m.messages_delivered.inc();
        m.delivery_latency
            .observe(now_ms().saturating_sub(created_at_ms) as f64 / 1000.0);
        Ok(())
    }

    /// Whether to keep holding messages behind a missing seq (starting the wait if none is
    /// running); once the reorder window is over they go, and the missing seq is a gap,
    /// delivered when it turns up.
    fn hold(&mut self) -> bool {
        let window = self.svc.config.reorder_window;
        if window.is_zero() {
            return false;
        }
        let since = *self.held_since.get_or_insert_with(|| {
            self.svc.metrics.reorder_holds.inc();
            Instant::now()
        });
        if since.elapsed() < window {
            return true;
        }
        self.svc.metrics.reorder_gave_up.inc();
        tracing::info!(user = %self.user, high = self.high, "a missing seq did not turn up within the reorder window; sending what follows it");
        self.held_since = None;
        false
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
                Ok(ClientFrame::Ack(target)) => self.on_ack(target).await,
                Ok(ClientFrame::Ping) => {
                    self.feed(Message::text(r#"{"type":"pong"}"#)).await?;
                    self.flush().await
                }
                Err(e) => Err(End::close(close::INVALID_FRAME, &truncate(&e.to_string()))),
            },
            Message::Binary(_) => Err(End::close(close::UNSUPPORTED_DATA, close::REASON_BINARY)),
            Message::Close(_) => Err(End::ClientGone),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    /// A cumulative ack: never past what this connection has sent (a client cannot ack a
    /// message it has not seen, and so swallow it).
    async fn on_ack(&mut self, target: AckTarget) -> Result<(), End> {
        let seq = match target {
            AckTarget::Seq(seq) => seq.min(self.high),
            AckTarget::Id(id) => match self.sent.iter().rev().find(|(_, i)| **i == *id) {
                Some((seq, _)) => *seq,
                None => {
                    let text = frame::encode_error(
                        "unknown_id",
                        "no message with this id was sent on this connection; ack by seq",
                        Some(&id),
                    );
                    self.feed(Message::text(text)).await?;
                    return self.flush().await;
                }
            },
        };
        self.ack_wanted = self.ack_wanted.max(seq);
        self.start_ack();
        Ok(())
    }

    /// Starts writing the highest wanted ack if none is being written.
    fn start_ack(&mut self) {
        if self.ack_in_flight.is_some() || self.ack_wanted <= self.ack_sent {
            return;
        }
        let seq = self.ack_wanted;
        self.ack_sent = seq;
        let (store, user) = (self.svc.store.clone(), self.user.clone());
        self.ack_in_flight = Some(Box::pin(async move {
            let r = store.ack(&user, seq).await;
            (seq, r)
        }));
    }

    async fn on_ack_result(
        &mut self,
        seq: u64,
        result: StoreResult<AckOutcome>,
    ) -> Result<(), End> {
        match result {
            Ok(outcome) => {
                if outcome == AckOutcome::Acked {
                    self.svc.metrics.messages_acked.inc();
                }
                // Both stores move the delivered mark with the ack.
                self.marked = self.marked.max(seq);
                Ok(())
            }
            Err(e) => {
                self.svc.metrics.store_error(e.metric_label());
                // Not written: the next ack (or this one again) covers it.
                self.ack_sent = self.ack_sent.min(seq.saturating_sub(1));
                let text = frame::encode_error(
                    "unavailable",
                    &format!("ack of seq {seq} not recorded, send it again"),
                    None,
                );
                self.feed(Message::text(text)).await?;
                self.flush().await
            }
        }
    }

    /// Lets the ack being written (and one more for what came after it) finish, briefly, so
    /// a client that acked and left is not sent those messages again.
    async fn settle_acks(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            for _ in 0..2 {
                if let Some(f) = self.ack_in_flight.take()
                    && let (_, Ok(AckOutcome::Acked)) = f.await
                {
                    self.svc.metrics.messages_acked.inc();
                }
                self.start_ack();
            }
        })
        .await;
    }

    /// Buffers a frame (writing to the socket once the buffer is full).
    async fn feed(&mut self, msg: Message) -> Result<(), End> {
        timed(self.svc.config.write_timeout, &self.user, self.ws.feed(msg)).await
    }

    /// Writes what is buffered; what it wrote is marked delivered within [`MARK_DELAY`].
    async fn flush(&mut self) -> Result<(), End> {
        let start = std::time::Instant::now();
        timed(self.svc.config.write_timeout, &self.user, self.ws.flush()).await?;
        self.svc.metrics.observe_stage("socket_write", start);
        if self.high > self.marked && self.mark_at.is_none() {
            self.mark_at = Some(Instant::now() + MARK_DELAY);
        }
        Ok(())
    }

    /// Records how far this user's messages were delivered, unless an ack already did.
    async fn mark(&mut self) {
        if self.high > self.marked {
            self.marked = self.high;
            if let Err(e) = self.svc.store.mark_delivered(&self.user, self.high).await {
                self.svc.metrics.store_error(e.metric_label());
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

/// Completes at `at`, never without one.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A socket write, bounded by the write timeout: a client that does not read is closed.
async fn timed<F>(limit: Duration, user: &str, write: F) -> Result<(), End>
where
    F: std::future::Future<Output = Result<(), tokio_tungstenite::tungstenite::Error>>,
{
    match tokio::time::timeout(limit, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!(%user, error = %e, "write failed");
            Err(End::ClientGone)
        }
        Err(_) => {
            tracing::info!(%user, "write timed out; closing slow connection");
            Err(End::ClientGone)
        }
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
