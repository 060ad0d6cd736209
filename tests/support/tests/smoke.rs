//! Smoke tests: every real service starts, answers, and is cleaned up.

use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ListParams, PostParams};
use mongodb::bson::{Document, doc};
use pushcluster_test_support::Helm;
use pushcluster_test_support::dnsmasq::{Dnsmasq, resolve_a};
use pushcluster_test_support::kube::ControlPlane;
use pushcluster_test_support::mongo::{Backend, Mongo};
use pushcluster_test_support::redis::{Redis, RedisCluster};
use pushcluster_test_support::squid::Squid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn redis_set_get() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v1")
        .query_async(&mut conn)
        .await
        .unwrap();
    let v: String = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, "v1");
}

#[tokio::test]
async fn redis_restarts_on_the_same_port_and_cleans_up() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("before")
        .query_async(&mut conn)
        .await
        .unwrap();
    redis.stop();
    assert!(
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_err(),
        "PING answered after stop"
    );
    let port = redis.port;
    redis.restart().await;
    assert_eq!(redis.port, port);
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let v: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, None, "a restarted Redis starts empty");

    // No process nor temp dir outlives the handle.
    let dir = redis.dir().to_owned();
    let pid = redis.pid().unwrap();
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    assert!(proc_dir.exists());
    drop(redis);
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert!(!proc_dir.exists(), "redis pid {pid} still alive");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "port {port} still answers"
    );
}

#[tokio::test]
async fn redis_cluster_of_three_masters() {
    let Some(cluster) = RedisCluster::start().await else {
        return;
    };
    assert_eq!(cluster.urls().len(), 3);
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    // Keys in different slots land on different masters.
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("key-{i}"))
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    for i in 0..20 {
        let v: i64 = redis::cmd("GET")
            .arg(format!("key-{i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(v, i);
    }
    let mut masters_with_keys = 0;
    for url in cluster.urls() {
        let c = redis::Client::open(url.as_str()).unwrap();
        let mut conn = c.get_multiplexed_async_connection().await.unwrap();
        let n: i64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        if n > 0 {
            masters_with_keys += 1;
        }
    }
    assert_eq!(masters_with_keys, 3);
}

#[tokio::test]
async fn mongo_insert_find_unique_and_ttl_index() {
    let Some(mongo) = Mongo::start().await else {
        return;
    };
    let db = mongo.db().await;
    let coll = db.collection::<Document>("messages");
    coll.create_index(
        mongodb::IndexModel::builder()
            .keys(doc! {"key": 1})
            .options(
                mongodb::options::IndexOptions::builder()
                    .unique(true)
                    .build(),
            )
            .build(),
    )
    .await
    .unwrap();
    let ttl = coll
        .create_index(
            mongodb::IndexModel::builder()
                .keys(doc! {"expires_at": 1})
                .options(
                    mongodb::options::IndexOptions::builder()
                        .expire_after(Duration::from_secs(0))
                        .build(),
                )
                .build(),
        )
        .await;
    let ttl_created = ttl.is_ok();
    match ttl {
        Ok(_) => {}
        // FerretDB (either backend): a clear NotImplemented (code 238), which MongoStore
        // handles by purging in its expiry sweep. A real MongoDB must accept it.
        Err(e) if !mongo.real => assert!(
            matches!(*e.kind, mongodb::error::ErrorKind::Command(ref c) if c.code == 238),
            "{e}"
        ),
        Err(e) => panic!("TTL index refused by a real MongoDB: {e}"),
    }
    coll.insert_one(doc! {"key": "a", "n": 1}).await.unwrap();
    let found = coll.find_one(doc! {"key": "a"}).await.unwrap().unwrap();
    assert_eq!(found.get_i32("n").unwrap(), 1);
    let dup = coll
        .insert_one(doc! {"key": "a", "n": 2})
        .await
        .unwrap_err();
    assert!(
        matches!(*dup.kind, mongodb::error::ErrorKind::Write(mongodb::error::WriteFailure::WriteError(ref e)) if e.code == 11000),
        "expected a duplicate-key error, got {dup}"
    );
    let indexes = coll.list_index_names().await.unwrap();
    assert!(indexes.iter().any(|n| n.contains("key")), "{indexes:?}");
    if ttl_created {
        let mut cursor = coll.list_indexes().await.unwrap();
        let mut ttl_seconds = None;
        while cursor.advance().await.unwrap() {
            let index: mongodb::IndexModel = cursor.deserialize_current().unwrap();
            if index.keys.contains_key("expires_at") {
                ttl_seconds = index.options.and_then(|o| o.expire_after);
            }
        }
        assert_eq!(ttl_seconds, Some(Duration::from_secs(0)), "{indexes:?}");
    }
    eprintln!(
        "TTL index created: {ttl_created} (real MongoDB: {})",
        mongo.real
    );
}

#[tokio::test]
async fn ferretdb_on_postgres_shares_one_cluster_with_a_database_per_test() {
    let (Some(a), Some(b)) = (Mongo::start().await, Mongo::start().await) else {
        return;
    };
    if a.backend != Backend::FerretDbPostgres {
        eprintln!("store is {}: nothing shared to check", a.backend.name());
        return;
    }
    let postgres = |m: &Mongo| m.pids().into_iter().find(|(n, _)| *n == "postgres");
    assert!(postgres(&a).is_some(), "{:?}", a.pids());
    assert_eq!(
        postgres(&a),
        postgres(&b),
        "one PostgreSQL per test process"
    );
    assert_ne!(a.database, b.database);
    let count = |db: mongodb::Database| async move {
        db.collection::<Document>("c")
            .count_documents(doc! {})
            .await
            .unwrap()
    };
    a.db()
        .await
        .collection("c")
        .insert_one(doc! {"x": 1})
        .await
        .unwrap();
    assert_eq!(
        count(b.db().await).await,
        0,
        "each test has its own database"
    );
    let a_seen_from_b = b.client().await.database(&a.database);
    assert_eq!(
        count(a_seen_from_b).await,
        1,
        "both FerretDBs store in one cluster"
    );
}

/// A one-shot HTTP server on 127.0.0.1 answering 200 "hello".
async fn tiny_http() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
                    )
                    .await;
            });
        }
    });
    port
}

