use super::*;

#[test]
fn backoff_doubles_with_jitter_and_stays_under_the_cap() {
    let p = RetryPolicy::default();
    for n in 0..20 {
        let full = p
            .backoff_base
            .saturating_mul(1 << n.min(16))
            .min(p.backoff_max);
        for _ in 0..50 {
            let d = p.backoff(n);
            assert!(d >= full / 2 && d <= full, "retry {n}: {d:?} vs {full:?}");
        }
    }
    let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
    assert!(spread.len() > 10, "jittered");
}

#[test]
fn delivery_states_follow_the_outcome() {
    let d = |outcome| Delivery {
        apns_id: Uuid::nil(),
        collapse_id: String::new(),
        outcome,
        attempts: 1,
        unknown_attempts: 0,
    };
    assert_eq!(
        d(Outcome::Accepted {
            apns_id: Uuid::nil()
        })
        .state()
        .as_str(),
        "accepted"
    );
    assert_eq!(
        d(Outcome::Unknown {
            cause: "timeout".into()
        })
        .state(),
        DeliveryState::Unknown
    );
    assert_eq!(
        d(Outcome::ProxyError {
            failure: crate::ProxyFailure::AuthRequired,
            detail: String::new()
        })
        .state(),
        DeliveryState::RetryLater
    );
    assert_eq!(
        invalid(&NotificationError::PayloadTooLarge {
            size: 5000,
            max: 4096
        })
        .labels()
        .1,
        "PayloadTooLarge"
    );
}
