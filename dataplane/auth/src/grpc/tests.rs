//! The push nodes' client against a real gRPC server on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};

use pushcluster_proto::grpc::auth_server::AuthServer;
use serde_json::json;
use tonic::transport::server::TcpIncoming;

use super::*;
use crate::fixtures::now;
use crate::{ClaimRules, JwtVerifier};

const SECRET: &[u8] = b"grpc-test-secret";

/// A verifier that counts the tokens it is asked about.
struct Counting {
    inner: JwtVerifier,
    calls: AtomicUsize,
}

#[async_trait]
impl TokenVerifier for Counting {
    async fn verify(&self, token: &str) -> Result<String, AuthError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.verify_sync(token)
    }
}

/// An auth role that refuses its caller (as an interceptor would), whatever the token.
struct RefusesCaller;

#[tonic::async_trait]
impl Auth for RefusesCaller {
    async fn verify(&self, _: Request<VerifyRequest>) -> Result<Response<VerifyResponse>, Status> {
        Err(Status::unauthenticated("missing internal token"))
    }
}

async fn serve<S: Auth>(service: S) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AuthServer::new(service))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    format!("http://{addr}")
}

async fn remote() -> (RemoteVerifier, Arc<Counting>) {
    let counting = Arc::new(Counting {
        inner: JwtVerifier::hs256(SECRET).with_rules(ClaimRules {
            audiences: vec!["pushcluster".into()],
            ..ClaimRules::default()
        }),
        calls: AtomicUsize::new(0),
    });
    let addr = serve(AuthService {
        verifier: counting.clone(),
    })
    .await;
    let remote = RemoteVerifier::new(&internal(), &addr, Duration::from_secs(5)).unwrap();
    (remote, counting)
}

fn sign(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

fn calls(auth: &Counting) -> usize {
    auth.calls.load(Ordering::SeqCst)
}

#[tokio::test]
async fn a_flood_of_one_bad_token_costs_one_round_trip() {
    let (remote, auth) = remote().await;
    let wrong_aud = sign(json!({"sub": "u", "exp": now() + 600, "aud": "another-app"}));
    for _ in 0..50 {
        match remote.verify(&wrong_aud).await {
            Err(AuthError::Invalid(m)) => assert!(m.starts_with("`aud`"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(calls(&auth), 1);
    assert_eq!(remote.cache().metrics().misses.get(), 1);
    // The code survives the trip: expired stays expired.
    let expired = sign(json!({"sub": "u", "exp": now() - 600, "aud": "pushcluster"}));
    for _ in 0..3 {
        assert_eq!(remote.verify(&expired).await, Err(AuthError::Expired));
    }
    assert_eq!(calls(&auth), 2);
}

#[tokio::test]
async fn a_valid_verdict_is_cached_and_not_yet_valid_is_not() {
    let (remote, auth) = remote().await;
    let good = sign(json!({"sub": "alice", "exp": now() + 600, "aud": "pushcluster"}));
    for _ in 0..5 {
        assert_eq!(remote.verify(&good).await, Ok("alice".into()));
    }
    assert_eq!(calls(&auth), 1);
    // `nbf` in the future: refused with its own code and asked again next time, as the
    // token may be valid soon.
    let early = sign(json!({
        "sub": "alice", "exp": now() + 600, "nbf": now() + 300, "aud": "pushcluster",
    }));
    for _ in 0..2 {
        assert_eq!(remote.verify(&early).await, Err(AuthError::NotYetValid));
    }
    assert_eq!(calls(&auth), 3);
    assert_eq!(remote.verify("").await, Err(AuthError::Missing));
    assert_eq!(calls(&auth), 3);
}

#[tokio::test]
async fn an_auth_role_refusing_the_node_is_unavailable_and_not_cached() {
    let addr = serve(RefusesCaller).await;
    let remote = RemoteVerifier::new(&internal(), &addr, Duration::from_secs(5)).unwrap();
    for _ in 0..2 {
        match remote.verify("some.client.token").await {
            Err(AuthError::Unavailable(m)) => assert!(m.contains("internal token"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(remote.cache().is_empty());
}

/// A client with an internal token (the test servers do not check it).
fn internal() -> pushcluster_server::grpc::InternalClient {
    let token = pushcluster_server::Secrets::new(
        "internal token",
        "test",
        ["internal-token-for-tests-0123456789".to_owned()],
        None,
    )
    .unwrap();
    pushcluster_server::grpc::InternalClient::new(token, None, None)
}
