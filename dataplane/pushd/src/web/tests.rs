use super::*;
use http_body_util::BodyExt;

async fn body(resp: Resp) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_page_has_a_key_only_in_dev_mode_and_escaped() {
    assert!(PAGE.contains(KEY_SLOT), "demo.html lost its key slot");
    let plain = Web::new(None).handle(&Method::GET, "/").unwrap();
    assert!(body(plain).await.contains(KEY_SLOT));

    let dev = Web::new(Some(r#"k"><script>&'"#))
        .handle(&Method::GET, "/")
        .unwrap();
    assert_eq!(dev.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        dev.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = body(dev).await;
    assert!(html.contains(
        r#"<meta name="pushcluster-dev-api-key" content="k&quot;&gt;&lt;script&gt;&amp;&#39;">"#
    ));
    assert!(!html.contains("<script>&"));
}

#[tokio::test]
async fn every_route_is_answered_and_nothing_else() {
    let web = Web::new(None);
    for path in ROUTES {
        let resp = web.handle(&Method::GET, path).unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let post = web.handle(&Method::POST, path).unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
    let sdk = web.handle(&Method::GET, "/sdk/pushcluster.js").unwrap();
    assert_eq!(
        sdk.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert!(body(sdk).await.contains("export function connect("));
    assert!(web.handle(&Method::GET, "/sdk/other.js").is_none());
    assert!(web.handle(&Method::GET, "/index.html").is_none());
    assert!(!format!("{:?}", Web::new(Some("secret-key"))).contains("secret"));
}
