//! The reconciler: PushCluster → children (server-side apply) → status, and the controller
//! that runs it on every change of a PushCluster or of one of its children.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::children::{self, Role};
use crate::crd::{PushCluster, PushClusterStatus};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::secrets;
use crate::status::{self, DEGRADED, READY, display_name};

/// The one field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "pushcluster-operator";
/// Resync period of a healthy PushCluster (Secrets are not watched).
pub const RESYNC: Duration = Duration::from_secs(300);
/// Recheck period while a referenced Secret is missing.
pub const SECRET_RECHECK: Duration = Duration::from_secs(15);

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Option<Recorder>,
    pub metrics: Metrics,
    /// pushd image of PushClusters that name none.
    pub default_image: String,
    /// Consecutive failures per PushCluster, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        recorder: Option<Recorder>,
        metrics: Metrics,
        default_image: String,
    ) -> Arc<Context> {
        Arc::new(Context {
            client,
            recorder,
            metrics,
            default_image,
            failures: Mutex::default(),
        })
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Server-side apply of one child; returns the object as stored.
async fn apply<K>(client: &Client, ns: &str, obj: &K) -> Result<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + k8s_openapi::Resource
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let name = obj.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: <K as k8s_openapi::Resource>::KIND,
        name,
        source,
    })
}

/// Brings the children of `pc` to its spec and writes its status.
#[tracing::instrument(skip_all, fields(pushcluster = %display_name(&pc), generation = pc.metadata.generation))]
pub async fn reconcile(pc: Arc<PushCluster>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    ctx.metrics.reconciles.inc();
    let result = reconcile_inner(&pc, &ctx).await;
    ctx.metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.failures().remove(&display_name(&pc));
    }
    result
}

async fn reconcile_inner(pc: &PushCluster, ctx: &Context) -> Result<Action> {
    if pc.metadata.deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes the children; recreating them would fight it.
        return Ok(Action::await_change());
    }
    let ns = pc.namespace().ok_or(Error::NoNamespace)?;
    let client = &ctx.client;
    let secret_api = Api::<Secret>::namespaced(client.clone(), &ns);
    let mut missing = secrets::missing(&secret_api, &secrets::needed(pc)).await?;
    missing.extend(secrets::ensure_internal_token(&secret_api, pc).await?);

    // Children are applied even while a Secret is missing: their pods wait for it.
    apply(client, &ns, &children::config_map::build(pc)).await?;
    for svc in children::service::build_all(pc) {
        apply::<Service>(client, &ns, &svc).await?;
    }
    if pc.spec.security.network_policies.enabled {
        for np in children::network_policy::build_all(pc) {
            apply::<NetworkPolicy>(client, &ns, &np).await?;
        }
    } else {
        remove_network_policies(client, &ns, pc).await?;
    }
    let mut deployments = Vec::new();
    for role in Role::ALL {
        let d = children::deployment::build(pc, role, &ctx.default_image);
        deployments.push((role, apply::<Deployment>(client, &ns, &d).await?));
    }
    apply::<PodDisruptionBudget>(client, &ns, &children::pdb::build(pc)).await?;

    let observed: Vec<(Role, Option<&Deployment>)> =
        deployments.iter().map(|(r, d)| (*r, Some(d))).collect();
    let new = status::compute(pc, &observed, &missing, Timestamp::now());
    if pc.status.as_ref() != Some(&new) {
        write_status(client, pc, &new).await?;
        publish_events(ctx, pc, pc.status.as_ref(), &new).await;
    }
    if missing.is_empty() {
        Ok(Action::requeue(RESYNC))
    } else {
        tracing::warn!(missing = %missing.join("; "), "referenced Secrets missing");
        Ok(Action::requeue(SECRET_RECHECK))
    }
}

/// Turned off: deletes the NetworkPolicies this PushCluster owns (only those).
async fn remove_network_policies(client: &Client, ns: &str, pc: &PushCluster) -> Result<()> {
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), ns);
    let uid = pc.uid();
    for role in Role::ALL {
        let name = role.name(pc);
        let failed = |source| Error::Delete {
            kind: "NetworkPolicy",
            name: name.clone(),
            source,
        };
        let Some(np) = api.get_opt(&name).await.map_err(failed)? else {
            continue;
        };
        if np
            .owner_references()
            .iter()
            .any(|o| Some(&o.uid) == uid.as_ref())
        {
            api.delete(&name, &Default::default())
                .await
                .map_err(failed)?;
            tracing::info!(networkpolicy = %name, "deleted: NetworkPolicies are turned off");
        }
    }
    Ok(())
}