/// Sends a plain-HTTP proxy request and returns the status line.
async fn via_proxy(proxy_port: u16, target_port: u16, auth: Option<(&str, &str)>) -> String {
    use base64::Engine;
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", proxy_port))
        .await
        .unwrap();
    let mut req = format!(
        "GET http://127.0.0.1:{target_port}/ HTTP/1.1\r\nHost: 127.0.0.1:{target_port}\r\nConnection: close\r\n"
    );
    if let Some((u, p)) = auth {
        let cred = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        req.push_str(&format!("Proxy-Authorization: Basic {cred}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
        + if text.ends_with("hello") {
            " hello"
        } else {
            ""
        }
}

/// Sends a raw request to the proxy and returns the first line of its reply.
async fn status_line(proxy_port: u16, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", proxy_port))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn squid_requires_basic_auth() {
    let target = tiny_http().await;
    let Some(squid) = Squid::start("apns", "s3cret", &[target]).await else {
        return;
    };
    let ok = via_proxy(squid.port, target, Some(("apns", "s3cret"))).await;
    assert!(ok.contains(" 200 ") && ok.ends_with("hello"), "{ok}");
    let denied = via_proxy(squid.port, target, None).await;
    assert!(denied.contains(" 407 "), "{denied}");
    let wrong = via_proxy(squid.port, target, Some(("apns", "nope"))).await;
    assert!(wrong.contains(" 407 "), "{wrong}");
    // The ACL allows only the given port.
    let other = tiny_http().await;
    let blocked = via_proxy(squid.port, other, Some(("apns", "s3cret"))).await;
    assert!(blocked.contains(" 403 "), "{blocked}");
    // CONNECT (how the APNs client tunnels) is allowed with credentials; other methods are not.
    let cred = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode("apns:s3cret")
    };
    let connect = status_line(
        squid.port,
        &format!("CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\nProxy-Authorization: Basic {cred}\r\n\r\n"),
    )
    .await;
    assert!(connect.contains(" 200 "), "{connect}");
    let post = status_line(
        squid.port,
        &format!("POST http://127.0.0.1:{target}/ HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\nProxy-Authorization: Basic {cred}\r\nContent-Length: 0\r\n\r\n"),
    )
    .await;
    assert!(post.contains(" 403 "), "{post}");
    let log = squid.access_log();
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("127.0.0.1:{target}"))),
        "{log:?}"
    );
}

