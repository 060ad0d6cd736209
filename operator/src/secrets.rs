//! The Secrets a PushCluster references: a missing one (or a missing key) is reported in the
//! `Degraded` condition by name, not retried as an error.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

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
