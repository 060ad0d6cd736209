//! Services: clients (push), the push headless Service (one DNS name per ready push pod, which
//! is how dispatch addresses a node), one Service per role for its gRPC/HTTP ports, and a
//! headless `<name>-metrics` Service over every pod's `metrics` port (label
//! `pushcluster.io/metrics: "true"`), for a Prometheus ServiceMonitor. The admin port is on no
//! client-facing Service, so a LoadBalancer never exposes it.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{
    Role, instance_selector, labels, meta, metrics_service_name, push_headless_name, role_labels,
    selector,
};
use crate::crd::{ADMIN_PORT, PushCluster};

fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

fn service(pc: &PushCluster, role: Role, name: String, spec: ServiceSpec) -> Service {
    Service {
        metadata: meta(pc, name, role_labels(pc, role)),
        spec: Some(ServiceSpec {
            selector: Some(selector(pc, role)),
            ..spec
        }),
        ..Service::default()
    }
}

/// Every Service of `pc`.
pub fn build_all(pc: &PushCluster) -> Vec<Service> {
    let http = |role: Role| port("http", role.http_port(pc).unwrap_or_default());
    let grpc = |role: Role| port("grpc", role.grpc_port(pc));
    vec![
        // Clients' WebSockets.
        service(
            pc,
            Role::Push,
            Role::Push.name(pc),
            ServiceSpec {
                type_: Some(pc.spec.push.service_type.as_str().into()),
                ports: Some(vec![http(Role::Push)]),
                ..ServiceSpec::default()
            },
        ),
        // `10-244-1-5.<cluster>-push-headless.<ns>.svc.<domain>` resolves while that pod is ready.
        service(
            pc,
            Role::Push,
            push_headless_name(pc),
            ServiceSpec {
                cluster_ip: Some("None".into()),
                publish_not_ready_addresses: Some(false),
                ports: Some(vec![grpc(Role::Push)]),
                ..ServiceSpec::default()
            },
        ),
        service(
            pc,
            Role::Dispatch,
            Role::Dispatch.name(pc),
            ServiceSpec {
                ports: Some(vec![grpc(Role::Dispatch)]),
                ..ServiceSpec::default()
            },
        ),
        service(
            pc,
            Role::Collect,
            Role::Collect.name(pc),
            ServiceSpec {
                type_: Some(pc.spec.collect.service_type.as_str().into()),
                ports: Some(vec![http(Role::Collect), grpc(Role::Collect)]),
                ..ServiceSpec::default()
            },
        ),
        service(
            pc,
            Role::Auth,
            Role::Auth.name(pc),
            ServiceSpec {
                ports: Some(vec![grpc(Role::Auth)]),
                ..ServiceSpec::default()
            },
        ),
        metrics(pc),
    ]
}

/// The label a ServiceMonitor can select the metrics Service by.
pub const METRICS_LABEL: &str = "pushcluster.io/metrics";

fn metrics(pc: &PushCluster) -> Service {
    let mut labels = labels(pc);
    labels.insert(METRICS_LABEL.into(), "true".into());
    Service {
        metadata: meta(pc, metrics_service_name(pc), labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(instance_selector(pc)),
            ports: Some(vec![port("metrics", ADMIN_PORT)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
