use super::*;

#[test]
fn each_method_and_path_is_listed_once() {
    let mut seen = std::collections::HashSet::new();
    for r in ROUTES {
        assert!(
            seen.insert((r.method, r.path)),
            "{} {} twice",
            r.method,
            r.path
        );
        assert!(r.path.starts_with('/'), "{}", r.path);
        assert!(
            ["GET", "POST", "PUT", "DELETE", "PATCH"].contains(&r.method),
            "{}",
            r.method
        );
    }
}

#[test]
fn only_the_spec_is_open() {
    for r in ROUTES {
        assert_eq!(r.needs_api_key(), r.op != Op::OpenApi, "{}", r.path);
    }
}
