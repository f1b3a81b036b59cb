//! Several nodes on one PostgreSQL database (issue 19): a stream key made on one node publishes on
//! another; a live stream has one owner node; when the owner dies, the stream can be published on
//! another node once the owner's lease runs out, and the old owner, restarted, cannot take it back.
mod common;

use std::time::Duration;

use anyhow::Result;
use common::*;
use tokio::process::Child;

const LEASE_TTL: &str = "2s";

async fn node(dir: &std::path::Path, database: &str, id: &str) -> Result<Process> {
    Process::start_with_env(
        dir,
        &[
            ("LIVEFRONT_DATABASE_URL", database),
            ("LIVEFRONT_NODE_ID", id),
            ("LIVEFRONT_NODE_LEASE_TTL", LEASE_TTL),
            // The test's webhook receiver is on loopback.
            ("LIVEFRONT_WEBHOOKS_ALLOW_PRIVATE", "true"),
        ],
    )
    .await
}

/// An ffmpeg publisher of `key` on `node`, and whether it was refused (exited within a few
/// seconds, having sent nothing the node kept).
async fn publish(node: &Process, key: &str) -> Result<Child> {
    Publish::small(60.0).spawn(&format!("{}/{key}", node.rtmp_url))
}

async fn refused(mut publisher: Child) -> Result<bool> {
    match tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await {
        Ok(status) => Ok(!status?.success()),
        Err(_) => {
            publisher.start_kill()?;
            publisher.wait().await?;
            Ok(false)
        }
    }
}

