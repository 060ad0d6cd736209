//! The JavaScript SDK (`clients/js`): its committed build is what the pinned TypeScript compiler
//! makes of the source (pushd embeds that build), its tests (`node --test`) pass against this
//! crate's `pushd standalone`, and its minified + gzipped size stays small.
//!
//! Needs node and the npm tools of `make tools`: skipped loudly without them, failed under CI.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use pushcluster_test_support::node::{NodeTools, repo_root};

/// The size the SDK must stay under, minified and gzipped (it is ~1.7 KB).
const GZIP_BUDGET: u64 = 3 * 1024;

/// Straight to fd 2, so the numbers show in a `cargo test` run (libtest captures `eprintln!`).
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

#[test]
fn committed_build_matches_the_typescript_compiler() {
    let Some(node) = NodeTools::find() else {
        return;
    };
    let js = repo_root().join("clients/js");
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(node.bin("tsc"))
        .arg("-p")
        .arg(js.join("tsconfig.json"))
        .arg("--outDir")
        .arg(out.path())
        .status()
        .expect("run tsc");
    assert!(status.success(), "tsc failed on clients/js/src");
    let names = |dir: &std::path::Path| {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let dist = js.join("dist");
    assert_eq!(
        names(&dist),
        names(out.path()),
        "clients/js/dist has other files than tsc makes: run `make js`"
    );
    for name in names(out.path()) {
        let built = std::fs::read_to_string(out.path().join(&name)).unwrap();
        let committed = std::fs::read_to_string(dist.join(&name)).unwrap();
        assert!(
            built == committed,
            "clients/js/dist/{} differs from what tsc builds from clients/js/src: run `make js` and commit",
            name.to_string_lossy()
        );
    }
}

#[tokio::test]
async fn sdk_tests_pass_against_a_real_server() {
    let Some(node) = NodeTools::find() else {
        return;
    };
    let dir = repo_root().join("clients/js/test");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.mjs"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "no SDK tests found in {}", dir.display());
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("js-sdk-tests.log");
    let out = node
        .test(
            &files,
            &[("PUSHD_BIN", OsString::from(env!("CARGO_BIN_EXE_pushd")))],
            &log,
            Duration::from_secs(300),
        )
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    // The runner's closing summary, e.g. "ℹ tests 18" … "ℹ fail 0".
    let summary: Vec<&str> = out.lines().filter(|l| l.starts_with("ℹ ")).collect();
    assert!(
        summary.iter().any(|l| l.starts_with("ℹ pass ")),
        "no summary in:\n{out}"
    );
    report(&format!("clients/js tests: {}", summary.join(", ")));
}

#[test]
fn size_minified_and_gzipped_stays_small() {
    let Some(node) = NodeTools::find() else {
        return;
    };
    let out = node
        .command()
        .arg(repo_root().join("clients/js/scripts/size.mjs"))
        .output()
        .expect("run size.mjs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    report(&format!(
        "clients/js size: {} B as built, {} B minified (terser), {} B minified + gzip -9",
        size["raw"], size["min"], size["gzip"]
    ));
    let gzip = size["gzip"].as_u64().unwrap();
    assert!(
        gzip > 500 && gzip < GZIP_BUDGET,
        "gzipped size {gzip} B is outside (500, {GZIP_BUDGET})"
    );
}
