//! CPU profiles of the server during a phase: `perf record` (the `cpu-clock` software event,
//! which works in VMs without hardware counters) on the server's pids, then a flat report of
//! where the samples fell, by function.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;

/// Sampling frequency, Hz.
const FREQUENCY: &str = "997";
/// Functions kept in a result.
const TOP: usize = 25;

/// A running `perf record`.
pub struct Profile {
    child: Child,
    data: PathBuf,
}

impl Profile {
    /// Starts sampling `pids` into `data` (`*.perf.data`).
    pub fn start(pids: &[u32], data: &Path) -> anyhow::Result<Profile> {
        let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
        let child = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", FREQUENCY, "-p"])
            .arg(pids.join(","))
            .arg("-o")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("perf record (is perf installed?)")?;
        Ok(Profile {
            child,
            data: data.to_owned(),
        })
    }

    /// Stops sampling; writes the flat report next to the data (`*.txt`), removes the data
    /// and returns the top functions as `(share of samples %, "dso symbol")`.
    pub fn stop(mut self) -> anyhow::Result<Vec<(f64, String)>> {
        let pid = i32::try_from(self.child.id())?;
        // SAFETY: kill only sends a signal, to our own child.
        unsafe { libc::kill(pid, libc::SIGINT) };
        self.child.wait()?;
        let out = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-F",
                "overhead,dso,sym",
            ])
            .args(["-g", "none", "--percent-limit", "0.2", "-i"])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output()
            .context("perf report")?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        std::fs::write(self.data.with_extension("txt"), &text)?;
        let _ = std::fs::remove_file(&self.data);
        Ok(top(&text))
    }
}

/// `  12.34%  dso  [.] symbol` lines → `(12.34, "dso symbol")`, the first [`TOP`].
fn top(report: &str) -> Vec<(f64, String)> {
    report
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (pct, rest) = l.trim().split_once('%')?;
            let pct: f64 = pct.trim().parse().ok()?;
            let rest: Vec<&str> = rest.split_whitespace().collect();
            Some((pct, rest.join(" ")))
        })
        .take(TOP)
        .collect()
}