/// Media segments the node lists for the stream (its owner's event playlist).
async fn segments_on(node: &Process, token: &str, id: &str) -> usize {
    let media = format!("/hls/{id}/source/event.m3u8");
    match node.api.get_text(&media, Some(token)).await {
        Ok((200, text)) => text.matches("#EXTINF").count(),
        _ => 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_owner_per_live_stream_across_nodes_and_a_dead_owner_is_replaced() -> Result<()> {
    let database = tokio::task::spawn_blocking(postgres_database).await??;
    let (dir_a, dir_b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let a = node(dir_a.path(), &database, "a").await?;
    let b = node(dir_b.path(), &database, "b").await?;

    // A key made through node A publishes on node B. Both nodes send webhooks from the one
    // outbox in the database.
    let token = a.api.create_creator("alice").await?;
    let (hooks, got, _hooks_task) = hooks::receiver("127.0.0.1:0".parse()?).await?;
    let events = ["stream.started", "stream.public", "stream.ended"];
    let (status, hook) = a
        .api
        .request(
            reqwest::Method::POST,
            "/api/v1/webhooks",
            Some(&token),
            Some(serde_json::json!({"url": format!("http://{hooks}/hook"), "events": events})),
        )
        .await?;
    assert_eq!(status, 201, "{hook}");
    let stream = a.api.create_stream(&token, "two nodes").await?;
    let id = stream["id"].as_str().unwrap().to_string();
    let key = stream["stream_key"].as_str().unwrap().to_string();
    let mut on_b = publish(&b, &key).await?;
    wait_for("2 segments on B", DEADLINE, || async {
        (segments_on(&b, &token, &id).await >= 2).then_some(())
    })
    .await?;
    assert_eq!(
        a.api.stream(&token, &id).await?["state"],
        "live",
        "A reads B's stream live"
    );
    // Viewers may ask either node: A relays to B, the owner.
    let through_a = segments_on(&a, &token, &id).await;
    assert!(
        through_a >= 2,
        "A relayed B's playlist ({through_a} segments)"
    );
    let segment = format!("/hls/{id}/source/seg00001.ts");
    let (from_a, from_b) = (
        a.api.get_bytes(&segment, Some(&token)).await?,
        b.api.get_bytes(&segment, Some(&token)).await?,
    );
    assert!(
        !from_b.is_empty() && from_a == from_b,
        "the same segment through A"
    );
    assert_eq!(
        a.api.status(&segment, None).await?,
        404,
        "practice through A too"
    );

    // While B owns it, the same key is refused on A, and B goes on.
    assert!(
        refused(publish(&a, &key).await?).await?,
        "a second owner was let in"
    );
    let before = segments_on(&b, &token, &id).await;
    wait_for("B still growing", DEADLINE, || async {
        (segments_on(&b, &token, &id).await > before).then_some(())
    })
    .await?;

    // B dies without a word: once its lease runs out, A takes the stream (same id) over.
    b.signal("KILL")?;
    let mut b_child = b.child;
    b_child.wait().await?;
    on_b.start_kill()?;
    on_b.wait().await?;
    let mut on_a = wait_for("A takes the stream", DEADLINE, || async {
        let mut p = publish(&a, &key).await.ok()?;
        match tokio::time::timeout(Duration::from_secs(3), p.wait()).await {
            Ok(_) => None, // refused while B's lease ran: try again
            Err(_) => Some(p),
        }
    })
    .await?;
    wait_for("2 segments on A", DEADLINE, || async {
        (segments_on(&a, &token, &id).await >= 2).then_some(())
    })
    .await?;
    assert_eq!(a.api.stream(&token, &id).await?["state"], "live");

    // B restarted (same node id) does not end or take back the stream A owns.
    let b = node(dir_b.path(), &database, "b").await?;
    let v = b.api.stream(&token, &id).await?;
    assert_eq!(
        v["state"], "live",
        "B's recovery left A's stream alone: {v}"
    );
    assert!(
        refused(publish(&b, &key).await?).await?,
        "B took the stream back"
    );
    let before = segments_on(&a, &token, &id).await;
    wait_for("A still growing", DEADLINE, || async {
        (segments_on(&a, &token, &id).await > before).then_some(())
    })
    .await?;

    // A mode set through B takes effect on A, the owner: public, then back to practice.
    let anonymous = format!("/hls/{id}/master.m3u8");
    assert_eq!(
        a.api.status(&anonymous, None).await?,
        404,
        "practice at first"
    );
    b.api.set_mode(&token, &id, "public").await?;
    wait_for("public on A", DEADLINE, || async {
        (a.api.status(&anonymous, None).await.ok()? == 200).then_some(())
    })
    .await?;
    assert_eq!(
        b.api.status(&anonymous, None).await?,
        200,
        "public through B"
    );
    b.api.set_mode(&token, &id, "practice").await?;
    wait_for("practice on A", DEADLINE, || async {
        (a.api.status(&anonymous, None).await.ok()? == 404).then_some(())
    })
    .await?;
    assert_eq!(
        b.api.status(&anonymous, None).await?,
        404,
        "practice through B"
    );

    // The creator ends it through B: A, the owner, ends it.
    b.api.end_stream(&token, &id).await?;
    wait_for("ended", DEADLINE, || async {
        let v = a.api.stream(&token, &id).await.ok()?;
        (v["state"] == "ended").then_some(())
    })
    .await?;
    on_a.start_kill()?;
    on_a.wait().await?;

    // Each queued webhook delivery reached the receiver once, though both nodes send.
    wait_for("stream.ended delivered", DEADLINE, || async {
        let got = got.lock().unwrap().clone();
        got.iter()
            .any(|(event, _, _)| event == "stream.ended")
            .then_some(())
    })
    .await?;
    let log = format!(
        "/api/v1/webhooks/{}/deliveries",
        hook["id"].as_str().unwrap()
    );
    let (_, v) = a.api.get(&log, Some(&token)).await?;
    let delivered = v["deliveries"].as_array().map_or(0, |d| {
        d.iter().filter(|d| d["state"] == "delivered").count()
    });
    let got = got.lock().unwrap().clone();
    let mut bodies: Vec<&str> = got.iter().map(|(_, _, body)| body.as_str()).collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        got.len(),
        "a delivery was sent twice: {got:?}"
    );
    assert_eq!(got.len(), delivered, "one receipt per delivered row: {v}");
    assert!(
        got.iter().any(|(event, _, _)| event == "stream.public"),
        "{got:?}"
    );
    for node in [a, b] {
        node.signal("TERM")?;
        let mut child = node.child;
        child.wait().await?;
    }
    Ok(())
}
