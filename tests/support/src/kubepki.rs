//! Certificates for test control planes, made with `openssl`: a CA, serving and client
//! certificates it signs (P-256, two days), a service-account key pair, and kubeconfigs that
//! embed them.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

use crate::run;

/// Key options of every certificate: a fresh P-256 key, unencrypted.
const EC_KEY: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

/// A CA in a directory: `ca.crt`, `ca.key`, and the certificates it signed (`NAME.crt`,
/// `NAME.key`).
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Makes a CA in `dir` (which must exist).
    pub fn new(dir: &Path) -> Pki {
        let pki = Pki {
            dir: dir.to_owned(),
        };
        let mut args = vec!["req", "-x509"];
        args.extend(EC_KEY);
        args.extend(["-keyout", "ca.key", "-out", "ca.crt", "-days", "2"]);
        args.extend(["-subj", "/CN=pushcluster-test-ca"]);
        pki.openssl(&args);
        pki
    }

    /// The CA already made in `dir` by [`Pki::new`].
    pub fn open(dir: &Path) -> Pki {
        Pki {
            dir: dir.to_owned(),
        }
    }

    /// A file of this PKI, e.g. `path("ca.crt")`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn openssl(&self, args: &[&str]) {
        let bin = crate::find_tool("openssl").expect("openssl (make tools)");
        run(Command::new(bin).current_dir(&self.dir).args(args)).expect("openssl");
    }

    fn sign(&self, name: &str, subj: &str, ext: &str) {
        let (key, csr, crt, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        std::fs::write(self.path(&extfile), ext).expect("writing an openssl extension file");
        let mut args = vec!["req"];
        args.extend(EC_KEY);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", subj]);
        self.openssl(&args);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &extfile,
        ]);
    }

    /// `NAME.crt`/`NAME.key` for a server known by `sans` (`IP:10.0.0.1`, `DNS:localhost`).
    pub fn serving(&self, name: &str, cn: &str, sans: &[String]) {
        let ext = format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
            sans.join(",")
        );
        self.sign(name, &format!("/CN={cn}"), &ext);
    }

    /// `NAME.crt`/`NAME.key` for a client; Kubernetes reads the user from CN and the groups
    /// from O, e.g. `/O=system:masters/CN=admin`.
    pub fn client(&self, name: &str, subj: &str) {
        self.sign(name, subj, "extendedKeyUsage=clientAuth\n");
    }

    /// The service-account token key pair: `sa.key` (RSA 2048) and `sa.pub`.
    pub fn service_account_keys(&self) {
        self.openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "sa.key",
        ]);
        self.openssl(&["pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
    }

    /// Writes `file` (in this directory): a kubeconfig for `server` trusting this CA and
    /// authenticating with the client certificate `user` (see [`Pki::client`]).
    pub fn kubeconfig(&self, file: &str, server: &str, user: &str) -> PathBuf {
        let b64 = |f: &str| {
            base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(self.path(f)).expect("reading a certificate"))
        };
        let config = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: test
  context:
    cluster: test
    user: {user}
    namespace: default
current-context: test
",
            ca = b64("ca.crt"),
            cert = b64(&format!("{user}.crt")),
            key = b64(&format!("{user}.key")),
        );
        let path = self.path(file);
        std::fs::write(&path, config).expect("writing a kubeconfig");
        path
    }
}
