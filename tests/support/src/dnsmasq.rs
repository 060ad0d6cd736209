//! dnsmasq serving fixed A records (e.g. headless-Service names), and a minimal resolver.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use tempfile::TempDir;

use crate::{Proc, free_port, require, retry_start};

/// A dnsmasq on 127.0.0.1:port (UDP and TCP) answering only the given records; every other
/// name under `cluster.local` is NXDOMAIN, names elsewhere are REFUSED (no upstream).
pub struct Dnsmasq {
    pub addr: SocketAddr,
    // Declared before `_dir`: dnsmasq is killed before its directory is removed.
    _proc: Proc,
    _dir: TempDir,
}

impl Dnsmasq {
    pub async fn start(records: &[(&str, Ipv4Addr)]) -> Option<Dnsmasq> {
        let bin = require("dnsmasq")?;
        Some(
            retry_start("dnsmasq", || {
                let bin = bin.clone();
                async move {
                    let dir = tempfile::Builder::new()
                        .prefix("pushcluster-dnsmasq-")
                        .tempdir()?;
                    let port = free_port();
                    let mut cmd = Command::new(bin);
                    cmd.args([
                        "--keep-in-foreground",
                        "--no-resolv",
                        "--no-hosts",
                        "--no-poll",
                    ])
                    .args([
                        "--conf-file=/dev/null",
                        "--bind-interfaces",
                        "--listen-address=127.0.0.1",
                    ])
                    .args(["--log-facility=-"])
                    // Authoritative for the cluster domain: unknown names are NXDOMAIN.
                    .arg("--address=/cluster.local/")
                    .arg(format!("--port={port}"))
                    .arg(format!("--pid-file={}/dnsmasq.pid", dir.path().display()));
                    if nix_is_root() {
                        // Otherwise dnsmasq drops to `nobody` and cannot write its pid file.
                        cmd.args(["--user=root", "--group=root"]);
                    }
                    for (name, ip) in records {
                        cmd.arg(format!("--host-record={name},{ip}"));
                    }
                    let mut proc = Proc::spawn("dnsmasq", cmd, &dir.path().join("dnsmasq.log"))?;
                    let addr: SocketAddr = SocketAddr::from(([127, 0, 0, 1], port));
                    // Any answer (NXDOMAIN included) means it serves queries.
                    proc.wait_ready(Duration::from_secs(10), || async move {
                        resolve_a(addr, "readiness-probe.cluster.local")
                            .await
                            .map(drop)
                    })
                    .await?;
                    Ok(Dnsmasq {
                        addr,
                        _proc: proc,
                        _dir: dir,
                    })
                }
            })
            .await,
        )
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Asks `server` for the A records of `name` over UDP (one query, 1 s timeout).
pub async fn resolve_a(server: SocketAddr, name: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    query_a(server, name).await.map(|(_, ips)| ips)
}

/// Like [`resolve_a`], with the reply's rcode (0 NOERROR, 3 NXDOMAIN).
pub async fn query_a(server: SocketAddr, name: &str) -> anyhow::Result<(u8, Vec<Ipv4Addr>)> {
    let id: u16 = (std::process::id() as u16) ^ 0x5a5a;
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD, 1 question
    for label in name.trim_end_matches('.').split('.') {
        anyhow::ensure!(!label.is_empty() && label.len() < 64, "bad name {name}");
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]); // root, QTYPE A, QCLASS IN
    let local = if server.ip().is_loopback() {
        "127.0.0.1:0"
    } else {
        "0.0.0.0:0"
    };
    let sock = tokio::net::UdpSocket::bind(local).await?;
    sock.send_to(&q, server).await?;
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await??;
    parse_a_answers(&buf[..n], id)
}

fn parse_a_answers(msg: &[u8], id: u16) -> anyhow::Result<(u8, Vec<Ipv4Addr>)> {
    anyhow::ensure!(msg.len() >= 12, "short DNS reply");
    anyhow::ensure!(u16::from_be_bytes([msg[0], msg[1]]) == id, "wrong DNS id");
    let rcode = msg[3] & 0x0f;
    anyhow::ensure!(rcode == 0 || rcode == 3, "DNS rcode {rcode}");
    let qd = u16::from_be_bytes([msg[4], msg[5]]) as usize;
    let an = u16::from_be_bytes([msg[6], msg[7]]) as usize;
    let mut i = 12;
    let skip_name = |mut i: usize| -> anyhow::Result<usize> {
        loop {
            let len = *msg
                .get(i)
                .ok_or_else(|| anyhow::anyhow!("truncated name"))? as usize;
            if len == 0 {
                return Ok(i + 1);
            }
            if len & 0xc0 == 0xc0 {
                return Ok(i + 2);
            }
            i += len + 1;
        }
    };
    for _ in 0..qd {
        i = skip_name(i)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        i = skip_name(i)?;
        anyhow::ensure!(msg.len() >= i + 10, "truncated answer");
        let rtype = u16::from_be_bytes([msg[i], msg[i + 1]]);
        let rdlen = u16::from_be_bytes([msg[i + 8], msg[i + 9]]) as usize;
        i += 10;
        anyhow::ensure!(msg.len() >= i + rdlen, "truncated rdata");
        if rtype == 1 && rdlen == 4 {
            out.push(Ipv4Addr::new(msg[i], msg[i + 1], msg[i + 2], msg[i + 3]));
        }
        i += rdlen;
    }
    Ok((rcode, out))
}
