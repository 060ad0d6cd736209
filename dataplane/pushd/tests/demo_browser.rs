//! The demo page in a real browser: Debian's Chromium, driven by playwright-core from
//! `tests/browser/demo.test.mjs`, against this crate's `pushd standalone` (kill -9 and restart
//! included). Prints the measured reconnect time and where the screenshot is.
//!
//! Needs node, the npm tools and chromium of `make tools`: skipped loudly without them, failed
//! under CI.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pushcluster_test_support::node::{NodeTools, repo_root};

#[tokio::test]
async fn demo_page_in_chromium_sends_receives_and_reconnects_after_a_crash() {
    let Some(node) = NodeTools::find() else {
        return;
    };
    let Some(chromium) = pushcluster_test_support::require("chromium") else {
        return;
    };
    let artifacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("demo-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let out = node
        .test(
            &[repo_root().join("dataplane/pushd/tests/browser/demo.test.mjs")],
            &[
                ("PUSHD_BIN", OsString::from(env!("CARGO_BIN_EXE_pushd"))),
                ("CHROMIUM", chromium.into_os_string()),
                ("SCREENSHOT", screenshot.clone().into_os_string()),
            ],
            &artifacts.join("demo.test.log"),
            Duration::from_secs(300),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let measured: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("MEASURED ") || l.contains("SCREENSHOT "))
        .map(str::trim)
        .collect();
    assert_eq!(
        measured.len(),
        2,
        "expected the measurement lines in:\n{out}"
    );
    assert!(
        std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 1000),
        "no screenshot at {}",
        screenshot.display()
    );
    // Straight to fd 2, so the numbers show in a `cargo test` run.
    let _ = writeln!(std::io::stderr(), "demo page: {}", measured.join("; "));
}

#[test]
fn the_dev_api_key_goes_into_the_page_only_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pushd"))
        .args([
            "standalone",
            "--listen",
            "0.0.0.0:0",
            "--dev-api-key-in-page",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("PUSHD_JWT_SECRET", "test-jwt-secret-0123456789")
        .env("PUSHD_API_KEY", "test-api-key-0123456789")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "exit code for bad configuration"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--dev-api-key-in-page") && stderr.contains("loopback"),
        "{stderr}"
    );
}
