//! The node's own namespaces, so that two test runs on one machine never collide and nothing
//! outlives a run.
//!
//! Every process of the node (etcd … kubelet, containerd, its shims and the pods) runs in one
//! PID, mount and network namespace whose init (pid 1) is the static `pause`:
//! - **PID**: when the init dies every process in the namespace is killed by the kernel. The
//!   init dies with `unshare`, which dies with the test process (parent-death signals), so
//!   even a SIGKILLed test leaves no process behind.
//! - **mount** (private propagation): `/run`, `/var/lib` and `/var/log` are fresh tmpfs, so the
//!   paths kubelet, containerd and the CNI plugins hard-code (`/var/lib/kubelet`,
//!   `/var/log/pods`, `/run/containerd`, `/run/netns`, `/var/lib/cni`) are this run's own and
//!   vanish with it, mounts included. The kernel tunables kubelet insists on
//!   (`vm.overcommit_memory=1`, `kernel.panic=10`, …) are files bind-mounted over `/proc/sys`,
//!   so it finds them set and never writes the machine's.
//! - **network**: the CNI bridge, pod routes, `ip_forward` and every iptables rule of kube-proxy
//!   live in the namespace. One veth pair (a /30 from 100.127.0.0/16 not used on the host) is
//!   the only thing the host sees: the test reaches the API server, NodePorts and CoreDNS at
//!   the node's end of it. The pods have no route off the machine.
//!
//! What the namespaces do not cover is cleaned up explicitly: the cgroup root kubelet runs
//! the pods under (`pushcluster-<id>` in every hierarchy) and the run directory. A run holds
//! a lock on its directory; a later run removes the leftovers of any run whose lock is free.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{Proc, run};

const RUN_PREFIX: &str = "pushcluster-node-";
/// Name of the file in a run directory naming its cgroup root.
const CGROUP_FILE: &str = "cgroup-root";
/// Values kubelet requires of these tunables (pkg/kubelet/cm `setupKernelTunables`).
const KERNEL_TUNABLES: [(&str, &str); 6] = [
    ("vm/overcommit_memory", "1"),
    ("vm/panic_on_oom", "0"),
    ("kernel/panic", "10"),
    ("kernel/panic_on_oops", "1"),
    ("kernel/keys/root_maxkeys", "1000000"),
    ("kernel/keys/root_maxbytes", "25000000"),
];

/// The veth pair between the host and the node.
#[derive(Debug, Clone)]
pub struct Link {
    /// Interface on the host side.
    pub host_if: String,
    /// The host's address on the link.
    pub host_ip: Ipv4Addr,
    /// The node's address on the link: how the test process reaches the node.
    pub node_ip: Ipv4Addr,
}

/// The namespaces, cgroup root, veth and directory of one node.
pub struct Sandbox {
    /// Random, unique among runs: names the cgroup root and the veth.
    pub id: String,
    /// The namespaces' pid 1, as the host sees it.
    pub pid: u32,
    pub link: Link,
    /// The cgroup root kubelet runs pods under (`cgroupRoot`), e.g. `/pushcluster-ab12cd`.
    pub cgroup_root: String,
    mnt_ns: PathBuf,
    cgroups: Vec<PathBuf>,
    init: Option<Proc>,
    _lock: File,
    // Last: removed once nothing runs in the namespaces (kept if something still does).
    dir: Option<TempDir>,
}

/// `flock` on an open file.
fn flock(file: &File, nonblocking: bool) -> bool {
    use std::os::fd::AsRawFd;
    let op = libc::LOCK_EX | if nonblocking { libc::LOCK_NB } else { 0 };
    // SAFETY: flock only operates on the descriptor, which `file` keeps open.
    unsafe { libc::flock(file.as_raw_fd(), op) == 0 }
}

