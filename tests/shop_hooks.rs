//! Issue 23's shop hooks on a real server: a promo code redeemed by a viewer and carried on
//! purchases reaches the creator's earnings and the stream's analytics by code (never counted
//! twice); add-to-cart is counted per product, bounded per address and viewer, and fills the
//! shop's cart link with encoded values; "remind me" fires at the stream's scheduled time exactly
//! once, also when the server was down at that moment; the embeddable player is the only page
//! that may be framed.
mod common;

use anyhow::{Context, Result, ensure};
use chrono::{DateTime, SubsecRound, Utc};
use common::*;
use livefront::app::App;
use reqwest::Method;
use serde_json::{Value, json};

const SHOP_SECRET: &str = "shop-secret-for-tests-0123";

async fn purchase(api: &Api, body: &Value) -> Result<(u16, Value)> {
    let raw = serde_json::to_vec(body)?;
    let resp = api
        .http
        .post(api.url("/api/v1/purchases"))
        .header("Content-Type", "application/json")
        .header(
            "X-Livefront-Signature",
            shop_signature(SHOP_SECRET, Utc::now().timestamp(), &raw),
        )
        .body(raw)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn product(api: &Api, token: &str, sku: &str, price: &str) -> Result<String> {
    let p = api.ok(Method::POST,
        "/api/v1/products",
        token,
        Some(json!({"sku": sku, "title": format!("Product {sku}"), "price": price, "currency": "EUR", "url": "https://shop.example/p"})),
    )
    .await?;
    Ok(p["id"].as_str().context("product id")?.to_string())
}

/// Follows a share link of the stream; the attribution session id (the `lf_attr` cookie).
async fn attribution_session(api: &Api, creator: &str, stream: &str) -> Result<String> {
    let link = api
        .ok(
            Method::POST,
            &format!("/api/v1/streams/{stream}/links"),
            creator,
            None,
        )
        .await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = client
        .get(api.url(&format!("/s/{}", link["code"].as_str().context("code")?)))
        .send()
        .await?;
    let cookie = resp.headers()["set-cookie"].to_str()?.to_string();
    Ok(cookie
        .split(';')
        .next()
        .and_then(|c| c.strip_prefix("lf_attr="))
        .context("lf_attr")?
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promo_code_reaches_the_order_the_earnings_and_the_analytics_by_code() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.shop.secret = Some(SHOP_SECRET.into());
        c.shop.cart_url = Some(
            "https://shop.example/cart/add?sku={sku}&code={promo_code}&a={attribution}".into(),
        );
        c.shop.cart_adds_per_minute = 4;
    })
    .await?;
    let api = server.api.clone();
    let alice = api.create_creator("alice").await?;
    api.ok(
        Method::PATCH,
        "/api/v1/me",
        &alice,
        Some(json!({"associate_tag": "alice-20"})),
    )
    .await?;
    let lip = product(&api, &alice, "lip&gloss/1", "20.00").await?;
    let mug = product(&api, &alice, "mug", "10.00").await?;
    let other = product(&api, &alice, "other", "5.00").await?;
    let stream = api
        .ok(
            Method::POST,
            "/api/v1/streams",
            &alice,
            Some(json!({"title": "Spring", "mode": "public"})),
        )
        .await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    api.ok(
        Method::PUT,
        &format!("/api/v1/streams/{id}/products"),
        &alice,
        Some(json!({"product_ids": [lip, mug]})),
    )
    .await?;
    api.ok(Method::POST,
        &format!("/api/v1/streams/{id}/promos"),
        &alice,
        Some(json!({"code": "Spring10", "description": "Spring sale", "discount": "10%", "live_only": false})),
    )
    .await?;

    // One tap in the page: the viewer redeems for themselves (nobody can name another viewer),
    // and sees the discount.
    let vera = api.register_viewer("vera").await?;
    let (status, r) = api
        .request(
            Method::POST,
            &format!("/api/v1/promos/spring10/redeem?stream_id={id}"),
            Some(&vera),
            None,
        )
        .await?;
    assert_eq!(
        (status, r["discount"].as_str(), r["code"].as_str()),
        (201, Some("10%"), Some("Spring10")),
        "{r}"
    );
    let (status, _) = api
        .request(
            Method::POST,
            &format!("/api/v1/promos/spring10/redeem?stream_id={id}"),
            Some(&alice),
            None,
        )
        .await?;
    assert_eq!(status, 403, "a creator token redeems for nobody");
    let state = api
        .ok(
            Method::GET,
            &format!("/api/v1/streams/{id}/viewer"),
            &vera,
            None,
        )
        .await?;
    assert_eq!(state["creator"], "alice", "{state}");
    assert_eq!(state["viewer"]["redemption"]["code"], "Spring10", "{state}");

    // Add to cart: counted, the shop link filled with encoded values and the viewer's code.
    let cart = format!("/api/v1/streams/{id}/cart-adds");
    let added = api
        .ok(Method::POST, &cart, &vera, Some(json!({"product_id": lip})))
        .await?;
    assert_eq!(added["promo_code"], "Spring10", "{added}");
    assert_eq!(added["attribution"], "alice-20", "{added}");
    assert_eq!(added["product"]["id"], lip.as_str());
    assert_eq!(
        added["cart_url"],
        "https://shop.example/cart/add?sku=lip%26gloss%2F1&code=Spring10&a=alice-20",
        "{added}"
    );
    let (status, anon) = api
        .request(
            Method::POST,
            &cart,
            None,
            Some(json!({"product_id": mug, "embedded": true})),
        )
        .await?;
    assert_eq!((status, &anon["promo_code"]), (201, &Value::Null), "{anon}");
    let (status, _) = api
        .request(
            Method::POST,
            &cart,
            None,
            Some(json!({"product_id": other})),
        )
        .await?;
    assert_eq!(status, 404, "not in the carousel");
    let (status, _) = api
        .request(Method::POST, &cart, None, Some(json!({"product_id": lip})))
        .await?;
    assert_eq!(status, 201);
    let (status, body) = api
        .request(Method::POST, &cart, None, Some(json!({"product_id": lip})))
        .await?;
    assert_eq!(status, 429, "the address is over its 4 a minute: {body}");

    // Purchases with codes: order-level, per item (any case), and unknown codes (not credited).
    let session = attribution_session(&api, &alice, &id).await?;
    let at = Utc::now().to_rfc3339();
    let (status, bad) = purchase(&api, &json!({"order_id": "o-bad", "items": [{"product_id": lip, "amount": "1.00", "currency": "EUR", "promo_code": "x"}], "attribution": session, "at": at})).await?;
    assert_eq!(status, 400, "{bad}");
    let (status, o1) = purchase(&api, &json!({"order_id": "o-1", "promo_code": "SPRING10", "items": [
        {"product_id": lip, "amount": "18.00", "currency": "EUR"},
        {"product_id": mug, "amount": "9.00", "currency": "EUR"}], "attribution": session, "at": at})).await?;
    assert_eq!(status, 201, "{o1}");
    assert_eq!(o1["lines"][0]["promo_code"], "Spring10", "{o1}");
    assert_eq!(o1["lines"][1]["promo_code"], "Spring10", "{o1}");
    let (status, o2) = purchase(&api, &json!({"order_id": "o-2", "items": [
        {"product_id": lip, "amount": "18.00", "currency": "EUR", "promo_code": "spring10"},
        {"product_id": mug, "amount": "10.00", "currency": "EUR", "promo_code": "NOPE99"}], "attribution": session, "at": at})).await?;
    assert_eq!(status, 201, "{o2}");
    assert_eq!(
        (&o2["lines"][0]["promo_code"], &o2["lines"][1]["promo_code"]),
        (&json!("Spring10"), &Value::Null),
        "{o2}"
    );
    let (status, o3) = purchase(&api, &json!({"order_id": "o-3", "items": [
        {"product_id": mug, "amount": "10.00", "currency": "EUR"}], "attribution": session, "at": at})).await?;
    assert_eq!(status, 201, "{o3}");
    // The same order again is not counted again.
    let (status, _) = purchase(&api, &json!({"order_id": "o-1", "promo_code": "SPRING10", "items": [
        {"product_id": lip, "amount": "18.00", "currency": "EUR"},
        {"product_id": mug, "amount": "9.00", "currency": "EUR"}], "attribution": session, "at": at})).await?;
    assert_eq!(status, 200);

    let earnings = api
        .ok(Method::GET, "/api/v1/me/earnings", &alice, None)
        .await?;
    let by_code = earnings["by_code"].as_array().context("by_code")?;
    assert_eq!(by_code.len(), 1, "{earnings}");
    assert_eq!(
        (
            &by_code[0]["promo_code"],
            by_code[0]["sales_minor"].as_i64(),
            by_code[0]["orders"].as_u64()
        ),
        (&json!("Spring10"), Some(1800 + 900 + 1800), Some(2)),
        "{earnings}"
    );
    assert_eq!(
        earnings["totals"][0]["sales_minor"].as_i64(),
        Some(1800 + 900 + 1800 + 1000 + 1000)
    );
    let commission = by_code[0]["commission_minor"]
        .as_i64()
        .context("commission")?;
    assert_eq!(commission, (4500.0_f64 * 0.03).round() as i64, "{earnings}");

    let report = api
        .ok(
            Method::GET,
            &format!("/api/v1/streams/{id}/analytics"),
            &alice,
            None,
        )
        .await?;
    let summary = &report["summary"];
    assert_eq!(summary["cart_adds"].as_u64(), Some(3), "{summary}");
    let promos = summary["promos"].as_array().context("promos")?;
    assert_eq!(promos[0]["code"], "Spring10");
    assert_eq!(promos[0]["redemptions"].as_u64(), Some(1));
    assert_eq!(
        promos[0]["sales"][0]["sales_minor"].as_i64(),
        Some(4500),
        "{summary}"
    );
    assert_eq!(
        promos[0]["sales"][0]["orders"].as_u64(),
        Some(2),
        "{summary}"
    );
    assert_eq!(
        summary["sales"][0]["sales_minor"].as_i64(),
        Some(6500),
        "{summary}"
    );
    let products = summary["products"].as_array().context("products")?;
    let lip_row = products
        .iter()
        .find(|p| p["product_id"] == lip.as_str())
        .context("lip row")?;
    assert_eq!(lip_row["cart_adds"].as_u64(), Some(2), "{summary}");
    server.stop().await;
    Ok(())
}

