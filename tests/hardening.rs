//! What a hostile creator, viewer or stranger could do before issue 17, each reproduced from
//! outside against a real server: out-of-range dates, slow and idle connections, made-up viewer
//! sessions, oversized id lists, replaced admin tokens.
mod common;

use anyhow::{Context, Result};
use common::*;
use livefront::app::App;
use reqwest::Method;
use serde_json::{Value, json};

async fn create(api: &Api, token: &str, body: Value) -> Result<Value> {
    let (status, v) = api
        .request(Method::POST, "/api/v1/streams", Some(token), Some(body))
        .await?;
    anyhow::ensure!(status == 201, "{status} {v}");
    Ok(v)
}

/// Runs `sql` on the server's SQLite file, as an older version or a hand edit could have left it.
fn write_db(dir: &std::path::Path, sql: &str) -> Result<()> {
    let db = rusqlite::Connection::open(dir.join("livefront.db"))?;
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    db.execute_batch(sql)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_outside_the_years_1970_to_9999_are_refused() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&token),
            Some(json!({"title": "x", "scheduled_at": "+10000-01-01T00:00:00Z"})),
        )
        .await?;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    let stream = create(&api, &token, json!({"title": "x"})).await?;
    let id = stream["id"].as_str().context("id")?;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/streams/{id}"),
            json!({"scheduled_at": "+10000-01-01T00:00:00Z"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/streams/{id}"),
            json!({"scheduled_at": "1969-12-31T23:59:59Z"}),
        ),
        (
            Method::POST,
            format!("/api/v1/streams/{id}/promos"),
            json!({"code": "FAR", "description": "d", "discount": "10%",
                   "ends_at": "+10000-01-01T00:00:00Z"}),
        ),
        (
            Method::POST,
            format!("/api/v1/streams/{id}/promos"),
            json!({"code": "EARLY", "description": "d", "discount": "10%",
                   "starts_at": "-0001-01-01T00:00:00Z"}),
        ),
    ] {
        let (status, v) = api
            .request(method, &path, Some(&token), Some(body.clone()))
            .await?;
        assert_eq!(status, 400, "{path} {body}: {v}");
    }
    let (status, v) = api
        .get(
            "/api/v1/me/earnings?from=0001-01-01T00:00:00Z",
            Some(&token),
        )
        .await?;
    assert_eq!(status, 400, "{v}");
    for path in ["/api/v1/home", "/api/v1/categories", "/api/v1/live"] {
        assert_eq!(api.status(path, None).await?, 200, "{path}");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_stream_row_does_not_break_listings_or_start_up() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let far = create(
        &api,
        &token,
        json!({"title": "Far", "mode": "public", "category": "beauty", "scheduled_at": soon}),
    )
    .await?;
    let bad = create(
        &api,
        &token,
        json!({"title": "Bad", "mode": "public", "category": "beauty", "scheduled_at": soon}),
    )
    .await?;
    let good = create(
        &api,
        &token,
        json!({"title": "Good", "mode": "public", "category": "home", "scheduled_at": soon}),
    )
    .await?;
    let (far, bad, good) = (
        far["id"].as_str().context("id")?,
        bad["id"].as_str().context("id")?,
        good["id"].as_str().context("id")?,
    );
    // What the API accepted before: a five-digit year; and a value nothing can read, on a pulled
    // stream left live (start-up reads both kinds).
    write_db(
        &server.data_dir(),
        &format!(
            "UPDATE streams SET scheduled_at = '+10000-01-01T00:00:00.000Z' WHERE id = '{far}';
             UPDATE streams SET scheduled_at = 'someday', state = 'live' WHERE id = '{bad}';
             INSERT INTO stream_sources (stream_id, url, transport)
                 VALUES ('{bad}', 'rtsp://127.0.0.1:9/cam', 'tcp');"
        ),
    )?;
    let check = |api: Api| async move {
        for path in [
            "/api/v1/home",
            "/api/v1/categories",
            "/api/v1/live",
            "/api/v1/creators/demo/storefront",
        ] {
            let (status, v) = api.get(path, None).await?;
            assert_eq!(status, 200, "{path}: {v}");
        }
        let (_, home) = api.get("/api/v1/home", None).await?;
        let upcoming: Vec<&str> = home["upcoming"]
            .as_array()
            .context("upcoming")?
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert!(upcoming.contains(&good), "{home}");
        assert!(!upcoming.contains(&bad), "{home}");
        anyhow::Ok(upcoming.contains(&far))
    };
    assert!(check(api.clone()).await?, "a five-digit year is still read");
    let (status, _) = api
        .request(
            Method::POST,
            &format!("/api/v1/streams/{far}/end"),
            Some(&token),
            None,
        )
        .await?;
    assert!(
        status < 500,
        "the stream with a far date can still be ended: {status}"
    );

    server.stop().await;
    let app = App::start(test_config(&server.data_dir()))
        .await
        .context("start-up with a bad row in the store")?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    check(api).await?;
    app.stop().await;
    Ok(())
}