fn lock_file(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

impl Sandbox {
    /// Creates the namespaces (init: `pause`), the tmpfs mounts, the veth to the host and the
    /// cgroup root. Drop tears it all down.
    pub fn create(pause: &Path) -> anyhow::Result<Sandbox> {
        remove_stale_runs();
        let dir = tempfile::Builder::new().prefix(RUN_PREFIX).tempdir()?;
        let lock = lock_file(&dir.path().join("lock"))?;
        anyhow::ensure!(flock(&lock, true), "cannot lock the new run directory");
        let id = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(RUN_PREFIX))
            .unwrap_or("run")
            .to_ascii_lowercase()
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>();
        let cgroup_root = format!("/pushcluster-{id}");
        std::fs::write(dir.path().join(CGROUP_FILE), &cgroup_root)?;
        std::fs::create_dir_all(dir.path().join("logs"))?;

        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--kill-child", "--mount", "--net"])
            .args(["--propagation", "private", "--mount-proc", "--"])
            .arg(pause)
            .current_dir("/");
        let init = Proc::spawn("node-init", cmd, &dir.path().join("logs/init.log"))?;
        let pid = wait_for_child(init.pid(), pause)?;
        let mut sandbox = Sandbox {
            mnt_ns: std::fs::read_link(format!("/proc/{pid}/ns/mnt"))?,
            id,
            pid,
            link: Link {
                host_if: String::new(),
                host_ip: Ipv4Addr::UNSPECIFIED,
                node_ip: Ipv4Addr::UNSPECIFIED,
            },
            cgroup_root,
            cgroups: Vec::new(),
            init: Some(init),
            _lock: lock,
            dir: Some(dir),
        };
        sandbox.mount_private_dirs()?;
        sandbox.cgroups = make_cgroups(&sandbox.cgroup_root)?;
        sandbox.sh("ip link set lo up")?;
        sandbox.link = sandbox.make_link()?;
        Ok(sandbox)
    }

    /// The run directory (configs, certificates, logs, containerd's root, etcd's data).
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("run directory").path()
    }

    /// A command running `program` inside the namespaces (through `nsenter`, which forks it
    /// into the PID namespace and waits for it), with `PATH` set for the node's tools.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.pid))
            .args(["--pid", "--mount", "--net", "--"])
            .arg(program)
            .current_dir("/")
            .env("PATH", node_path());
        cmd
    }

    /// Runs a shell script in the mount and network namespaces (`set -e`); its stdout.
    pub fn sh(&self, script: &str) -> anyhow::Result<String> {
        run(Command::new("nsenter")
            .arg(format!("--target={}", self.pid))
            .args(["--mount", "--net", "--", "sh", "-ec", script])
            .current_dir("/")
            .env("PATH", node_path()))
    }

    fn mount_private_dirs(&self) -> anyhow::Result<()> {
        let tunables = self.dir().join("kernel-tunables");
        std::fs::create_dir_all(&tunables)?;
        let mut script = String::from(
            "for d in /run /var/lib /var/log; do mount -t tmpfs -o mode=0755 pushcluster-node $d; done
mkdir -p /run/netns /run/lock /var/lib/kubelet /var/log/pods /var/log/containers\n",
        );
        for (name, value) in KERNEL_TUNABLES {
            let file = tunables.join(name.replace('/', "."));
            std::fs::write(&file, format!("{value}\n"))?;
            script.push_str(&format!(
                "mount --bind {} /proc/sys/{name}\n",
                file.display()
            ));
        }
        self.sh(&script).map(drop)
    }

    /// The veth pair: picks a /30 no host address or route overlaps (under a machine-wide
    /// lock held until the address is set, so two runs never pick the same), creates the pair
    /// with one end in the namespace.
    fn make_link(&self) -> anyhow::Result<Link> {
        // The lock is on the temp directory itself: no lock file is left behind.
        let lock = File::open(std::env::temp_dir())?;
        anyhow::ensure!(flock(&lock, false), "cannot take the link lock");
        let taken = host_networks()?;
        let start = (std::process::id() as usize).wrapping_mul(7919) % 16384;
        let net = (0..16384)
            .map(|i| u32::from(Ipv4Addr::new(100, 127, 0, 0)) + 4 * ((start + i) % 16384) as u32)
            .find(|net| !taken.iter().any(|&(n, len)| overlaps((*net, 30), (n, len))))
            .ok_or_else(|| anyhow::anyhow!("no free /30 in 100.127.0.0/16"))?;
        let link = Link {
            host_if: format!("pcn{}h", self.id),
            host_ip: Ipv4Addr::from(net + 1),
            node_ip: Ipv4Addr::from(net + 2),
        };
        let node_if = format!("pcn{}n", self.id);
        run(Command::new("ip")
            .args(["link", "add", &link.host_if, "type", "veth", "peer", "name"])
            .args([&node_if, "netns", &self.pid.to_string()]))?;
        run(Command::new("ip").args([
            "addr",
            "add",
            &format!("{}/30", link.host_ip),
            "dev",
            &link.host_if,
        ]))?;
        run(Command::new("ip").args(["link", "set", &link.host_if, "up"]))?;
        self.sh(&format!(
            "ip addr add {}/30 dev {node_if}\nip link set {node_if} up",
            link.node_ip
        ))?;
        Ok(link)
    }

    /// What this node put on the machine, to check later that it is all gone.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            dir: self.dir().to_owned(),
            cgroups: self.cgroups.clone(),
            host_if: self.link.host_if.clone(),
            mnt_ns: self.mnt_ns.clone(),
        }
    }

    /// Kills every process of the node, then removes the veth, the cgroups and the directory.
    fn teardown(&mut self) {
        if let Some(mut init) = self.init.take() {
            init.kill();
        }
        if !self.link.host_if.is_empty() {
            let _ = Command::new("ip")
                .args(["link", "del", &self.link.host_if])
                .output();
        }
        // The kernel kills the rest of the PID namespace; wait until it is empty, so no mount
        // is alive when the directory goes.
        let deadline = Instant::now() + Duration::from_secs(30);
        while namespace_in_use(&self.mnt_ns) {
            if Instant::now() > deadline {
                eprintln!(
                    "pushcluster node {}: processes still alive 30 s after the kill; leaving {} for the next run to remove",
                    self.id,
                    self.dir().display()
                );
                let _ = self.dir.take().map(TempDir::keep);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        remove_cgroups(&self.cgroups);
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// What a node put on the machine: its directory, cgroups, host interface, namespaces.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub dir: PathBuf,
    pub cgroups: Vec<PathBuf>,
    pub host_if: String,
    mnt_ns: PathBuf,
}

impl Footprint {
    /// What of it is still there (empty once the node is torn down).
    pub fn remaining(&self) -> Vec<String> {
        let mut left = Vec::new();
        if self.dir.exists() {
            left.push(format!("directory {}", self.dir.display()));
        }
        left.extend(
            self.cgroups
                .iter()
                .filter(|c| c.exists())
                .map(|c| format!("cgroup {}", c.display())),
        );
        if Path::new("/sys/class/net").join(&self.host_if).exists() {
            left.push(format!("interface {}", self.host_if));
        }
        if namespace_in_use(&self.mnt_ns) {
            left.push(format!("processes in {}", self.mnt_ns.display()));
        }
        left
    }
}

/// `PATH` of the node's processes: the tools first (kube-proxy runs `iptables`, containerd
/// `containerd-shim-runc-v2` and `runc`).
fn node_path() -> String {
    format!(
        "{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        crate::tools_dir().join("bin").display()
    )
}

/// The child `unshare` forked (the namespaces' pid 1), once it runs `pause`.
fn wait_for_child(unshare: u32, pause: &Path) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let pause = std::fs::canonicalize(pause)?;
    loop {
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children"))
            .unwrap_or_default();
        if let Some(pid) = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            && std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == pause)
        {
            return Ok(pid);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "unshare (pid {unshare}) started no pause within 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether any process still lives in the mount namespace `ns` (`mnt:[inode]`).
fn namespace_in_use(ns: &Path) -> bool {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        p.file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && std::fs::read_link(p.path().join("ns/mnt")).is_ok_and(|l| l == ns)
    })
}

/// The mount points of cgroup v1 hierarchies, or the cgroup v2 root.
fn cgroup_mounts() -> Vec<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mountpoint = left.split_whitespace().nth(4)?;
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(mountpoint))
        })
        .collect()
}

