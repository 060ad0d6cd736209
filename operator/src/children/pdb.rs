//! The push PodDisruptionBudget: a drain or node upgrade moves push pods a few at a time, so
//! clients reconnect to the others instead of all at once.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Role, meta, role_labels, selector};
use crate::crd::PushCluster;

pub fn build(pc: &PushCluster) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(pc, Role::Push.name(pc), role_labels(pc, Role::Push)),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(pc.spec.push.max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(selector(pc, Role::Push)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
