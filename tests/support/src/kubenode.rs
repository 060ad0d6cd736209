//! A real single-node Kubernetes: etcd, kube-apiserver, kube-controller-manager,
//! kube-scheduler, a kubelet on containerd + runc + the CNI bridge, kube-proxy (iptables) and
//! CoreDNS — every one the real binary built by `make tools`, all in the node's own
//! namespaces ([`sandbox`]), torn down on drop (also after a panic).
//!
//! Networks (inside the namespaces, so they cannot clash with the host or another run):
//! pods on `10.244.0.0/24` behind the bridge `pcbr0` (10.244.0.1: the pods' gateway, kubelet's
//! node IP, the API server's advertised address and the cluster DNS), Services on
//! `10.96.0.0/24` (`kubernetes` = 10.96.0.1). The test process reaches the node at
//! [`Node::address`] (its end of the veth): the API server on 6443, NodePorts, and CoreDNS on
//! 53. CoreDNS serves `cluster.local` from the API server and answers NXDOMAIN for every other
//! name; pods have no route off the machine.
//!
//! Images come without a registry: build them with [`image::Image`] and [`Node::import`] them
//! (pods set `imagePullPolicy: Never`); the pause image is built from `make tools`' static
//! `pause`.
//!
//! Needs root (namespaces, mounts, cgroups). Like every harness here it skips loudly when a
//! tool or root is missing, and fails instead under `CI=true` / `PUSHCLUSTER_REQUIRE_SERVICES=1`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kubepki::Pki;
use crate::{Kubectl, Proc, log_tail, require, run, unavailable, wait_ready};

mod config;
pub mod image;
mod sandbox;

use config::Layout;
pub use sandbox::Footprint;
use sandbox::Sandbox;

/// The node's name in the API.
pub const NODE_NAME: &str = "pushcluster-node";
/// The cluster DNS domain.
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The pod subnet (inside the node's network namespace).
pub const POD_CIDR: &str = "10.244.0.0/24";
const POD_PREFIX: u8 = 24;
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 244, 0, 1);
/// The Service subnet; the `kubernetes` Service is its first address.
pub const SERVICE_CIDR: &str = "10.96.0.0/24";
const API_SERVICE_IP: &str = "10.96.0.1";
const BRIDGE: &str = "pcbr0";
const API_PORT: u16 = 6443;

/// Every binary the node runs.
struct Tools {
    etcd: PathBuf,
    apiserver: PathBuf,
    controller_manager: PathBuf,
    scheduler: PathBuf,
    kubelet: PathBuf,
    proxy: PathBuf,
    coredns: PathBuf,
    containerd: PathBuf,
    ctr: PathBuf,
    runc: PathBuf,
    kubectl: PathBuf,
    pause: PathBuf,
    cni: PathBuf,
}

impl Tools {
    fn find() -> Option<Tools> {
        for t in [
            "openssl",
            "iptables",
            "conntrack",
            "containerd-shim-runc-v2",
        ] {
            require(t)?;
        }
        let cni = crate::tools_dir().join("cni");
        for plugin in ["bridge", "host-local", "loopback", "portmap"] {
            if !cni.join(plugin).exists() {
                return unavailable(&format!(
                    "CNI plugin {plugin} not in {}: run `make tools`",
                    cni.display()
                ));
            }
        }
        Some(Tools {
            etcd: require("etcd")?,
            apiserver: require("kube-apiserver")?,
            controller_manager: require("kube-controller-manager")?,
            scheduler: require("kube-scheduler")?,
            kubelet: require("kubelet")?,
            proxy: require("kube-proxy")?,
            coredns: require("coredns")?,
            containerd: require("containerd")?,
            ctr: require("ctr")?,
            runc: require("runc")?,
            kubectl: require("kubectl")?,
            pause: require("pause")?,
            cni,
        })
    }
}

/// A running node. Clients authenticate as `admin` in `system:masters`.
pub struct Node {
    /// `https://<address>:6443`.
    pub server: String,
    /// Admin kubeconfig (certificates embedded), for kubectl, helm and [`Node::client`].
    pub kubeconfig: PathBuf,
    /// The node as the test process reaches it: API server, NodePorts, CoreDNS.
    pub address: Ipv4Addr,
    /// CoreDNS, on `address:53`.
    pub dns: SocketAddr,
    /// The pause image every pod's sandbox runs.
    pub pause_image: String,
    tools: Tools,
    layout: Layout,
    // Drop order: the processes (CoreDNS … etcd), then the namespaces, cgroups and directory.
    procs: Vec<Proc>,
    sandbox: Sandbox,
}

