//! The images of the end-to-end test, assembled from this machine's binaries and imported
//! into the node (no registry; pods use `imagePullPolicy: Never`).
//!
//! The project's image mirrors the `Dockerfile`'s runtime stage: `pushd` and
//! `pushcluster-operator` (the debug builds `cargo test` made, or release ones, see
//! [`profile`]) in `/usr/local/bin`, the CA bundle, user and group
//! 65532, `ENTRYPOINT ["pushd"]`. Instead of a Debian base it carries exactly the shared
//! libraries `ldd` lists, so it is built in a second from what `cargo build` produced.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use pushcluster_test_support::kubenode::Node;
use pushcluster_test_support::kubenode::image::Image;
use pushcluster_test_support::{require, run};

/// UID and GID of the unprivileged user of every image (the Dockerfile's).
pub const RUN_AS: u32 = 65532;

/// References of the imported images.
pub struct Images {
    /// `pushd` and `pushcluster-operator`.
    pub pushcluster: String,
    pub redis: String,
    pub ferretdb: String,
}

impl Images {
    /// Repository and tag of the project's image, for the chart's `image.repository`/`tag`.
    pub fn pushcluster_repository_and_tag(&self) -> (&str, &str) {
        self.pushcluster
            .rsplit_once(':')
            .expect("image reference with a tag")
    }
}

/// Which build of `pushd` and the operator goes into the image, from
/// `PUSHCLUSTER_E2E_PROFILE`: `dev` (default: the debug build `cargo test --workspace` makes
/// anyway, so `make test` compiles nothing more) or `release` (what the Dockerfile ships; a
/// full optimised build of the dependency tree, minutes on two cores).
pub fn profile() -> String {
    std::env::var("PUSHCLUSTER_E2E_PROFILE").unwrap_or_else(|_| "dev".into())
}

/// The workspace's target directory, from this test binary's path (`<target>/<profile>/deps/…`).
fn target_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let exe = std::env::current_exe()?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_owned)
        .context("test binary is not in <target>/<profile>/deps")
}

/// Builds `pushd` and `pushcluster-operator` of [`profile`] and returns the directory
/// holding them.
///
/// The debug build comes from `cargo test --workspace --no-run`: the very build `make test`
/// (`cargo test --workspace`) has just made, so there it is a no-op. A narrower
/// `cargo build -p pushd` would resolve features differently (dev-dependencies turn on e.g.
/// tokio's `test-util` workspace-wide), recompile most of the tree and overwrite the
/// binaries the other tests use. The release build is `cargo build --release -p …`.
pub fn build_binaries() -> anyhow::Result<PathBuf> {
    let profile = profile();
    let target = target_dir()?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = std::time::Instant::now();
    let args: &[&str] = if profile == "dev" {
        &["test", "--workspace", "--no-run"]
    } else {
        &[
            "build",
            "--profile",
            &profile,
            "-p",
            "pushd",
            "-p",
            "pushcluster-operator",
        ]
    };
    run(Command::new(cargo)
        .args(args)
        .arg("--target-dir")
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR")))?;
    eprintln!(
        "cargo {}: {:.1} s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    let dir = target.join(if profile == "dev" { "debug" } else { &profile });
    for bin in ["pushd", "pushcluster-operator"] {
        anyhow::ensure!(dir.join(bin).exists(), "no {bin} in {}", dir.display());
    }
    Ok(dir)
}

/// Builds the three images into the node's run directory and imports them.
pub fn build_and_import(node: &Node, binaries: &Path) -> anyhow::Result<Images> {
    let out = node.dir().join("images");
    let images = Images {
        pushcluster: "pushcluster.test/pushcluster:e2e".into(),
        redis: "pushcluster.test/redis:e2e".into(),
        ferretdb: "pushcluster.test/ferretdb:e2e".into(),
    };
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    let mut project = Image::new(&images.pushcluster)?
        .binary(&binaries.join("pushd"), "/usr/local/bin/pushd")?
        .binary(
            &binaries.join("pushcluster-operator"),
            "/usr/local/bin/pushcluster-operator",
        )?
        .base_files("pushcluster", RUN_AS)?;
    if ca.exists() {
        project = project.copy(ca, "/etc/ssl/certs/ca-certificates.crt")?;
    }
    let user = format!("{RUN_AS}:{RUN_AS}");
    let project = project.user(&user).entrypoint(&["pushd"]).cmd(&["--help"]);
    let redis = Image::new(&images.redis)?
        .binary(
            &require("redis-server").context("redis-server")?,
            "/usr/bin/redis-server",
        )?
        .base_files("redis", RUN_AS)?
        .user(&user)
        .entrypoint(&["/usr/bin/redis-server"]);
    let ferretdb = Image::new(&images.ferretdb)?
        .binary(
            &require("ferretdb").context("ferretdb")?,
            "/usr/local/bin/ferretdb",
        )?
        .base_files("ferretdb", RUN_AS)?
        .user(&user)
        .entrypoint(&["/usr/local/bin/ferretdb"]);
    for image in [project, redis, ferretdb] {
        let tar = image.write(&out)?;
        node.import(&tar)
            .with_context(|| format!("importing {}", image.name))?;
    }
    Ok(images)
}
