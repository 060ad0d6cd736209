//! A real Kubernetes control plane: etcd + kube-apiserver (+ kube-controller-manager), started
//! the way controller-runtime's envtest does it, with certificates made by `openssl`.
//! The flags shared with the single-node cluster ([`crate::kubenode`]) live here too.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kubepki::Pki;
use crate::{Kubectl, Proc, free_port, free_ports, require, retry_start, run};

/// A running control plane. Clients authenticate as `admin` in `system:masters`.
pub struct ControlPlane {
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// A kubeconfig (certificates embedded) accepted by `kubectl --kubeconfig`, `helm` and
    /// [`ControlPlane::client`].
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    // Drop order: controller-manager, apiserver, etcd, then the directory.
    _controller_manager: Option<Proc>,
    _apiserver: Proc,
    _etcd: Proc,
    dir: TempDir,
}

/// CA, serving cert (127.0.0.1/localhost), admin client cert, service-account key pair.
fn make_certs(dir: &Path) -> Pki {
    let pki = Pki::new(dir);
    pki.serving(
        "serving",
        "kube-apiserver",
        &["IP:127.0.0.1".into(), "DNS:localhost".into()],
    );
    pki.client("admin", "/O=system:masters/CN=admin");
    pki.service_account_keys();
    pki
}

/// etcd's flags for one member with its data in `data`, clients on `client_url`, peers on
/// `peer_url`; no fsync (test data).
pub(crate) fn etcd_args(cmd: &mut Command, data: &Path, client_url: &str, peer_url: &str) {
    cmd.arg("--data-dir")
        .arg(data)
        .args(["--name", "default", "--unsafe-no-fsync=true"])
        .args([
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
        ])
        .args([
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
        ])
        .args(["--initial-cluster", &format!("default={peer_url}")])
        .args(["--log-level", "warn"]);
}

/// kube-apiserver's flags shared by both control planes: etcd, the serving certificate
/// `serving.crt` and the client CA of `pki`, service-account tokens signed with its `sa.key`.
pub(crate) fn apiserver_args(cmd: &mut Command, pki: &Pki, etcd_url: &str, issuer: &str) {
    let p = |f: &str| pki.path(f).display().to_string();
    cmd.arg(format!("--etcd-servers={etcd_url}"))
        .arg(format!("--cert-dir={}", p("certs")))
        .arg(format!("--tls-cert-file={}", p("serving.crt")))
        .arg(format!("--tls-private-key-file={}", p("serving.key")))
        .arg(format!("--client-ca-file={}", p("ca.crt")))
        .arg("--allow-privileged=true")
        .arg(format!("--service-account-issuer={issuer}"))
        .arg(format!("--service-account-key-file={}", p("sa.pub")))
        .arg(format!(
            "--service-account-signing-key-file={}",
            p("sa.key")
        ))
        .arg("--v=0");
}

/// kube-controller-manager's flags shared by both control planes: every controller, as the
/// kubeconfig's user, service-account tokens signed with `pki`'s `sa.key`.
pub(crate) fn controller_manager_args(cmd: &mut Command, pki: &Pki, kubeconfig: &Path) {
    let p = |f: &str| pki.path(f).display().to_string();
    cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
        .args([
            "--leader-elect=false",
            "--controllers=*",
            "--use-service-account-credentials=false",
        ])
        .arg(format!(
            "--service-account-private-key-file={}",
            p("sa.key")
        ))
        .arg(format!("--root-ca-file={}", p("ca.crt")))
        .arg(format!("--cert-dir={}", p("kcm-certs")))
        .arg("--v=0");
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver, and with `controller_manager` also
    /// kube-controller-manager (Deployments get ReplicaSets; owner-reference GC runs).
    /// `None` (skip) when a binary is missing and services are not required.
    pub async fn start(controller_manager: bool) -> Option<ControlPlane> {
        let etcd_bin = require("etcd")?;
        let apiserver_bin = require("kube-apiserver")?;
        let kubectl = require("kubectl")?;
        let kcm_bin = if controller_manager {
            Some(require("kube-controller-manager")?)
        } else {
            None
        };
        require("openssl")?;
        let dir = tempfile::Builder::new()
            .prefix("pushcluster-kube-")
            .tempdir()
            .expect("temp dir");
        let d = dir.path().to_owned();
        make_certs(&d);

        let (etcd_url, etcd) = retry_start("etcd", || start_etcd(&etcd_bin, &d)).await;
        let (server, apiserver) = retry_start("kube-apiserver", || {
            start_apiserver(&apiserver_bin, &d, &etcd_url)
        })
        .await;
        let kubeconfig = d.join("kubeconfig");
        let controller_manager = match kcm_bin {
            Some(bin) => Some(
                retry_start("kube-controller-manager", || {
                    start_controller_manager(&bin, &d, &kubeconfig)
                })
                .await,
            ),
            None => None,
        };
        Some(ControlPlane {
            server,
            kubeconfig,
            kubectl,
            _controller_manager: controller_manager,
            _apiserver: apiserver,
            _etcd: etcd,
            dir,
        })
    }

    /// A `kube::Client` for the admin user.
    pub async fn client(&self) -> kube::Client {
        client_from(&self.kubeconfig).await.expect("kube client")
    }

    /// Runs `kubectl --kubeconfig … args`, returning stdout (fails on a non-zero exit).
    pub fn kubectl(&self, args: &[&str]) -> anyhow::Result<String> {
        run(Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args))
    }

    /// A [`Kubectl`] bound to this control plane's kubeconfig.
    pub fn kubectl_tool(&self) -> Kubectl {
        Kubectl {
            bin: self.kubectl.clone(),
            kubeconfig: Some(self.kubeconfig.clone()),
        }
    }

    /// Directory holding the certificates and component logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A `kube::Client` from a kubeconfig file.
