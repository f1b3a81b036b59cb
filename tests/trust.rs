//! Trust and commerce: promo codes (visibility through practice → public → ended, redemption
//! races, idempotence), viewer reports and the admin queue, takedowns (the publisher is
//! disconnected and every URL of the stream hides it) and strikes.
mod common;

use anyhow::{Context, Result};
use common::*;
use livefront::store::StreamId;
use reqwest::Method;
use serde_json::{Value, json};

/// A viewer made straight in the store (open registration is limited to 10 a minute per address).
async fn viewer(server: &Server, handle: &str) -> Result<String> {
    let app = server.app.as_ref().context("running")?;
    let (_, token) = app.state.store.create_viewer(handle).await?;
    Ok(token)
}

async fn create_promo(api: &Api, token: &str, id: &str, body: Value) -> Result<(u16, Value)> {
    api.request(
        Method::POST,
        &format!("/api/v1/streams/{id}/promos"),
        Some(token),
        Some(body),
    )
    .await
}

async fn redeem(api: &Api, token: &str, code: &str) -> Result<(u16, Value)> {
    api.request(
        Method::POST,
        &format!("/api/v1/promos/{code}/redeem"),
        Some(token),
        None,
    )
    .await
}

/// The codes `token` sees on the stream (status, codes).
async fn visible_codes(api: &Api, token: Option<&str>, id: &str) -> Result<(u16, Vec<String>)> {
    let (status, v) = api
        .get(&format!("/api/v1/streams/{id}/promos"), token)
        .await?;
    let codes = v["promos"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["code"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((status, codes))
}

async fn takedown(api: &Api, token: &str, id: &str, reason: &str) -> Result<(u16, Value)> {
    api.request(
        Method::POST,
        &format!("/api/v1/admin/streams/{id}/takedown"),
        Some(token),
        Some(json!({"reason": reason, "policy": "counterfeit_goods"})),
    )
    .await
}

async fn wait_ended(api: &Api, token: &str, id: &str) -> Result<Value> {
    wait_for("the stream ended", DEADLINE, || async {
        let v = api.stream(token, id).await.ok()?;
        (v["state"] == "ended").then_some(v)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_only_promo_is_visible_only_while_public_and_live() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let fan = viewer(&server, "fan").await?;
    let late = viewer(&server, "late").await?;

    let (status, v) = create_promo(
        &api,
        &creator,
        &id,
        json!({"code": "Live10", "description": "10% off everything", "discount": "10%"}),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["live_only"].clone(), v["state"].clone()),
        (json!(true), json!("pending"))
    );
    let (status, v) = create_promo(
        &api,
        &creator,
        &id,
        json!({"code": "vod5", "description": "5 EUR off", "discount": "5.00 EUR", "live_only": false}),
    )
    .await?;
    assert_eq!(status, 201, "{v}");

    // Practice and live: the creator's eyes only.
    let mut publisher = Publish::small(120.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &creator, &id, 1).await?;
    assert_eq!(visible_codes(&api, Some(&fan), &id).await?.0, 404);
    assert_eq!(redeem(&api, &fan, "LIVE10").await?.0, 404);
    assert_eq!(redeem(&api, &fan, "VOD5").await?.0, 404);
    let (status, all) = visible_codes(&api, Some(&creator), &id).await?;
    assert_eq!((status, all), (200, vec!["Live10".into(), "vod5".into()]));

    // Public and live: both, announced on the live event channel, redeemable (any case), once
    // per viewer.
    let app = server.app.as_ref().context("running")?;
    let mut events = app.state.live.subscribe(&StreamId(id.clone()));
    api.set_mode(&creator, &id, "public").await?;
    for code in ["Live10", "vod5"] {
        // The mode change itself is announced too (stream_state).
        let event = loop {
            let event = tokio::time::timeout(DEADLINE, events.recv()).await??;
            let event: Value = serde_json::from_str(&event)?;
            if event["type"] != "stream_state" {
                break event;
            }
        };
        assert_eq!(
            (event["type"].clone(), event["code"].clone()),
            (json!("promo_started"), json!(code)),
            "{event}"
        );
    }
    let (status, codes) = visible_codes(&api, None, &id).await?;
    assert_eq!((status, codes), (200, vec!["Live10".into(), "vod5".into()]));
    let (status, first) = redeem(&api, &fan, "live10").await?;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["discount"], "10%");
    let (status, again) = redeem(&api, &fan, "LIVE10").await?;
    assert_eq!(
        (status, &again),
        (200, &first),
        "a second redeem is the same redemption"
    );

    // A code created now goes out on the live event channel.
    let (status, v) = create_promo(
        &api,
        &creator,
        &id,
        json!({"code": "FLASH", "description": "flash sale", "discount": "20%", "max_redemptions": 10}),
    )
    .await?;
    assert_eq!((status, v["state"].clone()), (201, json!("active")), "{v}");
    let event = tokio::time::timeout(DEADLINE, events.recv()).await??;
    let event: Value = serde_json::from_str(&event)?;
    assert_eq!(
        (
            event["type"].clone(),
            event["code"].clone(),
            event["discount"].clone()
        ),
        (json!("promo_started"), json!("FLASH"), json!("20%")),
        "{event}"
    );
    let (_, owner_view) = api
        .get(&format!("/api/v1/streams/{id}/promos"), Some(&creator))
        .await?;
    let live10 = &owner_view["promos"][0];
    assert_eq!(
        (live10["state"].clone(), live10["redemptions"].clone()),
        (json!("active"), json!(1)),
        "{owner_view}"
    );

    // Ended: the live-only codes are gone (410), the other one stays.
    api.end_stream(&creator, &id).await?;
    tokio::time::timeout(DEADLINE, publisher.wait()).await??;
    wait_ended(&api, &creator, &id).await?;
    let (status, codes) = visible_codes(&api, Some(&late), &id).await?;
    assert_eq!((status, codes), (200, vec!["vod5".to_string()]));
    let (status, v) = redeem(&api, &late, "LIVE10").await?;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (410, json!("gone")),
        "{v}"
    );
    assert_eq!(
        redeem(&api, &fan, "LIVE10").await?,
        (200, first),
        "still theirs"
    );
    assert_eq!(redeem(&api, &late, "VOD5").await?.0, 201);
    assert_eq!(redeem(&api, &late, "NOSUCHCODE").await?.0, 404);
    server.stop().await;
    Ok(())
}

/// A code made for a public stream before it goes live starts when the stream does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_stream_going_live_starts_its_live_only_codes() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    api.set_mode(&creator, &id, "public").await?;
    let (status, v) = create_promo(
        &api,
        &creator,
        &id,
        json!({"code": "EARLY20", "description": "20% for the first minutes", "discount": "20%"}),
    )
    .await?;
    assert_eq!((status, v["state"].clone()), (201, json!("pending")), "{v}");
    let app = server.app.as_ref().context("running")?;
    let mut events = app.state.live.subscribe(&StreamId(id.clone()));
    let publisher = Publish::small(4.0).spawn(&server.publish_url(&stream))?;
    let started = loop {
        let event = tokio::time::timeout(DEADLINE, events.recv()).await??;
        let event: Value = serde_json::from_str(&event)?;
        if event["type"] == "promo_started" {
            break event;
        }
    };
    assert_eq!(started["code"], "EARLY20", "{started}");
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_viewers_never_take_more_redemptions_than_there_are() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    api.set_mode(&creator, &id, "public").await?;

    // Validation first.
    for (body, expected) in [
        (
            json!({"code": "ab", "description": "d", "discount": "10%"}),
            400,
        ),
        (
            json!({"code": "OK_1", "description": "d", "discount": "110%"}),
            400,
        ),
        (
            json!({"code": "OK_1", "description": "d", "discount": "5 eur"}),
            400,
        ),
        (
            json!({"code": "OK_1", "description": "", "discount": "5 EUR"}),
            400,
        ),
        (
            json!({"code": "OK_1", "description": "d", "discount": "5 EUR", "max_redemptions": 0}),
            400,
        ),
    ] {
        let (status, v) = create_promo(&api, &creator, &id, body.clone()).await?;
        assert_eq!(status, expected, "{body}: {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let other = api.create_creator("other").await?;
    assert_eq!(
        create_promo(
            &api,
            &other,
            &id,
            json!({"code": "MINE", "description": "d", "discount": "1%"})
        )
        .await?
        .0,
        403
    );

    let viewers: Vec<String> = {
        let mut v = Vec::new();
        for i in 0..50 {
            v.push(viewer(&server, &format!("racer{i}")).await?);
        }
        v
    };
    for (code, max) in [("LAST1", 1u64), ("FEW3", 3)] {
        let (status, v) = create_promo(
            &api,
            &creator,
            &id,
            json!({"code": code, "description": "race", "discount": "50%", "live_only": false, "max_redemptions": max}),
        )
        .await?;
        assert_eq!(status, 201, "{v}");
        let mut racers = tokio::task::JoinSet::new();
        for token in viewers.clone() {
            let api = api.clone();
            racers.spawn(async move { redeem(&api, &token, code).await });
        }
        let (mut won, mut gone) = (0, 0);
        while let Some(result) = racers.join_next().await {
            match result??.0 {
                201 => won += 1,
                410 => gone += 1,
                other => anyhow::bail!("unexpected status {other}"),
            }
        }
        assert_eq!((won, gone), (max, 50 - max), "{code}");
        let (_, listed) = api
            .get(&format!("/api/v1/streams/{id}/promos"), Some(&creator))
            .await?;
        let p = listed["promos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"] == code)
            .cloned()
            .unwrap();
        assert_eq!(
            (p["redemptions"].clone(), p["state"].clone()),
            (json!(max), json!("exhausted"))
        );
        // Exhausted codes are not shown to viewers.
        let (_, codes) = visible_codes(&api, None, &id).await?;
        assert!(!codes.contains(&code.to_string()), "{codes:?}");
    }
    let (status, v) = create_promo(
        &api,
        &creator,
        &id,
        json!({"code": "last1", "description": "d", "discount": "1%"}),
    )
    .await?;
    assert_eq!(status, 409, "codes are unique per stream without case: {v}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takedown_mid_publish_disconnects_the_publisher_and_hides_every_url() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    let title = stream["title"].as_str().unwrap().to_string();
    let fan = viewer(&server, "fan").await?;
    api.request(
        Method::PUT,
        "/api/v1/creators/demo/follow",
        Some(&fan),
        None,
    )
    .await?;
    let product = api.create_product(&creator, "fake-bag").await?;
    api.set_carousel(&creator, &id, &[&product]).await?;
    create_promo(
        &api,
        &creator,
        &id,
        json!({"code": "BAGS", "description": "d", "discount": "10%", "live_only": false}),
    )
    .await?;

    // Public and live, with a product in focus (so a chapter and a clip exist).
    let mut publisher = Publish::small(300.0).spawn(&server.publish_url(&stream))?;
    api.set_mode(&creator, &id, "public").await?;
    let master = format!("{}/hls/{id}/master.m3u8", api.base);
    api.playlist_with_segments(&media_url(&master), 1).await?;
    let (status, v) = api.focus(&creator, &id, Some(&product)).await?;
    assert_eq!(status, 200, "{v}");
    api.playlist_with_segments(&media_url(&master), 3).await?;
    assert_eq!(api.status(&master, None).await?, 200);

    // Only the admin takes down.
    assert_eq!(takedown(&api, &creator, &id, "x").await?.0, 403);
    assert_eq!(takedown(&api, &fan, &id, "x").await?.0, 403);
    let (status, v) = takedown(&api, ADMIN_TOKEN, &id, "sells counterfeit bags").await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["active_strikes"], 1, "{v}");
    assert_eq!(takedown(&api, ADMIN_TOKEN, &id, "again").await?.0, 409);
    assert_eq!(
        takedown(&api, ADMIN_TOKEN, "zzzzzzzzzzzzzzzz", "x")
            .await?
            .0,
        404
    );

    // The publisher is disconnected and the stream ends (generous deadline, no timing assertion).
    let exit = tokio::time::timeout(DEADLINE, publisher.wait())
        .await
        .context("the publisher was not disconnected")??;
    tracing::info!(?exit, "publisher gone");
    let ended = wait_ended(&api, &creator, &id).await?;
    assert_eq!(ended["mode"], "practice", "{ended}");
    assert_eq!(
        ended["takedown"]["reason"], "sells counterfeit bags",
        "{ended}"
    );
    let recording = api.recording_ready(&creator, &id).await?;
    let clips = api.clips_cut(Some(&creator), &id, 1).await?;
    assert_eq!(clips[0]["state"], "ready", "{clips:?}");

    // The creator and the admin still see every URL.
    for token in [creator.as_str(), ADMIN_TOKEN] {
        for url in PER_STREAM {
            let url = url.replace("{id}", &id);
            let (status, body) = api.get_text(&url, Some(token)).await?;
            assert_eq!(status, 200, "{url} for the creator/admin: {body}");
        }
    }

    // Everyone else gets what an unknown id gets, everywhere; listings do not mention it.
    let other = api.create_creator("other").await?;
    let others: [(&str, Option<&str>); 3] = [
        ("anonymous", None),
        ("viewer", Some(&fan)),
        ("other creator", Some(&other)),
    ];
    let unknown = "zzzzzzzzzzzzzzzz";
    for (who, token) in others {
        for url in PER_STREAM {
            let expected = api.get_text(&url.replace("{id}", unknown), token).await?;
            let url = url.replace("{id}", &id);
            let got = api.get_text(&url, token).await?;
            assert_eq!(
                got, expected,
                "{who} on {url} must see what an unknown id gets"
            );
        }
        for url in LISTINGS {
            let (_, body) = api.get_text(url, token).await?;
            for secret in [id.as_str(), title.as_str()] {
                assert!(
                    !body.contains(secret),
                    "{who} on {url} sees {secret}: {body}"
                );
            }
        }
        // Signed links the creator holds do not open it for anyone else.
        let (_, clips) = api
            .get(&format!("/api/v1/streams/{id}/clips"), Some(&creator))
            .await?;
        for link in [
            recording["download_url"]
                .as_str()
                .context("recording link")?,
            clips["clips"][0]["download_url"]
                .as_str()
                .context("clip link")?,
        ] {
            let link = link.replace("http://localhost", "http://127.0.0.1");
            let got = api.status(&link, token).await?;
            assert_eq!(got, 404, "{who} on a signed link {link}");
        }
        assert_eq!(redeem(&api, &fan, "BAGS").await?.0, 404);
    }

    // It stays down: no way back to public. The creator sees the strike and its reason.
    let (status, v) = api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{id}/mode"),
            Some(&creator),
            Some(json!({"mode": "public"})),
        )
        .await?;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (409, json!("conflict")),
        "{v}"
    );
    let (status, v) = api.get("/api/v1/me/violations", Some(&creator)).await?;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (
            v["violations"][0]["stream_id"].clone(),
            v["violations"][0]["reason"].clone(),
            v["violations"][0]["policy"].clone(),
            v["active_strikes"].clone(),
        ),
        (
            json!(id),
            json!("sells counterfeit bags"),
            json!("counterfeit_goods"),
            json!(1)
        ),
        "{v}"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strikes_block_going_public_until_an_admin_clears_them() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let creator = api.create_creator("striker").await?;
    let mut downed = Vec::new();
    for i in 0..3 {
        let s = api.create_stream(&creator, &format!("stream {i}")).await?;
        let id = s["id"].as_str().unwrap().to_string();
        let (status, v) = takedown(&api, ADMIN_TOKEN, &id, &format!("reason {i}")).await?;
        assert_eq!(status, 200, "{v}");
        downed.push(id);
    }
    let (_, v) = api.get("/api/v1/me/violations", Some(&creator)).await?;
    assert_eq!(
        (
            v["active_strikes"].clone(),
            v["max_strikes"].clone(),
            v["can_go_public"].clone()
        ),
        (json!(3), json!(3), json!(false)),
        "{v}"
    );
    assert_eq!(
        v["violations"][0]["reason"], "reason 2",
        "newest first: {v}"
    );

    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&creator),
            Some(json!({"title": "comeback", "mode": "public"})),
        )
        .await?;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("strikes"),
        "{v}"
    );
    let fresh = api.create_stream(&creator, "practice first").await?;
    let fresh = fresh["id"].as_str().unwrap().to_string();
    let set_public = |id: String| {
        let (api, creator) = (api.clone(), creator.clone());
        async move {
            api.request(
                Method::PUT,
                &format!("/api/v1/streams/{id}/mode"),
                Some(&creator),
                Some(json!({"mode": "public"})),
            )
            .await
        }
    };
    assert_eq!(set_public(fresh.clone()).await?.0, 409);

    // Only the admin clears; then the creator may go public again (but taken-down streams stay down).
    let clear = "/api/v1/admin/creators/striker/strikes";
    assert_eq!(
        api.request(Method::DELETE, clear, Some(&creator), None)
            .await?
            .0,
        403
    );
    assert_eq!(
        api.request(
            Method::DELETE,
            "/api/v1/admin/creators/nobody/strikes",
            Some(ADMIN_TOKEN),
            None
        )
        .await?
        .0,
        404
    );
    let (status, v) = api
        .request(Method::DELETE, clear, Some(ADMIN_TOKEN), None)
        .await?;
    assert_eq!((status, v), (200, json!({"cleared": 3})));
    assert_eq!(set_public(fresh).await?.0, 200);
    assert_eq!(set_public(downed[0].clone()).await?.0, 409);
    let (_, v) = api.get("/api/v1/me/violations", Some(&creator)).await?;
    assert_eq!(
        (v["active_strikes"].clone(), v["can_go_public"].clone()),
        (json!(0), json!(true))
    );
    assert!(v["violations"][0]["cleared_at"].is_string(), "{v}");
    server.stop().await;
    Ok(())
}