async fn write_status(client: &Client, pc: &PushCluster, status: &PushClusterStatus) -> Result<()> {
    let ns = pc.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<PushCluster> = Api::namespaced(client.clone(), &ns);
    let patch = serde_json::json!({
        "apiVersion": PushCluster::api_version(&()),
        "kind": PushCluster::kind(&()),
        "status": status,
    });
    api.patch_status(
        &pc.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::Status {
        name: display_name(pc),
        source,
    })?;
    Ok(())
}

/// Events on meaningful changes: a new generation applied, Ready or Degraded flipping.
async fn publish_events(
    ctx: &Context,
    pc: &PushCluster,
    old: Option<&PushClusterStatus>,
    new: &PushClusterStatus,
) {
    let Some(recorder) = &ctx.recorder else {
        return;
    };
    let mut events = Vec::new();
    if old.and_then(|s| s.observed_generation) != new.observed_generation {
        let s = &pc.spec;
        events.push((
            EventType::Normal,
            "Applied",
            format!(
                "applied generation {}: push {}, dispatch {}, collect {}, auth {} replicas",
                new.observed_generation.unwrap_or(0),
                s.push.replicas,
                s.dispatch.replicas,
                s.collect.replicas,
                s.auth.replicas
            ),
        ));
    }
    for (type_, when_true, when_false) in [
        (
            READY,
            (EventType::Normal, "Ready"),
            (EventType::Warning, "NotReady"),
        ),
        (
            DEGRADED,
            (EventType::Warning, "Degraded"),
            (EventType::Normal, "Recovered"),
        ),
    ] {
        let before = status::condition_status(old, type_);
        let Some(cond) = new.conditions.iter().find(|c| c.type_ == type_) else {
            continue;
        };
        // No change, or the first status of a new cluster that is not (yet) ready / degraded.
        if before == Some(cond.status.as_str()) || (before.is_none() && cond.status == "False") {
            continue;
        }
        let (event_type, reason) = if cond.status == "True" {
            when_true
        } else {
            when_false
        };
        events.push((event_type, reason, cond.message.clone()));
    }
    let reference = pc.object_ref(&());
    for (type_, reason, note) in events {
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &reference).await {
            tracing::warn!(error = %e, reason, "failed to publish an event");
        }
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The delay before retrying after the `n`th consecutive failure: 5 s doubling, at most 5 min.
pub fn backoff(n: u32) -> Duration {
    let secs = 5u64.saturating_mul(1 << n.saturating_sub(1).min(6));
    Duration::from_secs(secs.min(300))
}

/// Logs the error, counts it, and requeues with [`backoff`].
pub fn error_policy(pc: Arc<PushCluster>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.failure(err);
    let n = {
        let mut f = ctx.failures();
        let n = f.entry(display_name(&pc)).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(n);
    tracing::warn!(pushcluster = %display_name(&pc), error = %err, failures = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Runs the controller until `stop` completes: watches PushClusters (in `namespace`, or all)
/// and the children it owns.
pub async fn run(
    ctx: Arc<Context>,
    namespace: Option<&str>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=pushcluster-operator");
    Controller::new(
        api::<PushCluster>(&client, namespace),
        watcher::Config::default(),
    )
    .owns(api::<Deployment>(&client, namespace), owned.clone())
    .owns(api::<Service>(&client, namespace), owned.clone())
    .owns(api::<ConfigMap>(&client, namespace), owned.clone())
    .owns(api::<NetworkPolicy>(&client, namespace), owned.clone())
    .owns(api::<PodDisruptionBudget>(&client, namespace), owned)
    .graceful_shutdown_on(stop)
    .run(reconcile, error_policy, ctx)
    .for_each(|res| async move {
        match res {
            Ok((obj, _)) => tracing::debug!(pushcluster = %obj.name, "reconciled"),
            Err(e) => tracing::debug!(error = %e, "controller event"),
        }
    })
    .await;
}

#[cfg(test)]
mod tests;