async fn scheduled_stream(
    api: &Api,
    creator: &str,
    title: &str,
    at: DateTime<Utc>,
) -> Result<String> {
    let s = api
        .ok(
            Method::POST,
            "/api/v1/streams",
            creator,
            Some(json!({"title": title, "mode": "public", "scheduled_at": at.to_rfc3339()})),
        )
        .await?;
    Ok(s["id"].as_str().context("id")?.to_string())
}

async fn reminders_of(api: &Api, viewer: &str) -> Result<Vec<Value>> {
    let feed = api
        .ok(Method::GET, "/api/v1/me/notifications", viewer, None)
        .await?;
    Ok(feed["notifications"]
        .as_array()
        .context("feed")?
        .iter()
        .filter(|n| n["kind"] == "reminder")
        .cloned()
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remind_me_fires_at_the_scheduled_time_exactly_once_also_across_a_restart() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let alice = api.create_creator("alice").await?;
    let vera = api.register_viewer("vera").await?;
    let walt = api.register_viewer("walt").await?;

    // Not for streams without a time ahead, nor for creators.
    let now_stream = api
        .ok(
            Method::POST,
            "/api/v1/streams",
            &alice,
            Some(json!({"title": "now", "mode": "public"})),
        )
        .await?;
    let now_id = now_stream["id"].as_str().context("id")?;
    let (status, _) = api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{now_id}/reminder"),
            Some(&vera),
            None,
        )
        .await?;
    assert_eq!(status, 409);

    let soon_at = (Utc::now() + chrono::TimeDelta::seconds(3)).trunc_subsecs(3);
    let soon = scheduled_stream(&api, &alice, "Soon", soon_at).await?;
    let reminder = format!("/api/v1/streams/{soon}/reminder");
    let (status, _) = api
        .request(Method::PUT, &reminder, Some(&alice), None)
        .await?;
    assert_eq!(status, 403, "creators get no reminders");
    let (status, body) = api
        .request(Method::PUT, &reminder, Some(&vera), None)
        .await?;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api
        .request(Method::PUT, &reminder, Some(&vera), None)
        .await?;
    assert_eq!(status, 200, "set before");
    api.ok(Method::PUT, &reminder, &walt, None).await?;
    api.ok(Method::DELETE, &reminder, &walt, None).await?;
    let state = api
        .ok(
            Method::GET,
            &format!("/api/v1/streams/{soon}/viewer"),
            &vera,
            None,
        )
        .await?;
    assert_eq!(state["viewer"]["reminder"]["fired"], false, "{state}");

    // The live push (the bell's event stream) and the feed both get it, after the time.
    let mut events = api
        .http
        .get(api.url("/api/v1/me/events"))
        .bearer_auth(&vera)
        .send()
        .await?;
    ensure!(events.status() == 200, "events: {}", events.status());
    let pushed = tokio::time::timeout(DEADLINE, async {
        let mut text = String::new();
        while let Some(chunk) = events.chunk().await? {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("\"kind\":\"reminder\"") {
                return Ok::<_, anyhow::Error>(text);
            }
        }
        anyhow::bail!("the event stream ended: {text}")
    })
    .await
    .context("no reminder pushed")??;
    assert!(pushed.contains(&soon), "{pushed}");
    let fired = reminders_of(&api, &vera).await?;
    assert_eq!(fired.len(), 1, "{fired:?}");
    let created: DateTime<Utc> = fired[0]["created_at"]
        .as_str()
        .context("created_at")?
        .parse()?;
    assert!(
        created >= soon_at,
        "fired at {created}, scheduled {soon_at}"
    );
    assert_eq!(fired[0]["stream_id"], soon.as_str());
    assert!(
        reminders_of(&api, &walt).await?.is_empty(),
        "walt removed his"
    );
    let feed = api
        .ok(Method::GET, "/api/v1/me/notifications", &vera, None)
        .await?;
    assert_eq!(feed["unread"].as_u64(), Some(1), "{feed}");

    // A reminder due while the server is down fires when it is back, once; the first does not
    // fire again.
    let later_at = (Utc::now() + chrono::TimeDelta::seconds(3)).trunc_subsecs(3);
    let later = scheduled_stream(&api, &alice, "Later", later_at).await?;
    api.ok(
        Method::PUT,
        &format!("/api/v1/streams/{later}/reminder"),
        &vera,
        None,
    )
    .await?;
    let dir = server.data_dir();
    server.stop().await;
    wait_for("the scheduled time to pass", DEADLINE, || async {
        (Utc::now() > later_at + chrono::TimeDelta::seconds(1)).then_some(())
    })
    .await?;
    let app = App::start(test_config(&dir)).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    let fired = wait_for("the reminder after the restart", DEADLINE, || async {
        let r = reminders_of(&api, &vera).await.ok()?;
        (r.len() == 2).then_some(r)
    })
    .await?;
    assert_eq!(fired[0]["stream_id"], later.as_str(), "{fired:?}");
    assert_eq!(fired[1]["stream_id"], soon.as_str(), "{fired:?}");
    let state = api
        .ok(
            Method::GET,
            &format!("/api/v1/streams/{later}/viewer"),
            &vera,
            None,
        )
        .await?;
    assert_eq!(state["viewer"]["reminder"]["fired"], true, "{state}");
    app.stop().await;
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_embeddable_player_may_be_framed_and_only_by_its_origins() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.shop.embed_frame_ancestors = vec!["https://shop.example".into(), "'self'".into()];
    })
    .await?;
    let api = server.api.clone();
    let alice = api.create_creator("alice").await?;
    let public = api
        .ok(
            Method::POST,
            "/api/v1/streams",
            &alice,
            Some(json!({"title": "Open", "mode": "public"})),
        )
        .await?;
    let id = public["id"].as_str().context("id")?;
    let practice = api
        .ok(
            Method::POST,
            "/api/v1/streams",
            &alice,
            Some(json!({"title": "Rehearsal"})),
        )
        .await?;
    let hidden = practice["id"].as_str().context("id")?;

    let resp = api
        .http
        .get(api.url(&format!("/embed/{id}")))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    let csp = resp.headers()["content-security-policy"]
        .to_str()?
        .to_string();
    assert!(
        csp.ends_with("frame-ancestors https://shop.example 'self'"),
        "{csp}"
    );
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = resp.text().await?;
    assert!(
        html.contains("data-parent-origins=\"https://shop.example 'self'\""),
        "{html}"
    );
    assert_eq!(api.status(&format!("/embed/{hidden}"), None).await?, 404);
    for page in [
        "/".to_string(),
        format!("/watch/{id}"),
        "/studio".into(),
        "/admin".into(),
        "/@alice".into(),
        "/assets/app.css".into(),
    ] {
        let resp = api.http.get(api.url(&page)).send().await?;
        let csp = resp.headers()["content-security-policy"].to_str()?;
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
    }
    server.stop().await;
    Ok(())
}
