//! Pins the mapping of hyper-util's (unexported) tunnel errors against proxies' real answers.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::config::Endpoint;

/// A one-shot "proxy" answering every connection with `answer`.
async fn proxy_answering(answer: &'static [u8]) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(answer).await;
        }
    });
    port
}

fn connector(proxy_port: u16, credentials: Option<ProxyCredentials>) -> Connector {
    let pki = pushcluster_test_support::apns::Pki::generate().unwrap();
    let key = crate::SigningKey::from_pem(pki.provider_key_pem.as_bytes()).unwrap();
    let mut config = ApnsConfig::new(key, "K", "T", "t", Endpoint::Sandbox);
    config.proxy = Some(ProxyConfig {
        host: "127.0.0.1".into(),
        port: proxy_port,
        credentials,
        tls: false,
    });
    config.connect_timeout = Duration::from_secs(2);
    Connector::new(&config, crate::tls::client_config(&[]).unwrap(), None).unwrap()
}

#[tokio::test]
async fn proxy_answers_map_to_connect_errors() {
    let port = proxy_answering(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").await;
    let e = connector(port, None).connect(1).await.err().unwrap();
    assert!(matches!(e, ConnectError::ProxyAuth { .. }), "{e:?}");
    assert_eq!(e.metric_label(), "proxy_auth");

    let port = proxy_answering(b"HTTP/1.1 403 Forbidden\r\n\r\n").await;
    let e = connector(port, None).connect(1).await.err().unwrap();
    assert!(matches!(e, ConnectError::ProxyRefused { .. }), "{e:?}");

    let port = proxy_answering(b"").await;
    let e = connector(port, None).connect(1).await.err().unwrap();
    assert!(matches!(e, ConnectError::ProxyProtocol { .. }), "{e:?}");

    let closed = pushcluster_test_support::free_port();
    let e = connector(closed, None).connect(1).await.err().unwrap();
    assert!(matches!(e, ConnectError::ProxyUnreachable { .. }), "{e:?}");
    assert!(e.is_proxy());
}

#[tokio::test]
async fn credentials_file_is_read_at_connect_and_reported_when_bad() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("creds");
    let c = connector(1, Some(ProxyCredentials::File(file.clone())));
    let e = c.connect(1).await.err().unwrap();
    assert!(matches!(e, ConnectError::ProxyCredentials { .. }), "{e:?}");
    std::fs::write(&file, "user:pw\n").unwrap();
    let v = basic_auth(&ProxyCredentials::File(file)).unwrap();
    assert!(v.is_sensitive());
    assert_eq!(v.to_str().unwrap(), "Basic dXNlcjpwdw==");
}
