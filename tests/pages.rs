//! The web pages' HTTP side: security headers, the session cookie and its flags, CSRF on
//! cookie-authenticated writes (bearer calls unchanged), and practice streams' watch pages
//! answering like missing ones. The pages themselves run in Chromium in tests/web_story.rs.
mod common;

use anyhow::{Context, Result};
use common::*;
use reqwest::Method;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, SET_COOKIE};
use serde_json::{Value, json};

/// Signs in with `token`; returns the `Set-Cookie` header and the session body.
async fn sign_in(api: &Api, token: &str) -> Result<(String, Value)> {
    let r = api
        .http
        .post(api.url("/api/v1/session"))
        .json(&json!({ "token": token }))
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    let cookie = r
        .headers()
        .get(SET_COOKIE)
        .context("set-cookie")?
        .to_str()?
        .to_string();
    Ok((cookie, r.json().await?))
}

/// The `name=value` part of a `Set-Cookie` header.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_content_security_policy() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    api.set_mode(&server.demo_token, &id, "public").await?;
    for path in [
        "/".to_string(),
        "/@demo".into(),
        format!("/watch/{id}"),
        "/studio".into(),
        format!("/studio/go-live/{id}"),
        "/admin".into(),
        "/assets/watch.js".into(),
        "/assets/golive.js".into(),
        "/assets/host.js".into(),
        "/assets/hls.min.js".into(),
    ] {
        let r = api.http.get(api.url(&path)).send().await?;
        assert_eq!(r.status(), 200, "{path}");
        let csp = r
            .headers()
            .get(CONTENT_SECURITY_POLICY)
            .with_context(|| format!("CSP on {path}"))?
            .to_str()?;
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let r = api.http.get(api.url("/")).send().await?;
    assert!(r.headers()[CONTENT_TYPE].to_str()?.starts_with("text/html"));
    let html = r.text().await?;
    assert!(!html.contains("<script>"), "no inline scripts: {html}");
    let r = api.http.get(api.url("/assets/hls.min.js")).send().await?;
    assert!(r.headers()[CONTENT_TYPE].to_str()?.contains("javascript"));
    // Unknown assets and creators: a 404 page, with the same headers.
    for path in ["/assets/nope.js", "/@nobody_here", "/@NOT-A-HANDLE"] {
        let r = api.http.get(api.url(path)).send().await?;
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.headers().contains_key(CONTENT_SECURITY_POLICY), "{path}");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_cookie_is_httponly_and_strict_and_the_token_stays_out_of_urls() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let (cookie, body) = sign_in(&api, &server.demo_token).await?;
    assert!(cookie.starts_with("lf_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(flag), "{flag} in {cookie}");
    }
    assert_eq!(body["role"], "creator");
    assert_eq!(body["handle"], "demo");
    let csrf = body["csrf"].as_str().context("csrf")?;
    assert_eq!(csrf.len(), 32);
    assert!(
        !body.to_string().contains(&server.demo_token),
        "the token is not echoed"
    );
    // The cookie identifies the browser on GETs.
    let r = api
        .http
        .get(api.url("/api/v1/session"))
        .header(COOKIE, pair(&cookie))
        .send()
        .await?;
    let again: Value = r.json().await?;
    assert_eq!(again["csrf"], csrf);
    // Without a cookie: no session, not an error.
    let (status, none) = api.get("/api/v1/session", None).await?;
    assert_eq!((status, &none["role"]), (200, &Value::Null));
    // A wrong token is refused and sets nothing.
    let r = api
        .http
        .post(api.url("/api/v1/session"))
        .json(&json!({"token": "lft_wrong"}))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    assert!(!r.headers().contains_key(SET_COOKIE));
    // Signing out clears the cookie.
    let r = api
        .http
        .delete(api.url("/api/v1/session"))
        .header(COOKIE, pair(&cookie))
        .send()
        .await?;
    assert_eq!(r.status(), 204);
    assert!(r.headers()[SET_COOKIE].to_str()?.contains("Max-Age=0"));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_writes_without_the_csrf_token_are_refused() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let (cookie, body) = sign_in(&api, &server.demo_token).await?;
    let csrf = body["csrf"].as_str().context("csrf")?;
    let product = json!({"sku": "LIP", "title": "Lipstick", "price": "9.99", "currency": "EUR"});
    let post = |csrf: Option<&str>| {
        let mut r = api
            .http
            .request(Method::POST, api.url("/api/v1/products"))
            .header(COOKIE, pair(&cookie))
            .json(&product);
        if let Some(c) = csrf {
            r = r.header("X-CSRF-Token", c);
        }
        r.send()
    };
    let refused = post(None).await?;
    assert_eq!(refused.status(), 403);
    let err: Value = refused.json().await?;
    assert_eq!(err["error"]["code"], "forbidden", "{err}");
    assert_eq!(
        post(Some("0123456789abcdef0123456789abcdef"))
            .await?
            .status(),
        403
    );
    let (_, catalog) = api
        .get("/api/v1/products", Some(&server.demo_token))
        .await?;
    assert_eq!(
        catalog["products"].as_array().map(Vec::len),
        Some(0),
        "nothing was written"
    );
    assert_eq!(post(Some(csrf)).await?.status(), 201);
    // Bearer calls need no CSRF token, cookie or not.
    let r = api
        .http
        .post(api.url("/api/v1/products"))
        .bearer_auth(&server.demo_token)
        .header(COOKIE, pair(&cookie))
        .json(&json!({"sku": "PAL", "title": "Palette", "price": "19.99", "currency": "EUR"}))
        .send()
        .await?;
    assert_eq!(r.status(), 201);
    // Another creator's CSRF token does not fit this session.
    let other = api.create_creator("bob").await?;
    let (_, bob) = sign_in(&api, &other).await?;
    assert_eq!(post(bob["csrf"].as_str()).await?.status(), 403);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_practice_watch_page_is_not_found_for_everyone_but_its_creator() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    let unknown = api.get_text("/watch/zzzzzzzzzzzzzzzz", None).await?;
    assert_eq!(unknown.0, 404);
    assert_eq!(api.get_text(&format!("/watch/{id}"), None).await?, unknown);
    let (viewer_cookie, _) = {
        let (_, v) = api
            .request(
                Method::POST,
                "/api/v1/viewers",
                None,
                Some(json!({"handle": "vic"})),
            )
            .await?;
        sign_in(&api, v["token"].as_str().context("viewer token")?).await?
    };
    let other_creator = api.create_creator("bob").await?;
    let (bob_cookie, _) = sign_in(&api, &other_creator).await?;
    for cookie in [&viewer_cookie, &bob_cookie] {
        for path in [format!("/watch/{id}"), "/watch/zzzzzzzzzzzzzzzz".into()] {
            let r = api
                .http
                .get(api.url(&path))
                .header(COOKIE, pair(cookie))
                .send()
                .await?;
            assert_eq!((r.status().as_u16(), r.text().await?), unknown, "{path}");
        }
    }
    let (creator_cookie, _) = sign_in(&api, &server.demo_token).await?;
    let r = api
        .http
        .get(api.url(&format!("/watch/{id}")))
        .header(COOKIE, pair(&creator_cookie))
        .send()
        .await?;
    assert_eq!(r.status(), 200, "the creator sees the practice page");
    api.set_mode(&server.demo_token, &id, "public").await?;
    assert_eq!(api.status(&format!("/watch/{id}"), None).await?, 200);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_page_shares_the_creators_newest_link() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/streams/{id}/links");
    // Practice: like a missing stream for others; the creator sees no link yet.
    let (status, _) = api.get(&path, None).await?;
    assert_eq!(status, 404);
    let (status, none) = api.get(&path, Some(&token)).await?;
    assert_eq!((status, &none["url"]), (200, &Value::Null));
    api.set_mode(&token, &id, "public").await?;
    let (status, _) = api
        .request(
            Method::PATCH,
            "/api/v1/me",
            Some(&token),
            Some(json!({"associate_tag": "demo-20"})),
        )
        .await?;
    assert_eq!(status, 200);
    let mut made = Vec::new();
    for _ in 0..2 {
        let (status, link) = api.request(Method::POST, &path, Some(&token), None).await?;
        assert_eq!(status, 201, "{link}");
        made.push(link["url"].as_str().context("url")?.to_string());
    }
    let (status, latest) = api.get(&path, None).await?;
    assert_eq!(status, 200);
    assert_eq!(latest["url"], made[1].as_str(), "the newest link");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_lists_public_scheduled_streams_as_upcoming() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let later = (chrono::Utc::now() + chrono::Duration::hours(5)).to_rfc3339();
    let mut ids = Vec::new();
    for (title, at, mode) in [
        ("later", &later, "public"),
        ("soon", &soon, "public"),
        ("rehearsal", &soon, "practice"),
    ] {
        let (status, s) = api
            .request(
                Method::POST,
                "/api/v1/streams",
                Some(&token),
                Some(json!({"title": title, "scheduled_at": at, "mode": mode})),
            )
            .await?;
        assert_eq!(status, 201, "{s}");
        ids.push(s["id"].as_str().context("id")?.to_string());
    }
    let (status, home) = api.get("/api/v1/home", None).await?;
    assert_eq!(status, 200);
    let upcoming: Vec<&str> = home["upcoming"]
        .as_array()
        .context("upcoming")?
        .iter()
        .filter_map(|s| s["title"].as_str())
        .collect();
    assert_eq!(upcoming, ["soon", "later"], "{home}");
    assert!(
        !home.to_string().contains(&ids[2]),
        "no practice stream: {home}"
    );
    server.stop().await;
    Ok(())
}
