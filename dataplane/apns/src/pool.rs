//! Long-lived HTTP/2 connections to APNs, one per slot, used round-robin. A slot connects
//! lazily, reconnects when its connection has closed (GOAWAY, keep-alive timeout, 503
//! Shutdown), and after a failed connect waits a growing delay before trying again, so an
//! outage does not turn into a reconnect storm (Apple treats rapid reconnects as abuse).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::connect::{ConnectError, Connector, H2Sender};
use crate::metrics::ApnsMetrics;

/// A checked-out connection.
#[derive(Clone)]
pub(crate) struct Conn {
    pub(crate) id: u64,
    slot: usize,
    pub(crate) send: H2Sender,
}

#[derive(Default)]
struct SlotState {
    live: Option<Conn>,
    failures: u32,
    failed: Option<(Instant, ConnectError)>,
}

struct Slot {
    state: Mutex<SlotState>,
    connecting: tokio::sync::Mutex<()>,
}

pub(crate) struct Pool {
    connector: Connector,
    slots: Box<[Slot]>,
    next: AtomicUsize,
    ids: AtomicU64,
    reconnect_delay: Duration,
    metrics: ApnsMetrics,
}

const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(30);

impl Pool {
    pub(crate) fn new(
        connector: Connector,
        connections: usize,
        reconnect_delay: Duration,
        metrics: ApnsMetrics,
    ) -> Pool {
        let slots = (0..connections.max(1))
            .map(|_| Slot {
                state: Mutex::new(SlotState::default()),
                connecting: tokio::sync::Mutex::new(()),
            })
            .collect();
        Pool {
            connector,
            slots,
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
            reconnect_delay,
            metrics,
        }
    }

    /// The next slot's connection, connecting it if needed.
    pub(crate) async fn get(&self) -> Result<Conn, ConnectError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[i];
        if let Some(conn) = live(slot)? {
            return Ok(conn);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(conn) = live(slot)? {
            return Ok(conn);
        }
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        match self.connector.connect(id).await {
            Ok(send) => {
                self.metrics.connect("ok");
                tracing::info!(
                    conn_id = id,
                    slot = i,
                    apns = self.connector.authority(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "connected to APNs"
                );
                let conn = Conn { id, slot: i, send };
                let mut state = lock(slot);
                state.live = Some(conn.clone());
                state.failures = 0;
                state.failed = None;
                Ok(conn)
            }
            Err(e) => {
                self.metrics.connect(e.metric_label());
                let mut state = lock(slot);
                state.failures = state.failures.saturating_add(1);
                let delay = self
                    .reconnect_delay
                    .saturating_mul(1 << (state.failures - 1).min(10))
                    .min(MAX_RECONNECT_DELAY);
                tracing::warn!(
                    slot = i,
                    error = %e,
                    proxy = e.is_proxy(),
                    retry_in_ms = delay.as_millis() as u64,
                    "failed to connect to APNs"
                );
                state.failed = Some((Instant::now() + delay, e.clone()));
                Err(e)
            }
        }
    }

    /// Drops `conn` from its slot (if still there) so the next request opens a new one.
    pub(crate) fn discard(&self, conn: &Conn) {
        let mut state = lock(&self.slots[conn.slot]);
        if state.live.as_ref().is_some_and(|c| c.id == conn.id) {
            state.live = None;
        }
    }
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, SlotState> {
    slot.state.lock().unwrap_or_else(|e| e.into_inner())
}

/// The slot's open connection; `Err` while a failed connect is cooling down.
fn live(slot: &Slot) -> Result<Option<Conn>, ConnectError> {
    let mut state = lock(slot);
    if let Some(conn) = &state.live {
        if !conn.send.is_closed() {
            return Ok(Some(conn.clone()));
        }
        state.live = None;
    }
    if let Some((until, e)) = &state.failed
        && Instant::now() < *until
    {
        return Err(e.clone());
    }
    Ok(None)
}
