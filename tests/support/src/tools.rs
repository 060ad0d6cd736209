//! Command-line tools built by `make tools`: helm and kubectl.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{require, run};

/// A command-line tool found by [`require`], optionally pointed at a control plane's
/// kubeconfig (`--kubeconfig`, which helm and kubectl both take).
#[derive(Clone, Debug)]
pub struct Tool {
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
}

/// The `helm` binary (v3).
pub type Helm = Tool;
/// The `kubectl` binary of the same Kubernetes release as the control plane.
pub type Kubectl = Tool;

impl Tool {
    /// Finds `name`, or `None` (skip) when it is missing and not required (see [`require`]).
    pub fn find_named(name: &str) -> Option<Tool> {
        Some(Tool {
            bin: require(name)?,
            kubeconfig: None,
        })
    }

    /// Finds helm.
    pub fn helm() -> Option<Helm> {
        Tool::find_named("helm")
    }

    /// Finds kubectl.
    pub fn kubectl() -> Option<Kubectl> {
        Tool::find_named("kubectl")
    }

    /// The same tool, talking to the cluster of `kubeconfig`.
    pub fn with_kubeconfig(mut self, kubeconfig: &Path) -> Tool {
        self.kubeconfig = Some(kubeconfig.to_owned());
        self
    }

    /// A command of this tool (with `--kubeconfig` when set), for callers that need more
    /// control.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        if let Some(kc) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(kc);
        }
        cmd
    }

    /// Runs `tool args…`; stdout, or an error with the output on a non-zero exit.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        run(self.command().args(args))
    }

    /// `tool args… -o json`, parsed.
    pub fn json(&self, args: &[&str]) -> anyhow::Result<serde_json::Value> {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        let out = self.run(&a)?;
        serde_json::from_str(&out)
            .map_err(|e| anyhow::anyhow!("{:?} {args:?} printed no JSON: {e}", self.bin))
    }

    /// `kubectl apply -f FILE` for a manifest given as text (written to a temp file).
    pub fn apply(&self, manifest: &str) -> anyhow::Result<String> {
        self.apply_with(manifest, &[])
    }

    /// `kubectl apply ARGS… -f FILE` (e.g. `-n NAMESPACE`) for a manifest given as text.
    pub fn apply_with(&self, manifest: &str, args: &[&str]) -> anyhow::Result<String> {
        let file = tempfile::Builder::new()
            .prefix("pushcluster-manifest-")
            .suffix(".yaml")
            .tempfile()?;
        std::fs::write(file.path(), manifest)?;
        run(self
            .command()
            .arg("apply")
            .args(args)
            .arg("-f")
            .arg(file.path()))
    }
}
