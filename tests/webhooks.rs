//! Webhooks: signed events of a creator's streams on a real HTTP receiver on loopback, the
//! delivery log, refusal of private targets, and a pending delivery that survives a restart.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use common::hooks::receiver;
use common::*;
use livefront::app::App;
use livefront::webhooks::signature;
use serde_json::{Value, json};

async fn create_webhook(
    api: &Api,
    token: &str,
    url: &str,
    events: &[&str],
) -> Result<(u16, Value)> {
    api.request(
        reqwest::Method::POST,
        "/api/v1/webhooks",
        Some(token),
        Some(json!({"url": url, "events": events})),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_events_reach_the_creators_webhook_signed() -> Result<()> {
    let mut server = Server::start_with(|c| c.webhooks.allow_private_targets = true).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let (addr, got, _task) = receiver("127.0.0.1:0".parse()?).await?;
    let events = [
        "stream.started",
        "stream.public",
        "stream.ended",
        "recording.ready",
    ];
    let (status, hook) =
        create_webhook(&api, &token, &format!("http://{addr}/hook"), &events).await?;
    assert_eq!(status, 201, "{hook}");
    let secret = hook["secret"]
        .as_str()
        .context("secret shown once")?
        .to_string();
    let hook_id = hook["id"].as_str().unwrap().to_string();

    api.set_mode(&token, &id, "public").await?;
    let (status, stderr) = finish(
        Publish::small(2.0).spawn(&server.publish_url(&stream))?,
        DEADLINE,
    )
    .await?;
    assert!(status.success(), "{stderr}");
    api.recording_ready(&token, &id).await?;

    let received = wait_for("four webhook deliveries", DEADLINE, || async {
        let g = got.lock().unwrap().clone();
        (g.len() >= 4).then_some(g)
    })
    .await?;
    let mut names: Vec<&str> = received.iter().map(|r| r.0.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "recording.ready",
            "stream.ended",
            "stream.public",
            "stream.started"
        ]
    );
    let now = chrono::Utc::now().timestamp();
    for (event, sig, body) in &received {
        signature::verify(secret.as_bytes(), sig, body.as_bytes(), now)
            .with_context(|| format!("{event}: {sig}"))?;
        assert!(
            signature::verify(b"wrong secret", sig, body.as_bytes(), now).is_err(),
            "a signature only verifies with its secret"
        );
        let v: Value = serde_json::from_str(body)?;
        assert_eq!(v["event"], event.as_str(), "{v}");
        assert_eq!(v["data"]["stream_id"], id.as_str(), "{v}");
    }

    let log = wait_for("deliveries marked delivered", DEADLINE, || async {
        let (_, v) = api
            .get(
                &format!("/api/v1/webhooks/{hook_id}/deliveries"),
                Some(&token),
            )
            .await
            .ok()?;
        let all = v["deliveries"].as_array()?;
        (all.len() == 4 && all.iter().all(|d| d["state"] == "delivered")).then_some(v)
    })
    .await?;
    assert!(
        log["webhook"].get("secret").is_none(),
        "the secret is not shown again: {log}"
    );

    // Someone else's webhook does not exist for another creator.
    let other = api.create_creator("other").await?;
    let status = api
        .status(
            &format!("/api/v1/webhooks/{hook_id}/deliveries"),
            Some(&other),
        )
        .await?;
    assert_eq!(status, 404);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_private_addresses_and_bad_events_are_refused() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let (status, v) =
        create_webhook(&api, &token, "http://127.0.0.1:9/hook", &["stream.started"]).await?;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allow_private_targets"),
        "{v}"
    );
    let (status, v) =
        create_webhook(&api, &token, "file:///etc/passwd", &["stream.started"]).await?;
    assert_eq!(status, 400, "{v}");
    let (status, v) = create_webhook(
        &api,
        &token,
        "http://example.com/hook",
        &["stream.exploded"],
    )
    .await?;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stream.started"),
        "lists the known events: {v}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_delivery_is_delivered_after_a_restart() -> Result<()> {
    init_logs();
    let dir = tempfile::tempdir()?;
    let mut config = test_config(dir.path());
    config.webhooks.allow_private_targets = true;
    config.webhooks.retry_initial = Duration::from_millis(200);
    // A port with nothing behind it yet: deliveries fail (connection refused) and stay pending.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let target: SocketAddr = format!("127.0.0.1:{port}").parse()?;

    let app = App::start(config.clone()).await?;
    let first = app.first_start.clone().context("first start")?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let token = first.demo_token.clone();
    let id = first.demo_stream.id.to_string();
    let (status, hook) = create_webhook(
        &api,
        &token,
        &format!("http://{target}/hook"),
        &["stream.public"],
    )
    .await?;
    assert_eq!(status, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap().to_string();
    api.set_mode(&token, &id, "public").await?;
    let log = format!("/api/v1/webhooks/{hook_id}/deliveries");
    wait_for("a failed attempt", DEADLINE, || async {
        let (_, v) = api.get(&log, Some(&token)).await.ok()?;
        let d = v["deliveries"].get(0)?.clone();
        (d["attempts"].as_u64()? >= 1 && d["state"] == "pending").then_some(d)
    })
    .await?;
    app.stop().await;

    let (_, got, _task) = receiver(target).await?;
    let app = App::start(config).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let received = wait_for("the delivery after the restart", DEADLINE, || async {
        let g = got.lock().unwrap().clone();
        (!g.is_empty()).then_some(g)
    })
    .await?;
    assert_eq!(received[0].0, "stream.public");
    let d = wait_for("delivered in the log", DEADLINE, || async {
        let (_, v) = api.get(&log, Some(&token)).await.ok()?;
        let d = v["deliveries"].get(0)?.clone();
        (d["state"] == "delivered").then_some(d)
    })
    .await?;
    assert!(d["attempts"].as_u64().unwrap() >= 2, "{d}");
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_creators_slow_endpoints_do_not_hold_up_another_creators_deliveries() -> Result<()> {
    let mut server = Server::start_with(|c| c.webhooks.allow_private_targets = true).await?;
    let api = server.api.clone();
    let slow_creator = server.demo_token.clone();
    let other_creator = api.create_creator("other").await?;
    // A receiver that accepts connections and never answers: each attempt waits for its timeout.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let silent_addr = silent.local_addr()?;
    let silent_task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let mut slow_hooks = Vec::new();
    for i in 0..20 {
        let (status, hook) = create_webhook(
            &api,
            &slow_creator,
            &format!("http://{silent_addr}/hook{i}"),
            &["follower.added"],
        )
        .await?;
        assert_eq!(status, 201, "{hook}");
        slow_hooks.push(hook["id"].as_str().context("id")?.to_string());
    }
    let (addr, got, _task) = receiver("127.0.0.1:0".parse()?).await?;
    let (status, hook) = create_webhook(
        &api,
        &other_creator,
        &format!("http://{addr}/hook"),
        &["follower.added"],
    )
    .await?;
    assert_eq!(status, 201, "{hook}");
    let (status, v) = api
        .request(
            reqwest::Method::POST,
            "/api/v1/viewers",
            None,
            Some(json!({"handle": "looper"})),
        )
        .await?;
    assert_eq!(status, 201, "{v}");
    let looper = v["token"].as_str().context("token")?.to_string();
    let follow = |method: reqwest::Method, handle: &'static str| {
        let (api, looper) = (api.clone(), looper.clone());
        async move {
            api.request(
                method,
                &format!("/api/v1/creators/{handle}/follow"),
                Some(&looper),
                None,
            )
            .await
        }
    };
    // Follow/unfollow loops on the slow creator: one pending follower.added per webhook.
    for _ in 0..10 {
        assert_eq!(follow(reqwest::Method::PUT, "demo").await?.0, 204);
        assert_eq!(follow(reqwest::Method::DELETE, "demo").await?.0, 204);
    }
    assert_eq!(follow(reqwest::Method::PUT, "other").await?.0, 204);
    let received = wait_for("the other creator's delivery", DEADLINE, || async {
        let g = got.lock().unwrap().clone();
        (!g.is_empty()).then_some(g)
    })
    .await?;
    assert_eq!(received[0].0, "follower.added");
    for hook in &slow_hooks {
        let (_, log) = api
            .get(
                &format!("/api/v1/webhooks/{hook}/deliveries"),
                Some(&slow_creator),
            )
            .await?;
        let deliveries = log["deliveries"].as_array().context("deliveries")?;
        assert_eq!(deliveries.len(), 1, "follow loops coalesce: {log}");
    }
    silent_task.abort();
    server.stop().await;
    Ok(())
}
