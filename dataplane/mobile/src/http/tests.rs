use super::*;

#[test]
fn endpoints_are_https_host_and_port() {
    let e: Endpoint = "https://fcm.googleapis.com".parse().unwrap();
    assert_eq!((e.host.as_str(), e.port), ("fcm.googleapis.com", 443));
    assert_eq!(e.base(), "https://fcm.googleapis.com:443");
    let e: Endpoint = "https://127.0.0.1:8443/".parse().unwrap();
    assert_eq!(e.base(), "https://127.0.0.1:8443");
    let e: Endpoint = "https://[::1]:9".parse().unwrap();
    assert_eq!(
        (e.host.as_str(), e.base().as_str()),
        ("::1", "https://[::1]:9")
    );
    for bad in ["http://x:1", "https://x/v1", "https://x?a=1", "x:1", ""] {
        assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
    }
}

#[test]
fn retry_after_is_seconds() {
    let mut h = HeaderMap::new();
    assert_eq!(retry_after(&h), None);
    h.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
    assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
    h.insert(
        http::header::RETRY_AFTER,
        "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
    );
    assert_eq!(retry_after(&h), None);
}

#[test]
fn auth_headers_are_sensitive() {
    let r = post(
        "https://x/send",
        "application/json",
        Some(("authorization", "Bearer t0ken")),
        "{}",
    )
    .unwrap();
    let v = &r.headers()[http::header::AUTHORIZATION];
    assert!(v.is_sensitive());
    assert!(!format!("{v:?}").contains("t0ken"));
    assert_eq!(r.headers()[http::header::CONTENT_TYPE], "application/json");
}

#[test]
fn a_ca_file_without_certificates_is_refused() {
    let mut c = DirectConfig::new("https://x".parse().unwrap());
    assert!(c.add_roots_pem(b"not a pem").is_err());
}
