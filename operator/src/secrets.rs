//! The Secrets a PushCluster references: a missing one (or a missing key) is reported in the
//! `Degraded` condition by name, not retried as an error. The generated internal token is
//! created here when absent ([`ensure_internal_token`]).

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;

use crate::children::internal_token;
use crate::crd::{PushCluster, SecretKeyRef};
use crate::error::{Error, Result};

/// A Secret key the spec needs, with the field that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Needed {
    /// e.g. `spec.mongo.uriSecretRef`.
    pub field: &'static str,
    pub name: String,
    pub key: String,
}

/// Every Secret key `pc` references (a push vendor's only when it is enabled).
pub fn needed(pc: &PushCluster) -> Vec<Needed> {
    let s = &pc.spec;
    let r = |field, r: &SecretKeyRef| Needed {
        field,
        name: r.name.clone(),
        key: r.key.clone(),
    };
    let mut v = vec![
        r("spec.mongo.uriSecretRef", &s.mongo.uri_secret_ref),
        r("spec.auth.jwtSecretRef", &s.auth.jwt_secret_ref),
        r(
            "spec.collect.apiKeySecretRef",
            &s.collect.api_key_secret_ref,
        ),
    ];
    if let Some(u) = &s.redis.url_secret_ref {
        v.push(r("spec.redis.urlSecretRef", u));
    }
    if let Some(j) = &s.auth.jwks_secret_ref {
        v.push(r("spec.auth.jwksSecretRef", j));
    }
    if let Some(t) = &s.security.internal_token_secret_ref {
        v.push(r("spec.security.internalTokenSecretRef", t));
    }
    if let Some(tls) = &s.security.tls {
        for key in ["tls.crt", "tls.key", "ca.crt"] {
            v.push(Needed {
                field: "spec.security.tls.secretName",
                name: tls.secret_name.clone(),
                key: key.into(),
            });
        }
    }
    for c in crate::children::mobile::credentials(pc) {
        v.push(r(c.field, &c.secret));
    }
    if let Some(c) = s
        .apns
        .as_ref()
        .filter(|a| a.enabled)
        .and_then(|a| a.proxy.as_ref())
        .and_then(|p| p.credentials_secret_ref.as_ref())
    {
        for key in ["username", "password"] {
            v.push(Needed {
                field: "spec.apns.proxy.credentialsSecretRef",
                name: c.name.clone(),
                key: key.into(),
            });
        }
    }
    v
}

/// What is missing, one human-readable line each (empty when everything is there).
pub async fn missing(api: &Api<Secret>, needed: &[Needed]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut seen: Vec<(String, Option<Secret>)> = Vec::new();
    for n in needed {
        let secret = match seen.iter().find(|(name, _)| *name == n.name) {
            Some((_, s)) => s.clone(),
            None => {
                let s = api
                    .get_opt(&n.name)
                    .await
                    .map_err(|source| Error::ReadSecret {
                        name: n.name.clone(),
                        source,
                    })?;
                seen.push((n.name.clone(), s.clone()));
                s
            }
        };
        match secret {
            None => out.push(format!("Secret {} ({}) not found", n.name, n.field)),
            Some(s) if !has_key(&s, &n.key) => out.push(format!(
                "Secret {} ({}) has no key {}",
                n.name, n.field, n.key
            )),
            Some(_) => {}
        }
    }
    out.dedup();
    Ok(out)
}

fn has_key(s: &Secret, key: &str) -> bool {
    s.data.as_ref().is_some_and(|d| d.contains_key(key))
        || s.string_data.as_ref().is_some_and(|d| d.contains_key(key))
}

/// Creates the generated internal-token Secret if it does not exist (never touches an existing
/// one). Returns what is wrong with an existing one that lacks the key, if anything.
pub async fn ensure_internal_token(api: &Api<Secret>, pc: &PushCluster) -> Result<Option<String>> {
    if !internal_token::generated(pc) {
        return Ok(None);
    }
    let name = internal_token::name(pc);
    let read = |source| Error::ReadSecret {
        name: name.clone(),
        source,
    };
    let existing = match api.get_opt(&name).await.map_err(read)? {
        Some(s) => s,
        None => {
            let secret = internal_token::build(pc, internal_token::random_token());
            match api.create(&PostParams::default(), &secret).await {
                Ok(_) => {
                    tracing::info!(secret = %name, "created the internal token Secret");
                    return Ok(None);
                }
                // Created meanwhile (by another reconcile): use that one.
                Err(kube::Error::Api(e)) if e.code == 409 => api.get(&name).await.map_err(read)?,
                Err(source) => {
                    return Err(Error::CreateSecret {
                        name: name.clone(),
                        source,
                    });
                }
            }
        }
    };
    Ok((!has_key(&existing, internal_token::KEY)).then(|| {
        format!(
            "Secret {name} (the generated internal token) has no key {}: delete it to have a new one generated",
            internal_token::KEY
        )
    }))
}
