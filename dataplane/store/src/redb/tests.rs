use super::*;

use crate::conformance::{self, msg, new};

fn open() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    store.set_handoff_lease(std::time::Duration::ZERO);
    (dir, store)
}

#[tokio::test]
async fn seqs_and_pending_order() {
    conformance::seqs_and_pending_order(&open().1).await;
}

#[tokio::test]
async fn ack_and_status() {
    conformance::ack_and_status(&open().1).await;
}

#[tokio::test]
async fn idempotency() {
    conformance::idempotency(&open().1).await;
}

#[tokio::test]
async fn outbox() {
    conformance::outbox(&open().1).await;
}

#[tokio::test]
async fn expiry_and_purge() {
    conformance::expiry_and_purge(&open().1, DEFAULT_RETENTION_MS).await;
}

#[tokio::test]
async fn backlog_includes_acked() {
    conformance::backlog_includes_acked(&open().1).await;
}

#[tokio::test]
async fn fan_out() {
    conformance::fan_out(&open().1, 10_000).await;
}

#[tokio::test]
async fn devices_and_mobile_records() {
    let (_d, store) = open();
    conformance::devices(&store).await;
    conformance::mobile_records(&store, DEFAULT_RETENTION_MS).await;
    conformance::retryable_mobile(&store).await;
}

/// An ack never moves the watermark past the seqs handed out: it cannot swallow a message
/// that does not exist yet.
#[tokio::test]
async fn acks_stop_at_the_highest_seq() {
    let (_d, store) = open();
    new(&store, msg(&["w"], "1", None, 60)).await;
    assert_eq!(store.ack("w", 99).await.unwrap(), AckOutcome::Acked);
    let next = new(&store, msg(&["w"], "2", None, 60)).await;
    assert_eq!(next.recipients[0].1, 2);
    assert_eq!(store.pending("w", 0, 10).await.unwrap().items.len(), 1);
    // The counters are in memory now: the ack takes the fast path, and stops there too.
    assert_eq!(store.ack("w", 99).await.unwrap(), AckOutcome::Acked);
    let third = new(&store, msg(&["w"], "3", None, 60)).await;
    assert_eq!(third.recipients[0].1, 3);
    assert_eq!(store.pending("w", 0, 10).await.unwrap().items.len(), 1);
}

/// Acks taken in memory while the writer submits for the same users and writes the marks
/// (every sweep writes them): none is lost, no seq is handed out twice, after a reopen too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_in_memory_race_submits_and_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let users = ["r0", "r1", "r2", "r3"];
    {
        let store = RedbStore::open(dir.path()).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sweeper = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    store.expire(now_ms()).await.unwrap();
                }
            })
        };
        let tasks: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut seqs = Vec::new();
                    for i in 0..150 {
                        let user = users[(t + i) % users.len()];
                        let m = new(&store, msg(&[user], "1", None, 60)).await;
                        let seq = m.recipients[0].1;
                        store.ack(user, seq).await.unwrap();
                        seqs.push((user, seq));
                    }
                    seqs
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sweeper.await.unwrap();
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        assert_eq!(all.len(), before, "a seq was handed out twice");
        for user in users {
            let page = store.pending(user, 0, 1000).await.unwrap();
            assert_eq!(page.items.len(), 0, "{user}: every message was acked");
            assert_eq!(page.high_seq, 300, "{user}");
        }
    }
    let store = reopen(dir.path()).await;
    for user in users {
        let page = store.pending(user, 0, 1000).await.unwrap();
        assert_eq!(page.items.len(), 0, "{user}: acks written on close");
        assert_eq!(page.high_seq, 300, "{user}");
    }
}

#[tokio::test]
async fn survives_reopen_with_its_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = RedbStore::open(dir.path()).unwrap();
        let id = new(&store, msg(&["u1"], "[1]", None, 60)).await.id;
        drop(store);
        id
    };
    let store = reopen(dir.path()).await;
    let page = store.pending("u1", 0, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].id, id);
    assert_eq!(page.high_seq, 1);
    // Never dispatched: the batch is still in the outbox, and due at once — the hand-off
    // lease it got before the restart belonged to the process that is gone.
    let left = store
        .claim_outbox("after-restart", std::time::Duration::from_secs(10), 10)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].messages[0].id, id);
    let next = new(&store, msg(&["u1"], "2", None, 60)).await;
    assert_eq!(next.recipients[0].1, 2);
}

/// Acks and delivered marks are applied in memory and written later; a store that closes
/// writes them, and until then reads see them.
#[tokio::test]
async fn deferred_marks_are_seen_at_once_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (acked, delivered) = {
        let store = RedbStore::open(dir.path()).unwrap();
        let a = new(&store, msg(&["u1", "u2"], "1", None, 60)).await;
        new(&store, msg(&["u1"], "2", None, 60)).await;
        assert_eq!(store.ack("u1", 1).await.unwrap(), AckOutcome::Acked);
        store.mark_delivered("u2", 1).await.unwrap();
        // Visible before any commit wrote them.
        let page = store.pending("u1", 0, 10).await.unwrap();
        assert_eq!(page.items.iter().map(|p| p.seq).collect::<Vec<_>>(), [2]);
        assert_eq!(page.high_seq, 2);
        let states = recipient_states(&store, &a.id).await;
        assert_eq!(states, [RecipientState::Acked, RecipientState::Delivered]);
        drop(store);
        (a.id, states)
    };
    let store = reopen(dir.path()).await;
    assert_eq!(recipient_states(&store, &acked).await, delivered);
    let page = store.pending("u1", 0, 10).await.unwrap();
    assert_eq!(
        page.items.len(),
        1,
        "the ack was written when the store closed"
    );
    assert_eq!(store.ack("u1", 1).await.unwrap(), AckOutcome::AlreadyFinal);
}

/// A user's seqs come from its last index entry; once a purge removed every entry, its row
/// still holds the high, so seqs never go back — in the same run and after a reopen.
#[tokio::test]
async fn seqs_never_go_back_after_a_purge() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = RedbStore::open(dir.path()).unwrap();
        new(&store, msg(&["p"], "1", None, 1)).await;
        new(&store, msg(&["p"], "2", None, 1)).await;
        let far = now_ms() + 10 * DEFAULT_RETENTION_MS;
        assert_eq!(store.expire(far).await.unwrap(), 2);
        assert_eq!(store.backlog("p", 0, 10).await.unwrap().high_seq, 2);
        let next = new(&store, msg(&["p"], "3", None, 1)).await;
        assert_eq!(next.recipients[0].1, 3);
        assert_eq!(store.expire(far).await.unwrap(), 1);
    }
    let store = reopen(dir.path()).await;
    let next = new(&store, msg(&["p"], "4", None, 60)).await;
    assert_eq!(next.recipients[0].1, 4);
}

async fn recipient_states(store: &RedbStore, id: &str) -> Vec<RecipientState> {
    let status = store.status(id).await.unwrap().unwrap();
    status.recipients.iter().map(|r| r.state).collect()
}

/// Opens the store in `dir` again once the previous one let go of it: the writer thread holds
/// the database until its channel closes (and its last commit is durable).
async fn reopen(dir: &std::path::Path) -> RedbStore {
    let mut attempts = 0;
    loop {
        match RedbStore::open(dir) {
            Ok(s) => return s,
            Err(e) if attempts < 250 => {
                attempts += 1;
                tracing::debug!(error = %e, "store still locked");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await
            }
            Err(e) => panic!("store did not reopen: {e}"),
        }
    }
}
