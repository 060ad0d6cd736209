use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::*;
use crate::children::fixtures::push_cluster;

fn deployment(generation: i64, observed: i64, replicas: i32, ready: i32) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            generation: Some(generation),
            ..ObjectMeta::default()
        },
        status: Some(DeploymentStatus {
            observed_generation: Some(observed),
            replicas: Some(replicas),
            updated_replicas: Some(replicas),
            ready_replicas: Some(ready),
            ..DeploymentStatus::default()
        }),
        ..Deployment::default()
    }
}

fn cond<'a>(s: &'a PushClusterStatus, t: &str) -> &'a Condition {
    s.conditions.iter().find(|c| c.type_ == t).unwrap()
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + secs).unwrap()
}

#[test]
fn all_ready_is_ready_and_not_progressing() {
    let pc = push_cluster(); // push 3, the rest 2
    let push = deployment(1, 1, 3, 3);
    let other = deployment(1, 1, 2, 2);
    let ds = [
        (Role::Push, Some(&push)),
        (Role::Dispatch, Some(&other)),
        (Role::Collect, Some(&other)),
        (Role::Auth, Some(&other)),
    ];
    let s = compute(&pc, &ds, &[], t(0));
    assert_eq!(cond(&s, READY).status, "True");
    assert_eq!(cond(&s, PROGRESSING).status, "False");
    assert_eq!(cond(&s, DEGRADED).status, "False");
    assert_eq!(s.push.ready_replicas, 3);
    assert_eq!(s.observed_generation, Some(1));
    assert!(s.selector.contains("app.kubernetes.io/component=push"));
    assert!(
        s.conditions
            .iter()
            .all(|c| c.observed_generation == Some(1))
    );
}

#[test]
fn rolling_out_is_progressing() {
    let pc = push_cluster();
    let push = deployment(2, 1, 3, 1);
    let s = compute(&pc, &[(Role::Push, Some(&push))], &[], t(0));
    assert_eq!(cond(&s, READY).status, "False");
    assert_eq!(cond(&s, READY).reason, "ReplicasNotReady");
    assert!(
        cond(&s, READY).message.contains("push 1/3 ready"),
        "{:?}",
        cond(&s, READY)
    );
    assert_eq!(cond(&s, PROGRESSING).status, "True");
    assert!(cond(&s, PROGRESSING).message.contains("push"));
}

#[test]
fn a_missing_secret_is_degraded_by_name() {
    let pc = push_cluster();
    let missing = vec!["Secret demo-secrets (spec.mongo.uriSecretRef) not found".to_owned()];
    let s = compute(&pc, &[(Role::Push, None)], &missing, t(0));
    let d = cond(&s, DEGRADED);
    assert_eq!(
        (d.status.as_str(), d.reason.as_str()),
        ("True", "SecretMissing")
    );
    assert!(d.message.contains("demo-secrets"));
    assert_eq!(cond(&s, READY).reason, "SecretMissing");
}

#[test]
fn a_stuck_rollout_is_degraded() {
    let pc = push_cluster();
    let mut push = deployment(1, 1, 3, 0);
    push.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
        type_: "Progressing".into(),
        status: "False".into(),
        reason: Some("ProgressDeadlineExceeded".into()),
        message: Some("ReplicaSet has timed out progressing.".into()),
        ..DeploymentCondition::default()
    }]);
    let s = compute(&pc, &[(Role::Push, Some(&push))], &[], t(0));
    assert_eq!(cond(&s, DEGRADED).reason, "RolloutStuck");
    assert!(cond(&s, DEGRADED).message.contains("demo-push"));
    assert_eq!(cond(&s, PROGRESSING).status, "False");
}

#[test]
fn transition_time_changes_only_on_a_transition() {
    let mut pc = push_cluster();
    let push = deployment(1, 1, 3, 1);
    let first = compute(&pc, &[(Role::Push, Some(&push))], &[], t(0));
    pc.status = Some(first.clone());
    // Same observation later: identical status, so nothing to write.
    let again = compute(&pc, &[(Role::Push, Some(&push))], &[], t(60));
    assert_eq!(again, first);
    // Ready flips: only Ready's time moves.
    let mut pc2 = crate::children::fixtures::push_cluster();
    pc2.spec.push.replicas = 1;
    pc2.status = Some(first.clone());
    let flipped = compute(&pc2, &[(Role::Push, Some(&push))], &[], t(120));
    assert_eq!(cond(&flipped, READY).status, "True");
    assert_eq!(cond(&flipped, READY).last_transition_time.0, t(120));
    assert_eq!(
        cond(&flipped, DEGRADED).last_transition_time,
        cond(&first, DEGRADED).last_transition_time
    );
}