/// Creates `root` in every cgroup hierarchy (kubelet requires its `cgroupRoot` to exist).
fn make_cgroups(root: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut made = Vec::new();
    for mount in cgroup_mounts() {
        let dir = mount.join(root.trim_start_matches('/'));
        if let Err(e) = std::fs::create_dir(&dir) {
            // v1 hierarchies without controllers (e.g. name=systemd) may be read-only.
            if mount.join("cgroup.procs").exists()
                && e.kind() != std::io::ErrorKind::PermissionDenied
            {
                remove_cgroups(&made);
                anyhow::bail!("creating cgroup {}: {e}", dir.display());
            }
            continue;
        }
        // cpuset children start with no CPUs and no memory nodes: inherit the root's.
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if let Ok(v) = std::fs::read_to_string(mount.join(f)) {
                let _ = std::fs::write(dir.join(f), v.trim());
            }
        }
        made.push(dir);
    }
    Ok(made)
}

/// Removes cgroup trees, deepest first, killing any process still in them.
fn remove_cgroups(roots: &[PathBuf]) {
    fn dirs(d: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(entries) = std::fs::read_dir(d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs(&e.path(), out);
                }
            }
        }
        out.push(d.to_owned());
    }
    for root in roots {
        let mut all = Vec::new();
        dirs(root, &mut all);
        for d in all {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::fs::remove_dir(&d).is_err() && d.exists() && Instant::now() < deadline {
                let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
                for pid in procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok())
                {
                    // SAFETY: kill only sends a signal.
                    unsafe {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// Removes what runs that ended without cleaning up left behind (their lock is free): their
/// cgroups and directories. Their processes and mounts died with their namespaces.
fn remove_stale_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.starts_with(RUN_PREFIX) {
            continue;
        }
        let dir = e.path();
        let Ok(lock) = lock_file(&dir.join("lock")) else {
            continue;
        };
        if !flock(&lock, true) {
            continue; // a live run
        }
        if let Ok(root) = std::fs::read_to_string(dir.join(CGROUP_FILE)) {
            let roots: Vec<PathBuf> = cgroup_mounts()
                .iter()
                .map(|m| m.join(root.trim().trim_start_matches('/')))
                .filter(|d| d.exists())
                .collect();
            remove_cgroups(&roots);
        }
        eprintln!(
            "pushcluster node: removing {} left by an earlier run",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// IPv4 networks on the host: interface addresses and routes (not the default route).
fn host_networks() -> anyhow::Result<Vec<(u32, u32)>> {
    let mut out = Vec::new();
    let addrs = run(Command::new("ip").args(["-4", "-o", "addr", "show"]))?;
    let routes = run(Command::new("ip").args(["-4", "route", "show", "table", "all"]))?;
    let words = addrs
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .chain(
            routes
                .lines()
                .filter_map(|l| l.split_whitespace().find(|w| w.contains('.'))),
        );
    for w in words {
        let (ip, len) = w.split_once('/').unwrap_or((w, "32"));
        if let (Ok(ip), Ok(len)) = (ip.parse::<Ipv4Addr>(), len.parse::<u32>()) {
            out.push((u32::from(ip), len.min(32)));
        }
    }
    Ok(out)
}

/// Whether two networks (address, prefix length) share an address.
fn overlaps(a: (u32, u32), b: (u32, u32)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    a.0 & mask == b.0 & mask
}

#[cfg(test)]
mod tests;
