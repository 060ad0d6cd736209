use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

/// Answers each request from a script of per-item verdicts (default accepted) and records
/// which items each request carried.
#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Vec<Verdict>>>,
    requests: Mutex<Vec<Vec<usize>>>,
    refreshes: AtomicU32,
}

impl Script {
    fn new(replies: Vec<Vec<Verdict>>) -> Script {
        Script {
            replies: Mutex::new(replies.into()),
            ..Script::default()
        }
    }
}

#[async_trait]
impl Attempt for Script {
    async fn attempt(&self, open: &[usize]) -> Vec<Verdict> {
        self.requests.lock().unwrap().push(open.to_vec());
        match self.replies.lock().unwrap().pop_front() {
            Some(v) if v.len() == 1 && open.len() > 1 => vec![v[0].clone(); open.len()],
            Some(v) => v,
            None => vec![
                Verdict::Accepted {
                    id: Some("ok".into())
                };
                open.len()
            ],
        }
    }

    async fn auth_refused(&self) {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
    }
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        backoff_base: Duration::from_millis(100),
        backoff_max: Duration::from_secs(2),
        ..RetryPolicy::default()
    }
}

async fn run(script: &Script, n: usize, policy: &RetryPolicy) -> Vec<MobileResult> {
    drive("test", policy, &MobileMetrics::default(), n, script).await
}

fn retry(after: Option<u64>, now: bool) -> Verdict {
    Verdict::Retry {
        reason: "429".into(),
        after: after.map(Duration::from_secs),
        now,
    }
}

fn unknown() -> Verdict {
    Verdict::Unknown {
        reason: "timeout".into(),
    }
}

fn auth() -> Verdict {
    Verdict::AuthRefused {
        reason: "401 UNAUTHENTICATED".into(),
    }
}

#[tokio::test(start_paused = true)]
async fn each_verdict_ends_in_its_state_after_its_attempts() {
    use MobileState::*;
    let dead = Verdict::Rejected {
        reason: "UNREGISTERED".into(),
        dead: true,
    };
    let later = Verdict::Later {
        reason: "credentials refused".into(),
        after: None,
    };
    let cases: Vec<(&str, Vec<Vec<Verdict>>, MobileState, u32)> = vec![
        ("accepted", vec![], Accepted, 1),
        ("rejected", vec![vec![dead.clone()]], Rejected, 1),
        ("auth refused, then ok", vec![vec![auth()]], Accepted, 2),
        (
            "auth refused twice",
            vec![vec![auth()], vec![auth()]],
            Pending,
            2,
        ),
        (
            "not sent twice",
            vec![vec![retry(None, true)]; 2],
            Accepted,
            3,
        ),
        ("never sent", vec![vec![retry(None, true)]; 3], Pending, 3),
        (
            "back-off 3 times",
            vec![vec![retry(None, false)]; 3],
            Accepted,
            4,
        ),
        (
            "back-off spent",
            vec![vec![retry(None, false)]; 4],
            Pending,
            4,
        ),
        (
            "vendor asks to wait too long",
            vec![vec![retry(Some(60), false)]],
            Pending,
            1,
        ),
        ("later", vec![vec![later]], Pending, 1),
        (
            "no token: not an attempt",
            vec![vec![Verdict::NoToken {
                reason: "down".into(),
            }]],
            Pending,
            0,
        ),
        ("unknown, budget 0", vec![vec![unknown()]], Unknown, 1),
    ];
    for (name, replies, state, attempts) in cases {
        let script = Script::new(replies);
        let r = run(&script, 1, &policy()).await.remove(0);
        assert_eq!((r.state, r.attempts), (state, attempts), "{name}: {r:?}");
        if name.starts_with("auth refused") {
            assert_eq!(script.refreshes.load(Ordering::SeqCst), 1, "{name}");
        }
        if name == "rejected" {
            assert!(r.unregistered_at_ms.is_some());
        }
        if name == "vendor asks to wait too long" {
            assert_eq!(r.retry_after, Some(Duration::from_secs(60)));
        }
    }
    // With a budget of 1 an unknown is sent once more (same request, same dedupe keys).
    let mut p = policy();
    p.unknown_retries = 1;
    let script = Script::new(vec![vec![unknown()]]);
    let r = run(&script, 1, &p).await.remove(0);
    assert_eq!((r.state, r.attempts), (Accepted, 2));
}

#[tokio::test(start_paused = true)]
async fn honours_the_vendors_retry_after() {
    let script = Script::new(vec![vec![retry(Some(1), false)]]);
    let started = tokio::time::Instant::now();
    let r = run(&script, 1, &policy()).await.remove(0);
    assert_eq!(r.state, MobileState::Accepted);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_batch_resends_only_its_open_items() {
    let partial = vec![
        Verdict::Accepted {
            id: Some("r1".into()),
        },
        retry(None, true),
        Verdict::Accepted {
            id: Some("r1".into()),
        },
    ];
    let dead = Verdict::Rejected {
        reason: "80300007".into(),
        dead: true,
    };
    let script = Script::new(vec![partial, vec![dead]]);
    let r = run(&script, 3, &policy()).await;
    assert_eq!(*script.requests.lock().unwrap(), [vec![0, 1, 2], vec![1]]);
    let states: Vec<_> = r.iter().map(|r| (r.state, r.attempts)).collect();
    assert_eq!(
        states,
        [
            (MobileState::Accepted, 1),
            (MobileState::Rejected, 2),
            (MobileState::Accepted, 1)
        ]
    );
    assert_eq!(r[0].vendor_id.as_deref(), Some("r1"));
}
