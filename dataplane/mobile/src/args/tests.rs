use clap::Parser;

use super::*;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    mobile: MobileArgs,
}

fn parse(args: &[&str]) -> MobileArgs {
    let mut argv = vec!["pushd"];
    argv.extend_from_slice(args);
    Cli::try_parse_from(argv).expect("flags parse").mobile
}

fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn nothing_configured_is_off() {
    let c = parse(&[]).config().unwrap();
    assert!(!c.is_enabled());
}

#[test]
fn half_configured_vendors_are_named() {
    for (args, vendor, flag) in [
        (vec!["--apns-topic=com.x"], "APNs", "--apns-topic"),
        (vec!["--fcm-endpoint=https://x:1"], "FCM", "--fcm-endpoint"),
        (vec!["--hms-client-id=1"], "Huawei push", "--hms-client-id"),
        (
            vec!["--xiaomi-package=com.x"],
            "Xiaomi push",
            "--xiaomi-package",
        ),
        (vec!["--vivo-app-key=k"], "vivo push", "--vivo-app-key"),
    ] {
        let err = parse(&args).config().unwrap_err().to_string();
        assert!(err.contains(vendor) && err.contains(flag), "{err}");
    }
}

#[test]
fn each_vendor_is_configured_from_its_flags_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let key = pushcluster_test_support::fcm::KEY_PEM;
    let account = serde_json::json!({"type": "service_account", "project_id": "proj-1",
        "private_key_id": "kid", "private_key": key, "client_email": "a@b.c",
        "token_uri": "https://127.0.0.1:9/token"});
    let sa = file(&dir, "sa.json", &account.to_string());
    let hms = file(&dir, "hms", "hms-secret\n");
    let xm = file(&dir, "xm", "xm-secret");
    let vivo = file(&dir, "vivo", "vivo-secret");
    let args = parse(&[
        &format!("--fcm-credentials-file={sa}"),
        "--fcm-endpoint=https://127.0.0.1:8443",
        "--fcm-unknown-retries=1",
        "--hms-app-id=104523456",
        &format!("--hms-client-secret-file={hms}"),
        &format!("--xiaomi-app-secret-file={xm}"),
        "--xiaomi-package=com.example.app",
        "--vivo-app-id=1050",
        "--vivo-app-key=key",
        &format!("--vivo-app-secret-file={vivo}"),
        "--vivo-request-timeout=5s",
    ]);
    let c = args.config().unwrap();
    let fcm = c.fcm.as_ref().unwrap();
    assert_eq!(fcm.project_id, "proj-1");
    assert_eq!(fcm.direct.endpoint.base(), "https://127.0.0.1:8443");
    assert_eq!(fcm.direct.retry.unknown_retries, 1);
    let hms_c = c.hms.as_ref().unwrap();
    assert_eq!(
        (hms_c.client_id.as_str(), hms_c.client_secret.expose()),
        ("104523456", "hms-secret")
    );
    assert_eq!(c.xiaomi.as_ref().unwrap().package, "com.example.app");
    let v = c.vivo.as_ref().unwrap();
    assert_eq!(
        (v.app_id, v.direct.request_timeout),
        (1050, std::time::Duration::from_secs(5))
    );
    // Secrets never in Debug.
    let debug = format!("{c:?}");
    for secret in ["hms-secret", "xm-secret", "vivo-secret", "PRIVATE KEY"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
}

#[test]
fn bad_values_are_refused_with_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let secret = file(&dir, "s", "s3cret");
    let empty = file(&dir, "empty", "\n");
    for (args, needle) in [
        (
            vec![format!("--xiaomi-app-secret-file={secret}")],
            "--xiaomi-package",
        ),
        (
            vec![
                format!("--xiaomi-app-secret-file={empty}"),
                "--xiaomi-package=a.b".into(),
            ],
            "empty",
        ),
        (vec!["--vivo-app-id=abc".into()], "--vivo-app-id"),
        (vec!["--hms-app-id=1".into()], "--hms-client-secret-file"),
        (
            vec![
                "--hms-app-id=1".into(),
                format!("--hms-client-secret-file={secret}"),
                "--hms-endpoint=http://x".into(),
            ],
            "--hms-endpoint",
        ),
        (
            vec![format!("--fcm-credentials-file={secret}")],
            "service-account",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let err = parse(&args).config().unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}
