use super::*;
use pushcluster_test_support::redis::{Redis, RedisCluster};

async fn exercise(routes: &RedisRouteTable) {
    let (a, b) = (
        NodeId("10.0.0.1:7001".into()),
        NodeId("10.0.0.2:7001".into()),
    );
    assert_eq!(
        routes.heartbeat(&a).await.unwrap(),
        Liveness::Restored,
        "first beat"
    );
    assert_eq!(routes.heartbeat(&a).await.unwrap(), Liveness::Renewed);
    routes.heartbeat(&b).await.unwrap();
    routes.add(&a, &["u1"]).await.unwrap();
    routes.add(&b, &["u1"]).await.unwrap();
    routes.add(&a, &["u1"]).await.unwrap(); // idempotent
    assert_eq!(
        routes.lookup(&["u1"]).await.unwrap(),
        vec![vec![a.clone(), b.clone()]]
    );
    // Compare-and-delete: a's removal leaves b's entry.
    routes.remove(&a, &["u1"]).await.unwrap();
    assert_eq!(
        routes.lookup(&["u1", "nobody"]).await.unwrap(),
        vec![vec![b.clone()], vec![]]
    );
    // Many users, ids with braces (no hash tag of their choosing), spread over slots: one
    // batch each way.
    let users: Vec<String> = (0..2000).map(|i| format!("user-{{{i}}}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    routes.add(&a, &refs).await.unwrap();
    let found = routes.lookup(&refs).await.unwrap();
    assert!(found.iter().all(|n| n == &vec![a.clone()]));
    routes.remove(&a, &refs).await.unwrap();
    assert!(
        routes
            .lookup(&refs)
            .await
            .unwrap()
            .iter()
            .all(Vec::is_empty)
    );
}

#[tokio::test]
async fn routes_on_standalone_redis() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let target = RedisTarget::Standalone(redis.url.clone());
    let routes = RedisRouteTable::connect(&target, Duration::from_secs(30))
        .await
        .unwrap();
    exercise(&routes).await;
}

#[tokio::test]
async fn routes_on_redis_cluster() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let target = RedisTarget::Cluster(cluster.urls());
    let routes = RedisRouteTable::connect(&target, Duration::from_secs(30))
        .await
        .unwrap();
    exercise(&routes).await;
}

/// A node that stops beating is dead to readers, who also drop its entries; a Redis that
/// restarts empty makes the next beat report `Restored`.
#[tokio::test]
async fn dead_nodes_are_skipped_and_a_redis_restart_is_noticed() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let target = RedisTarget::Standalone(redis.url.clone());
    let routes = RedisRouteTable::connect(&target, Duration::from_secs(30))
        .await
        .unwrap();
    let short = RedisRouteTable::connect(&target, Duration::from_secs(1))
        .await
        .unwrap();
    let (live, dead) = (NodeId("live".into()), NodeId("dead".into()));
    routes.heartbeat(&live).await.unwrap();
    short.heartbeat(&dead).await.unwrap();
    routes.add(&live, &["u"]).await.unwrap();
    routes.add(&dead, &["u"]).await.unwrap();
    assert_eq!(routes.lookup(&["u"]).await.unwrap()[0].len(), 2);
    // `dead` stops beating: after its TTL (and the reader's cache) it is gone.
    tokio::time::sleep(Duration::from_millis(1300).max(LIVENESS_CACHE)).await;
    assert_eq!(
        routes.lookup(&["u"]).await.unwrap(),
        vec![vec![live.clone()]]
    );
    let members: Vec<String> = routes
        .query(redis::cmd("SMEMBERS").arg(user_key("u")))
        .await
        .unwrap();
    assert_eq!(
        members,
        vec!["live".to_string()],
        "the dead entry was cleaned"
    );
    // A drained node leaves at once.
    routes.leave(&live).await.unwrap();
    assert!(routes.lookup(&["u"]).await.unwrap()[0].is_empty());

    routes.heartbeat(&live).await.unwrap();
    redis.stop();
    assert!(
        routes.heartbeat(&live).await.is_err(),
        "Redis down is an error, not a hang"
    );
    redis.restart().await;
    let mut beat = None;
    for _ in 0..50 {
        if let Ok(l) = routes.heartbeat(&live).await {
            beat = Some(l);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(beat, Some(Liveness::Restored), "the lost key is reported");
}
