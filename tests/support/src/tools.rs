//! Command-line tools built by `make tools`: helm and kubectl.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{require, run};

/// The `helm` binary (v3), optionally pointed at a control plane's kubeconfig.
#[derive(Clone, Debug)]
pub struct Helm {
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
}

impl Helm {
    /// Finds helm, or `None` (skip) when it is missing and not required (see [`require`]).
    pub fn find() -> Option<Helm> {
        Some(Helm {
            bin: require("helm")?,
            kubeconfig: None,
        })
    }

    /// The same helm, talking to the cluster of `kubeconfig`.
    pub fn with_kubeconfig(mut self, kubeconfig: &Path) -> Helm {
        self.kubeconfig = Some(kubeconfig.to_owned());
        self
    }

    /// A `helm` command (with `--kubeconfig` when set), for callers that need more control.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        if let Some(kc) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(kc);
        }
        cmd
    }

    /// Runs `helm args…`; stdout, or an error with the output on a non-zero exit.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        run(self.command().args(args))
    }
}

/// The `kubectl` binary of the same Kubernetes release as the control plane.
#[derive(Clone, Debug)]
pub struct Kubectl {
    pub bin: PathBuf,
    pub kubeconfig: Option<PathBuf>,
}

impl Kubectl {
    /// Finds kubectl, or `None` (skip) when it is missing and not required.
    pub fn find() -> Option<Kubectl> {
        Some(Kubectl {
            bin: require("kubectl")?,
            kubeconfig: None,
        })
    }

    pub fn with_kubeconfig(mut self, kubeconfig: &Path) -> Kubectl {
        self.kubeconfig = Some(kubeconfig.to_owned());
        self
    }

    /// A `kubectl` command (with `--kubeconfig` when set).
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        if let Some(kc) = &self.kubeconfig {
            cmd.arg("--kubeconfig").arg(kc);
        }
        cmd
    }

    /// Runs `kubectl args…`; stdout, or an error with the output on a non-zero exit.
    pub fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        run(self.command().args(args))
    }

    /// `kubectl apply -f FILE` for a manifest given as text (written to a temp file).
    pub fn apply(&self, manifest: &str) -> anyhow::Result<String> {
        let file = tempfile::Builder::new()
            .prefix("pushcluster-manifest-")
            .suffix(".yaml")
            .tempfile()?;
        std::fs::write(file.path(), manifest)?;
        run(self.command().arg("apply").arg("-f").arg(file.path()))
    }
}
