//! squid: a real HTTP forward proxy with basic auth and a port ACL.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::{Proc, free_port, require, retry_start, run, tcp_ready};

/// A running squid. Requests need `Proxy-Authorization: Basic user:password`.
pub struct Squid {
    pub port: u16,
    pub user: String,
    pub password: String,
    // Declared before `dir`: squid is killed before its directory is removed.
    _proc: Proc,
    dir: TempDir,
}

impl Squid {
    /// Starts squid allowing only `allowed_ports` on loopback, for plain HTTP and CONNECT,
    /// to users authenticated as `user`/`password` (basic auth, `basic_ncsa_auth`).
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
        .expect("squid's basic_ncsa_auth helper (Debian package squid)");
        let hash = run(Command::new(&openssl).args(["passwd", "-apr1", password]))
            .expect("openssl passwd -apr1");
        Some(
            retry_start("squid", || {
                let (bin, helper, hash) = (bin.clone(), helper.clone(), hash.clone());
                async move {
                    let dir = tempfile::Builder::new()
                        .prefix("pushcluster-squid-")
                        .tempdir()?;
                    // Started as root, squid drops privileges to its effective user (`proxy`
                    // on Debian) for logs and helpers: let it write here.
                    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
                    let passwd = dir.path().join("passwd");
                    std::fs::write(&passwd, format!("{user}:{}\n", hash.trim()))?;
                    std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644))?;
                    let port = free_port();
                    let conf = config(dir.path(), port, &helper, &passwd, allowed_ports);
                    let conf_path = dir.path().join("squid.conf");
                    std::fs::write(&conf_path, conf)?;
                    let mut cmd = Command::new(&bin);
                    cmd.arg("-N").arg("-f").arg(&conf_path);
                    let mut proc = Proc::spawn("squid", cmd, &dir.path().join("squid.out"))?;
                    let addr = SocketAddr::from(([127, 0, 0, 1], port));
                    proc.wait_ready(Duration::from_secs(20), || tcp_ready(addr))
                        .await?;
                    Ok(Squid {
                        port,
                        user: user.into(),
                        password: password.into(),
                        _proc: proc,
                        dir,
                    })
                }
            })
            .await,
        )
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// squid's access log (native format, one line per request).
    pub fn access_log_path(&self) -> PathBuf {
        self.dir.path().join("access.log")
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
        std::fs::read_to_string(self.access_log_path())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

fn config(dir: &Path, port: u16, helper: &Path, passwd: &Path, allowed_ports: &[u16]) -> String {
    let d = dir.display();
    let ports: Vec<String> = allowed_ports.iter().map(u16::to_string).collect();
    format!(
        "http_port 127.0.0.1:{port}
pid_filename {d}/squid.pid
access_log stdio:{d}/access.log squid
cache_log {d}/cache.log
cache_store_log none
netdb_filename none
coredump_dir {d}
cache deny all
shutdown_lifetime 0 seconds
auth_param basic program {helper} {passwd}
auth_param basic realm pushcluster-test
auth_param basic children 2
acl authed proxy_auth REQUIRED
acl loopback dst 127.0.0.0/8
acl allowed_ports port {ports}
acl CONNECT method CONNECT
acl GET method GET
http_access deny !loopback
http_access deny !allowed_ports
http_access deny !CONNECT !GET
http_access allow authed
http_access deny all
",
        helper = helper.display(),
        passwd = passwd.display(),
        ports = ports.join(" "),
    )
}
