//! A whole cluster of `pushd` role processes for tests and benchmarks.

use std::net::SocketAddr;

use pushcluster_test_support::mongo::Mongo;

use super::{Role, post_message};

pub struct Cluster {
    pub collect: Role,
    /// Collect nodes besides `collect` (`Options::collects`).
    pub more_collects: Vec<Role>,
    pub pushes: Vec<Role>,
    pub dispatch: Vec<Role>,
    pub auth: Role,
}

pub struct Options {
    pub redis_url: String,
    pub redis_cluster: bool,
    pub template: String,
    pub dns: Option<SocketAddr>,
    /// Extra flags for every dispatch replica (e.g. `--apns-…`).
    pub dispatch_args: Vec<String>,
    /// Extra flags for the auth role (e.g. `--jwt-audience=…`).
    pub auth_args: Vec<String>,
    /// Extra flags for collect (a `--dispatch-addr` here replaces the real one).
    pub collect_args: Vec<String>,
    /// Extra flags for every push node.
    pub push_args: Vec<String>,
    /// Extra flags for every role (e.g. `--tls-…`).
    pub all_args: Vec<String>,
    /// Collect nodes (at least one).
    pub collects: usize,
}

impl Cluster {
    /// Starts auth, two dispatch replicas, collect and three push nodes on 127.0.0.2/3/4.
    pub async fn start(mongo: &Mongo, o: &Options) -> Cluster {
        let s = |v: &str| v.to_string();
        let mut auth_args = vec![s("--grpc-listen=127.0.0.1:0")];
        auth_args.extend(o.all_args.iter().cloned());
        auth_args.extend(o.auth_args.iter().cloned());
        let auth = Role::spawn("auth", &auth_args).await;
        let mut redis = vec![format!("--redis-url={}", o.redis_url), s("--route-ttl=3s")];
        if o.redis_cluster {
            redis.push(s("--redis-cluster"));
        }
        let mongo_args = vec![
            format!("--mongodb-uri={}", mongo.uri),
            format!("--mongodb-database={}", mongo.database),
        ];
        let mut dispatch = Vec::new();
        for _ in 0..2 {
            let mut args = vec![
                s("--grpc-listen=127.0.0.1:0"),
                format!("--node-addr-template={}", o.template),
                s("--push-service=push-headless"),
                s("--namespace=test"),
            ];
            if let Some(dns) = o.dns {
                args.push(format!("--dns-server={dns}"));
            }
            args.extend(redis.clone());
            args.extend(mongo_args.clone());
            args.extend(o.dispatch_args.iter().cloned());
            args.extend(o.all_args.iter().cloned());
            dispatch.push(Role::spawn("dispatch", &args).await);
        }
        let dispatch_addrs: Vec<String> = dispatch
            .iter()
            .map(|d| format!("http://{}", d.grpc))
            .collect();

        let mut args = vec![s("--listen=127.0.0.1:0"), s("--grpc-listen=127.0.0.1:0")];
        if !o
            .collect_args
            .iter()
            .any(|a| a.starts_with("--dispatch-addr="))
        {
            args.push(format!("--dispatch-addr={}", dispatch_addrs.join(",")));
        }
        args.extend(mongo_args.clone());
        args.extend(o.all_args.iter().cloned());
        args.extend(o.collect_args.iter().cloned());
        let collect = Role::spawn("collect", &args).await;
        let mut more_collects = Vec::new();
        for _ in 1..o.collects {
            more_collects.push(Role::spawn("collect", &args).await);
        }
        let mut pushes = Vec::new();
        for ip in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
            let mut args = vec![
                format!("--listen={ip}:0"),
                format!("--grpc-listen={ip}:0"),
                format!("--node-ip={ip}"),
                format!("--auth-addr=http://{}", auth.grpc),
            ];
            if !o.push_args.iter().any(|a| a.starts_with("--grace-period=")) {
                args.push(s("--grace-period=3s"));
            }
            args.extend(redis.clone());
            args.extend(mongo_args.clone());
            args.extend(o.push_args.iter().cloned());
            args.extend(o.all_args.iter().cloned());
            pushes.push(Role::spawn("push", &args).await);
        }
        Cluster {
            collect,
            more_collects,
            pushes,
            dispatch,
            auth,
        }
    }

    /// The HTTP address of collect node `i` (taken in turns).
    pub fn collect_http(&self, i: usize) -> SocketAddr {
        let n = 1 + self.more_collects.len();
        match i % n {
            0 => self.collect.http(),
            k => self.more_collects[k - 1].http(),
        }
    }

    pub async fn post(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        post_message(self.collect.http(), &body).await
    }
}

/// Options for a local run: node addresses are `{ip}:{port}`, no DNS.
pub fn local(redis_url: String) -> Options {
    Options {
        redis_url,
        redis_cluster: false,
        template: "{ip}:{port}".into(),
        dns: None,
        dispatch_args: Vec::new(),
        auth_args: Vec::new(),
        collect_args: Vec::new(),
        push_args: Vec::new(),
        all_args: Vec::new(),
        collects: 1,
    }
}
