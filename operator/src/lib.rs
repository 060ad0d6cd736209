//! The pushcluster operator: runs `PushCluster` resources on Kubernetes.
//!
//! - [`crd`]: the `PushCluster` resource (`pushcluster.io/v1alpha1`), its validation and status.
//! - [`crdgen`]: the CRD as YAML for `crds/` and the Helm chart.
//! - [`children`]: pure builders of each child object (Deployments, Services, ConfigMap, PDB).
//! - [`secrets`]: the Secrets a spec references, and which are missing.
//! - [`status`]: conditions and replicas computed from the children.
//! - [`reconcile`]: server-side apply of the children, status, events, error backoff; the controller.
//! - [`leader`]: leader election on a Lease.
//! - [`admin`], [`metrics`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`config`]: the command line.
#![forbid(unsafe_code)]

use std::future::Future;

use kube::Client;
use kube::runtime::events::{Recorder, Reporter};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

pub mod admin;
pub mod children;
pub mod config;
pub mod crd;
pub mod crdgen;
pub mod error;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod secrets;
pub mod status;

pub use error::{Error, Result};

/// Runs the operator until `shutdown` completes (or leadership is lost, which is an error so
/// the pod restarts as a standby).
pub async fn run(config: config::Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    let lease = config.leader.lease().ok();
    let client = Client::try_default().await.map_err(Error::Connect)?;
    let mut registry = Registry::default();
    let metrics = metrics::Metrics::new(&mut registry);
    let admin = admin::Admin::new(registry);
    let listener = admin::bind(config.admin_listen).await?;
    tracing::info!(addr = %config.admin_listen, "admin endpoints listening");

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let admin_task = tokio::spawn(admin::serve(listener, admin.clone(), stopped()));
    client.apiserver_version().await.map_err(Error::Connect)?;
    admin.set_ready();

    let identity = lease
        .as_ref()
        .map(|l| l.identity.clone())
        .unwrap_or_else(|| "pushcluster-operator".into());
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "pushcluster-operator".into(),
            instance: Some(identity),
        },
    );
    let ctx = reconcile::Context::new(
        client.clone(),
        Some(recorder),
        metrics.clone(),
        config.pushd_image.clone(),
    );
    let namespace = config.watch_namespace.clone();
    tokio::pin!(shutdown);

    let result = match (config.leader.enabled, lease) {
        (true, Some(lease)) => {
            let mut elector = leader::LeaderElector::new(client, lease);
            tokio::select! {
                _ = elector.acquire() => {}
                _ = &mut shutdown => {
                    let _ = stop_tx.send(true);
                    let _ = admin_task.await;
                    return Ok(());
                }
            }
            metrics.leader.set(1);
            let controller = reconcile::run(ctx, namespace.as_deref(), stopped());
            tokio::pin!(controller);
            let outcome = tokio::select! {
                _ = elector.hold() => Err(Error::LeadershipLost),
                _ = &mut shutdown => Ok(()),
                _ = &mut controller => Ok(()),
            };
            let _ = stop_tx.send(true);
            controller.await;
            metrics.leader.set(0);
            if outcome.is_ok() {
                elector.release().await;
            }
            outcome
        }
        (true, None) => Err(Error::Config(
            config.leader.lease().err().map(|e| e.0).unwrap_or_default(),
        )),
        (false, _) => {
            metrics.leader.set(1);
            let controller = reconcile::run(ctx, namespace.as_deref(), stopped());
            tokio::pin!(controller);
            tokio::select! {
                _ = &mut shutdown => {}
                _ = &mut controller => {}
            }
            let _ = stop_tx.send(true);
            controller.await;
            Ok(())
        }
    };
    let _ = stop_tx.send(true);
    let _ = admin_task.await;
    tracing::info!("operator stopped");
    result
}

/// Completes on SIGTERM or SIGINT: the one shutdown signal.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        },
        Err(e) => {
            tracing::warn!(error = %e, "no SIGTERM handler; waiting for SIGINT only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
