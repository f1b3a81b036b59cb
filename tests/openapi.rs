//! `GET /api/v1/openapi.json` is generated from the handlers and describes every route the
//! server serves: each documented operation answers (not the router's "no such endpoint"), and a
//! unit test in src/http keeps routes from being added outside the document.
mod common;

use anyhow::{Context, Result};
use common::*;
use reqwest::Method;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let (status, doc) = api.get("/api/v1/openapi.json", None).await?;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"]
            .as_str()
            .unwrap_or_default()
            .starts_with("3."),
        "{doc}"
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "{doc}"
    );
    let paths = doc["paths"].as_object().context("paths")?;
    let mut checked = 0;
    for (path, item) in paths {
        // Fill path parameters with something that names nothing.
        let concrete: String = path
            .split('/')
            .map(|part| if part.starts_with('{') { "zzzz" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in item.as_object().context("path item")? {
            let Ok(m) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            if m == Method::GET && path == "/api/v1/me/events" {
                // An event stream stays open; without a token it is a plain 401 below.
                assert!(op["security"].is_array());
            }
            let response = api
                .http
                .request(m.clone(), api.url(&concrete))
                .send()
                .await?;
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(status, 405, "{m} {path} is documented but not routed");
            assert!(
                !body.contains("no such endpoint"),
                "{m} {path} is documented but not routed: {status} {body}"
            );
            assert!(
                op["responses"].is_object(),
                "{m} {path} documents its responses"
            );
            checked += 1;
        }
    }
    assert!(checked > 30, "{checked} operations");
    // And the fallback does say so for a path that is not there.
    let (status, body) = api.get_text("/api/v1/nothing-here", None).await?;
    assert_eq!(status, 404);
    assert!(body.contains("no such endpoint"), "{body}");
    server.stop().await;
    Ok(())
}