impl Node {
    /// Starts the node and waits until it is Ready, Services route and DNS answers. `None`
    /// (skip) when a tool or root is missing and services are not required; panics (after
    /// cleaning up) when a component does not come up.
    pub async fn start() -> Option<Node> {
        let tools = Node::prerequisites()?;
        let started = Instant::now();
        let sandbox = Sandbox::create(&tools.pause).expect("the node's namespaces");
        let mut node = Node::new(tools, sandbox).expect("the node's files");
        if let Err(e) = node.boot().await {
            panic!(
                "the Kubernetes node did not start: {e:#}\n{}",
                node.log_tails(20)
            );
        }
        eprintln!(
            "Kubernetes node {} up in {:.1} s: API {} (run directory {})",
            node.sandbox.id,
            started.elapsed().as_secs_f64(),
            node.server,
            node.dir().display()
        );
        Some(node)
    }

    /// Whether a node can start here (every tool, root): `None` (skip) when not and services
    /// are not required; panics when they are. Lets a test check before expensive setup.
    pub fn available() -> Option<()> {
        Node::prerequisites().map(drop)
    }

    fn prerequisites() -> Option<Tools> {
        let tools = Tools::find()?;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return unavailable("the Kubernetes node needs root (namespaces, mounts, cgroups)");
        }
        Some(tools)
    }

    fn new(tools: Tools, sandbox: Sandbox) -> anyhow::Result<Node> {
        let pause_image = format!("pushcluster.test/pause:{}", sandbox.id);
        let layout = Layout {
            dir: sandbox.dir().to_owned(),
            node_ip: sandbox.link.node_ip,
            gateway: GATEWAY,
            cgroup_root: sandbox.cgroup_root.clone(),
            id: sandbox.id.clone(),
            cni_bin: tools.cni.clone(),
            runc: tools.runc.clone(),
            pause_image: pause_image.clone(),
        };
        for d in [
            "pki",
            "cni/net.d",
            "cni/ipam",
            "containerd",
            "volume-plugins",
            "images",
        ] {
            std::fs::create_dir_all(layout.path(d))?;
        }
        sandbox.sh(&layout.network_script())?;
        let pki = Pki::new(&layout.path("pki"));
        let server = layout.server();
        let mut sans: Vec<String> = [layout.node_ip.to_string(), GATEWAY.to_string()]
            .into_iter()
            .chain(["127.0.0.1".into(), API_SERVICE_IP.into()])
            .map(|ip| format!("IP:{ip}"))
            .collect();
        for name in ["kubernetes", "kubernetes.default", "kubernetes.default.svc"] {
            sans.push(format!("DNS:{name}"));
        }
        sans.push(format!("DNS:kubernetes.default.svc.{CLUSTER_DOMAIN}"));
        pki.serving("serving", "kube-apiserver", &sans);
        pki.serving(
            "kubelet",
            NODE_NAME,
            &[format!("IP:{GATEWAY}"), format!("DNS:{NODE_NAME}")],
        );
        pki.client("admin", "/O=system:masters/CN=admin");
        pki.client(
            "node",
            &format!("/O=system:nodes/CN=system:node:{NODE_NAME}"),
        );
        pki.service_account_keys();
        let kubeconfig = pki.kubeconfig("admin.kubeconfig", &server, "admin");
        pki.kubeconfig("node.kubeconfig", &server, "node");
        std::fs::write(layout.path("resolv.conf"), "")?;
        std::fs::write(
            layout.path("containerd/config.toml"),
            layout.containerd_toml(),
        )?;
        std::fs::write(
            layout.path("cni/net.d/10-pushcluster.conflist"),
            layout.cni_conflist(),
        )?;
        std::fs::write(layout.path("kubelet.yaml"), layout.kubelet_yaml())?;
        std::fs::write(
            layout.path("kube-proxy.yaml"),
            layout.kube_proxy_yaml(&kubeconfig),
        )?;
        std::fs::write(layout.path("Corefile"), layout.corefile(&kubeconfig))?;
        Ok(Node {
            server,
            kubeconfig,
            address: layout.node_ip,
            dns: SocketAddr::from((layout.node_ip, 53)),
            pause_image,
            tools,
            layout,
            procs: Vec::new(),
            sandbox,
        })
    }

    /// A command running the binary `bin` inside the node's namespaces.
    fn command(&self, bin: &Path) -> Command {
        self.sandbox.command(bin)
    }

    /// Starts a component, logging to `logs/<name>.log`.
    fn spawn(&mut self, name: &str, cmd: Command) -> anyhow::Result<()> {
        let log = self.layout.path(&format!("logs/{name}.log"));
        self.procs.push(Proc::spawn(name, cmd, &log)?);
        Ok(())
    }

    /// Fails with the end of its log if any component has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        self.procs.iter_mut().try_for_each(Proc::check_running)
    }

    /// Waits for `check` while every component keeps running.
    async fn until<F, Fut>(&mut self, what: &str, secs: u64, mut check: F) -> anyhow::Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let procs = &mut self.procs;
        wait_ready(what, Duration::from_secs(secs), || {
            let alive = procs.iter_mut().try_for_each(Proc::check_running);
            let fut = check();
            async move {
                alive?;
                fut.await
            }
        })
        .await
    }

    async fn boot(&mut self) -> anyhow::Result<()> {
        let p = |rel: &str| self.layout.path(rel).display().to_string();
        let pki = Pki::open(&self.layout.path("pki"));
        let etcd_url = "http://127.0.0.1:2379";

        let mut etcd = self.command(&self.tools.etcd);
        crate::kube::etcd_args(
            &mut etcd,
            &self.layout.path("etcd"),
            etcd_url,
            "http://127.0.0.1:2380",
        );
        let mut containerd = self.command(&self.tools.containerd);
        containerd.arg(format!("--config={}", p("containerd/config.toml")));
        let mut apiserver = self.command(&self.tools.apiserver);
        crate::kube::apiserver_args(
            &mut apiserver,
            &pki,
            etcd_url,
            &format!("https://kubernetes.default.svc.{CLUSTER_DOMAIN}"),
        );
        apiserver
            .arg(format!("--secure-port={API_PORT}"))
            .arg("--bind-address=0.0.0.0")
            .arg(format!("--advertise-address={GATEWAY}"))
            .args([
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
            ])
            .arg(format!("--service-cluster-ip-range={SERVICE_CIDR}"))
            .arg(format!(
                "--kubelet-client-certificate={}",
                p("pki/admin.crt")
            ))
            .arg(format!("--kubelet-client-key={}", p("pki/admin.key")))
            .arg(format!(
                "--kubelet-certificate-authority={}",
                p("pki/ca.crt")
            ))
            .arg("--kubelet-preferred-address-types=InternalIP")
            .arg("--profiling=false");
        let mut kcm = self.command(&self.tools.controller_manager);
        crate::kube::controller_manager_args(&mut kcm, &pki, &self.kubeconfig);
        kcm.args(["--bind-address=127.0.0.1", "--secure-port=10257"]);
        let mut scheduler = self.command(&self.tools.scheduler);
        scheduler
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args([
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                "--secure-port=10259",
            ]);
        let mut kubelet = self.command(&self.tools.kubelet);
        kubelet
            .arg(format!("--config={}", p("kubelet.yaml")))
            .arg(format!("--kubeconfig={}", p("pki/node.kubeconfig")))
            .arg(format!("--hostname-override={NODE_NAME}"))
            .arg(format!("--node-ip={GATEWAY}"))
            .arg("--v=1");
        let mut proxy = self.command(&self.tools.proxy);
        proxy.arg(format!("--config={}", p("kube-proxy.yaml")));
        let mut coredns = self.command(&self.tools.coredns);
        coredns.args(["-conf", &p("Corefile")]);

        self.spawn("etcd", etcd)?;
        self.spawn("containerd", containerd)?;
        self.spawn("kube-apiserver", apiserver)?;
        let kc = self.kubeconfig.clone();
        self.until("kube-apiserver", 120, || {
            let kc = kc.clone();
            async move { crate::kube::apiserver_ready(&kc).await }
        })
        .await?;
        self.spawn("kube-controller-manager", kcm)?;
        self.spawn("kube-scheduler", scheduler)?;
        // The sandbox image must be there before the first pod: nothing can be pulled.
        let socket = self.layout.containerd_socket();
        self.until("containerd", 30, || {
            let up = socket.exists();
            async move {
                anyhow::ensure!(up, "no socket yet");
                Ok(())
            }
        })
        .await?;
        let pause = image::Image::new(&self.pause_image)?
            .copy(&self.tools.pause, "/pause")?
            .entrypoint(&["/pause"])
            .write(&self.layout.path("images"))?;
        self.import(&pause)?;
        self.spawn("kubelet", kubelet)?;
        self.spawn("kube-proxy", proxy)?;
        self.spawn("coredns", coredns)?;

        let kubectl = self.kubectl();
        self.until("node Ready", 120, || {
            let out = kubectl.run(&[
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            async move {
                anyhow::ensure!(out?.trim() == "True", "not Ready");
                Ok(())
            }
        })
        .await?;
        // The controller-manager made the default ServiceAccount and published the root CA:
        // pods that mount service-account tokens can start.
        self.until("default ServiceAccount and kube-root-ca.crt", 60, || {
            let sa = kubectl.run(&["get", "serviceaccount", "default", "-n", "default"]);
            let ca = kubectl.run(&["get", "configmap", "kube-root-ca.crt", "-n", "default"]);
            async move {
                sa?;
                ca?;
                Ok(())
            }
        })
        .await?;
        let healthz = SocketAddr::from((self.address, 10256));
        self.until("kube-proxy synced", 60, || async move {
            let (code, body) = crate::http_get(healthz, "/healthz").await?;
            anyhow::ensure!(code == 200, "kube-proxy /healthz {code}: {body}");
            Ok(())
        })
        .await?;
        let dns = self.dns;
        self.until("CoreDNS", 60, || async move {
            let name = format!("kubernetes.default.svc.{CLUSTER_DOMAIN}");
            let (rcode, ips) = crate::dnsmasq::query_a(dns, &name).await?;
            anyhow::ensure!(
                rcode == 0 && ips == [API_SERVICE_IP.parse::<Ipv4Addr>()?],
                "{name}: rcode {rcode}, {ips:?}"
            );
            Ok(())
        })
        .await
    }

    /// A [`Kubectl`] bound to the admin kubeconfig.
    pub fn kubectl(&self) -> Kubectl {
        Kubectl {
            bin: self.tools.kubectl.clone(),
            kubeconfig: Some(self.kubeconfig.clone()),
        }
    }

    /// A `kube::Client` for the admin user.
    pub async fn client(&self) -> kube::Client {
        crate::kube::client_from(&self.kubeconfig)
            .await
            .expect("kube client")
    }

    fn ctr(&self) -> Command {
        let mut cmd = Command::new(&self.tools.ctr);
        cmd.arg("--address")
            .arg(self.layout.containerd_socket())
            .args(["--namespace", "k8s.io"]);
        cmd
    }

    /// Imports an image tar (see [`image::Image::write`]) into the node's containerd, where
    /// the kubelet finds it.
    pub fn import(&self, tar: &Path) -> anyhow::Result<()> {
        run(self.ctr().args(["images", "import"]).arg(tar)).map(drop)
    }

    /// Kills a container's process from the node, behind the kubelet's back (SIGKILL by
    /// containerd); `id` as in a pod's `containerStatuses[].containerID`
    /// (`containerd://…` or bare).
    pub fn kill_container(&self, id: &str) -> anyhow::Result<()> {
        let id = id.strip_prefix("containerd://").unwrap_or(id);
        run(self
            .ctr()
            .args(["tasks", "kill", "--signal", "SIGKILL", id]))
        .map(drop)
    }

    /// What the node put on the machine (see [`Footprint::remaining`]).
    pub fn footprint(&self) -> Footprint {
        self.sandbox.footprint()
    }

    /// The run directory: configs, certificates and `logs/<component>.log`.
    pub fn dir(&self) -> &Path {
        self.sandbox.dir()
    }

    /// The last `lines` lines of every component's log, for a failure message.
    pub fn log_tails(&self, lines: usize) -> String {
        self.procs
            .iter()
            .map(|p| format!("--- {}:\n{}\n", p.log().display(), log_tail(p.log(), lines)))
            .collect()
    }
}
