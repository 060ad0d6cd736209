//! End-to-end tests of pushcluster on a real single-node Kubernetes
//! ([`pushcluster_test_support::kubenode`]): the chart, the operator, every data-plane role and
//! the data services run as pods from images built here; the test drives them the way a
//! user would (`helm`, `kubectl`) and talks to them from outside the cluster.
//!
//! - [`images`]: the project's image (release `pushd` + `pushcluster-operator`), Redis and
//!   FerretDB as OCI layouts imported into the node.
//! - [`traffic`]: devices (WebSockets through the push NodePort) and a producer (HTTP through
//!   the collect NodePort), with a ledger of accepted versus delivered messages per device.
//! - [`kubectl`]: JSON from kubectl and polling helpers.
//!
//! The test is `tests/k8s.rs` (`make e2e-k8s`); see docs/kubernetes-e2e.md.

pub mod images;
pub mod kubectl;
pub mod traffic;
