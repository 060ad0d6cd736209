use std::sync::Arc;

use http::HeaderValue;

use super::*;

fn classify(status: u16, body: &str, headers: &[(&'static str, &'static str)]) -> Outcome {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_static(v));
    }
    from_response(
        StatusCode::from_u16(status).unwrap(),
        &h,
        body.as_bytes(),
        Uuid::nil(),
    )
}

#[test]
fn accepted_echoes_the_apns_id() {
    let id = "8f2c1d3e-0000-4000-8000-000000000001";
    assert_eq!(
        classify(200, "", &[("apns-id", id)]),
        Outcome::Accepted {
            apns_id: Uuid::parse_str(id).unwrap()
        }
    );
}

#[test]
fn client_errors_are_rejected_and_410_carries_the_timestamp() {
    let o = classify(
        410,
        r#"{"reason":"Unregistered","timestamp":1770000000123}"#,
        &[],
    );
    assert_eq!(
        o,
        Outcome::Rejected {
            status: 410,
            reason: Reason("Unregistered".into()),
            timestamp: Some(1_770_000_000_123)
        }
    );
    assert_eq!(
        o.unregistered_at(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_770_000_000_123))
    );
    for (status, reason) in [
        (400, "BadDeviceToken"),
        (403, "ExpiredProviderToken"),
        (413, "PayloadTooLarge"),
    ] {
        let o = classify(status, &format!(r#"{{"reason":"{reason}"}}"#), &[]);
        assert!(
            matches!(&o, Outcome::Rejected { status: s, reason: r, timestamp: None } if *s == status && r.as_str() == reason),
            "{o:?}"
        );
        assert_eq!(o.unregistered_at(), None);
    }
    // No body: the status text stands in for the reason.
    assert!(
        matches!(classify(405, "", &[]), Outcome::Rejected { reason, .. } if reason.as_str() == "MethodNotAllowed")
    );
}

#[test]
fn throttling_and_server_errors_are_retryable_after_a_back_off() {
    let o = classify(
        429,
        r#"{"reason":"TooManyRequests"}"#,
        &[("retry-after", "7")],
    );
    let Outcome::Retryable { cause, retry_after } = o else {
        panic!()
    };
    assert!(!cause.immediate());
    assert_eq!(retry_after, Some(Duration::from_secs(7)));
    for status in [500, 503, 502] {
        let o = classify(status, r#"{"reason":"Shutdown"}"#, &[]);
        assert!(
            matches!(
                o,
                Outcome::Retryable {
                    cause: RetryCause::Status { .. },
                    retry_after: None
                }
            ),
            "{o:?}"
        );
    }
}

#[test]
fn connect_failures_split_into_proxy_errors_and_resend_at_once() {
    let proxy = "http://proxy:3128".to_owned();
    let auth = from_connect(&ConnectError::ProxyAuth {
        proxy: proxy.clone(),
    });
    assert!(matches!(
        auth,
        Outcome::ProxyError {
            failure: ProxyFailure::AuthRequired,
            ..
        }
    ));
    assert_eq!(auth.labels(), ("proxy_error", "proxy_auth_required".into()));
    let down = from_connect(&ConnectError::ProxyUnreachable {
        proxy,
        cause: Arc::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    });
    assert!(matches!(
        down,
        Outcome::ProxyError {
            failure: ProxyFailure::Unreachable,
            ..
        }
    ));
    let tls = from_connect(&ConnectError::NoH2 {
        authority: "a:443".into(),
    });
    let Outcome::Retryable { cause, .. } = tls else {
        panic!()
    };
    assert!(cause.immediate());
    for cause in [
        RetryCause::RefusedStream,
        RetryCause::GoAway,
        RetryCause::NotSent,
    ] {
        assert!(cause.immediate());
    }
    assert!(!RetryCause::ProviderTokenFloor.immediate());
}
