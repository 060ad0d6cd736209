//! A real tonic server (the `Auth` service with a stub verdict) behind the edge, on loopback.

use std::net::SocketAddr;
use std::path::Path;

use prometheus_client::registry::Registry;
use pushcluster_proto::grpc::auth_client::AuthClient;
use pushcluster_proto::grpc::auth_server::{Auth, AuthServer};
use pushcluster_proto::grpc::{VerifyRequest, VerifyResponse};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use tonic::transport::Endpoint;

use super::*;

const TOKEN: &str = "internal-token-0123456789";

struct Stub;

#[tonic::async_trait]
impl Auth for Stub {
    async fn verify(
        &self,
        _: tonic::Request<VerifyRequest>,
    ) -> Result<tonic::Response<VerifyResponse>, tonic::Status> {
        Ok(tonic::Response::new(VerifyResponse {
            user: "u".into(),
            expires_at: 0,
        }))
    }
}

fn secrets(values: &[&str]) -> Arc<Secrets> {
    Secrets::new(
        "internal token",
        "test",
        values.iter().map(|s| s.to_string()),
        None,
    )
    .unwrap()
}

async fn start(tls: Option<Arc<Tls>>) -> (SocketAddr, GrpcMetrics, Shutdown) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let metrics = GrpcMetrics::new(&mut Registry::default());
    let shutdown = Shutdown::default();
    let server = GrpcServer::new(secrets(&[TOKEN]), metrics.clone())
        .service(AuthServer::new(Stub))
        .tls(tls)
        .serve(listener, &shutdown);
    tokio::spawn(server);
    (addr, metrics, shutdown)
}

async fn verify(client: &InternalClient, addr: SocketAddr) -> Result<String, tonic::Status> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}")).unwrap();
    let channel = client
        .connect(endpoint, None)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let reply = AuthClient::new(channel)
        .verify(VerifyRequest { token: "t".into() })
        .await?;
    Ok(reply.into_inner().user)
}

fn refused(m: &GrpcMetrics, service: &'static str, reason: &'static str) -> u64 {
    m.unauthenticated
        .get_or_create(&auth::UnauthenticatedLabels { service, reason })
        .get()
}

#[tokio::test]
async fn calls_without_the_token_are_unauthenticated_and_counted() {
    let (addr, metrics, _stop) = start(None).await;
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = AuthClient::new(channel)
        .verify(VerifyRequest { token: "t".into() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    assert_eq!(refused(&metrics, "pushcluster.v1.Auth", "missing_token"), 1);

    let wrong = InternalClient::new(secrets(&["not-the-token-0123456789"]), None, None);
    let err = verify(&wrong, addr).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
    assert_eq!(refused(&metrics, "pushcluster.v1.Auth", "invalid_token"), 1);

    let right = InternalClient::new(secrets(&[TOKEN]), None, None);
    assert_eq!(verify(&right, addr).await.unwrap(), "u");
}

/// A CA and leaf certificates (client and server auth) for 127.0.0.1 signed by it.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Writes `cert.pem`, `key.pem` and `ca.pem` (this CA) into `dir`.
    fn issue(&self, dir: &Path) -> TlsFiles {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca: dir.join("ca.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        std::fs::write(&files.ca, &self.pem).unwrap();
        files
    }
}

#[tokio::test]
async fn mutual_tls_admits_only_certificates_of_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster CA");
    let server_tls = Tls::load(ca.issue(&dir.path().join("server"))).unwrap();
    let (addr, metrics, _stop) = start(Some(server_tls.clone())).await;

    let good = Tls::load(ca.issue(&dir.path().join("good"))).unwrap();
    let client = InternalClient::new(secrets(&[TOKEN]), Some(good), None);
    assert_eq!(verify(&client, addr).await.unwrap(), "u");

    // A certificate from another CA (that also trusts the server's): the handshake fails.
    let other = Ca::new("another CA");
    let mut files = other.issue(&dir.path().join("other"));
    let both = format!("{}{}", other.pem, ca.pem);
    files.ca = dir.path().join("other/both.pem");
    std::fs::write(&files.ca, both).unwrap();
    let stranger = InternalClient::new(secrets(&[TOKEN]), Some(Tls::load(files).unwrap()), None);
    assert!(verify(&stranger, addr).await.is_err());
    assert!(refused(&metrics, "tls", "handshake") >= 1);

    // In clear: refused too (no gRPC without TLS).
    let plain = InternalClient::new(secrets(&[TOKEN]), None, None);
    assert!(verify(&plain, addr).await.is_err());

    // The token is still required over mutual TLS.
    let good = Tls::load(ca.issue(&dir.path().join("good2"))).unwrap();
    let no_token = InternalClient::new(secrets(&["wrong-token-0123456789"]), Some(good), None);
    let err = verify(&no_token, addr).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
}

#[tokio::test]
async fn rotated_certificates_are_picked_up_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = Ca::new("old CA");
    let files = old.issue(&dir.path().join("server"));
    let server_tls = Tls::load(files.clone()).unwrap();
    let (addr, _, _stop) = start(Some(server_tls.clone())).await;

    let new = Ca::new("new CA");
    let new_client = Tls::load(new.issue(&dir.path().join("client"))).unwrap();
    let client = InternalClient::new(secrets(&[TOKEN]), Some(new_client), None);
    assert!(verify(&client, addr).await.is_err(), "old CA on the server");

    // The server's Secret is updated to the new CA (same paths).
    let rotated = new.issue(&dir.path().join("rotated"));
    for (from, to) in [
        (&rotated.cert, &files.cert),
        (&rotated.key, &files.key),
        (&rotated.ca, &files.ca),
    ] {
        std::fs::copy(from, to).unwrap();
    }
    assert!(server_tls.reload().unwrap());
    assert_eq!(verify(&client, addr).await.unwrap(), "u");

    // A broken update keeps the last good configuration.
    std::fs::write(&files.key, "not a key").unwrap();
    assert!(server_tls.reload().is_err());
    assert_eq!(verify(&client, addr).await.unwrap(), "u");
}
