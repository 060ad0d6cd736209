//! The bearer check in front of every gRPC service: a tower layer on the whole server, so no
//! service can be added without it and it depends on no service's messages.
//!
//! A call without `authorization: Bearer <secret>`, or with a secret that is not accepted, is
//! answered `UNAUTHENTICATED` before it reaches a service, and counted in
//! `pushd_grpc_unauthenticated_total{service, reason}`.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{Either, Ready, ready};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tower_layer::Layer;
use tower_service::Service;

use crate::Secrets;

/// Labels of `pushd_grpc_unauthenticated_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UnauthenticatedLabels {
    /// The gRPC service called (`pushcluster.v1.Node`), `unknown` for a service this server
    /// does not have, `tls` for a refused TLS handshake.
    pub service: &'static str,
    /// `missing_token`, `invalid_token`, or `handshake` (TLS).
    pub reason: &'static str,
}

/// Metrics of the gRPC edge. Cheap to clone.
#[derive(Clone, Default)]
pub struct GrpcMetrics {
    /// Calls and connections refused for lack of credentials.
    pub unauthenticated: Family<UnauthenticatedLabels, Counter>,
}

impl GrpcMetrics {
    /// Creates the metrics and registers them under `pushd_grpc_`.
    pub fn new(registry: &mut Registry) -> GrpcMetrics {
        let m = GrpcMetrics::default();
        registry.sub_registry_with_prefix("pushd_grpc").register(
            "unauthenticated",
            "gRPC calls (and TLS handshakes) refused for missing or wrong credentials",
            m.unauthenticated.clone(),
        );
        m
    }

    pub(crate) fn refused(&self, service: &'static str, reason: &'static str) {
        self.unauthenticated
            .get_or_create(&UnauthenticatedLabels { service, reason })
            .inc();
    }
}

/// The layer: accepts calls that carry one of `secrets`.
#[derive(Clone)]
pub struct GrpcAuth {
    secrets: Arc<Secrets>,
    metrics: GrpcMetrics,
    /// The services of this server (bounds the `service` label).
    services: Arc<[&'static str]>,
}

impl GrpcAuth {
    pub fn new(secrets: Arc<Secrets>, metrics: GrpcMetrics, services: Vec<&'static str>) -> Self {
        GrpcAuth {
            secrets,
            metrics,
            services: services.into(),
        }
    }

    /// `Err((service label, reason))` when the call must be refused.
    fn check<B>(&self, req: &http::Request<B>) -> Result<(), (&'static str, &'static str)> {
        let given = crate::respond::bearer(req.headers());
        let reason = match given {
            Some(g) if self.secrets.matches(g.as_bytes()) => return Ok(()),
            Some(_) => "invalid_token",
            None => "missing_token",
        };
        let called = req.uri().path().trim_start_matches('/');
        let called = called.split('/').next().unwrap_or_default();
        let service = self
            .services
            .iter()
            .find(|s| **s == called)
            .copied()
            .unwrap_or("unknown");
        Err((service, reason))
    }
}

impl<S> Layer<S> for GrpcAuth {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.clone(),
        }
    }
}

/// A service behind [`GrpcAuth`].
#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: GrpcAuth,
}

impl<S, B, R> Service<http::Request<B>> for Authenticated<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    R: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        match self.auth.check(&req) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err((service, reason)) => {
                self.auth.metrics.refused(service, reason);
                tracing::info!(service, reason, "gRPC call refused: no valid bearer token");
                let status = tonic::Status::unauthenticated(match reason {
                    "missing_token" => "missing credentials: send authorization: Bearer <token>",
                    _ => "invalid credentials",
                });
                Either::Left(ready(Ok(status.into_http())))
            }
        }
    }
}
