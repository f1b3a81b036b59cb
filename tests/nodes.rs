//! Several nodes on one PostgreSQL database (issue 19): a stream key made on one node publishes on
//! another; a live stream has one owner node; when the owner dies, the stream can be published on
//! another node once the owner's lease runs out, and the old owner, restarted, cannot take it back.
//! And the whole cluster on one machine: two nodes, PostgreSQL, a NATS bus, an S3-compatible
//! bucket and the nginx edge of `examples/` in front.
mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::nats::Nats;
use common::receivers::Edge;
use common::s3::{BUCKET, S3Server};
use common::ws::{LiveClient, Token};
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

/// Kills the `owner` node with SIGKILL and its `publisher`, then publishes `key` on `other` until
/// it is let in (refused while the dead owner's lease runs); returns the new publisher.
async fn kill_and_take_over(
    owner: Process,
    mut publisher: Child,
    other: &Process,
    key: &str,
) -> Result<Child> {
    owner.signal("KILL")?;
    let mut child = owner.child;
    child.wait().await?;
    publisher.start_kill()?;
    publisher.wait().await?;
    wait_for("the other node takes the stream", DEADLINE, || async {
        let mut p = publish(other, key).await.ok()?;
        match tokio::time::timeout(Duration::from_secs(3), p.wait()).await {
            Ok(_) => None, // refused while the owner's lease ran: try again
            Err(_) => Some(p),
        }
    })
    .await
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
    let on_b = publish(&b, &key).await?;
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
    let mut on_a = kill_and_take_over(b, on_b, &a, &key).await?;
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

/// Waits until the node reports its bus connected.
async fn bus_connected(node: &Process) -> Result<()> {
    wait_for("bus connected", DEADLINE, || async {
        let (_, text) = node.api.get_text("/metrics", None).await.ok()?;
        text.lines()
            .any(|l| l == "livefront_bus_connected 1")
            .then_some(())
    })
    .await
}

/// Waits until `n` sessions of stream `id` have put some of their recording into the bucket;
/// returns the keys and sizes of the sessions' objects then.
async fn sessions_in_bucket(s3: &S3Server, id: &str, n: usize) -> Result<Vec<(String, u64)>> {
    let prefix = format!("streams/{id}/recording-sessions/");
    wait_for(
        "the sessions' recordings in the bucket",
        DEADLINE,
        || async {
            let keys = s3.list(&prefix).await.ok()?;
            let with_media: std::collections::HashSet<&str> = keys
                .iter()
                .filter(|(k, _)| k.ends_with(".part"))
                .filter_map(|(k, _)| k.strip_prefix(&prefix)?.split('/').next())
                .collect();
            (with_media.len() >= n).then(|| keys.clone())
        },
    )
    .await
}

/// A session's media that may be missing from the recording when its node dies: the file goes
/// to the bucket every 3 s, in 2 s fragments, and the segments listed may be a few seconds ahead.
const LOST_AT_DEATH_S: f64 = 6.0;

fn extinf_total(playlist: &str) -> f64 {
    playlist
        .lines()
        .filter_map(|l| {
            l.strip_prefix("#EXTINF:")?
                .split(',')
                .next()?
                .parse::<f64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_behind_the_edge_serves_media_chat_and_recordings_from_any_node() -> Result<()> {
    let nats = tokio::task::spawn_blocking(Nats::start).await??;
    let s3 = S3Server::start(0).await?;
    let database = tokio::task::spawn_blocking(postgres_database).await??;
    let (bus, storage) = (
        nats.url(),
        format!("s3://{BUCKET}?endpoint={}&region=us-east-1", s3.endpoint()),
    );
    let cluster = |id: &'static str| {
        [
            ("LIVEFRONT_DATABASE_URL", database.clone()),
            ("LIVEFRONT_NODE_ID", id.to_string()),
            ("LIVEFRONT_NODE_LEASE_TTL", LEASE_TTL.to_string()),
            ("LIVEFRONT_BUS_URL", bus.clone()),
            ("LIVEFRONT_STORAGE_URL", storage.clone()),
            ("LIVEFRONT_STORAGE_ACCESS_KEY", "test-access".to_string()),
            ("LIVEFRONT_STORAGE_SECRET_KEY", "test-secret".to_string()),
            // A stream whose node died is ended this long after its lease ran out.
            ("LIVEFRONT_RECONNECT_GRACE", "5s".to_string()),
        ]
    };
    let start = |dir: &std::path::Path, id: &'static str| {
        let env = cluster(id);
        let dir = dir.to_path_buf();
        async move {
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Process::start_with_env(&dir, &env).await
        }
    };
    let (dir_a, dir_b, dir_edge) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    let a = start(dir_a.path(), "a").await?;
    let b = start(dir_b.path(), "b").await?;
    let host = |p: &Process| p.api.base.trim_start_matches("http://").to_string();
    let mut edge = Edge::start(dir_edge.path(), &[&host(&a), &host(&b)]).await?;
    let viewers = Api::new(&edge.url);

    // The creator works through the edge (whichever node answers); the key publishes on B.
    let token = viewers.create_creator("alice").await?;
    let stream = viewers.create_stream(&token, "cluster").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let key = stream["stream_key"].as_str().context("key")?.to_string();
    bus_connected(&a).await?;
    bus_connected(&b).await?;

    // A finds the stream not live and remembers that for a few seconds, but the bus tells it at
    // once when the stream goes live on B: from then on, A relays to B.
    let playlist = format!("/hls/{id}/source/index.m3u8");
    // (The creator watches: a rehearsal is hers alone.)
    let mut watching_a = LiveClient::connect(&a.api, &id, Token::Header(&token)).await?;
    assert_eq!(a.api.status(&playlist, None).await?, 404, "not live yet");
    let publisher = Publish::small(60.0).spawn(&format!("{}/{key}", b.rtmp_url))?;
    // (The greeting told it `ready`; the next state it hears comes from B, over the bus.)
    let went_live = tokio::time::timeout(DEADLINE, async {
        loop {
            let v = watching_a.next().await?;
            if v["type"] == "stream_state" {
                return anyhow::Ok(v);
            }
        }
    })
    .await
    .context("no stream_state on A")??;
    assert_eq!(went_live["state"], "live", "{went_live}");
    // A rehearsal first: two segments in practice, then public.
    let event = format!("/hls/{id}/source/event.m3u8");
    let rehearsal = wait_for("two segments of rehearsal", DEADLINE, || async {
        let (_, text) = b.api.get_text(&event, Some(&token)).await.ok()?;
        (text.matches("#EXTINF").count() >= 2).then_some(text)
    })
    .await?;
    viewers.set_mode(&token, &id, "public").await?;
    let practice_s = extinf_total(&rehearsal);
    wait_for("B's playlist", DEADLINE, || async {
        (b.api.status(&playlist, None).await.ok()? == 200).then_some(())
    })
    .await?;
    assert_eq!(
        a.api.status(&playlist, None).await?,
        200,
        "A relays to B, the owner, once told it went live"
    );
    drop(watching_a);

    // Viewers through the edge: whichever node nginx asks, they get B's playlist and segments.
    viewers.playlist_with_segments(&playlist, 2).await?;
    for _ in 0..4 {
        let (status, text) = viewers.get_text(&playlist, None).await?;
        assert!(status == 200 && text.contains("#EXTINF"), "{status} {text}");
    }
    // (The first public segment: the rehearsal's are not listed for the public.)
    let public_name = wait_for("a public segment", DEADLINE, || async {
        let (_, text) = b.api.get_text(&playlist, None).await.ok()?;
        text.lines()
            .find(|l| l.ends_with(".ts"))
            .map(str::to_string)
    })
    .await?;
    let segment = format!("/hls/{id}/source/{public_name}");
    let from_b = b.api.get_bytes(&segment, None).await?;
    assert!(!from_b.is_empty());
    assert_eq!(
        viewers.get_bytes(&segment, None).await?,
        from_b,
        "through the edge"
    );
    assert_eq!(a.api.get_bytes(&segment, None).await?, from_b, "through A");
    // Closed segments come to A from the bucket (B puts each there as it closes), not from B,
    // which is not asked (its count of HLS requests stays); an edge keeps them as live media.
    // The rehearsal's too, for its owner; for anyone else, A asks B, which says no.
    let rehearsed = format!("/hls/{id}/source/seg00000.ts");
    let rehearsed_from_b = b.api.get_bytes(&rehearsed, Some(&token)).await?;
    wait_for("the segments in the bucket", DEADLINE, || async {
        let keys = s3.list(&format!("streams/{id}/hls/source/")).await.ok()?;
        let has = |name: &str| keys.iter().any(|(k, _)| k.ends_with(&format!("/{name}")));
        (has(&public_name) && has("seg00000.ts")).then_some(())
    })
    .await?;
    let asked_b = metric(&b.api, "livefront_hls_requests_total").await?;
    let answer = a.api.http.get(a.api.url(&segment)).send().await?;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["cache-control"], "public, max-age=4");
    assert_eq!(answer.bytes().await?, from_b, "from the bucket through A");
    assert_eq!(
        a.api.get_bytes(&rehearsed, Some(&token)).await?,
        rehearsed_from_b,
        "the rehearsal to its owner, from the bucket through A"
    );
    assert_eq!(
        metric(&b.api, "livefront_hls_requests_total").await?,
        asked_b,
        "B was not asked"
    );
    assert_eq!(a.api.status(&rehearsed, None).await?, 404);
    // The poster of a live stream is on its node's disk: A asks B for it.
    let poster = format!("/api/v1/streams/{id}/thumbnail.jpg");
    wait_for("B's public poster", DEADLINE, || async {
        (b.api.status(&poster, None).await.ok()? == 200).then_some(())
    })
    .await?;
    assert!(
        a.api
            .get_bytes(&poster, None)
            .await?
            .starts_with(&[0xff, 0xd8])
    );

    // Chat over the bus: a viewer on A and one on B hear each other, in one order.
    let ann = viewers.register_viewer("ann").await?;
    let bob = viewers.register_viewer("bob").await?;
    // The host focuses a product on B, the owner; a viewer joining on A is told of it at once.
    let lipstick = viewers.create_product(&token, "lipstick").await?;
    viewers.set_carousel(&token, &id, &[&lipstick]).await?;
    let (status, focused) = b.api.focus(&token, &id, Some(&lipstick)).await?;
    assert_eq!(status, 200, "{focused}");
    let mut on_a = LiveClient::connect(&a.api, &id, Token::Header(&ann)).await?;
    let told = on_a.expect("product_focused").await?;
    assert_eq!(told["id"], focused["id"], "{told}");
    assert_eq!(told["product_id"], focused["product_id"], "{told}");
    let mut on_b = LiveClient::connect(&b.api, &id, Token::Header(&bob)).await?;
    let told = on_b.expect("product_focused").await?;
    assert_eq!(told["id"], focused["id"], "the same change on B: {told}");
    on_b.say("hello from B").await?;
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.expect("chat_message").await?["text"], "hello from B");
    }
    on_a.say("hello from A").await?;
    for socket in [&mut on_a, &mut on_b] {
        assert_eq!(socket.expect("chat_message").await?["text"], "hello from A");
    }

    // B dies without a word; the publisher comes back on A once B's lease ran out. The stream
    // goes on (same id): A continues B's playlists from the bucket (numbering goes on after a
    // discontinuity), and B's segments, which A never had, come from the bucket through A and
    // through the edge.
    let (_, on_b_before) = b.api.get_text(&event, Some(&token)).await?;
    let b_segments = on_b_before.matches("#EXTINF").count();
    let first = format!("/hls/{id}/source/seg00000.ts");
    let first_from_b = b.api.get_bytes(&first, Some(&token)).await?;
    // (Once B's recording is in the bucket: it follows a few seconds behind.)
    sessions_in_bucket(&s3, &id, 1).await?;
    let mut publisher = kill_and_take_over(b, publisher, &a, &key).await?;
    let continued = wait_for("two segments of A's session", DEADLINE, || async {
        let (status, text) = a.api.get_text(&event, Some(&token)).await.ok()?;
        let (_, after) = text.split_once("#EXT-X-DISCONTINUITY")?;
        (status == 200 && after.matches("#EXTINF").count() >= 2).then_some(text)
    })
    .await?;
    let names: Vec<&str> = continued.lines().filter(|l| l.ends_with(".ts")).collect();
    let (before, _) = continued.split_once("#EXT-X-DISCONTINUITY").unwrap();
    let kept = before.matches("#EXTINF").count();
    assert!(
        kept >= 2 && kept <= b_segments + 3,
        "B's segments listed on A: {kept} of about {b_segments}\n{continued}"
    );
    let numbers: Vec<u32> = names
        .iter()
        .filter_map(|n| n.strip_prefix("seg")?.strip_suffix(".ts")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "the numbering goes on, no name twice: {names:?}"
    );
    // A, the owner now, has the product in focus that the host chose on B.
    let mut joining = LiveClient::connect(&a.api, &id, Token::None).await?;
    let told = joining.expect("product_focused").await?;
    assert_eq!(told["id"], focused["id"], "{told}");
    drop(joining);

    // B's segments come from the bucket: its public one through A and through the edge, its
    // rehearsal to its owner only.
    assert_eq!(
        a.api.get_bytes(&segment, None).await?,
        from_b,
        "B's segment through A"
    );
    assert_eq!(
        viewers.get_bytes(&segment, None).await?,
        from_b,
        "and through the edge"
    );
    assert!(
        !std::fs::exists(
            dir_a
                .path()
                .join(format!("streams/{id}/hls/source/{public_name}"))
        )?,
        "A has no copy of B's segment"
    );
    assert_eq!(
        a.api.get_bytes(&first, Some(&token)).await?,
        first_from_b,
        "B's rehearsal, to its owner through A"
    );
    assert_eq!(a.api.status(&first, None).await?, 404, "and to no one else");
    assert_eq!(
        viewers.status(&first, None).await?,
        404,
        "not through the edge"
    );
    let newest = names.last().unwrap();
    let (status, text) = viewers.get_text(&playlist, None).await?;
    assert!(status == 200 && text.contains(newest), "{status} {text}");
    assert!(
        !viewers
            .get_bytes(&format!("/hls/{id}/source/{newest}"), None)
            .await?
            .is_empty()
    );

    // (What the sessions put in the bucket so far, kept to play a node that dies below: once
    // both have put some of their recording there.)
    let listed = sessions_in_bucket(&s3, &id, 2).await?;
    let mut sessions_so_far = Vec::new();
    for (key, _) in listed {
        let body = s3.get(&key).await?.context("listed")?;
        sessions_so_far.push((key, body));
    }

    // The host clears the focus on A just before the end: the product's chapter, begun on B (in
    // B's last seconds, which died with it, if not before: then where A's session starts), ends
    // there, on the recording's timeline (A stamps it with its own session's media time).
    let (status, cleared) = a.api.focus(&token, &id, None).await?;
    assert_eq!(status, 200, "{cleared}");

    // Ended through the edge: A, the owner now, ends it, its recording goes to the bucket, and
    // A serves it from there (its own copy is gone once archived).
    viewers.end_stream(&token, &id).await?;
    let ready = a.api.recording_ready(&token, &id).await?;
    assert!(ready["bytes"].as_u64().unwrap_or(0) > 0, "{ready}");
    let download = format!("/recordings/{id}.mp4");
    let from_a = wait_for("the recording through A", DEADLINE, || async {
        a.api.get_bytes(&download, Some(&token)).await.ok()
    })
    .await?;
    assert_eq!(&from_a[4..8], b"ftyp", "an MP4");
    assert_eq!(from_a.len() as u64, ready["bytes"].as_u64().unwrap_or(0));
    // (Served from A's disk until it is archived.)
    wait_for("the recording in the bucket", DEADLINE, || async {
        let keys = s3.list(&format!("streams/{id}/")).await.ok()?;
        keys.iter()
            .any(|(k, size)| k.ends_with("recording.mp4") && *size == from_a.len() as u64)
            .then_some(())
    })
    .await?;
    wait_for("A's copy removed once archived", DEADLINE, || async {
        let mine = dir_a.path().join(format!("streams/{id}/recording.mp4"));
        (!std::fs::exists(mine).ok()?).then_some(())
    })
    .await?;
    assert_eq!(
        a.api.get_bytes(&download, Some(&token)).await?,
        from_a,
        "A serves it from the bucket then"
    );

    // One recording across both sessions: B's (it went to the bucket as it was written, all but
    // its last seconds, which died with B) and then A's. The public replay too.
    let (_, listed) = a.api.get_text(&event, Some(&token)).await?;
    let (b_listed, a_listed) = listed
        .split_once("#EXT-X-DISCONTINUITY")
        .context("two sessions")?;
    let (b_s, a_s) = (extinf_total(b_listed), extinf_total(a_listed));
    let saved = dir_a.path().join("downloaded.mp4");
    std::fs::write(&saved, &from_a)?;
    let (_, recorded) = probe(&saved.to_string_lossy()).await?;
    let recorded = recorded.context("the recording's duration")?;
    eprintln!("recording {recorded:.2} s; listed: B {b_s:.2} s, A {a_s:.2} s");
    assert!(
        recorded > a_s + 2.0
            && recorded >= a_s + b_s - LOST_AT_DEATH_S
            && recorded <= a_s + b_s + 1.0,
        "recording {recorded:.2} s; listed: B {b_s:.2} s, A {a_s:.2} s"
    );
    let (_, chapters) = a
        .api
        .get(&format!("/api/v1/streams/{id}/chapters"), Some(&token))
        .await?;
    let chapter = &chapters["chapters"][0];
    let (start_s, end_s) = (
        chapter["start_s"].as_f64().context("start")?,
        chapter["end_s"].as_f64().context("end")?,
    );
    eprintln!(
        "chapter {start_s:.2}..{end_s:.2} s of {recorded:.2} s (A's session {a_s:.2} s): {chapters}"
    );
    assert!(
        start_s <= recorded - a_s + 0.5 && end_s > recorded - 3.0 && end_s <= recorded + 0.001,
        "chapter {start_s:.2}..{end_s:.2} s; recording {recorded:.2} s, A's session {a_s:.2} s"
    );
    let replay = wait_for("the public replay through A", DEADLINE, || async {
        a.api
            .get_bytes(&format!("/replays/{id}.mp4"), None)
            .await
            .ok()
    })
    .await?;
    std::fs::write(&saved, &replay)?;
    let (_, replayed) = probe(&saved.to_string_lossy()).await?;
    let replayed = replayed.context("the replay's duration")?;
    // Not the rehearsal (nor B's last seconds, not known to be public: its note of what was went
    // up every few seconds too); all of A's session, public throughout, but for the guards.
    eprintln!("replay {replayed:.2} s, rehearsal {practice_s:.2} s");
    assert!(
        replayed > a_s - 0.6 && replayed <= recorded - practice_s + 0.1,
        "replay {replayed:.2} s, recording {recorded:.2} s, A's session {a_s:.2} s, \
         rehearsal {practice_s:.2} s"
    );
    // The sessions' copies are deleted from the bucket once the joined recording is there.
    wait_for("the sessions' copies gone", DEADLINE, || async {
        let keys = s3
            .list(&format!("streams/{id}/recording-sessions/"))
            .await
            .ok()?;
        keys.is_empty().then_some(())
    })
    .await?;

    publisher.start_kill()?;
    publisher.wait().await?;

    // A node that dies after the stream ended, before its recording was in the bucket, leaves its
    // claim on the recording job to run out; a node that lives on makes the recording again
    // from the sessions in the bucket. Played here: the sessions as they were, the recording
    // gone, a job claimed by a node that is no more.
    for (key, body) in &sessions_so_far {
        s3.put(key, body.clone()).await?;
    }
    let recording_key = format!("streams/{id}/recording.mp4");
    s3.delete(&recording_key).await?;
    let stale = format!(
        "INSERT INTO recording_jobs (stream_id, node_id, claimed_until) \
         VALUES ('{id}', 'dead', '2000-01-01T00:00:00.000Z')"
    );
    let db = database.clone();
    tokio::task::spawn_blocking(move || common::postgres::execute(&db, &stale)).await??;
    let remade = wait_for("the recording made again", DEADLINE, || async {
        s3.get(&recording_key).await.ok()?
    })
    .await?;
    std::fs::write(&saved, &remade)?;
    let (_, remade_s) = probe(&saved.to_string_lossy()).await?;
    let remade_s = remade_s.context("duration")?;
    eprintln!("made again: {remade_s:.2} s (recording {recorded:.2} s)");
    // Both sessions, as far as they had gone when their objects were kept.
    assert!(
        remade_s > recorded - a_s + 1.0 && remade_s <= recorded + 0.5,
        "made again {remade_s:.2} s; recording {recorded:.2} s, A's session {a_s:.2} s"
    );
    let db = database.clone();
    let jobs = wait_for("the job done", DEADLINE, || async {
        let db = db.clone();
        let rows = tokio::task::spawn_blocking(move || {
            common::postgres::texts(&db, "SELECT stream_id FROM recording_jobs")
        })
        .await
        .ok()?
        .ok()?;
        rows.is_empty().then_some(rows)
    })
    .await?;
    assert!(jobs.is_empty());
    let ready = a.api.recording_ready(&token, &id).await?;
    assert_eq!(
        ready["bytes"].as_u64(),
        Some(remade.len() as u64),
        "{ready}"
    );

    // A node that dies with its publisher gone too: once its lease ran out and the reconnect
    // grace passed, a node that lives on ends the stream, and makes its recording from what the
    // dead node put in the bucket. (B, restarted, recovers nothing of A's.)
    let b = start(dir_b.path(), "b").await?;
    // B's disk still has its copy of the first stream's lists as they were when B died; the
    // stream went on and ended on A. B serves it as it ended, as A does, not its own copy.
    for (path, who) in [(&event, Some(token.as_str())), (&playlist, None)] {
        let (_, on_a) = a.api.get_text(path, who).await?;
        assert!(on_a.contains("#EXT-X-ENDLIST"), "{path} through A: {on_a}");
        let (status, on_b) = b.api.get_text(path, who).await?;
        assert_eq!((status, on_b), (200, on_a), "{path} through B");
    }
    // (A's segments too, which B's copy of the public list does not name.)
    let from_a = format!("/hls/{id}/source/{newest}");
    assert_eq!(
        b.api.status(&from_a, None).await?,
        200,
        "{from_a} through B"
    );
    let abandoned = a.api.create_stream(&token, "abandoned").await?;
    let id = abandoned["id"].as_str().context("id")?.to_string();
    let key = abandoned["stream_key"].as_str().context("key")?;
    let mut publisher = Publish::small(60.0).spawn(&format!("{}/{key}", a.rtmp_url))?;
    sessions_in_bucket(&s3, &id, 1).await?;
    let event = format!("/hls/{id}/source/event.m3u8");
    let (_, listed) = a.api.get_text(&event, Some(&token)).await?;
    assert_eq!(
        b.api
            .get(&format!("/api/v1/streams/{id}"), Some(&token))
            .await?
            .1["state"],
        "live",
        "live on A"
    );
    a.signal("KILL")?;
    let mut a_child = a.child;
    a_child.wait().await?;
    publisher.start_kill()?;
    publisher.wait().await?;
    let ended = wait_for("B ends the stream A left", DEADLINE, || async {
        let (_, v) = b
            .api
            .get(&format!("/api/v1/streams/{id}"), Some(&token))
            .await
            .ok()?;
        (v["state"] == "ended").then_some(v)
    })
    .await?;
    assert_eq!(ended["id"], id.as_str());
    let ready = b.api.recording_ready(&token, &id).await?;
    let download = wait_for("the recording through B", DEADLINE, || async {
        b.api
            .get_bytes(&format!("/recordings/{id}.mp4"), Some(&token))
            .await
            .ok()
    })
    .await?;
    assert_eq!(download.len() as u64, ready["bytes"].as_u64().unwrap_or(0));
    std::fs::write(&saved, &download)?;
    let (codecs, recorded) = probe(&saved.to_string_lossy()).await?;
    let (recorded, listed_s) = (recorded.context("duration")?, extinf_total(&listed));
    eprintln!("abandoned: recording {recorded:.2} s, listed before the kill {listed_s:.2} s");
    assert!(
        recorded >= listed_s - LOST_AT_DEATH_S && recorded > 1.0,
        "recording {recorded:.2} s; listed before the kill: {listed_s:.2} s"
    );
    assert!(codecs.contains(&"h264".to_string()), "{codecs:?}");
    let (_, closed) = b.api.get_text(&event, Some(&token)).await?;
    assert!(closed.contains("#EXT-X-ENDLIST"), "{closed}");
    // It was a rehearsal from start to end: rebuilt from the bucket, it still has no public
    // replay, and its media stay its owner's.
    let replay = format!("/replays/{id}.mp4");
    assert_eq!(b.api.status(&replay, None).await?, 404);
    let public_list = format!("/hls/{id}/source/index.m3u8");
    assert_eq!(b.api.status(&public_list, None).await?, 404);

    drop(b);
    edge.stop().await?;
    Ok(())
}
