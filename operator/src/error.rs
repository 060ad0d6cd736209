//! Errors of the operator, each with a metric label.

/// Why a reconcile or the operator failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to apply {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to read Secret {name}: {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to delete {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to create Secret {name}: {source}")]
    CreateSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to update the status of PushCluster {name}: {source}")]
    Status {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("PushCluster has no namespace")]
    NoNamespace,
    #[error("leader election on Lease {name} failed: {source}")]
    Lease {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("failed to serve the admin endpoints on {addr}: {source}")]
    Admin {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to connect to the Kubernetes API: {0}")]
    Connect(#[source] kube::Error),
    #[error("lost the leader Lease")]
    LeadershipLost,
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl Error {
    /// The `error` label of `pushcluster_operator_reconcile_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Apply { .. } => "apply",
            Error::ReadSecret { .. } => "read_secret",
            Error::CreateSecret { .. } => "create_secret",
            Error::Delete { .. } => "delete",
            Error::Status { .. } => "status",
            Error::NoNamespace => "no_namespace",
            Error::Lease { .. } => "lease",
            Error::Admin { .. } => "admin",
            Error::Connect(_) => "connect",
            Error::LeadershipLost => "leadership_lost",
            Error::Config(_) => "config",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
