use super::*;
use pushcluster_test_support::redis::{Redis, RedisCluster};

async fn exercise(routes: &RedisRouteTable) {
    let (a, b) = (
        NodeId("10.0.0.1:7001".into()),
        NodeId("10.0.0.2:7001".into()),
    );
    routes.add("u1", &a).await.unwrap();
    routes.add("u1", &b).await.unwrap();
    routes.add("u1", &a).await.unwrap(); // idempotent
    let mut nodes = routes.lookup("u1").await.unwrap();
    nodes.sort();
    assert_eq!(nodes, vec![a.clone(), b.clone()]);
    // Compare-and-delete: a's removal leaves b's entry.
    routes.remove("u1", &a).await.unwrap();
    assert_eq!(routes.lookup("u1").await.unwrap(), vec![b.clone()]);
    assert!(routes.lookup("nobody").await.unwrap().is_empty());
    // Many users spread over slots.
    let users: Vec<String> = (0..50).map(|i| format!("user-{i}")).collect();
    for u in &users {
        routes.add(u, &a).await.unwrap();
    }
    let r = routes.refresh(&users, &a).await;
    assert_eq!((r.failed, r.restored.len()), (0, 0), "all present");
    for u in &users {
        assert_eq!(routes.lookup(u).await.unwrap(), vec![a.clone()]);
    }
}

#[tokio::test]
async fn routes_on_standalone_redis() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let routes = RedisRouteTable::connect(
        &RedisTarget::Standalone(redis.url.clone()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    exercise(&routes).await;
}

#[tokio::test]
async fn routes_on_redis_cluster() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    let routes = RedisRouteTable::connect(
        &RedisTarget::Cluster(cluster.urls()),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    exercise(&routes).await;
}

#[tokio::test]
async fn entries_expire_unless_renewed_and_survive_a_redis_restart() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let routes = RedisRouteTable::connect(
        &RedisTarget::Standalone(redis.url.clone()),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    let n = NodeId("n".into());
    routes.add("u", &n).await.unwrap();
    assert_eq!(routes.lookup("u").await.unwrap().len(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(routes.lookup("u").await.unwrap().is_empty(), "expired");

    redis.stop();
    assert!(
        routes.add("u", &n).await.is_err(),
        "Redis down is an error, not a hang"
    );
    redis.restart().await;
    // The connection manager reconnects; a heartbeat restores the route.
    let mut restored = false;
    for _ in 0..50 {
        let r = routes.refresh(&["u".to_string()], &n).await;
        if r.failed == 0 {
            assert_eq!(
                r.restored,
                vec!["u".to_string()],
                "the lost entry is reported"
            );
            restored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(restored, "route table usable again after the restart");
    assert_eq!(routes.lookup("u").await.unwrap(), vec![n]);
}