/// With `policy.max_strikes = 1` a single takedown blocks going public.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_strikes_is_configurable() -> Result<()> {
    let mut server = Server::start_with(|c| c.policy.max_strikes = 1).await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let s = api.create_stream(&creator, "one").await?;
    takedown(&api, ADMIN_TOKEN, s["id"].as_str().unwrap(), "r").await?;
    let (status, _) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&creator),
            Some(json!({"title": "two", "mode": "public"})),
        )
        .await?;
    assert_eq!(status, 409);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_one_per_viewer_and_target_and_queued_for_the_admin() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let public = api.create_stream(&creator, "public one").await?;
    let public = public["id"].as_str().unwrap().to_string();
    api.set_mode(&creator, &public, "public").await?;
    let practice = server.demo_stream["id"].as_str().unwrap().to_string();
    let (a, b) = (
        viewer(&server, "alice_v").await?,
        viewer(&server, "bob_v").await?,
    );
    let report = |token: String, target: Value| {
        let api = api.clone();
        async move {
            api.request(
                Method::POST,
                "/api/v1/reports",
                Some(&token),
                Some(json!({"target": target, "reason": "fake goods"})),
            )
            .await
        }
    };

    let (status, first) = report(a.clone(), json!({"stream_id": public})).await?;
    assert_eq!(status, 201, "{first}");
    let (status, again) = report(a.clone(), json!({"stream_id": public})).await?;
    assert_eq!(
        (status, again["id"].clone()),
        (200, first["id"].clone()),
        "one per viewer and target"
    );
    assert_eq!(
        report(b.clone(), json!({"stream_id": public})).await?.0,
        201
    );
    assert_eq!(
        report(a.clone(), json!({"chat_message_id": "msg_42"}))
            .await?
            .0,
        201
    );
    // A practice stream is not there for viewers; bad targets; only viewers report.
    let (status, v) = report(a.clone(), json!({"stream_id": practice})).await?;
    assert_eq!(
        (status, v["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    assert_eq!(
        report(
            a.clone(),
            json!({"stream_id": public, "chat_message_id": "m"})
        )
        .await?
        .0,
        400
    );
    assert_eq!(report(a.clone(), json!({})).await?.0, 400);
    assert_eq!(
        report(creator.clone(), json!({"stream_id": public}))
            .await?
            .0,
        403
    );

    assert_eq!(api.status("/api/v1/admin/reports", Some(&a)).await?, 403);
    assert_eq!(
        api.status("/api/v1/admin/reports", Some(&creator)).await?,
        403
    );
    let (status, queue) = api.get("/api/v1/admin/reports", Some(ADMIN_TOKEN)).await?;
    assert_eq!(status, 200, "{queue}");
    let rows: Vec<(Value, Value, Value)> = queue["reports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["target"].clone(),
                r["reporter"].clone(),
                r["target_reports"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                json!({"chat_message_id": "msg_42"}),
                json!("alice_v"),
                json!(1)
            ),
            (json!({"stream_id": public}), json!("bob_v"), json!(2)),
            (json!({"stream_id": public}), json!("alice_v"), json!(2)),
        ],
        "newest first, with counts per target"
    );
    let (_, page) = api
        .get("/api/v1/admin/reports?limit=2", Some(ADMIN_TOKEN))
        .await?;
    assert_eq!(page["reports"].as_array().unwrap().len(), 2);
    let next = page["next_before"].as_i64().context("next_before")?;
    let (_, rest) = api
        .get(
            &format!("/api/v1/admin/reports?limit=2&before={next}"),
            Some(ADMIN_TOKEN),
        )
        .await?;
    assert_eq!(rest["reports"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["reports"][0]["reporter"], "alice_v");
    server.stop().await;
    Ok(())
}
