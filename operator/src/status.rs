//! The status of a PushCluster, computed from its Deployments and its Secrets.
//!
//! Conditions follow metav1.Condition: `lastTransitionTime` changes only when a condition's
//! status changes, so writing the same status twice is a no-op (no update storms).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::children::{Role, selector_string};
use crate::crd::{PushCluster, PushClusterStatus, RoleStatus};

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// One role's Deployment as the API server returned it.
struct Rollout {
    role: Role,
    desired: i32,
    status: RoleStatus,
    /// The Deployment controller has seen the latest spec.
    observed: bool,
    /// A Deployment condition saying it is stuck: ProgressDeadlineExceeded or ReplicaFailure.
    stuck: Option<String>,
}

impl Rollout {
    fn from(pc: &PushCluster, role: Role, d: Option<&Deployment>) -> Rollout {
        let st = d.and_then(|d| d.status.as_ref());
        let status = RoleStatus {
            replicas: st.and_then(|s| s.replicas).unwrap_or(0),
            ready_replicas: st.and_then(|s| s.ready_replicas).unwrap_or(0),
            updated_replicas: st.and_then(|s| s.updated_replicas).unwrap_or(0),
        };
        let observed = match (d.and_then(|d| d.metadata.generation), st) {
            (Some(generation), Some(s)) => s.observed_generation.unwrap_or(0) >= generation,
            _ => false,
        };
        let stuck = st
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| {
                (c.type_ == "Progressing"
                    && c.status == "False"
                    && c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
                    || (c.type_ == "ReplicaFailure" && c.status == "True")
            })
            .map(|c| {
                format!(
                    "{}: {}",
                    Role::name(role, pc),
                    c.message.as_deref().unwrap_or(&c.type_)
                )
            });
        Rollout {
            role,
            desired: role.replicas(pc),
            status,
            observed,
            stuck,
        }
    }

    fn done(&self) -> bool {
        let s = &self.status;
        self.observed
            && s.updated_replicas >= self.desired
            && s.replicas == s.updated_replicas
            && s.ready_replicas >= self.desired
    }

    fn summary(&self) -> String {
        format!(
            "{} {}/{} ready",
            self.role.as_str(),
            self.status.ready_replicas,
            self.desired
        )
    }
}

/// The status `pc` should have, given its Deployments (by role; `None` when not created yet)
/// and the Secrets it is missing. Conditions keep their `lastTransitionTime` unless their
/// status changes.
pub fn compute(
    pc: &PushCluster,
    deployments: &[(Role, Option<&Deployment>)],
    missing_secrets: &[String],
    now: Timestamp,
) -> PushClusterStatus {
    let generation = pc.metadata.generation;
    let rollouts: Vec<Rollout> = deployments
        .iter()
        .map(|(role, d)| Rollout::from(pc, *role, *d))
        .collect();
    let role = |r: Role| {
        rollouts
            .iter()
            .find(|x| x.role == r)
            .map(|x| x.status)
            .unwrap_or_default()
    };
    let summary = rollouts
        .iter()
        .map(Rollout::summary)
        .collect::<Vec<_>>()
        .join(", ");
    let rolling: Vec<&str> = rollouts
        .iter()
        .filter(|r| !r.done() && r.stuck.is_none())
        .map(|r| r.role.as_str())
        .collect();
    let stuck: Vec<&str> = rollouts.iter().filter_map(|r| r.stuck.as_deref()).collect();
    let all_done = rollouts.iter().all(Rollout::done);

    let ready = if !missing_secrets.is_empty() {
        (false, "SecretMissing", missing_secrets.join("; "))
    } else if all_done {
        (true, "AllReplicasReady", summary.clone())
    } else {
        (false, "ReplicasNotReady", summary.clone())
    };
    let progressing = if rolling.is_empty() {
        (
            false,
            "RolloutComplete",
            "no rollout in progress".to_owned(),
        )
    } else {
        (
            true,
            "RollingOut",
            format!("rolling out: {}", rolling.join(", ")),
        )
    };
    let degraded = if !missing_secrets.is_empty() {
        (true, "SecretMissing", missing_secrets.join("; "))
    } else if !stuck.is_empty() {
        (true, "RolloutStuck", stuck.join("; "))
    } else {
        (
            false,
            "AsExpected",
            "all referenced Secrets exist".to_owned(),
        )
    };

    let previous = pc
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let conditions = [
        (READY, ready),
        (PROGRESSING, progressing),
        (DEGRADED, degraded),
    ]
    .into_iter()
    .map(|(type_, (status, reason, message))| {
        condition(previous, type_, status, reason, message, generation, now)
    })
    .collect();
    PushClusterStatus {
        observed_generation: generation,
        conditions,
        push: role(Role::Push),
        dispatch: role(Role::Dispatch),
        collect: role(Role::Collect),
        auth: role(Role::Auth),
        selector: selector_string(pc, Role::Push),
    }
}

/// A condition; its `lastTransitionTime` is the previous one unless `status` changed.
fn condition(
    previous: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_owned();
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(truncate_to_seconds(now)));
    Condition {
        type_: type_.into(),
        status,
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

fn truncate_to_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The status of condition `type_` (`"True"`, `"False"`), if set.
pub fn condition_status<'a>(status: Option<&'a PushClusterStatus>, type_: &str) -> Option<&'a str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// `namespace/name` of a PushCluster, for logs.
pub fn display_name(pc: &PushCluster) -> String {
    format!("{}/{}", pc.namespace().unwrap_or_default(), pc.name_any())
}

#[cfg(test)]
mod tests;
