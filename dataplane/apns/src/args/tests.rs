use clap::Parser;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    apns: ApnsArgs,
}

fn parse(args: &[&str]) -> Result<Option<ApnsConfig>, ConfigError> {
    Cli::try_parse_from(std::iter::once("pushd").chain(args.iter().copied()))
        .expect("flags parse")
        .apns
        .config()
}

struct Files {
    _dir: tempfile::TempDir,
    key: String,
    ca: String,
    creds: String,
}

fn files() -> Files {
    let pki = pushcluster_test_support::apns::Pki::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    Files {
        key: path("AuthKey.p8", &pki.provider_key_pem),
        ca: path("ca.pem", &pki.ca_pem),
        creds: path("creds", "apns:s3cret\n"),
        _dir: dir,
    }
}

#[test]
fn apns_is_off_without_a_key() {
    assert!(parse(&[]).unwrap().is_none());
}

#[test]
fn every_flag_reaches_the_config() {
    let f = files();
    let config = parse(&[
        "--apns-key-file",
        &f.key,
        "--apns-key-id",
        "KEY1234567",
        "--apns-team-id",
        "TEAM123456",
        "--apns-topic",
        "com.example.app",
        "--apns-endpoint",
        "https://127.0.0.1:8443",
        "--apns-ca-file",
        &f.ca,
        "--apns-proxy",
        "http://proxy.example:3128",
        "--apns-proxy-credentials-file",
        &f.creds,
        "--apns-unknown-retries",
        "1",
        "--apns-concurrency",
        "64",
        "--apns-connections",
        "3",
        "--apns-request-timeout",
        "5s",
    ])
    .unwrap()
    .unwrap();
    assert_eq!(
        config.endpoint,
        Endpoint::Custom {
            host: "127.0.0.1".into(),
            port: 8443
        }
    );
    assert_eq!(config.extra_roots.len(), 1);
    let proxy = config.proxy.unwrap();
    assert_eq!(proxy.redacted_url(), "http://proxy.example:3128");
    assert!(matches!(proxy.credentials, Some(ProxyCredentials::File(_))));
    assert_eq!(config.retry.unknown_retries, 1);
    assert_eq!((config.concurrency, config.connections), (64, 3));
    assert_eq!(config.request_timeout, Duration::from_secs(5));
}

#[test]
fn missing_or_conflicting_values_are_refused() {
    let f = files();
    assert!(parse(&["--apns-key-file", &f.key, "--apns-key-id", "K"]).is_err());
    let base = [
        "--apns-key-file",
        &f.key,
        "--apns-key-id",
        "KEY1234567",
        "--apns-team-id",
        "TEAM123456",
        "--apns-topic",
        "com.example.app",
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        parse(&v)
    };
    assert!(with(&[]).unwrap().is_some());
    assert!(
        with(&["--apns-proxy-credentials", "a:b"]).is_err(),
        "credentials without proxy"
    );
    assert!(
        with(&[
            "--apns-proxy",
            "http://u:p@proxy:3128",
            "--apns-proxy-credentials",
            "a:b"
        ])
        .is_err(),
        "credentials twice"
    );
    assert!(with(&["--apns-endpoint", "http://plain:80"]).is_err());
    assert!(with(&["--apns-concurrency", "0"]).is_err());
}

#[test]
fn debug_hides_proxy_secrets() {
    let cli = Cli::try_parse_from([
        "pushd",
        "--apns-proxy",
        "http://apns:hunter2@proxy:3128",
        "--apns-proxy-credentials",
        "apns:hunter3",
    ])
    .unwrap();
    let debug = format!("{:?}", cli.apns);
    assert!(!debug.contains("hunter"), "{debug}");
    assert!(debug.contains("http://proxy:3128"), "{debug}");
}
