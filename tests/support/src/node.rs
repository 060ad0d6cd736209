//! Node.js and the npm packages `make tools` installs from `tests/tools/node` (the TypeScript
//! compiler, terser, playwright-core), for the tests of `clients/js` and of the demo page.
//!
//! The packages live in `$PUSHCLUSTER_TOOLS/node/node_modules`, next to a copy of the lock file
//! they were installed from: an install from an older lock file counts as missing.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::{Proc, log_tail, missing, require, services_required, tools_dir};

/// The repository's root (this crate is `tests/support`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `node` and the installed npm tools.
#[derive(Clone, Debug)]
pub struct NodeTools {
    pub node: PathBuf,
    /// `…/node_modules`.
    pub modules: PathBuf,
    /// Flags every `node` run gets (`--experimental-websocket` on Node 20, which has no
    /// global WebSocket without it).
    pub flags: Vec<&'static str>,
}

impl NodeTools {
    /// Finds node and the npm tools; `None` (skip) or a panic (CI) when either is missing or
    /// the install is older than `tests/tools/node/package-lock.json`.
    pub fn find() -> Option<NodeTools> {
        let node = require("node")?;
        let dir = tools_dir().join("node");
        let want = std::fs::read(repo_root().join("tests/tools/node/package-lock.json"))
            .expect("tests/tools/node/package-lock.json");
        if std::fs::read(dir.join("package-lock.json")).ok().as_ref() != Some(&want) {
            return missing(
                "node tools from tests/tools/node/package-lock.json (typescript, terser, playwright-core)",
                services_required(),
            )
            .and(None);
        }
        let has_ws = Command::new(&node)
            .args(["-p", "typeof WebSocket"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "function")
            .unwrap_or(false);
        Some(NodeTools {
            node,
            modules: dir.join("node_modules"),
            flags: if has_ws {
                vec![]
            } else {
                vec!["--experimental-websocket"]
            },
        })
    }

    /// An npm tool's executable, e.g. `tsc`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.modules.join(".bin").join(name)
    }

    /// `node <flags>`, with `PUSHCLUSTER_NODE_MODULES` set (ES modules do not search
    /// `NODE_PATH`: scripts load tools through `createRequire` from that directory).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.node);
        cmd.args(&self.flags)
            .env("PUSHCLUSTER_NODE_MODULES", &self.modules)
            .env("NODE_NO_WARNINGS", "1");
        cmd
    }

    /// Runs `node --test FILES` with `envs`, output to `log`; the output when every test
    /// passed, else an error carrying it. Killed (with every process it started) after `timeout`.
    pub async fn test(
        &self,
        files: &[PathBuf],
        envs: &[(&str, OsString)],
        log: &Path,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let mut cmd = self.command();
        // One file at a time: each starts its own servers, and the machine has few cores.
        cmd.args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
            .args(files)
            .current_dir(repo_root());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let _ = std::fs::remove_file(log);
        let mut proc = Proc::spawn("node --test", cmd, log)?;
        let status = proc.wait_exit(timeout).await;
        let output = std::fs::read_to_string(log).unwrap_or_default();
        match status {
            Ok(s) if s.success() => Ok(output),
            Ok(s) => anyhow::bail!("node --test failed ({s}):\n{output}"),
            Err(e) => anyhow::bail!("{e:#}\n{}", log_tail(log, 200)),
        }
    }
}

impl Proc {
    /// Waits up to `timeout` for the process to exit by itself; kills it after that.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.exited()? {
                // Its children (servers a script started) go with it, before the reap frees
                // the group id.
                self.kill_group();
                let status = self.child.wait()?;
                self.reaped = true;
                return Ok(status);
            }
            if std::time::Instant::now() >= deadline {
                self.kill();
                anyhow::bail!("{} did not finish within {timeout:?}", self.name);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the child has exited, without reaping it.
    fn exited(&self) -> std::io::Result<bool> {
        // SAFETY: waitid writes only into `info`; WNOWAIT leaves the child waitable.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.child.id(),
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: filled by waitid (zero when the child is still running).
        Ok(unsafe { info.si_pid() } != 0)
    }
}
