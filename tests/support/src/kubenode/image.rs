//! Container images without a registry: a root filesystem assembled from files of this
//! machine (binaries with the shared libraries `ldd` names), written as an OCI image layout
//! tar (with a docker-style `manifest.json` too) that `ctr images import` accepts. Pods use
//! them with `imagePullPolicy: Never`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::run;

/// An image being assembled.
pub struct Image {
    /// Full reference, e.g. `pushcluster.test/pushcluster:e2e`.
    pub name: String,
    root: TempDir,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    user: Option<String>,
    env: Vec<String>,
}

impl Image {
    /// An empty image named `name` (`registry/repository:tag`).
    pub fn new(name: &str) -> anyhow::Result<Image> {
        Ok(Image {
            name: name.to_owned(),
            root: tempfile::Builder::new()
                .prefix("pushcluster-image-")
                .tempdir()?,
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            user: None,
            env: vec!["PATH=/usr/local/bin:/usr/bin:/bin".into()],
        })
    }

    /// Adds a file with `contents` at `dest` (absolute) with `mode`.
    pub fn file(self, dest: &str, contents: &[u8], mode: u32) -> anyhow::Result<Image> {
        let path = self.target(dest)?;
        std::fs::write(&path, contents)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(self)
    }

    /// Copies the file `src` of this machine to `dest`, keeping its permission bits.
    pub fn copy(self, src: &Path, dest: &str) -> anyhow::Result<Image> {
        let path = self.target(dest)?;
        std::fs::copy(src, &path)
            .map_err(|e| anyhow::anyhow!("copying {} into the image: {e}", src.display()))?;
        Ok(self)
    }

    /// Copies the executable `src` to `dest` with every shared library `ldd` lists for it, at
    /// the same paths (the dynamic loader included); a static binary needs none.
    pub fn binary(self, src: &Path, dest: &str) -> anyhow::Result<Image> {
        let mut image = self.copy(src, dest)?;
        for lib in shared_libraries(src)? {
            let dest = lib.display().to_string();
            if !image
                .root
                .path()
                .join(dest.trim_start_matches('/'))
                .exists()
            {
                image = image.copy(&lib, &dest)?;
            }
        }
        Ok(image)
    }

    /// `/etc/passwd`, `/etc/group` (root and `name` with `uid`=`gid`), `/etc/nsswitch.conf`,
    /// `/tmp`: what the programs in these images look up.
    pub fn base_files(self, name: &str, uid: u32) -> anyhow::Result<Image> {
        let image = self
            .file(
                "/etc/passwd",
                format!("root:x:0:0:root:/root:/sbin/nologin\n{name}:x:{uid}:{uid}::/nonexistent:/sbin/nologin\n").as_bytes(),
                0o644,
            )?
            .file(
                "/etc/group",
                format!("root:x:0:\n{name}:x:{uid}:\n").as_bytes(),
                0o644,
            )?
            .file("/etc/nsswitch.conf", b"hosts: files dns\npasswd: files\ngroup: files\n", 0o644)?;
        let tmp = image.root.path().join("tmp");
        std::fs::create_dir_all(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))?;
        Ok(image)
    }

    /// The image's `Entrypoint`.
    pub fn entrypoint(mut self, argv: &[&str]) -> Image {
        self.entrypoint = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The image's `Cmd` (arguments after the entrypoint).
    pub fn cmd(mut self, argv: &[&str]) -> Image {
        self.cmd = argv.iter().map(|s| s.to_string()).collect();
        self
    }

    /// The image's `User`, e.g. `65532:65532`.
    pub fn user(mut self, user: &str) -> Image {
        self.user = Some(user.to_owned());
        self
    }

    fn target(&self, dest: &str) -> anyhow::Result<PathBuf> {
        anyhow::ensure!(dest.starts_with('/'), "image path {dest} is not absolute");
        let path = self.root.path().join(dest.trim_start_matches('/'));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        Ok(path)
    }

    /// Writes the OCI image layout tar into `dir`; returns its path.
    pub fn write(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        let layout = tempfile::Builder::new()
            .prefix("pushcluster-oci-")
            .tempdir_in(dir)?;
        let blobs = layout.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs)?;
        let put = |bytes: &[u8]| -> anyhow::Result<(String, usize)> {
            let digest = hex(&Sha256::digest(bytes));
            std::fs::write(blobs.join(&digest), bytes)?;
            Ok((digest, bytes.len()))
        };
        // One uncompressed layer, reproducible: sorted, owned by root, mtime 0.
        let layer_file = layout.path().join("layer.tar");
        run(Command::new("tar")
            .args([
                "--create",
                "--sort=name",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
            ])
            .args(["--mtime=@0", "--file"])
            .arg(&layer_file)
            .arg("-C")
            .arg(self.root.path())
            .arg("."))?;
        let (layer, layer_size) = put(&std::fs::read(&layer_file)?)?;
        std::fs::remove_file(&layer_file)?;
        let mut config = json!({
            "Env": self.env,
            "Entrypoint": self.entrypoint,
            "Cmd": self.cmd,
            "WorkingDir": "/",
        });
        if let Some(user) = &self.user {
            config["User"] = user.as_str().into();
        }
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer}")]},
        });
        let (config_digest, config_size) = put(config.to_string().as_bytes())?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": format!("sha256:{config_digest}"),
                "size": config_size,
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": format!("sha256:{layer}"),
                "size": layer_size,
            }],
        });
        let (manifest_digest, manifest_size) = put(manifest.to_string().as_bytes())?;
        let annotations = BTreeMap::from([
            ("io.containerd.image.name", self.name.as_str()),
            ("org.opencontainers.image.ref.name", self.name.as_str()),
        ]);
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{manifest_digest}"),
                "size": manifest_size,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": annotations,
            }],
        });
        std::fs::write(layout.path().join("index.json"), index.to_string())?;
        std::fs::write(
            layout.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )?;
        let docker = json!([{
            "Config": format!("blobs/sha256/{config_digest}"),
            "RepoTags": [self.name],
            "Layers": [format!("blobs/sha256/{layer}")],
        }]);
        std::fs::write(layout.path().join("manifest.json"), docker.to_string())?;
        let file_name: String = self
            .name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let out = dir.join(format!("{file_name}.tar"));
        run(Command::new("tar")
            .args(["--create", "--file"])
            .arg(&out)
            .arg("-C")
            .arg(layout.path())
            .args(["oci-layout", "index.json", "manifest.json", "blobs"]))?;
        Ok(out)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The shared libraries `ldd` resolves for `bin` (none for a static binary).
pub fn shared_libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("not a dynamic executable") {
        return Ok(Vec::new());
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)", "/lib64/ld-linux-x86-64.so.2 (0x…)"
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        match path {
            Some(p) if p.starts_with('/') => libs.push(PathBuf::from(p)),
            Some("not") => anyhow::bail!("{}: a library is missing: {line}", bin.display()),
            _ => {} // linux-vdso.so.1: provided by the kernel
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests;
