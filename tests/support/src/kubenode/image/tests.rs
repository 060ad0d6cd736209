use super::*;

#[test]
fn a_dynamic_binary_brings_its_loader_and_libc() {
    let libs = shared_libraries(Path::new("/bin/sh")).unwrap();
    assert!(
        libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
        "{libs:?}"
    );
    assert!(
        libs.iter()
            .any(|l| l.to_string_lossy().contains("ld-linux")),
        "{libs:?}"
    );
}

#[test]
fn the_layout_names_the_image_and_holds_every_blob() {
    let out = tempfile::tempdir().unwrap();
    let tar = Image::new("pushcluster.test/unit:1")
        .unwrap()
        .binary(Path::new("/bin/sh"), "/bin/sh")
        .unwrap()
        .base_files("unit", 65532)
        .unwrap()
        .user("65532:65532")
        .entrypoint(&["/bin/sh"])
        .write(out.path())
        .unwrap();
    let list = run(Command::new("tar").arg("-tf").arg(&tar)).unwrap();
    for f in ["oci-layout", "index.json", "manifest.json"] {
        assert!(list.lines().any(|l| l == f), "{f} missing: {list}");
    }
    let x = tempfile::tempdir().unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(x.path()))
    .unwrap();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(x.path().join("index.json")).unwrap()).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "pushcluster.test/unit:1"
    );
    let blob = |d: &serde_json::Value| {
        let d = d
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_owned();
        let bytes = std::fs::read(x.path().join("blobs/sha256").join(&d)).unwrap();
        assert_eq!(hex(&Sha256::digest(&bytes)), d, "blob digest");
        bytes
    };
    let manifest: serde_json::Value = serde_json::from_slice(&blob(&m["digest"])).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(&manifest["config"]["digest"])).unwrap();
    assert_eq!(config["config"]["User"], "65532:65532");
    let layer = blob(&manifest["layers"][0]["digest"]);
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", hex(&Sha256::digest(&layer)))
    );
}
