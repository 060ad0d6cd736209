use std::sync::atomic::{AtomicU32, Ordering};

use super::*;

fn fetched(n: u32, lifetime: Duration) -> Result<Fetched, TokenError> {
    Ok(Fetched {
        token: Secret::new(format!("token-{n}")),
        lifetime,
    })
}

#[tokio::test(start_paused = true)]
async fn cached_until_a_tenth_of_its_life_is_left_and_replaced_when_refused() {
    let cache = TokenCache::new("test", MobileMetrics::default());
    let fetches = AtomicU32::new(0);
    let get = || {
        cache.get(|| async {
            let n = fetches.fetch_add(1, Ordering::SeqCst) + 1;
            fetched(n, Duration::from_secs(3600))
        })
    };
    let first = get().await.unwrap();
    assert_eq!(first.expose(), "token-1");
    assert_eq!(get().await.unwrap(), first, "cached");
    // Refreshed five minutes (the cap of a tenth) before the hour is over.
    tokio::time::advance(Duration::from_secs(3600 - 301)).await;
    assert_eq!(get().await.unwrap(), first);
    tokio::time::advance(Duration::from_secs(2)).await;
    let second = get().await.unwrap();
    assert_eq!(second.expose(), "token-2");
    // Refused: the next caller fetches; refusing an older token changes nothing.
    cache.refused(&first).await;
    assert_eq!(get().await.unwrap(), second);
    cache.refused(&second).await;
    assert_eq!(get().await.unwrap().expose(), "token-3");
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch_and_failures_are_not_cached() {
    let cache = TokenCache::new("test", MobileMetrics::default());
    let fetches = AtomicU32::new(0);
    let get = || {
        cache.get(|| async {
            fetches.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            fetched(1, Duration::from_secs(60))
        })
    };
    let (a, b, c) = tokio::join!(get(), get(), get());
    assert_eq!((a.unwrap(), b.unwrap()), (c.clone().unwrap(), c.unwrap()));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);

    let failing = TokenCache::new("test", MobileMetrics::default());
    let err = TokenError::Refused {
        vendor: "test",
        detail: "invalid_client".into(),
    };
    for _ in 0..2 {
        let got = failing.get(|| async { Err(err.clone()) }).await;
        assert_eq!(got, Err(err.clone()));
    }
    assert!(matches!(err.verdict(), Verdict::NoToken { .. }));
    assert_eq!(format!("{:?}", Secret::new("s3cret")), "<redacted>");
}

#[tokio::test]
async fn oauth_replies_become_tokens_or_errors() {
    use crate::http::Exchange;
    let answered = |status: u16, body: &str| Exchange::Answered {
        status: http::StatusCode::from_u16(status).unwrap(),
        headers: http::HeaderMap::new(),
        body: bytes::Bytes::from(body.to_owned()),
    };
    let ok = oauth_reply(
        answered(
            200,
            r#"{"access_token":"ya29.x","expires_in":3599,"token_type":"Bearer"}"#,
        ),
        "fcm",
    )
    .unwrap();
    assert_eq!(
        (ok.token.expose(), ok.lifetime),
        ("ya29.x", Duration::from_secs(3599))
    );
    let google = oauth_reply(
        answered(
            400,
            r#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#,
        ),
        "fcm",
    );
    assert_eq!(
        google.unwrap_err().to_string(),
        "fcm refused our credentials: 400 Bad Request invalid_grant Invalid JWT Signature."
    );
    let huawei = oauth_reply(
        answered(
            400,
            r#"{"error":1101,"sub_error":20001,"error_description":"invalid client"}"#,
        ),
        "hms",
    );
    assert!(
        huawei
            .unwrap_err()
            .to_string()
            .contains("1101 invalid client")
    );
    assert!(matches!(
        oauth_reply(answered(503, ""), "hms"),
        Err(TokenError::Unreachable { .. })
    ));
    assert!(matches!(
        oauth_reply(Exchange::NotSent("refused".into()), "hms"),
        Err(TokenError::Unreachable { .. })
    ));
}
