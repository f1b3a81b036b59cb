//! Creator analytics (issue 18) end to end on a real server: a real publisher, two real HLS
//! players (ffmpeg following the live playlist), live-channel sockets, a chat message, a focused
//! product, a click-out, a signed purchase, a promo redemption and a follow; then the series and
//! summary of the stream, their agreement with the clicks and earnings endpoints, the CSV, the
//! replay, a restart, and who may see them.
mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use common::ws::{LiveClient, Token};
use common::*;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::process::{Child, Command};

const SHOP_SECRET: &str = "shop-secret-for-tests-0123";
/// The series' step in these tests (10 s by default).
const STEP: Duration = Duration::from_secs(1);

fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn purchase(api: &Api, body: &Value) -> Result<(u16, Value)> {
    let raw = serde_json::to_vec(body)?;
    let resp = api
        .http
        .post(api.url("/api/v1/purchases"))
        .header("Content-Type", "application/json")
        .header(
            "X-Livefront-Signature",
            signature(SHOP_SECRET, Utc::now().timestamp(), &raw),
        )
        .body(raw)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// A real HLS player: ffmpeg following the stream's MPEG-TS master playlist (and so its media
/// playlist, with the session id the master gave it) until killed or the stream ends.
fn player(api: &Api, id: &str) -> Result<Child> {
    Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(api.url(&format!("/hls/{id}/master-ts.m3u8")))
        .args(["-t", "600", "-c", "copy", "-f", "null", "-"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("ffmpeg is required (apt-get install ffmpeg)")
}

async fn analytics(api: &Api, token: &str, id: &str) -> Result<Value> {
    let (status, v) = api
        .get(&format!("/api/v1/streams/{id}/analytics"), Some(token))
        .await?;
    anyhow::ensure!(status == 200, "analytics: {status} {v}");
    Ok(v)
}

fn series(report: &Value) -> Vec<Value> {
    report["series"].as_array().cloned().unwrap_or_default()
}

fn sum(report: &Value, field: &str) -> u64 {
    series(report)
        .iter()
        .map(|p| p[field].as_u64().unwrap_or(0))
        .sum()
}

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().and_then(|s| s.parse().ok()).expect("a time")
}

/// A media playlist fetched like a player would, with session id `sid` (or none).
async fn media_playlist(
    api: &Api,
    id: &str,
    sid: Option<&str>,
    token: Option<&str>,
) -> Result<u16> {
    let query = sid.map(|s| format!("?sid={s}")).unwrap_or_default();
    Ok(api
        .get_text(&format!("/hls/{id}/source/index.m3u8{query}"), token)
        .await?
        .0)
}

/// The session id a master playlist gives (from its first media playlist URI).
async fn session_from_master(api: &Api, id: &str, token: Option<&str>) -> Result<String> {
    let (status, master) = api
        .get_text(&format!("/hls/{id}/master-ts.m3u8"), token)
        .await?;
    anyhow::ensure!(status == 200, "master: {status} {master}");
    master
        .split(['?', '&', '\n'])
        .find_map(|p| p.strip_prefix("sid="))
        .map(|s| s.trim().to_string())
        .context("sid in the master playlist")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shows_series_and_summary_count_real_players_and_agree_with_earnings() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.analytics.step = STEP;
        c.shop.secret = Some(SHOP_SECRET.into());
    })
    .await?;
    let api = server.api.clone();
    let alice = api.create_creator("alice").await?;
    let bob = api.create_creator("bob").await?;
    let (vera, fan) = {
        let store = &server.app.as_ref().context("running")?.state.store;
        (
            store.create_viewer("vera").await?.1,
            store.create_viewer("fan").await?.1,
        )
    };
    let (status, _) = api
        .request(
            Method::PATCH,
            "/api/v1/me",
            Some(&alice),
            Some(json!({"associate_tag": "alice-20"})),
        )
        .await?;
    assert_eq!(status, 200);
    let (status, p) = api
        .request(
            Method::POST,
            "/api/v1/products",
            Some(&alice),
            Some(json!({"sku": "lip", "title": "Velvet lipstick", "price": "19.99", "currency": "EUR", "url": "https://shop.example/p/1"})),
        )
        .await?;
    assert_eq!(status, 201, "{p}");
    let lipstick = p["id"].as_str().context("id")?.to_string();
    let stream = api.create_stream(&alice, "Spring show").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    api.set_carousel(&alice, &id, &[&lipstick]).await?;
    let (status, v) = api
        .request(
            Method::POST,
            &format!("/api/v1/streams/{id}/promos"),
            Some(&alice),
            Some(json!({"code": "SHOW10", "description": "10% off", "discount": "10%"})),
        )
        .await?;
    assert_eq!(status, 201, "{v}");

    // Practice: the owner watches (a player with the owner's token), which is not an audience.
    let _publisher = Publish::small(120.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &alice, &id, 1).await?;
    let owner_sid = session_from_master(&api, &id, Some(&alice)).await?;
    let practice = wait_for("practice steps", DEADLINE, || async {
        media_playlist(&api, &id, Some(&owner_sid), Some(&alice))
            .await
            .ok()?;
        let r = analytics(&api, &alice, &id).await.ok()?;
        let n = series(&r)
            .iter()
            .filter(|p| p["mode"] == "practice")
            .count();
        (n >= 2).then_some(r)
    })
    .await?;
    assert_eq!(practice["step_s"], 1.0, "{practice}");
    for p in series(&practice).iter().filter(|p| p["mode"] == "practice") {
        assert_eq!(p["viewers"], 0, "the owner is not the audience: {p}");
    }

    // Public: two real players, sockets (the owner's studio among them), chat, focus, a
    // click-out, a purchase, a redemption, a follow.
    api.set_mode(&alice, &id, "public").await?;
    let public_at = Instant::now();
    // Public media starts with the next segment.
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    let mut players = [player(&api, &id)?, player(&api, &id)?];
    let _studio = LiveClient::connect(&api, &id, Token::Header(&alice)).await?;
    let _anonymous = LiveClient::connect(&api, &id, Token::None).await?;
    let mut chatter = LiveClient::connect(&api, &id, Token::Header(&vera)).await?;
    let said = Utc::now();
    chatter.say("love the colour").await?;
    chatter.expect("chat_message").await?;
    let said = (said, Utc::now());
    // Master playlists alone, made-up and foreign session ids, and the owner's player: none of
    // them is a viewer.
    for _ in 0..5 {
        session_from_master(&api, &id, None).await?;
    }
    assert_eq!(
        media_playlist(&api, &id, Some("abcdefghij0123456789abcdef"), None).await?,
        200
    );
    media_playlist(&api, &id, Some("not-a-session"), None).await?;
    media_playlist(&api, &id, Some(&owner_sid), Some(&alice)).await?;
    let (status, v) = api.focus(&alice, &id, Some(&lipstick)).await?;
    assert_eq!(status, 200, "{v}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let clicked = Utc::now();
    let resp = no_redirects
        .get(api.url(&format!("/go/{id}/{lipstick}")))
        .send()
        .await?;
    let clicked = (clicked, Utc::now());
    assert_eq!(resp.status().as_u16(), 302);
    let bought = Utc::now();
    let (status, v) = purchase(
        &api,
        &json!({"order_id": "order-a1", "attribution": "alice-20", "at": Utc::now(),
                "items": [{"product_id": lipstick, "amount": "19.99", "currency": "EUR"}]}),
    )
    .await?;
    let bought = (bought, Utc::now());
    assert_eq!(status, 201, "{v}");
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/promos/SHOW10/redeem",
            Some(&fan),
            None,
        )
        .await?;
    assert!(status == 200 || status == 201, "redeem: {status} {v}");
    let followed = Utc::now();
    let (status, v) = api
        .request(
            Method::PUT,
            "/api/v1/creators/alice/follow",
            Some(&fan),
            None,
        )
        .await?;
    let followed = (followed, Utc::now());
    assert_eq!(status, 204, "follow: {v}");

    // Both players are counted in a step, with the sockets (the anonymous one and the
    // chatter's; the studio is the owner's).
    let both = |p: &Value| p["players"].as_u64() >= Some(2) && p["sockets"].as_u64() >= Some(2);
    let watched = wait_for("a step with both players", DEADLINE, || async {
        let r = analytics(&api, &alice, &id).await.ok()?;
        (series(&r).iter().any(both) && r["summary"]["unique_viewers"].as_u64() >= Some(2))
            .then_some(r)
    })
    .await?;
    let live_point = series(&watched).into_iter().rfind(both).context("point")?;
    // Then they go on watching until the steps that counted both span 10 s: a player counts in a
    // step when it fetched its playlist within three segments (6 s) of it, so each player's
    // first fetch came before the first of those steps and its last fetch after the last one
    // less 6 s: each watched at least (span - 6 s) + a segment, less a step (the samples are
    // somewhere in their steps).
    let two = |p: &&Value| p["players"].as_u64() == Some(2);
    let span = wait_for("both players over 10 s", DEADLINE, || async {
        let r = analytics(&api, &alice, &id).await.ok()?;
        let points = series(&r);
        let first = time(&points.iter().find(two)?["at"]);
        let last = time(&points.iter().rfind(two)?["at"]);
        let span = (last - first).num_milliseconds() as f64 / 1000.0;
        (span >= 10.0).then_some(span)
    })
    .await?;
    assert_eq!(live_point["mode"], "public");
    assert_eq!(
        live_point["sockets"], 2,
        "the studio is not the audience: {live_point}"
    );
    assert!(live_point["viewers"].as_u64() >= live_point["players"].as_u64());
    // Live, the summary so far already counts the players, and no one else.
    assert_eq!(
        watched["summary"]["unique_viewers"], 2,
        "{}",
        watched["summary"]
    );

    for p in &mut players {
        p.kill().await?;
    }
    let watching_s = public_at.elapsed().as_secs_f64();
    api.end_stream(&alice, &id).await?;
    wait_for("ended", DEADLINE, || async {
        let s = api.stream(&alice, &id).await.ok()?;
        (s["state"] == "ended").then_some(())
    })
    .await?;

    let r = analytics(&api, &alice, &id).await?;
    let s = &r["summary"];
    eprintln!("summary after {watching_s:.1} s of two players: {s}");
    // The series: one point per step from the start to the end, practice then public.
    let points = series(&r);
    assert!(points.len() >= 4, "{r}");
    for pair in points.windows(2) {
        assert_eq!(
            (time(&pair[1]["at"]) - time(&pair[0]["at"])).num_milliseconds(),
            1000,
            "{pair:?}"
        );
    }
    let modes: Vec<&str> = points.iter().filter_map(|p| p["mode"].as_str()).collect();
    let first_public = modes
        .iter()
        .position(|m| *m == "public")
        .context("public")?;
    assert!(
        modes[..first_public].iter().all(|m| *m == "practice")
            && modes[first_public..].iter().all(|m| *m == "public"),
        "{modes:?}"
    );
    assert_eq!(
        time(&points[0]["at"]),
        time(&r["started_at"]),
        "the grid starts when the stream went live"
    );
    // Peak, unique viewers and watch time from the players' sessions.
    assert!(s["peak_viewers"].as_u64() >= Some(2), "{s}");
    let peak_at = time(&s["peak_at"]);
    assert!(points.iter().any(|p| time(&p["at"]) == peak_at));
    assert_eq!(s["unique_viewers"], 2, "{s}");
    let watch = s["watch_time_s"].as_f64().context("watch time")?;
    // Each player watched at least what the steps that counted both say, and not longer than it
    // ran (plus a segment).
    assert!(
        watch >= 2.0 * (span - 6.0 + 2.0 - 1.0),
        "{watch} < 2 × ({span} - 5) s: {s}"
    );
    assert!(
        watch <= 2.0 * (watching_s + 2.0),
        "{watch} > 2 × {watching_s} s: {s}"
    );
    assert_eq!(s["avg_watch_time_s"].as_f64(), Some(watch / 2.0));
    assert!(s["public_s"].as_f64() > Some(0.0) && s["practice_s"].as_f64() > Some(0.0));
    // Chat, follows, click-outs, orders and redemptions: in the summary and in the series' steps.
    assert_eq!(
        (s["chat_messages"].clone(), s["chatters"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(s["followers_gained"], 1);
    assert_eq!(sum(&r, "chat"), 1);
    assert_eq!(sum(&r, "follows"), 1);
    assert_eq!(sum(&r, "clicks"), 1);
    assert_eq!(sum(&r, "orders"), 1);
    assert_eq!(sum(&r, "redemptions"), 1);
    // In the steps they happened in.
    let step_of = |field: &str| {
        points
            .iter()
            .find(|p| p[field] == 1)
            .map(|p| time(&p["at"]))
            .expect("a step")
    };
    let in_step = |at: DateTime<Utc>, (before, after): (DateTime<Utc>, DateTime<Utc>)| {
        at <= after && before < at + chrono::TimeDelta::seconds(1)
    };
    assert!(
        in_step(step_of("chat"), said),
        "chat at {said:?}: {points:?}"
    );
    assert!(in_step(step_of("clicks"), clicked), "click at {clicked:?}");
    assert!(in_step(step_of("orders"), bought), "order at {bought:?}");
    assert!(
        in_step(step_of("follows"), followed),
        "follow at {followed:?}"
    );
    assert_eq!(
        s["promos"],
        json!([{"code": "SHOW10", "redemptions": 1, "sales": []}])
    );
    assert!(
        points
            .iter()
            .any(|p| p["focus_product_id"] == lipstick.as_str()),
        "a step with the product in focus"
    );
    let band = &r["focus"][0];
    assert_eq!(band["product_id"], lipstick.as_str(), "{r}");
    let product = &s["products"][0];
    assert_eq!(product["product_id"], lipstick.as_str());
    assert_eq!(product["title"], "Velvet lipstick");
    assert!(product["minutes_in_focus"].as_f64() > Some(0.0));

    // One source of truth: the clicks and earnings endpoints say the same.
    let (status, clicks) = api
        .get(&format!("/api/v1/streams/{id}/clicks"), Some(&alice))
        .await?;
    assert_eq!(status, 200);
    let clicked = clicks["clicks"].as_array().context("clicks")?;
    assert_eq!(s["clicks"].as_u64(), Some(clicked.len() as u64));
    assert_eq!(product["clicks"].as_u64(), Some(clicked.len() as u64));
    let (status, earnings) = api.get("/api/v1/me/earnings", Some(&alice)).await?;
    assert_eq!(status, 200);
    let row = earnings["by_stream"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["stream_id"] == id.as_str()))
        .context("earnings of the stream")?;
    for key in [
        "orders",
        "sales",
        "sales_minor",
        "commission",
        "commission_minor",
        "currency",
    ] {
        assert_eq!(s["sales"][0][key], row[key], "{key}: {s} vs {row}");
        assert_eq!(product["sales"][0][key], row[key], "{key}");
    }

    // The CSV of the series: a header and a line per step.
    let resp = api
        .http
        .get(api.url(&format!("/api/v1/streams/{id}/analytics?format=csv")))
        .bearer_auth(&alice)
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()?
            .starts_with("text/csv")
    );
    let csv = resp.text().await?;
    assert_eq!(csv.lines().count(), points.len() + 1, "{csv}");
    assert!(csv.starts_with("at,mode,viewers,players,sockets,chat,clicks"));

    // The replay: a player of the ended stream counts as a replay view, not a live viewer.
    let replay_sid = session_from_master(&api, &id, None).await?;
    assert_eq!(
        media_playlist(&api, &id, Some(&replay_sid), None).await?,
        200
    );
    let r = wait_for("a replay view", DEADLINE, || async {
        let r = analytics(&api, &alice, &id).await.ok()?;
        (r["summary"]["replay_views"] == 1).then_some(r)
    })
    .await?;
    assert_eq!(r["summary"]["unique_viewers"], 2);
    assert!(r["summary"]["replay_watch_time_s"].as_f64() > Some(0.0));

    // Analytics are the owner's and the admin's: everyone else gets the 404 of nothing.
    let path = format!("/api/v1/streams/{id}/analytics");
    assert_eq!(api.status(&path, None).await?, 404);
    assert_eq!(api.status(&path, Some(&bob)).await?, 404);
    assert_eq!(api.status(&path, Some(&vera)).await?, 404);
    assert_eq!(api.status(&path, Some(ADMIN_TOKEN)).await?, 200);
    assert_eq!(
        api.status("/api/v1/streams/zzzzzzzzzzzzzzzz/analytics", Some(&alice))
            .await?,
        404
    );
    assert_eq!(
        api.status(&format!("{path}?format=xml"), Some(&alice))
            .await?,
        400
    );

    // The creator's range: this stream, totals; bad dates and ranges are refused.
    let (status, mine) = api.get("/api/v1/me/analytics", Some(&alice)).await?;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["streams"][0]["stream_id"], id.as_str());
    assert_eq!(mine["totals"]["unique_viewers"], 2);
    assert_eq!(mine["totals"]["sales"][0]["orders"], 1);
    let (_, theirs) = api.get("/api/v1/me/analytics", Some(&bob)).await?;
    assert_eq!(theirs["streams"], json!([]));
    assert_eq!(api.status("/api/v1/me/analytics", Some(&vera)).await?, 403);
    for bad in [
        "from=yesterday",
        "to=0000-01-01T00:00:00Z",
        "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
        "from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
    ] {
        let (status, body) = api
            .get(&format!("/api/v1/me/analytics?{bad}"), Some(&alice))
            .await?;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    let (status, old) = api
        .get(
            "/api/v1/me/analytics?from=2020-01-01T00:00:00Z&to=2020-06-01T00:00:00Z",
            Some(&alice),
        )
        .await?;
    assert_eq!((status, old["streams"].clone()), (200, json!([])));

    // A restart loses nothing recorded.
    let before = analytics(&api, &alice, &id).await?;
    server.stop().await;
    let mut config = test_config(&server.data_dir());
    config.analytics.step = STEP;
    let app = livefront::app::App::start(config).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let after = analytics(&api, &alice, &id).await?;
    assert_eq!(after["series"], before["series"]);
    assert_eq!(after["summary"], before["summary"]);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_stream_keeps_the_series_recorded_so_far() -> Result<()> {
    let mut server = Server::start_with(|c| c.analytics.step = STEP).await?;
    let api = server.api.clone();
    let alice = api.create_creator("alice").await?;
    let stream = api.create_stream(&alice, "Cut short").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let _publisher = Publish::small(120.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &alice, &id, 1).await?;
    api.set_mode(&alice, &id, "public").await?;
    api.playlist_with_segments(&format!("/hls/{id}/source/index.m3u8"), 1)
        .await?;
    let mut viewer = player(&api, &id)?;
    wait_for("a step with the player", DEADLINE, || async {
        let r = analytics(&api, &alice, &id).await.ok()?;
        series(&r).iter().any(|p| p["players"] == 1).then_some(())
    })
    .await?;
    // The server stops while the stream is live (and ends it, as a stop does).
    server.stop().await;
    viewer.kill().await?;
    let mut config = test_config(&server.data_dir());
    config.analytics.step = STEP;
    let app = livefront::app::App::start(config).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let r = analytics(&api, &alice, &id).await?;
    let points = series(&r);
    assert!(points.iter().any(|p| p["mode"] == "practice"), "{r}");
    assert!(points.iter().any(|p| p["players"] == 1), "{r}");
    assert_eq!(r["summary"]["unique_viewers"], 1, "{r}");
    assert!(r["summary"]["watch_time_s"].as_f64() >= Some(2.0), "{r}");
    app.stop().await;
    Ok(())
}
