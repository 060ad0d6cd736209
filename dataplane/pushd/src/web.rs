//! The browser side of a client surface: the demo page (`/`, its script `/demo.js`) and the
//! JavaScript SDK (`/sdk/pushcluster.js`, the committed build of `clients/js`), all embedded in
//! the binary. `pushd standalone` serves them always, `pushd push` with `--demo-page`.
//!
//! Dev mode (`pushd standalone --dev-api-key-in-page`, what `make run` uses): the page is given
//! the server's API key, so it can send messages through the HTTP API. Whoever can load the page
//! then holds the key — it can send anything to any user — which is why the flag is refused
//! unless the server listens on loopback only, and is never on by default.

use http::{HeaderValue, Method, StatusCode, header};
use pushcluster_server::{Resp, respond};

/// The SDK, as `tsc` builds it from `clients/js/src` (a test checks the committed copy).
pub const SDK_JS: &str = include_str!("../../../clients/js/dist/pushcluster.js");
const PAGE: &str = include_str!("web/demo.html");
const PAGE_JS: &str = include_str!("web/demo.js");
/// Where the page expects the dev API key; empty without dev mode.
const KEY_SLOT: &str = r#"<meta name="pushcluster-dev-api-key" content="">"#;

/// The paths this module answers (GET and HEAD).
pub const ROUTES: &[&str] = &["/", "/demo.js", "/sdk/pushcluster.js"];

/// The pages of one server, built once at start.
#[derive(Clone)]
pub struct Web {
    page: String,
}

impl std::fmt::Debug for Web {
    // The page may hold the API key: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Web").finish_non_exhaustive()
    }
}

impl Web {
    /// The pages; with `dev_api_key`, the page carries it and shows the send form.
    pub fn new(dev_api_key: Option<&str>) -> Web {
        let page = match dev_api_key {
            None => PAGE.to_owned(),
            Some(key) => PAGE.replace(
                KEY_SLOT,
                &format!(
                    r#"<meta name="pushcluster-dev-api-key" content="{}">"#,
                    escape_attr(key)
                ),
            ),
        };
        Web { page }
    }

    /// The response for `path`, or `None` when it is not one of [`ROUTES`].
    pub fn handle(&self, method: &Method, path: &str) -> Option<Resp> {
        let (body, content_type): (&str, &'static str) = match path {
            "/" => (&self.page, "text/html; charset=utf-8"),
            "/demo.js" => (PAGE_JS, "text/javascript; charset=utf-8"),
            "/sdk/pushcluster.js" => (SDK_JS, "text/javascript; charset=utf-8"),
            _ => return None,
        };
        if method != Method::GET && method != Method::HEAD {
            let mut resp = respond::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed; use GET",
                None,
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(resp);
        }
        let mut resp = respond::text(StatusCode::OK, body.to_owned(), content_type);
        let h = resp.headers_mut();
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if path == "/" {
            // No inline script; WebSockets and API calls to this origin only. The page may hold
            // a dev API key: not cached, not framed, no Referer (the URL can carry a token).
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; script-src 'self'; connect-src 'self'; \
                     style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; \
                     base-uri 'none'; form-action 'none'",
                ),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            );
        }
        Some(resp)
    }
}

/// Escapes a value for a double-quoted HTML attribute.
impl Web {
    /// The page's routes (`GET`/`HEAD` of [`ROUTES`]), to merge into a surface's router.
    pub fn router(self) -> axum::Router {
        let web = std::sync::Arc::new(self);
        let mut router = axum::Router::new();
        for &path in ROUTES {
            let web = web.clone();
            router = router.route(
                path,
                axum::routing::get(move |method: Method| async move {
                    web.handle(&method, path).expect("one of the page's routes")
                }),
            );
        }
        router
    }
}

fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