#[tokio::test]
async fn dnsmasq_resolves_headless_names() {
    let name = "10-0-0-7.push-headless.ns.svc.cluster.local";
    let Some(dns) = Dnsmasq::start(&[(name, Ipv4Addr::new(10, 0, 0, 7))]).await else {
        return;
    };
    assert_eq!(
        resolve_a(dns.addr, name).await.unwrap(),
        vec![Ipv4Addr::new(10, 0, 0, 7)]
    );
    let missing = resolve_a(dns.addr, "10-0-0-8.push-headless.ns.svc.cluster.local")
        .await
        .unwrap();
    assert!(missing.is_empty());
}

#[tokio::test]
async fn helm_version_and_lint() {
    let Some(helm) = Helm::helm() else { return };
    let version = helm.run(&["version", "--short"]).unwrap();
    assert!(version.starts_with("v3."), "{version}");
    let dir = tempfile::tempdir().unwrap();
    let chart = dir.path().join("tiny");
    std::fs::create_dir_all(chart.join("templates")).unwrap();
    std::fs::write(
        chart.join("Chart.yaml"),
        "apiVersion: v2\nname: tiny\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(chart.join("values.yaml"), "name: x\n").unwrap();
    std::fs::write(
        chart.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.name }}\n",
    )
    .unwrap();
    let chart = chart.to_str().unwrap();
    let lint = helm.run(&["lint", chart]).unwrap();
    assert!(lint.contains("0 chart(s) failed"), "{lint}");
    let rendered = helm.run(&["template", "r", chart]).unwrap();
    assert!(rendered.contains("name: x"), "{rendered}");
    std::fs::write(
        std::path::Path::new(chart).join("templates/bad.yaml"),
        "{{ .Values.nope.deeper }}\n",
    )
    .unwrap();
    assert!(helm.run(&["lint", chart]).is_err());
}

#[tokio::test]
async fn control_plane_configmap_via_kube_and_kubectl() {
    let Some(cp) = ControlPlane::start(false).await else {
        return;
    };
    let client = cp.client().await;
    let ns = Api::<Namespace>::all(client.clone());
    let mut n = Namespace::default();
    n.metadata.name = Some("smoke".into());
    ns.create(&PostParams::default(), &n).await.unwrap();
    let cms = Api::<ConfigMap>::namespaced(client, "smoke");
    assert!(cms.get_opt("hello").await.unwrap().is_none());
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("hello".into());
    cm.data = Some([("greeting".to_string(), "hi".to_string())].into());
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let out = cp
        .kubectl_tool()
        .run(&[
            "-n",
            "smoke",
            "get",
            "configmap",
            "hello",
            "-o",
            "jsonpath={.data.greeting}",
        ])
        .unwrap();
    assert_eq!(out, "hi");
    // And the other way round: kubectl writes, kube reads.
    cp.kubectl_tool()
        .apply("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\n  namespace: smoke\ndata:\n  k: v\n")
        .unwrap();
    let back = cms.get("from-kubectl").await.unwrap();
    assert_eq!(back.data.unwrap()["k"], "v");
}

#[tokio::test]
async fn controller_manager_creates_replicasets() {
    let Some(cp) = ControlPlane::start(true).await else {
        return;
    };
    let client = cp.client().await;
    let deploy: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "example/web:1"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &deploy)
        .await
        .unwrap();
    let rs = Api::<ReplicaSet>::namespaced(client, "default");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let list = rs
            .list(&ListParams::default().labels("app=web"))
            .await
            .unwrap();
        if let Some(r) = list.items.first() {
            let owner = &r.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.name.as_str()),
                ("Deployment", "web")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no ReplicaSet for the Deployment"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
