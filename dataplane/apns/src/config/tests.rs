use super::*;

fn key() -> SigningKey {
    let pki = pushcluster_test_support::apns::Pki::generate().unwrap();
    SigningKey::from_pem(pki.provider_key_pem.as_bytes()).unwrap()
}

#[test]
fn endpoints_parse() {
    assert_eq!(
        "production".parse::<Endpoint>().unwrap(),
        Endpoint::Production
    );
    assert_eq!(
        "sandbox".parse::<Endpoint>().unwrap().host(),
        "api.sandbox.push.apple.com"
    );
    let custom: Endpoint = "https://127.0.0.1:8443".parse().unwrap();
    assert_eq!(custom.authority(), "127.0.0.1:8443");
    assert_eq!(
        "https://relay.example".parse::<Endpoint>().unwrap().port(),
        443
    );
    let v6: Endpoint = "https://[::1]:9443".parse().unwrap();
    assert_eq!(v6.authority(), "[::1]:9443");
    for bad in ["http://relay:80", "https://relay/3/device", "nonsense", ""] {
        assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
    }
}

#[test]
fn proxy_urls_parse_and_never_show_the_password() {
    let p = ProxyConfig::parse("http://apns:p%40ss:w@proxy.example:3128").unwrap();
    assert_eq!((p.host.as_str(), p.port), ("proxy.example", 3128));
    assert_eq!(
        p.credentials,
        Some(ProxyCredentials::Inline {
            user: "apns".into(),
            password: "p@ss:w".into()
        })
    );
    assert_eq!(p.redacted_url(), "http://proxy.example:3128");
    let debug = format!("{p:?}");
    assert!(
        !debug.contains("p@ss") && debug.contains("<redacted>"),
        "{debug}"
    );
    assert_eq!(
        ProxyConfig::parse("http://proxy:3128/")
            .unwrap()
            .credentials,
        None
    );
    let tls = ProxyConfig::parse("https://apns:pw@proxy.example:8443").unwrap();
    assert!(tls.tls);
    assert_eq!(tls.redacted_url(), "https://proxy.example:8443");
    assert!(!p.tls);
    for bad in [
        "https://proxy",
        "socks5://proxy:1080",
        "http://proxy",
        "proxy:3128",
    ] {
        assert!(ProxyConfig::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn validation_checks_ids_limits_and_the_key() {
    let good = ApnsConfig::new(
        key(),
        "KEY1234567",
        "TEAM123456",
        "com.example.app",
        Endpoint::Sandbox,
    );
    good.validate().unwrap();
    assert!(format!("{good:?}").contains("SigningKey(<redacted>)"));
    let mut c = good.clone();
    c.key_id = "bad id".into();
    assert!(c.validate().is_err());
    let mut c = good.clone();
    c.token_period = Duration::from_secs(10 * 60);
    assert!(c.validate().is_err());
    let mut c = good.clone();
    c.token_period = Duration::from_secs(60 * 60);
    assert!(c.validate().is_err());
    let mut c = good.clone();
    c.connections = 0;
    assert!(c.validate().is_err());
    let mut c = good;
    c.key = SigningKey(b"not a key".to_vec());
    assert!(c.validate().is_err());
    assert!(
        SigningKey::from_pem(b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n").is_err()
    );
}

#[test]
fn extra_roots_need_a_certificate() {
    let pki = pushcluster_test_support::apns::Pki::generate().unwrap();
    let mut c = ApnsConfig::new(key(), "K", "T", "t", Endpoint::Sandbox);
    c.add_roots_pem(pki.ca_pem.as_bytes()).unwrap();
    assert_eq!(c.extra_roots.len(), 1);
    assert!(c.add_roots_pem(b"nothing here").is_err());
}
