//! Viewers follow creators and are told, exactly once per stream, when it is live in public (a
//! stored feed and a Server-Sent Events push), never about practice; registration is limited and
//! tokens can be revoked.
mod common;

use anyhow::{Context, Result};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn viewer(api: &Api, handle: &str) -> Result<String> {
    let (status, v) = api.try_register_viewer(handle).await?;
    anyhow::ensure!(status == 201, "register: {status} {v}");
    Ok(v["token"].as_str().context("token")?.to_string())
}

async fn feed(api: &Api, token: &str) -> Result<Vec<Value>> {
    let (status, v) = api.get("/api/v1/me/notifications", Some(token)).await?;
    anyhow::ensure!(status == 200, "{status} {v}");
    Ok(v["notifications"].as_array().cloned().unwrap_or_default())
}

/// The feed once it has at least `n` notifications (a mode change notifies from a task of its
/// own, right after the change).
async fn feed_of(api: &Api, token: &str, n: usize) -> Result<Vec<Value>> {
    wait_for(&format!("{n} notifications"), DEADLINE, || async {
        feed(api, token).await.ok().filter(|f| f.len() >= n)
    })
    .await
}

async fn follow(api: &Api, token: &str, method: Method, handle: &str) -> Result<u16> {
    Ok(api
        .request(
            method,
            &format!("/api/v1/creators/{handle}/follow"),
            Some(token),
            None,
        )
        .await?
        .0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_are_told_once_when_a_stream_is_live_in_public_never_in_practice() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let vera = viewer(&api, "vera").await?;

    assert_eq!(follow(&api, &vera, Method::PUT, "demo").await?, 204);
    assert_eq!(
        follow(&api, &vera, Method::PUT, "demo").await?,
        204,
        "idempotent"
    );
    assert_eq!(follow(&api, &vera, Method::PUT, "nobody").await?, 404);
    assert_eq!(follow(&api, &creator, Method::PUT, "demo").await?, 403);
    let (_, card) = api.get("/api/v1/creators/demo", None).await?;
    assert_eq!(card["followers"], 1, "{card}");
    let (_, following) = api.get("/api/v1/me/following", Some(&vera)).await?;
    assert_eq!(following["following"][0]["handle"], "demo", "{following}");

    // The live push, read by a real HTTP client from the event stream.
    let events = api
        .http
        .get(api.url("/api/v1/me/events"))
        .bearer_auth(&vera)
        .send()
        .await?;
    assert_eq!(events.status().as_u16(), 200);
    assert!(
        events.headers()["content-type"]
            .to_str()?
            .starts_with("text/event-stream")
    );
    let pushed = tokio::spawn(async move {
        let mut events = events;
        let mut text = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("event: notification") && text.contains("\n\n") {
                break;
            }
        }
        text
    });

    // Live in practice: nothing.
    let publisher = Publish::small(10.0).spawn(&server.publish_url(&stream))?;
    let playback = stream["playback"]["hls"].as_str().unwrap().to_string();
    api.playlist_with_segments(&media_url(&playback), 1).await?;
    assert!(
        feed(&api, &vera).await?.is_empty(),
        "practice never notifies"
    );

    // Public while live: one notification; flapping adds none.
    api.set_mode(&creator, &id, "public").await?;
    api.set_mode(&creator, &id, "practice").await?;
    api.set_mode(&creator, &id, "public").await?;
    let notes = feed_of(&api, &vera, 1).await?;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["kind"], "live");
    assert_eq!(notes[0]["stream_id"], id.as_str());
    assert_eq!(notes[0]["creator"], "demo");
    assert_eq!(notes[0]["read"], false);
    let announced = notes[0]["title"].clone();
    assert_eq!(announced, stream["title"], "{notes:?}");

    // Back in practice, a rename is the creator's business: followers keep the announced title.
    api.set_mode(&creator, &id, "practice").await?;
    let (status, v) = api
        .request(
            Method::PATCH,
            &format!("/api/v1/streams/{id}"),
            Some(&creator),
            Some(json!({"title": "secret rehearsal title"})),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(feed(&api, &vera).await?[0]["title"], announced);
    api.set_mode(&creator, &id, "public").await?;

    let text = tokio::time::timeout(DEADLINE, pushed).await??;
    assert!(
        text.contains(&id) && text.contains("\"kind\":\"live\""),
        "{text}"
    );

    let (_, marked) = api
        .request(
            Method::POST,
            "/api/v1/me/notifications/read",
            Some(&vera),
            Some(json!({})),
        )
        .await?;
    assert_eq!(marked["marked"], 1, "{marked}");
    assert_eq!(feed(&api, &vera).await?[0]["read"], true);

    assert_eq!(follow(&api, &vera, Method::DELETE, "demo").await?, 204);
    let (_, card) = api.get("/api/v1/creators/demo", None).await?;
    assert_eq!(card["followers"], 0, "{card}");
    drop(publisher);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_public_stream_is_announced_as_upcoming_once() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let vera = viewer(&api, "vera").await?;
    follow(&api, &vera, Method::PUT, "demo").await?;
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let create =
        |mode: &str| json!({"title": format!("{mode} later"), "scheduled_at": soon, "mode": mode});
    let (status, practice) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&creator),
            Some(create("practice")),
        )
        .await?;
    assert_eq!(status, 201, "{practice}");
    assert!(
        feed(&api, &vera).await?.is_empty(),
        "a practice stream is nobody's business"
    );
    let (status, public) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&creator),
            Some(create("public")),
        )
        .await?;
    assert_eq!(status, 201, "{public}");
    let notes = feed_of(&api, &vera, 1).await?;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        (&notes[0]["kind"], &notes[0]["stream_id"]),
        (&json!("upcoming"), &public["id"])
    );
    // The practice one going public later is upcoming too, once.
    let pid = practice["id"].as_str().unwrap();
    api.set_mode(&creator, pid, "public").await?;
    api.set_mode(&creator, pid, "practice").await?;
    api.set_mode(&creator, pid, "public").await?;
    assert_eq!(feed_of(&api, &vera, 2).await?.len(), 2);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_address_and_tokens_can_be_revoked() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let token = viewer(&api, "first").await?;
    let (status, v) = api.try_register_viewer("first").await?;
    assert_eq!(status, 409, "handle taken: {v}");
    let (status, _) = api.try_register_viewer("Bad Handle").await?;
    assert_eq!(status, 400);
    let mut last = 0;
    for i in 0..10 {
        last = api.try_register_viewer(&format!("viewer{i}")).await?.0;
    }
    assert_eq!(last, 429, "more than 10 a minute from one address");

    assert_eq!(api.status("/api/v1/me/following", Some(&token)).await?, 200);
    let (status, _) = api
        .request(Method::DELETE, "/api/v1/tokens/current", Some(&token), None)
        .await?;
    assert_eq!(status, 204);
    assert_eq!(api.status("/api/v1/me/following", Some(&token)).await?, 401);
    server.stop().await;
    Ok(())
}
