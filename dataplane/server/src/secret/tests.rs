use std::io::Write;

use super::*;

fn inline(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn any_listed_secret_matches_and_nothing_else() {
    let s = Secrets::new(
        "API key",
        "give --api-key",
        inline(&["old-key-0123456789", "new-key-0123456789"]),
        None,
    )
    .unwrap();
    assert!(s.matches(b"old-key-0123456789"));
    assert!(s.matches(b"new-key-0123456789"));
    assert!(!s.matches(b"new-key-012345678"));
    assert!(!s.matches(b""));
    assert_eq!(s.outgoing(), "old-key-0123456789");
}

#[test]
fn short_empty_or_spaced_secrets_are_refused_with_a_reason() {
    let e = Secrets::new("API key", "give --api-key", inline(&["short"]), None).unwrap_err();
    assert!(e.to_string().contains("at least 16 bytes"), "{e}");
    let e = Secrets::new("API key", "give --api-key", inline(&["", " "]), None).unwrap_err();
    assert_eq!(e.to_string(), "no API key configured: give --api-key");
    let e = Secrets::new("API key", "x", inline(&["has a space in it!!"]), None).unwrap_err();
    assert!(e.to_string().contains("visible ASCII"), "{e}");
}

#[test]
fn debug_never_shows_a_value() {
    let s = Secrets::new("API key", "x", inline(&["do-not-print-0123456789"]), None).unwrap();
    let d = format!("{s:?}");
    assert!(!d.contains("do-not-print"), "{d}");
    assert!(d.contains("count: 1"), "{d}");
}

#[test]
fn the_file_is_reread_when_it_changes_and_a_bad_version_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "# rotated by hand\nfirst-token-0123456789\n").unwrap();
    let s = Secrets::new("internal token", "x", Vec::new(), Some(path.clone())).unwrap();
    assert!(s.matches(b"first-token-0123456789"));
    assert!(!s.reload().unwrap(), "unchanged");

    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    writeln!(f, "second-token-0123456789").unwrap();
    drop(f);
    assert!(s.reload().unwrap());
    assert!(s.matches(b"second-token-0123456789"));
    assert_eq!(s.outgoing(), "first-token-0123456789");

    std::fs::write(&path, "tiny\n").unwrap();
    assert!(s.reload().is_err());
    assert!(s.matches(b"second-token-0123456789"), "last good list kept");
}

#[test]
fn outgoing_prefers_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys");
    std::fs::write(&path, "from-file-0123456789\n").unwrap();
    let s = Secrets::new(
        "API key",
        "x",
        inline(&["inline-key-0123456789"]),
        Some(path),
    )
    .unwrap();
    assert_eq!(s.outgoing(), "from-file-0123456789");
    assert_eq!(s.len(), 2);
}
