//! `pushd token` and `pushd send`.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::cli::{SendArgs, TokenArgs};

pub fn token(args: TokenArgs) -> anyhow::Result<()> {
    pushcluster_proto::api::validate_user_id(&args.user)
        .map_err(|m| anyhow::anyhow!("--user {m}"))?;
    let token = match (&args.rsa_private_key_file, &args.jwt_secret) {
        (Some(path), _) => pushcluster_auth::RsaSigner::from_pem_file(path, args.kid.clone())?
            .issue(&args.user, args.ttl),
        (None, Some(secret)) if !secret.is_empty() => {
            pushcluster_auth::issue(secret.as_bytes(), &args.user, args.ttl)
        }
        (None, _) => bail!("PUSHD_JWT_SECRET is empty"),
    };
    println!("{token}");
    Ok(())
}

pub async fn send(args: SendArgs) -> anyhow::Result<()> {
    let payload: serde_json::Value =
        serde_json::from_str(&args.payload).context("--payload is not valid JSON")?;
    let mut body = serde_json::json!({"to": args.to, "payload": payload});
    if let Some(ttl) = args.ttl_secs {
        body["ttl_secs"] = ttl.into();
    }
    if let Some(key) = args.idempotency_key {
        body["idempotency_key"] = key.into();
    }
    let url = format!("{}/v1/messages", args.server.trim_end_matches('/'));
    let req = http::Request::post(&url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", args.api_key),
        )
        .body(Full::new(Bytes::from(body.to_string())))
        .context("building the request")?;
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client
        .request(req)
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.into_body().collect().await?.to_bytes();
    println!("{}", String::from_utf8_lossy(&text));
    if !status.is_success() {
        bail!("server answered {status}");
    }
    Ok(())
}
