//! The configuration files of the node's components, as text.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use super::{API_PORT, BRIDGE, CLUSTER_DOMAIN, NODE_NAME, POD_CIDR, POD_PREFIX, SERVICE_CIDR};

/// Where everything of one node lives, and the names it uses.
pub struct Layout {
    /// The run directory.
    pub dir: PathBuf,
    /// The node's end of the veth: the API server's, NodePorts' and CoreDNS' address.
    pub node_ip: Ipv4Addr,
    /// The bridge's address: the pods' gateway, kubelet's node IP, the cluster DNS.
    pub gateway: Ipv4Addr,
    pub cgroup_root: String,
    /// Unique per run (the CNI network's name).
    pub id: String,
    pub cni_bin: PathBuf,
    pub runc: PathBuf,
    pub pause_image: String,
}

impl Layout {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn p(&self, rel: &str) -> String {
        self.path(rel).display().to_string()
    }

    /// containerd's socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.path("containerd/containerd.sock")
    }

    /// containerd 1.6 (config version 2): root, state and sockets in the run directory, the
    /// CRI plugin on overlayfs + runc (cgroupfs) + the CNI bridge, the local pause image.
    /// `restrict_oom_score_adj`: this VM's capability bounding set lacks CAP_SYS_RESOURCE, and
    /// without it every sandbox fails in runc ("can't get final child's PID from pipe").
    pub fn containerd_toml(&self) -> String {
        format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{socket}"

[debug]
  level = "warn"

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "{runc}"
        Root = "{runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
    max_conf_num = 1
"#,
            root = self.p("containerd/root"),
            state = self.p("containerd/state"),
            socket = self.containerd_socket().display(),
            opt = self.p("containerd/opt"),
            pause = self.pause_image,
            runc = self.runc.display(),
            runc_root = self.p("containerd/runc"),
            cni_bin = self.cni_bin.display(),
            cni_conf = self.p("cni/net.d"),
        )
    }

    /// The CNI network: the existing bridge (the gateway), host-local IPAM over the pod
    /// subnet, no masquerading (nothing leaves the node), hairpin so a pod reaches itself
    /// through a Service. Pods get a route to the Service subnet through the gateway (where
    /// kube-proxy's rules translate it) and no default route: nothing else is reachable.
    pub fn cni_conflist(&self) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": format!("pushcluster-{}", self.id),
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": true,
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_CIDR, "gateway": self.gateway.to_string()}]],
                        "routes": [{"dst": SERVICE_CIDR}],
                        "dataDir": self.p("cni/ipam"),
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}}
            ]
        })
        .to_string()
    }

    /// Kubelet: cgroupfs under this run's cgroup root, on cgroup v1 (`failCgroupV1: false`),
    /// webhook authentication/authorization, no image GC (images cannot be pulled again: there
    /// is no registry), eviction thresholds that a shared disk cannot trip.
    pub fn kubelet_yaml(&self) -> String {
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {gateway}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization: {{mode: Webhook}}
tlsCertFile: {crt}
tlsPrivateKeyFile: {key}
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://{socket}
clusterDNS: [{gateway}]
clusterDomain: {domain}
resolvConf: {resolv}
volumePluginDir: {plugins}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{memory.available: 100Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}}
serializeImagePulls: false
rotateCertificates: false
serverTLSBootstrap: false
registerNode: true
",
            gateway = self.gateway,
            ca = self.p("pki/ca.crt"),
            crt = self.p("pki/kubelet.crt"),
            key = self.p("pki/kubelet.key"),
            cgroup_root = self.cgroup_root,
            socket = self.containerd_socket().display(),
            domain = CLUSTER_DOMAIN,
            resolv = self.p("resolv.conf"),
            plugins = self.p("volume-plugins"),
        )
    }

    /// kube-proxy in iptables mode. Conntrack limits and timeouts are left alone (0), NodePorts
    /// are not opened on 127.0.0.1 (no `route_localnet`), health is served on the node's link
    /// address so the test can wait for the first sync.
    pub fn kube_proxy_yaml(&self, kubeconfig: &Path) -> String {
        format!(
            "apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: {kubeconfig}}}
mode: iptables
hostnameOverride: {NODE_NAME}
clusterCIDR: {POD_CIDR}
healthzBindAddress: {node_ip}:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s, udpTimeout: 0s, udpStreamTimeout: 0s}}
iptables: {{localhostNodePorts: false, masqueradeAll: false}}
",
            kubeconfig = kubeconfig.display(),
            node_ip = self.node_ip,
        )
    }

    /// CoreDNS: the cluster domain from the API server, each query logged (tests check who
    /// looked up what); every other name NXDOMAIN (no upstream: nothing leaves the machine).
    pub fn corefile(&self, kubeconfig: &Path) -> String {
        format!(
            "{CLUSTER_DOMAIN}:53 {{
    bind {gateway} {node_ip}
    errors
    log
    kubernetes {CLUSTER_DOMAIN} {{
        kubeconfig {kubeconfig}
        pods disabled
    }}
}}
.:53 {{
    bind {gateway} {node_ip}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
",
            gateway = self.gateway,
            node_ip = self.node_ip,
            kubeconfig = kubeconfig.display(),
        )
    }

    /// `https://<node ip>:6443`: the API server as both the host and the node reach it.
    pub fn server(&self) -> String {
        format!("https://{}:{API_PORT}", self.node_ip)
    }

    /// The pod network and its firewall inside the namespace: the bridge holding the gateway,
    /// forwarding on, bridged traffic through iptables (Services between pods on the bridge),
    /// and pods may reach only each other and the node itself.
    pub fn network_script(&self) -> String {
        format!(
            "ip link add {BRIDGE} type bridge
ip addr add {gateway}/{POD_PREFIX} dev {BRIDGE}
ip link set {BRIDGE} up
echo 1 > /proc/sys/net/ipv4/ip_forward
echo 1 > /proc/sys/net/bridge/bridge-nf-call-iptables
iptables -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
iptables -A FORWARD -i {BRIDGE} -d {POD_CIDR} -j ACCEPT
iptables -A FORWARD -i {BRIDGE} -j DROP
",
            gateway = self.gateway,
        )
    }
}