pub async fn client_from(kubeconfig: &Path) -> anyhow::Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)?;
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

async fn start_etcd(bin: &Path, d: &Path) -> anyhow::Result<(String, Proc)> {
    let [client_port, peer_port] = free_ports::<2>();
    let etcd_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let data = d.join("etcd");
    let _ = std::fs::remove_dir_all(&data);
    let mut cmd = Command::new(bin);
    etcd_args(&mut cmd, &data, &etcd_url, &peer_url);
    let mut etcd = Proc::spawn("etcd", cmd, &d.join("etcd.log"))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], client_port));
    etcd.wait_ready(Duration::from_secs(20), || async move {
        // etcd answers /health with {"health":"true"} once it has a leader.
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /health HTTP/1.0\r\n\r\n").await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        anyhow::ensure!(out.contains(r#""health":"true""#), "etcd /health: {out}");
        Ok(())
    })
    .await?;
    Ok((etcd_url, etcd))
}

async fn start_apiserver(bin: &Path, d: &Path, etcd_url: &str) -> anyhow::Result<(String, Proc)> {
    let port = free_port();
    let server = format!("https://127.0.0.1:{port}");
    let pki = Pki::open(d);
    let mut cmd = Command::new(bin);
    apiserver_args(&mut cmd, &pki, etcd_url, &server);
    cmd.arg(format!("--secure-port={port}"))
        .args(["--bind-address=127.0.0.1", "--advertise-address=127.0.0.1"])
        .args([
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.0.0.0/24",
        ])
        .arg("--disable-admission-plugins=ServiceAccount");
    let mut apiserver = Proc::spawn("kube-apiserver", cmd, &d.join("kube-apiserver.log"))?;
    let kubeconfig = pki.kubeconfig("kubeconfig", &server, "admin");
    apiserver
        .wait_ready(Duration::from_secs(90), || {
            let kc = kubeconfig.clone();
            async move { apiserver_ready(&kc).await }
        })
        .await?;
    Ok((server, apiserver))
}

/// The API server of `kubeconfig` answers `/readyz` with `ok`.
pub(crate) async fn apiserver_ready(kubeconfig: &Path) -> anyhow::Result<()> {
    let client = client_from(kubeconfig).await?;
    let req = http::Request::get("/readyz").body(Vec::new())?;
    let text = client.request_text(req).await?;
    anyhow::ensure!(text.trim() == "ok", "readyz: {text}");
    Ok(())
}

async fn start_controller_manager(bin: &Path, d: &Path, kubeconfig: &Path) -> anyhow::Result<Proc> {
    let port = free_port();
    let mut cmd = Command::new(bin);
    controller_manager_args(&mut cmd, &Pki::open(d), kubeconfig);
    cmd.args(["--bind-address=127.0.0.1", &format!("--secure-port={port}")]);
    let mut kcm = Proc::spawn(
        "kube-controller-manager",
        cmd,
        &d.join("kube-controller-manager.log"),
    )?;
    // /healthz is always allowed; the serving certificate is self-signed in --cert-dir.
    let kubeconfig = kubeconfig.to_owned();
    kcm.wait_ready(Duration::from_secs(60), || {
        let kubeconfig = kubeconfig.clone();
        async move {
            let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
            let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
            config.cluster_url = format!("https://127.0.0.1:{port}").parse()?;
            config.root_cert = None;
            config.accept_invalid_certs = true;
            let client = kube::Client::try_from(config)?;
            let req = http::Request::get("/healthz").body(Vec::new())?;
            let text = client.request_text(req).await?;
            anyhow::ensure!(text.trim() == "ok", "healthz: {text}");
            Ok(())
        }
    })
    .await?;
    Ok(kcm)
}
