//! From a node id (`ip:port`) to the address dispatch dials.
//!
//! The template's placeholders: `{ip}`, `{ip_dashed}` (10.0.0.7 → 10-0-0-7), `{port}`,
//! `{service}`, `{namespace}`, `{cluster_domain}`. The default,
//! `{ip_dashed}.{service}.{namespace}.svc.{cluster_domain}:{port}`, is the headless-Service
//! name of the pod, which resolves only while the pod is a ready endpoint — so a route to a
//! pod that is gone stops resolving and is recognized as stale. `{ip}:{port}` serves local runs.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use pushcluster_proto::delivery::NodeId;

pub const DEFAULT_TEMPLATE: &str = "{ip_dashed}.{service}.{namespace}.svc.{cluster_domain}:{port}";

/// How node ids become dialable addresses.
#[derive(Debug, Clone)]
pub struct Addressing {
    pub template: String,
    pub service: String,
    pub namespace: String,
    pub cluster_domain: String,
}

impl Addressing {
    /// Renders the template for `node` (`ip:port`).
    pub fn render(&self, node: &NodeId) -> Result<String, String> {
        let (ip, port) = node
            .0
            .rsplit_once(':')
            .ok_or_else(|| format!("node id {node} is not ip:port"))?;
        let ip = ip.trim_start_matches('[').trim_end_matches(']');
        Ok(self
            .template
            .replace("{ip_dashed}", &ip.replace(['.', ':'], "-"))
            .replace("{ip}", ip)
            .replace("{port}", port)
            .replace("{service}", &self.service)
            .replace("{namespace}", &self.namespace)
            .replace("{cluster_domain}", &self.cluster_domain))
    }
}

/// Why an address could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The name does not exist (any more): the node is gone.
    #[error("{0} does not resolve")]
    Gone(String),
    #[error("cannot resolve {name}: {reason}")]
    Failed { name: String, reason: String },
}

/// DNS for node names: the system's resolv.conf, or a given server (tests: dnsmasq).
pub struct NodeResolver {
    resolver: TokioResolver,
}

impl NodeResolver {
    pub fn new(server: Option<SocketAddr>) -> Result<Self, String> {
        let builder = match server {
            Some(addr) => {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| e.to_string())?,
        };
        Ok(NodeResolver {
            resolver: builder.build().map_err(|e| e.to_string())?,
        })
    }

    /// `host:port` → a socket address.
    pub async fn resolve(&self, address: &str) -> Result<SocketAddr, ResolveError> {
        if let Ok(addr) = address.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let (host, port) = address
            .rsplit_once(':')
            .ok_or_else(|| ResolveError::Failed {
                name: address.into(),
                reason: "missing :port".into(),
            })?;
        let port: u16 = port.parse().map_err(|_| ResolveError::Failed {
            name: address.into(),
            reason: "bad port".into(),
        })?;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        // Fully qualified: no search domains.
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(ips) => ips
                .iter()
                .next()
                .map(|ip| SocketAddr::new(ip, port))
                .ok_or_else(|| ResolveError::Gone(host.into())),
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                Err(ResolveError::Gone(host.into()))
            }
            Err(e) => Err(ResolveError::Failed {
                name: host.into(),
                reason: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_headless_and_local_templates() {
        let mut a = Addressing {
            template: DEFAULT_TEMPLATE.into(),
            service: "push-headless".into(),
            namespace: "prod".into(),
            cluster_domain: "cluster.local".into(),
        };
        let node = NodeId("10.0.0.7:7001".into());
        assert_eq!(
            a.render(&node).unwrap(),
            "10-0-0-7.push-headless.prod.svc.cluster.local:7001"
        );
        a.template = "{ip}:{port}".into();
        assert_eq!(a.render(&node).unwrap(), "10.0.0.7:7001");
        assert!(a.render(&NodeId("nonsense".into())).is_err());
    }
}
