//! Flash sales and auctions on a live stream, end to end: real publisher, real store, real HTTP
//! clients racing each other; claims and bids reach the shop as signed webhooks; sales and bids
//! are dated into the live and the VOD playlists.
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use common::hooks::{Received, receiver};
use common::ws::{LiveClient, Token};
use common::*;
use livefront::output::daterange::Marker;
use livefront::streams::sales::auction::{self, Bid, Rules};
use livefront::webhooks::signature;
use reqwest::Method;
use serde_json::{Value, json};

const SHOP_SECRET: &str = "shop-secret-for-tests-0123";

/// A webhook of the creator for `events` at the receiver; its secret.
async fn hook(api: &Api, token: &str, addr: SocketAddr, events: &[&str]) -> Result<String> {
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/webhooks",
            Some(token),
            Some(json!({"url": format!("http://{addr}/hook"), "events": events})),
        )
        .await?;
    anyhow::ensure!(status == 201, "{v}");
    Ok(v["secret"].as_str().context("secret")?.to_string())
}

/// Deliveries of `event` verified with `secret`, as JSON bodies.
fn delivered(got: &Received, event: &str, secret: &str) -> Vec<Value> {
    let now = Utc::now().timestamp();
    got.lock()
        .unwrap()
        .iter()
        .filter(|(e, _, _)| e == event)
        .map(|(_, sig, body)| {
            signature::verify(secret.as_bytes(), sig, body.as_bytes(), now)
                .expect("signed with the webhook's secret");
            serde_json::from_str(body).unwrap()
        })
        .collect()
}

/// Viewers straight from the store (registration over HTTP is limited per address).
async fn viewers(server: &Server, prefix: &str, n: usize) -> Result<Vec<(String, String)>> {
    let store = &server.app.as_ref().context("running")?.state.store;
    let mut out = Vec::new();
    for i in 0..n {
        let handle = format!("{prefix}{i}");
        let (_, token) = store.create_viewer(&handle).await?;
        out.push((handle, token));
    }
    Ok(out)
}

/// A public live stream with one product in its carousel: (stream id, product id, publisher).
async fn live_public_stream(
    server: &Server,
    mode: &str,
) -> Result<(String, String, tokio::process::Child)> {
    let (api, token) = (&server.api, &server.demo_token);
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().unwrap().to_string();
    api.set_mode(token, &id, mode).await?;
    let product = api.create_product(token, "SALE-1").await?;
    api.set_carousel(token, &id, &[&product]).await?;
    let publisher = Publish::small(600.0).spawn(&server.publish_url(&stream))?;
    source_segments(api, token, &id, 1).await?;
    Ok((id, product, publisher))
}

async fn post(api: &Api, path: &str, token: Option<&str>, body: Value) -> Result<(u16, Value)> {
    api.request(Method::POST, path, token, Some(body)).await
}

