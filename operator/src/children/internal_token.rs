//! The internal token the roles authenticate each other with on gRPC.
//!
//! With `spec.security.internalTokenSecretRef` the user's Secret is used. Without it, the
//! operator creates `<name>-internal-token` (key `token`) once, with 32 random bytes, owned by
//! the PushCluster (deleted with it). It is created, never applied: a reconcile never rewrites
//! it, so the token does not change under running pods.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use super::{labels, meta};
use crate::crd::{PushCluster, SecretKeyRef};

/// The key of the generated Secret.
pub const KEY: &str = "token";

/// Name of the generated Secret: `<cluster>-internal-token`.
pub fn name(pc: &PushCluster) -> String {
    format!("{}-internal-token", pc.name_any())
}

/// Whether the operator generates the Secret (the user named none).
pub fn generated(pc: &PushCluster) -> bool {
    pc.spec.security.internal_token_secret_ref.is_none()
}

/// Where every role reads the token: the user's Secret key, or the generated one.
pub fn secret_ref(pc: &PushCluster) -> SecretKeyRef {
    pc.spec
        .security
        .internal_token_secret_ref
        .clone()
        .unwrap_or_else(|| SecretKeyRef {
            name: name(pc),
            key: KEY.into(),
        })
}

/// A fresh token: 32 bytes from the OS's CSPRNG, hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The generated Secret holding `token`.
pub fn build(pc: &PushCluster, token: String) -> Secret {
    Secret {
        metadata: meta(pc, name(pc), labels(pc)),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(KEY.into(), token)])),
        ..Secret::default()
    }
}
