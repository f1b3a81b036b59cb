//! The livestream lifecycle through the API: scheduled → ready → live → ended, editing, listing,
//! deleting a stream that never went live, rotating its key; invalid transitions are 409.
mod common;

use anyhow::Result;
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn call(
    api: &Api,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    api.request(method, path, Some(token), body).await
}

fn ids(list: &Value) -> Vec<String> {
    list["streams"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_stream_goes_live_early_ends_and_then_refuses_changes() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let later = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let (status, stream) = call(
        &api,
        Method::POST,
        "/api/v1/streams",
        &token,
        Some(json!({"title": "Spring haul", "scheduled_at": later, "category": "fashion"})),
    )
    .await?;
    assert_eq!(
        (status, stream["state"].as_str()),
        (201, Some("scheduled")),
        "{stream}"
    );
    let id = stream["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/streams/{id}");

    let (_, scheduled) = call(
        &api,
        Method::GET,
        "/api/v1/streams?state=scheduled",
        &token,
        None,
    )
    .await?;
    assert!(ids(&scheduled).contains(&id), "{scheduled}");
    let (status, v) = call(
        &api,
        Method::GET,
        "/api/v1/streams?state=sleeping",
        &token,
        None,
    )
    .await?;
    assert_eq!(status, 400, "{v}");

    let (status, edited) = call(
        &api,
        Method::PATCH,
        &path,
        &token,
        Some(json!({"title": "Spring haul, part 1", "category": null})),
    )
    .await?;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(edited["title"], "Spring haul, part 1");
    assert_eq!(edited["category"], Value::Null, "null clears");
    assert!(edited["scheduled_at"].as_str().is_some(), "absent keeps");
    let (status, v) = call(
        &api,
        Method::PATCH,
        &path,
        &token,
        Some(json!({"title": " "})),
    )
    .await?;
    assert_eq!(status, 400, "{v}");

    // Rehearsing before the scheduled time is the point: publishing early is allowed.
    let (status, stderr) = finish(
        Publish::small(2.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "{stderr}");
    api.recording_ready(&token, &id).await?;
    let (_, ended) = call(&api, Method::GET, &path, &token, None).await?;
    assert_eq!(ended["state"], "ended", "{ended}");
    let (_, list) = call(
        &api,
        Method::GET,
        "/api/v1/streams?state=ended",
        &token,
        None,
    )
    .await?;
    assert_eq!(ids(&list), vec![id.clone()], "{list}");

    for (method, p, body) in [
        (Method::PATCH, path.clone(), Some(json!({"title": "again"}))),
        (Method::POST, format!("{path}/end"), None),
        (Method::DELETE, path.clone(), None),
        (Method::POST, format!("{path}/key"), None),
    ] {
        let (status, v) = call(&api, method.clone(), &p, &token, body).await?;
        assert_eq!(status, 409, "{method} {p}: {v}");
        assert_eq!(v["error"]["code"], "conflict");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_never_went_live_can_be_deleted_and_keys_rotate() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let (_, doomed) = call(
        &api,
        Method::POST,
        "/api/v1/streams",
        &token,
        Some(json!({"title": "oops"})),
    )
    .await?;
    let path = format!("/api/v1/streams/{}", doomed["id"].as_str().unwrap());
    let (status, _) = call(&api, Method::DELETE, &path, &token, None).await?;
    assert_eq!(status, 204);
    assert_eq!(api.status(&path, Some(&token)).await?, 404);

    // Another creator neither lists nor deletes someone else's streams.
    let other = api.create_creator("other").await?;
    let (_, theirs) = call(&api, Method::GET, "/api/v1/streams", &other, None).await?;
    assert!(ids(&theirs).is_empty(), "{theirs}");
    let demo = server.demo_stream.clone();
    let demo_path = format!("/api/v1/streams/{}", demo["id"].as_str().unwrap());
    let (status, _) = call(&api, Method::DELETE, &demo_path, &other, None).await?;
    assert_eq!(status, 404, "a practice stream does not exist for others");

    // Rotating the key: the old one is refused, the new one publishes.
    let (status, rotated) = call(
        &api,
        Method::POST,
        &format!("{demo_path}/key"),
        &token,
        None,
    )
    .await?;
    assert_eq!(status, 200, "{rotated}");
    assert_ne!(rotated["stream_key"], demo["stream_key"]);
    let (status, _) = finish(
        Publish::small(1.0).spawn(&server.publish_url(&demo))?,
        DEADLINE,
    )
    .await?;
    assert!(!status.success(), "the old key is refused");
    let (status, stderr) = finish(
        Publish::small(2.0).spawn(&server.publish_url(&rotated))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "{stderr}");
    api.recording_ready(&token, demo["id"].as_str().unwrap())
        .await?;
    server.stop().await;
    Ok(())
}
