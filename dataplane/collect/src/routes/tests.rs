use super::*;

#[test]
fn routes_match_with_their_parameter() {
    assert_eq!(find("POST", "/v1/messages"), Found::Route(&ROUTES[0], None));
    assert_eq!(
        find("POST", "/v1/messages/"),
        Found::Route(&ROUTES[0], None)
    );
    assert_eq!(
        find("GET", "/v1/messages/0193abc"),
        Found::Route(&ROUTES[1], Some("0193abc"))
    );
    assert_eq!(
        find("DELETE", "/v1/devices/abcd"),
        Found::Route(&ROUTES[3], Some("abcd"))
    );
    assert_eq!(find("GET", "/openapi.yaml").route_op(), Some(Op::OpenApi));
}

#[test]
fn another_method_is_a_405_listing_the_allowed_ones() {
    assert_eq!(
        find("GET", "/v1/messages"),
        Found::WrongMethod("POST".into())
    );
    assert_eq!(
        find("DELETE", "/v1/messages/x"),
        Found::WrongMethod("GET".into())
    );
    assert_eq!(
        find("PUT", "/v1/devices"),
        Found::WrongMethod("POST".into())
    );
}

#[test]
fn other_paths_are_not_ours() {
    for path in [
        "/",
        "/v1",
        "/v1/messages/a/b",
        "/v1/messagesx",
        "/v1/messages//",
        "/v1/devicesx",
        "/ws",
    ] {
        assert_eq!(find("GET", path), Found::NotOurs, "{path}");
    }
    // One trailing slash is ignored; an empty parameter never matches.
    assert_eq!(
        find("GET", "/v1/devices/"),
        Found::WrongMethod("POST".into())
    );
}

#[test]
fn only_the_spec_is_open_without_an_api_key() {
    let open: Vec<&str> = ROUTES
        .iter()
        .filter(|r| !r.needs_api_key())
        .map(|r| r.path)
        .collect();
    assert_eq!(open, ["/openapi.yaml"]);
    assert!(OPENAPI_YAML.starts_with("openapi: 3.1"));
}

impl Found<'_> {
    fn route_op(&self) -> Option<Op> {
        match self {
            Found::Route(r, _) => Some(r.op),
            _ => None,
        }
    }
}
