//! squid: a real HTTP forward proxy with basic auth and a port ACL.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::{Proc, free_port, require, run, tcp_ready, wait_ready};

/// A running squid. Requests need `Proxy-Authorization: Basic user:password`.
pub struct Squid {
    pub port: u16,
    pub user: String,
    pub password: String,
    dir: TempDir,
    _proc: Proc,
}

impl Squid {
    /// Starts squid allowing only `allowed_ports` (CONNECT and plain HTTP) on loopback.
    pub async fn start(user: &str, password: &str, allowed_ports: &[u16]) -> Option<Squid> {
        let bin = require("squid")?;
        let openssl = require("openssl")?;
        let helper = [
            "/usr/lib/squid/basic_ncsa_auth",
            "/usr/lib/squid3/basic_ncsa_auth",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("squid's basic_ncsa_auth helper");
        let dir = tempfile::Builder::new()
            .prefix("pushcluster-squid-")
            .tempdir()
            .unwrap();
        // squid drops privileges to its effective user: let it write here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let hash = run(Command::new(&openssl).args(["passwd", "-apr1", password])).unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(&passwd, format!("{user}:{}\n", hash.trim())).unwrap();
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
        let port = free_port();
        let d = dir.path().display();
        let ports: Vec<String> = allowed_ports.iter().map(u16::to_string).collect();
        let conf = format!(
            "http_port 127.0.0.1:{port}
pid_filename {d}/squid.pid
access_log stdio:{d}/access.log squid
cache_log {d}/cache.log
cache_store_log none
netdb_filename none
coredump_dir {d}
cache deny all
shutdown_lifetime 0 seconds
dns_v4_first on
auth_param basic program {helper} {passwd}
auth_param basic realm pushcluster-test
auth_param basic children 2
acl authed proxy_auth REQUIRED
acl loopback dst 127.0.0.0/8
acl allowed_ports port {ports}
acl CONNECT method CONNECT
http_access deny !loopback
http_access deny !allowed_ports
http_access allow authed
http_access deny all
",
            helper = helper.display(),
            passwd = passwd.display(),
            ports = ports.join(" "),
        );
        let conf_path = dir.path().join("squid.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("-N").arg("-f").arg(&conf_path);
        let log = dir.path().join("squid.out");
        let mut proc = Proc::spawn("squid", cmd, &log).expect("spawn squid");
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_ready("squid", Duration::from_secs(20), || {
            let alive = proc.check_running(&log);
            async move {
                alive?;
                tcp_ready(addr).await
            }
        })
        .await
        .expect("squid ready");
        Some(Squid {
            port,
            user: user.into(),
            password: password.into(),
            dir,
            _proc: proc,
        })
    }

    /// `http://user:password@127.0.0.1:port`.
    pub fn url_with_credentials(&self) -> String {
        format!(
            "http://{}:{}@127.0.0.1:{}",
            self.user, self.password, self.port
        )
    }

    /// Lines of squid's access log so far.
    pub fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}
