//! What `/proc` says about processes and the machine: CPU time, resident memory, load.

use serde::Serialize;

/// User + system CPU time of this process so far, µs.
pub fn self_cpu_us() -> u64 {
    // SAFETY: getrusage only writes into the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

/// Fields of `/proc/PID/stat` after the command name: state is index 0.
fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(
        rest.split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

// Indexes into `stat_fields` (man proc: field N is index N - 4).
const PGRP: usize = 1;
const UTIME: usize = 10;
const STIME: usize = 11;
const CUTIME: usize = 12;
const CSTIME: usize = 13;

/// CPU time (µs) of `pid`, the children it has reaped, and every other live process of its
/// process group (PostgreSQL's backends, a role's helpers). 0 once the process is gone.
pub fn group_cpu_us(pid: u32) -> u64 {
    let Some(own) = stat_fields(pid) else {
        return 0;
    };
    let mut ticks = own[UTIME] + own[STIME] + own[CUTIME] + own[CSTIME];
    if own[PGRP] == u64::from(pid) {
        for other in group_members(pid) {
            if let Some(f) = stat_fields(other) {
                ticks += f[UTIME] + f[STIME];
            }
        }
    }
    ticks * 1_000_000 / ticks_per_sec()
}

/// Live processes in process group `pgid`, other than its leader.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != pgid)
        .filter(|pid| stat_fields(*pid).is_some_and(|f| f[PGRP] == u64::from(pgid)))
        .collect()
}

/// Resident memory of `pid` (`VmRSS`), bytes.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The 1-minute load average (how busy the shared machine was).
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The machine a result was measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total_kb: u64,
    pub kernel: String,
    pub hostname: String,
}

pub fn machine() -> Machine {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    Machine {
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        cpu_model: cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_default(),
        mem_total_kb: meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
    }
}