/// The shop confirms a reservation (signed with the shop secret).
async fn confirm(api: &Api, reservation: &str, order: &str, secret: &str) -> Result<(u16, Value)> {
    let body = serde_json::to_vec(&json!({ "order_id": order }))?;
    let sig = signature::sign(secret.as_bytes(), Utc::now().timestamp(), &body);
    let resp = api
        .http
        .post(api.url(&format!(
            "/api/v1/flash-sales/reservations/{reservation}/confirm"
        )))
        .header("Content-Type", "application/json")
        .header(signature::HEADER, sig)
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

/// The DATERANGE markers of a playlist.
fn markers(text: &str) -> Vec<Marker> {
    text.lines().filter_map(Marker::parse_line).collect()
}

/// Every rendition directory of the stream's masters (low-latency and MPEG-TS).
async fn renditions(api: &Api, id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for master in ["master.m3u8", "master-ts.m3u8"] {
        let (_, text) = api.get_text(&format!("/hls/{id}/{master}"), None).await?;
        out.extend(
            text.lines()
                .filter_map(|l| l.split_once("/index.m3u8"))
                .map(|(dir, _)| dir.to_string()),
        );
    }
    anyhow::ensure!(!out.is_empty(), "no renditions");
    Ok(out)
}

/// Waits until every rendition's `list` (event.m3u8 live, index.m3u8 after the end) has the
/// marker `id`; returns it from each.
async fn marker_everywhere(
    api: &Api,
    token: &str,
    stream: &str,
    renditions: &[String],
    list: &str,
    id: &str,
) -> Result<Vec<Marker>> {
    let mut found = Vec::new();
    for r in renditions {
        let path = format!("/hls/{stream}/{r}/{list}");
        let m = wait_for(&format!("marker {id} in {path}"), DEADLINE, || async {
            let (status, text) = api.get_text(&path, Some(token)).await.ok()?;
            (status == 200)
                .then(|| markers(&text).into_iter().find(|m| m.id == id))
                .flatten()
        })
        .await?;
        found.push(m);
    }
    Ok(found)
}

/// Like [`marker_everywhere`], once the marker has its end everywhere.
async fn ended_marker_everywhere(
    api: &Api,
    token: &str,
    stream: &str,
    renditions: &[String],
    list: &str,
    id: &str,
) -> Result<Vec<Marker>> {
    let mut found = Vec::new();
    for r in renditions {
        let path = format!("/hls/{stream}/{r}/{list}");
        let m = wait_for(&format!("the end of {id} in {path}"), DEADLINE, || async {
            let (status, text) = api.get_text(&path, Some(token)).await.ok()?;
            (status == 200)
                .then(|| {
                    markers(&text)
                        .into_iter()
                        .find(|m| m.id == id && m.end.is_some())
                })
                .flatten()
        })
        .await?;
        found.push(m);
    }
    Ok(found)
}

/// A viewer's notifications of `kind`.
async fn notifications_of(api: &Api, viewer: &str, kind: &str) -> Result<Vec<Value>> {
    let (status, feed) = api
        .get("/api/v1/me/notifications?limit=50", Some(viewer))
        .await?;
    anyhow::ensure!(status == 200, "{feed}");
    Ok(feed["notifications"]
        .as_array()
        .context("notifications")?
        .iter()
        .filter(|n| n["kind"] == kind)
        .cloned()
        .collect())
}

fn date(v: &Value) -> DateTime<Utc> {
    v.as_str().expect("a date").parse().expect("RFC 3339")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flash_sale_race_exactly_quantity_claims_succeed_reach_the_shop_and_are_dated_in_hls()
-> Result<()> {
    let mut server = Server::start_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.shop.secret = Some(SHOP_SECRET.into());
        c.sales.reservation_ttl = Duration::from_secs(4);
        c.sales.claims_per_minute = 100;
    })
    .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let (addr, got, _receiver) = receiver("127.0.0.1:0".parse()?).await?;
    let secret = hook(&api, &token, addr, &["flash_sale.claimed"]).await?;
    let (id, product, _publisher) = live_public_stream(&server, "public").await?;
    let mut channel = LiveClient::connect(&api, &id, Token::None).await?;

    const QUANTITY: usize = 5;
    // Long enough to outlast every step below on a loaded machine (it ran 70 s once, past a
    // 60 s sale); the sale closes with its stream at the end.
    const SALE_S: i64 = 300;
    let (status, sale) = post(
        &api,
        &format!("/api/v1/streams/{id}/flash-sales"),
        Some(&token),
        json!({"product_id": product, "discount_percent": 20, "quantity": QUANTITY,
               "per_viewer_limit": 1, "duration_s": SALE_S, "countdown_s": 3}),
    )
    .await?;
    assert_eq!(status, 201, "{sale}");
    assert_eq!(sale["price"], "10.00", "20% off 12.50");
    assert_eq!(sale["phase"], "scheduled");
    let sale_id = sale["id"].as_str().unwrap().to_string();
    assert_eq!(
        (date(&sale["ends_at"]) - date(&sale["starts_at"])).num_seconds(),
        SALE_S
    );
    let heard = channel.expect("flash_sale").await?;
    assert_eq!(heard["id"], sale["id"]);
    // Auctions come with a level (3 by default); this creator is at 1.
    let (status, v) = post(
        &api,
        &format!("/api/v1/streams/{id}/auctions"),
        Some(&token),
        json!({"product_id": product, "starting_price": "1.00", "increment": "0.10", "duration_s": 60}),
    )
    .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (403, Some("level_too_low")),
        "{v}"
    );
    assert_eq!(heard["phase"], "scheduled");

    let crowd = viewers(&server, "fan", 30).await?;
    let claim_path = format!("/api/v1/streams/{id}/flash-sales/{sale_id}/claim");
    let (status, early) = post(&api, &claim_path, Some(&crowd[0].1), json!({})).await?;
    assert_eq!(status, 425, "before starts_at: {early}");
    assert_eq!(early["error"]["code"], "not_started");

    // The server opens it at starts_at and says so.
    let opened = channel.expect("flash_sale").await?;
    assert_eq!(opened["phase"], "running", "{opened}");

    // Thirty viewers, each claiming twice at once: exactly QUANTITY claims succeed.
    let mut racing = tokio::task::JoinSet::new();
    for (_, viewer_token) in &crowd {
        for _ in 0..2 {
            let (api, path, t) = (api.clone(), claim_path.clone(), viewer_token.clone());
            racing.spawn(async move { post(&api, &path, Some(&t), json!({})).await });
        }
    }
    let mut reservations = Vec::new();
    let mut refused = Vec::new();
    let mut expiries = std::collections::HashMap::new();
    while let Some(done) = racing.join_next().await {
        let (status, v) = done??;
        match status {
            201 => {
                let r = v["reservation_id"].as_str().unwrap().to_string();
                expiries.insert(r.clone(), date(&v["expires_at"]));
                reservations.push(r);
            }
            409 => refused.push(v["error"]["code"].as_str().unwrap().to_string()),
            other => anyhow::bail!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(
        reservations.len(),
        QUANTITY,
        "exactly the quantity: {refused:?}"
    );
    assert!(refused.iter().all(|c| c == "sold_out" || c == "over_limit"));
    let (_, state) = api
        .get(&format!("/api/v1/streams/{id}/flash-sales/{sale_id}"), None)
        .await?;
    assert_eq!(state["remaining"], 0);
    assert_eq!(state["phase"], "sold_out");
    // When it sold out: on the server's clock and on the picture's.
    let sold_out_pdt = date(&state["sold_out_program_date_time"]);
    assert!(
        date(&state["sold_out_at"]) >= date(&state["starts_at"]),
        "{state}"
    );
    assert!(
        sold_out_pdt >= date(&state["starts_program_date_time"])
            && sold_out_pdt < date(&state["ends_program_date_time"]),
        "{state}"
    );

    // Each claimer has a confirmation in their notifications, with their reservation (written
    // by the notifier after the claim: wait for as many as there were claims).
    let mut noted = wait_for("a notification per claim", DEADLINE, || async {
        let mut noted = Vec::new();
        for (_, viewer_token) in &crowd {
            for n in notifications_of(&api, viewer_token, "flash_sale_claimed")
                .await
                .ok()?
            {
                assert_eq!(n["stream_id"], id.as_str());
                assert_eq!(n["detail"]["sale_id"], sale_id.as_str());
                assert_eq!(n["detail"]["price"], "10.00");
                noted.push(n["detail"]["reservation_id"].as_str().unwrap().to_string());
            }
        }
        (noted.len() >= QUANTITY).then_some(noted)
    })
    .await?;
    noted.sort();
    let mut reserved = reservations.clone();
    reserved.sort();
    assert_eq!(noted, reserved, "one entry per claim, for its claimer");

    // Every claim reached the shop, signed, with its reservation.
    let claims = wait_for("flash_sale.claimed deliveries", DEADLINE, || async {
        let d = delivered(&got, "flash_sale.claimed", &secret);
        (d.len() >= QUANTITY).then_some(d)
    })
    .await?;
    let mut webhook_ids: Vec<String> = claims
        .iter()
        .map(|c| c["data"]["reservation_id"].as_str().unwrap().to_string())
        .collect();
    webhook_ids.sort();
    reservations.sort();
    assert_eq!(webhook_ids, reservations);
    assert_eq!(claims[0]["data"]["price"], "10.00");

    // The shop confirms all but one; unsigned confirmations are refused.
    let (status, _) = api
        .request(
            Method::POST,
            &format!(
                "/api/v1/flash-sales/reservations/{}/confirm",
                reservations[0]
            ),
            None,
            Some(json!({"order_id": "o-x"})),
        )
        .await?;
    assert_eq!(status, 401);
    for (i, r) in reservations.iter().enumerate().skip(1) {
        let (status, v) = confirm(&api, r, &format!("order-{i}"), SHOP_SECRET).await?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["state"], "confirmed");
    }
    let (status, _) = confirm(&api, &reservations[1], "order-1", SHOP_SECRET).await?;
    assert_eq!(status, 200, "the same confirmation again");
    // The unconfirmed one expires and gives its unit back, announced on the live channel.
    let back = loop {
        let v = channel.expect("flash_sale").await?;
        if v["remaining"] == 1 && date(&v["server_time"]) >= expiries[&reservations[0]] {
            break v;
        }
    };
    assert_eq!(back["phase"], "running");
    let (status, v) = confirm(&api, &reservations[0], "order-late", SHOP_SECRET).await?;
    assert_eq!(status, 410, "{v}");
    assert_eq!(v["error"]["code"], "reservation_expired");

    // The sale is dated into every rendition's live playlist in its own class, at the date the
    // API announced.
    let renditions = renditions(&api, &id).await?;
    let marker_id = sale["marker_id"].as_str().unwrap();
    for m in marker_everywhere(&api, &token, &id, &renditions, "event.m3u8", marker_id).await? {
        assert_eq!(m.class, "com.livefront.flash-sale");
        assert!(
            (m.start - date(&sale["starts_program_date_time"]))
                .num_milliseconds()
                .abs()
                <= 1,
            "{m:?} vs {sale}"
        );
        assert!(
            m.attributes
                .contains(&("X-SALE-ID".into(), sale_id.clone()))
        );
    }

    // It sold out long before its scheduled end: the marker ends where it sold out (a unit
    // given back later reopens claims, not the marker).
    let at_sold_out = |m: &Marker| {
        m.end
            .is_some_and(|end| (end - sold_out_pdt).num_milliseconds().abs() <= 1)
    };
    for m in
        ended_marker_everywhere(&api, &token, &id, &renditions, "event.m3u8", marker_id).await?
    {
        assert!(at_sold_out(&m), "{m:?} sold out at {sold_out_pdt}");
    }

    // After the end, the VOD keeps it, ending where it sold out.
    api.end_stream(&token, &id).await?;
    api.recording_ready(&token, &id).await?;
    for m in marker_everywhere(&api, &token, &id, &renditions, "index.m3u8", marker_id).await? {
        assert_eq!(m.class, "com.livefront.flash-sale");
        assert!(at_sold_out(&m), "{m:?} sold out at {sold_out_pdt}");
    }
    let (_, over) = api
        .get(&format!("/api/v1/streams/{id}/flash-sales/{sale_id}"), None)
        .await?;
    assert_eq!(over["phase"], "ended", "closed with its stream: {over}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auction_race_bids_increase_snipes_extend_proxies_resolve_and_the_log_replays() -> Result<()>
{
    let mut server = Server::start_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.sales.bids_per_second = 1000;
        // Auctions are a level benefit: from the first level here.
        c.commerce.levels.benefits.insert("auctions".into(), 1);
    })
    .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let (addr, got, _receiver) = receiver("127.0.0.1:0".parse()?).await?;
    let secret = hook(&api, &token, addr, &["auction.won"]).await?;
    let (id, product, _publisher) = live_public_stream(&server, "public").await?;
    let mut channel = LiveClient::connect(&api, &id, Token::None).await?;

    let (status, created) = post(
        &api,
        &format!("/api/v1/streams/{id}/auctions"),
        Some(&token),
        json!({"product_id": product, "starting_price": "5.00",
               "increments": [{"from": "0", "step": "0.50"}, {"from": "20", "step": "1"}],
               "duration_s": 12, "extend_on_bid_s": 4}),
    )
    .await?;
    assert_eq!(status, 201, "{created}");
    let auction = created["id"].as_str().unwrap().to_string();
    let original_end = date(&created["ends_at"]);
    let bids_path = format!("/api/v1/streams/{id}/auctions/{auction}/bids");

    // A proxy bidder first: 30.00 at most; it leads at the starting price.
    let people = viewers(&server, "bidder", 8).await?;
    let (proxy_handle, proxy_token) = people[0].clone();
    let (status, v) = post(
        &api,
        &bids_path,
        Some(&proxy_token),
        json!({"max_amount": "30.00"}),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["price"].as_str(), v["leader"].as_str()),
        (Some("5.00"), Some(proxy_handle.as_str()))
    );
    // A plain bid below the maximum: the proxy answers one step above it and still leads.
    let (status, v) = post(
        &api,
        &bids_path,
        Some(&people[1].1),
        json!({"amount": "10.00"}),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    assert_eq!(
        (v["price"].as_str(), v["leader"].as_str()),
        (Some("10.50"), Some(proxy_handle.as_str()))
    );
    let (status, v) = post(
        &api,
        &bids_path,
        Some(&people[1].1),
        json!({"amount": "10.60"}),
    )
    .await?;
    assert_eq!(status, 409, "not the increment above 10.50: {v}");
    assert_eq!(v["error"]["code"], "bid_too_low");
    let (status, v) = post(
        &api,
        &bids_path,
        Some(&proxy_token),
        json!({"amount": "12.00"}),
    )
    .await?;
    assert_eq!(status, 409, "{v}");
    assert_eq!(v["error"]["code"], "already_leading");

    // The live channel is read all along (a client that falls behind is dropped).
    let listening = tokio::spawn(async move {
        let mut events = Vec::new();
        loop {
            let v = channel.expect("auction").await?;
            let over = v["phase"] == "ended";
            events.push(v);
            if over {
                return anyhow::Ok(events);
            }
        }
    });

    // Seven bidders race with the minimum bid until two seconds past the original end (so that
    // the last ones snipe), then the auction runs out.
    let stop = original_end + chrono::TimeDelta::seconds(2);
    let mut racing = tokio::task::JoinSet::new();
    for (_, t) in people.iter().skip(1) {
        let (api, t, path) = (api.clone(), t.clone(), bids_path.clone());
        let state_path = format!("/api/v1/streams/{id}/auctions/{auction}");
        racing.spawn(async move {
            let mut accepted = Vec::new();
            loop {
                let (_, s) = api.get(&state_path, None).await?;
                if s["phase"] == "ended" || Utc::now() > stop {
                    return anyhow::Ok(accepted);
                }
                let (status, v) =
                    post(&api, &path, Some(&t), json!({"amount": s["minimum_bid"]})).await?;
                match status {
                    201 => accepted.push(v),
                    409 | 410 => {}
                    other => anyhow::bail!("unexpected {other}: {v}"),
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        });
    }
    let mut accepted = Vec::new();
    while let Some(done) = racing.join_next().await {
        accepted.extend(done??);
    }
    anyhow::ensure!(accepted.len() >= 4, "the race made bids: {accepted:?}");

    // Every event, in order: bids numbered 1, 2, 3 … and the price strictly increasing.
    let mut events = listening.await??;
    let ended = events.pop().context("the end")?;
    let bids: Vec<&Value> = events
        .iter()
        .filter_map(|e| e["last_bid"].as_object().map(|_| &e["last_bid"]))
        .collect();
    let seqs: Vec<u64> = bids.iter().map(|b| b["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "in arrival order, no gaps"
    );
    let cents = |s: &Value| -> i64 {
        livefront::store::money::to_minor(s.as_str().unwrap(), "EUR").unwrap()
    };
    let prices: Vec<i64> = bids.iter().map(|b| cents(&b["price"])).collect();
    assert!(
        prices.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {prices:?}"
    );

    // Anti-sniping: a bid within the last 4 s moved the end to 4 s after it.
    let extended: Vec<&&Value> = bids.iter().filter(|b| b["extended"] == true).collect();
    assert!(!extended.is_empty(), "the race bid in the last seconds");
    for e in events.iter().filter(|e| e["last_bid"]["extended"] == true) {
        assert_eq!(
            date(&e["ends_at"]) - date(&e["last_bid"]["at"]),
            chrono::TimeDelta::seconds(4)
        );
    }
    assert!(date(&ended["ends_at"]) > original_end, "{ended}");

    // The winner is what the stored bid log replays to.
    let (status, log) = api.get(&bids_path, Some(&token)).await?;
    assert_eq!(status, 200, "{log}");
    let rules: Rules = serde_json::from_value(log["rules"].clone())?;
    let log: Vec<Bid> = serde_json::from_value(log["bids"].clone())?;
    assert_eq!(log.len(), seqs.len());
    let replayed = auction::replay(&rules, &log).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let (_, over) = api
        .get(&format!("/api/v1/streams/{id}/auctions/{auction}"), None)
        .await?;
    assert_eq!(over["phase"], "ended");
    let winner = &over["winner"];
    assert_eq!(
        winner["handle"].as_str(),
        replayed.leader.as_ref().map(|l| l.handle.as_str())
    );
    assert_eq!(cents(&winner["amount"]), replayed.price_minor.unwrap());
    assert_eq!(date(&over["ends_at"]), replayed.ends_at);
    assert_eq!(ended["winner"], over["winner"]);
    // The proxy's maximum (30.00) was beaten only by bids above it.
    if winner["handle"] == proxy_handle.as_str() {
        assert!(cents(&winner["amount"]) <= 3000);
    } else {
        assert!(cents(&winner["amount"]) > 3000, "{winner}");
    }

    // The shop hears who won, signed.
    let won = wait_for("auction.won", DEADLINE, || async {
        delivered(&got, "auction.won", &secret).into_iter().next()
    })
    .await?;
    assert_eq!(won["data"]["auction_id"], auction.as_str());
    assert_eq!(won["data"]["winner"], winner["handle"]);
    assert_eq!(won["data"]["amount"], winner["amount"]);

    // Bids after the end are refused.
    let (status, v) = post(
        &api,
        &bids_path,
        Some(&people[2].1),
        json!({"amount": "999.00"}),
    )
    .await?;
    assert_eq!(status, 410, "{v}");

    // Every accepted bid is a DATERANGE marker, live and in the VOD.
    let renditions = renditions(&api, &id).await?;
    let first = bids[0]["marker_id"].as_str().unwrap();
    let last = bids.last().unwrap()["marker_id"].as_str().unwrap();
    for bid in [bids[0], bids[bids.len() - 1]] {
        let marker = bid["marker_id"].as_str().unwrap();
        for m in marker_everywhere(&api, &token, &id, &renditions, "event.m3u8", marker).await? {
            assert_eq!(m.class, "com.livefront.auction-bid");
            // Dated where the event said: the picture the host showed when the bid arrived.
            let announced = date(&bid["program_date_time"]);
            assert!(
                (m.start - announced).num_milliseconds().abs() <= 1,
                "{m:?} vs {bid}"
            );
            assert_eq!(m.end, Some(m.start), "an instant");
        }
    }
    api.end_stream(&token, &id).await?;
    api.recording_ready(&token, &id).await?;
    for marker in [first, last, created["marker_id"].as_str().unwrap()] {
        let found = marker_everywhere(&api, &token, &id, &renditions, "index.m3u8", marker).await?;
        assert!(found.iter().all(|m| m.end.is_some()), "{found:?}");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sales_and_auctions_refuse_abuse() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.sales.claims_per_minute = 3;
        c.sales.bids_per_second = 1;
        c.sales.max_open_sales = 1;
        c.commerce.levels.benefits.insert("auctions".into(), 1);
    })
    .await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    let sales = format!("/api/v1/streams/{id}/flash-sales");
    let auctions = format!("/api/v1/streams/{id}/auctions");
    let product = api.create_product(&token, "P-1").await?;
    api.set_carousel(&token, &id, &[&product]).await?;
    let body = |product: &str, extra: Value| {
        let mut body =
            json!({"product_id": product, "price": "9.99", "quantity": 3, "duration_s": 60});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let (status, v) = post(&api, &sales, Some(&token), body(&product, json!({}))).await?;
    assert_eq!(status, 409, "not live: {v}");
    assert_eq!(v["error"]["code"], "not_live");

    let (id2, product, _publisher) = live_public_stream(&server, "practice").await?;
    assert_eq!(id2, id);
    let sale = |extra: Value| body(&product, extra);
    let (status, v) = post(&api, &sales, Some(&token), sale(json!({}))).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (409, Some("not_public")),
        "{v}"
    );

    // A practice stream's auction: its creator rehearses it; viewers cannot see or bid (404).
    let crowd = viewers(&server, "v", 3).await?;
    let (status, a) = post(
        &api,
        &auctions,
        Some(&token),
        json!({"product_id": product, "starting_price": "1.00", "increment": "0.10", "duration_s": 60}),
    )
    .await?;
    assert_eq!(status, 201, "{a}");
    let auction = a["id"].as_str().unwrap();
    let auction_path = format!("{auctions}/{auction}");
    assert_eq!(api.status(&auction_path, Some(&crowd[0].1)).await?, 404);
    let (status, _) = post(
        &api,
        &format!("{auction_path}/bids"),
        Some(&crowd[0].1),
        json!({"amount": "1.00"}),
    )
    .await?;
    assert_eq!(status, 404, "no bids on a practice stream");

    api.set_mode(&token, &id, "public").await?;
    // Bounds and money.
    for (extra, why) in [
        (json!({"countdown_s": 301}), "countdown"),
        (json!({"duration_s": 30}), "too short"),
        (json!({"duration_s": 1201}), "too long"),
        (json!({"quantity": 0}), "no units"),
        (json!({"per_viewer_limit": 4}), "limit above quantity"),
        (json!({"price": "12.50"}), "not below the list price"),
        (json!({"price": "-1"}), "negative"),
        (json!({"price": "1.001"}), "more decimals than EUR"),
        (json!({"price": "1e3"}), "not a decimal"),
        (
            json!({"price": null, "discount_percent": 95}),
            "discount too deep",
        ),
        (json!({"discount_percent": 10}), "both price and discount"),
        (json!({"product_id": "nope"}), "not a carousel product"),
    ] {
        let (status, v) = post(&api, &sales, Some(&token), sale(extra)).await?;
        assert_eq!(status, 400, "{why}: {v}");
    }
    for (body, why) in [
        (
            json!({"product_id": product, "starting_price": "0", "increment": "1", "duration_s": 60}),
            "free",
        ),
        (
            json!({"product_id": product, "starting_price": "1", "increment": "0", "duration_s": 60}),
            "no step",
        ),
        (
            json!({"product_id": product, "starting_price": "1", "duration_s": 60}),
            "no increment",
        ),
        (
            json!({"product_id": product, "starting_price": "1", "increments": [{"from": "5", "step": "1"}], "duration_s": 60}),
            "table not from 0",
        ),
        (
            json!({"product_id": product, "starting_price": "1", "increment": "1", "duration_s": 5}),
            "too short",
        ),
        (
            json!({"product_id": product, "starting_price": "1", "increment": "1", "duration_s": 60, "sudden_death": true, "extend_on_bid_s": 5}),
            "sudden death never extends",
        ),
    ] {
        let (status, v) = post(&api, &auctions, Some(&token), body).await?;
        assert_eq!(status, 400, "{why}: {v}");
    }

    // Another creator cannot start a sale on this stream.
    let other = api.create_creator("mallory").await?;
    let (status, _) = post(&api, &sales, Some(&other), sale(json!({}))).await?;
    assert_eq!(status, 403);
    let (status, _) = post(
        &api,
        &auctions,
        Some(&other),
        json!({"product_id": product, "starting_price": "1.00", "increment": "0.10", "duration_s": 60}),
    )
    .await?;
    assert_eq!(status, 403);

    let (status, s) = post(
        &api,
        &sales,
        Some(&token),
        sale(json!({"quantity": 10, "per_viewer_limit": 10})),
    )
    .await?;
    assert_eq!(status, 201, "{s}");
    let (status, v) = post(&api, &sales, Some(&token), sale(json!({}))).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("too_many_open")),
        "{v}"
    );
    let claim = format!("{sales}/{}/claim", s["id"].as_str().unwrap());
    // Creators do not claim; unknown sales are 404; claims are rate limited per viewer.
    assert_eq!(post(&api, &claim, Some(&token), json!({})).await?.0, 403);
    assert_eq!(
        post(
            &api,
            &format!("{sales}/zzzz/claim"),
            Some(&crowd[0].1),
            json!({})
        )
        .await?
        .0,
        404
    );
    assert_eq!(api.status(&format!("{sales}/zzzz"), None).await?, 404);
    assert_eq!(api.status(&format!("{auctions}/zzzz"), None).await?, 404);
    for _ in 0..3 {
        assert_eq!(
            post(&api, &claim, Some(&crowd[1].1), json!({})).await?.0,
            201
        );
    }
    let (status, v) = post(&api, &claim, Some(&crowd[1].1), json!({})).await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );

    // Bids: amounts validated, one per second per viewer.
    let bids = format!("{auction_path}/bids");
    for body in [
        json!({"amount": "abc"}),
        json!({"amount": "-1"}),
        json!({}),
        json!({"amount": "1", "max_amount": "2"}),
    ] {
        let (status, v) = post(&api, &bids, Some(&crowd[2].1), body).await?;
        assert_eq!(status, 400, "{v}");
    }
    assert_eq!(
        post(&api, &bids, Some(&crowd[2].1), json!({"amount": "1.00"}))
            .await?
            .0,
        201
    );
    let (status, v) = post(
        &api,
        &bids,
        Some(&crowd[2].1),
        json!({"max_amount": "5.00"}),
    )
    .await?;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );

    // Over the live channel: a viewer's bid is taken like the REST one; a refusal comes back to
    // the sender as an `error` event.
    let mut ws = LiveClient::connect(&api, &id, Token::Header(&crowd[0].1)).await?;
    ws.send_json(json!({"type": "bid", "auction_id": auction, "amount": "abc"}))
        .await?;
    let refused = loop {
        let v = ws.next().await?;
        if v["type"] == "error" {
            break v;
        }
    };
    assert_eq!(refused["code"], "bad_request", "{refused}");
    ws.send_json(json!({"type": "bid", "auction_id": auction, "amount": "1.10"}))
        .await?;
    let heard = loop {
        let v = ws.next().await?;
        if v["type"] == "auction" && v["bids"] == 2 {
            break v;
        }
    };
    assert_eq!(heard["leader"], crowd[0].0.as_str(), "{heard}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auction_open_when_the_server_is_killed_is_closed_with_its_stored_winner_at_the_restart()
-> Result<()> {
    let dir = tempfile::tempdir()?;
    let env = [
        ("LIVEFRONT_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "true"),
        ("LIVEFRONT_COMMERCE__LEVELS__BENEFITS__AUCTIONS", "1"),
    ];
    let server = Process::start_with_env(dir.path(), &env).await?;
    let api = server.api.clone();
    let token = api.create_creator("alice").await?;
    let (addr, got, _receiver) = receiver("127.0.0.1:0".parse()?).await?;
    let hook = api
        .ok(
            Method::POST,
            "/api/v1/webhooks",
            &token,
            Some(json!({"url": format!("http://{addr}/hook"), "events": ["auction.won"]})),
        )
        .await?;
    let (hook_id, secret) = (
        hook["id"].as_str().context("id")?.to_string(),
        hook["secret"].as_str().context("secret")?.to_string(),
    );
    let stream = api.create_stream(&token, "auction, then a crash").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    api.set_mode(&token, &id, "public").await?;
    let product = api.create_product(&token, "LOT-1").await?;
    api.set_carousel(&token, &id, &[&product]).await?;
    let key = stream["stream_key"].as_str().context("key")?;
    let mut publisher = Publish::small(600.0).spawn(&format!("{}/{key}", server.rtmp_url))?;
    source_segments(&api, &token, &id, 1).await?;
    let first = api.register_viewer("early_bidder").await?;
    let second = api.register_viewer("late_bidder").await?;

    // Ten minutes to go when the server dies, two bids in.
    let created = api
        .ok(
            Method::POST,
            &format!("/api/v1/streams/{id}/auctions"),
            &token,
            Some(
                json!({"product_id": product, "starting_price": "1.00", "increment": "0.50",
                        "duration_s": 600}),
            ),
        )
        .await?;
    let auction = created["id"].as_str().context("auction id")?.to_string();
    let bids = format!("/api/v1/streams/{id}/auctions/{auction}/bids");
    api.ok(Method::POST, &bids, &first, Some(json!({"amount": "1.00"})))
        .await?;
    let leading = api
        .ok(
            Method::POST,
            &bids,
            &second,
            Some(json!({"amount": "1.50"})),
        )
        .await?;
    assert_eq!(leading["leader"], "late_bidder");

    server.signal("KILL")?;
    let mut child = server.child;
    child.wait().await?;
    publisher.start_kill()?;
    publisher.wait().await?;
    assert!(got.lock().unwrap().is_empty(), "nothing was sent before");

    // At the restart the stream has ended, and the auction with it: the winner its stored bids
    // give is stored, shown, sent to the shop and told in the winner's notifications.
    let restarted = Process::start_with_env(dir.path(), &env).await?;
    let api = restarted.api.clone();
    let (_, over) = api
        .get(&format!("/api/v1/streams/{id}/auctions/{auction}"), None)
        .await?;
    assert_eq!(over["phase"], "ended", "{over}");
    assert_eq!(over["winner"]["handle"], "late_bidder", "{over}");
    assert_eq!(over["winner"]["amount"], "1.50", "{over}");
    let won = wait_for("auction.won after the restart", DEADLINE, || async {
        delivered(&got, "auction.won", &secret).into_iter().next()
    })
    .await?;
    assert_eq!(won["data"]["auction_id"], auction.as_str());
    assert_eq!(won["data"]["winner"], "late_bidder");
    assert_eq!(won["data"]["amount"], "1.50");
    let told = notifications_of(&api, &second, "auction_won").await?;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0]["detail"]["auction_id"], auction.as_str());
    assert_eq!(told[0]["detail"]["amount"], "1.50");
    assert_eq!(told[0]["detail"]["product"], "Product LOT-1");
    assert!(
        notifications_of(&api, &first, "auction_won")
            .await?
            .is_empty()
    );

    // Once: another restart (killed again) closes nothing twice.
    restarted.signal("KILL")?;
    let mut child = restarted.child;
    child.wait().await?;
    let again = Process::start_with_env(dir.path(), &env).await?;
    let api = again.api.clone();
    let listed = api
        .ok(
            Method::GET,
            &format!("/api/v1/webhooks/{hook_id}/deliveries"),
            &token,
            None,
        )
        .await?;
    assert_eq!(
        listed["deliveries"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    assert_eq!(
        notifications_of(&api, &second, "auction_won").await?.len(),
        1
    );
    let (_, still) = api
        .get(&format!("/api/v1/streams/{id}/auctions/{auction}"), None)
        .await?;
    assert_eq!(still["winner"], over["winner"]);
    again.signal("TERM")?;
    again.child.wait_with_output().await?;
    Ok(())
}
