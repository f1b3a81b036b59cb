//! Commerce (issue 7) end to end on a real server with real publishers: share link → attribution
//! session (cookie) → tagged click-out → signed purchase → commission in the creator's earnings,
//! once; refused purchases; levels from public minutes only; the featured home row.
mod common;

use anyhow::{Context, Result};
use chrono::Utc;
use common::*;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

const SHOP_SECRET: &str = "shop-secret-for-tests-0123";

/// `X-Livefront-Signature` as DESIGN.md describes it (written here again, independently).
fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// POSTs a purchase with the given signature header (none: unsigned).
async fn post_purchase(api: &Api, body: &Value, sig: Option<String>) -> Result<(u16, Value)> {
    let raw = serde_json::to_vec(body)?;
    let mut req = api
        .http
        .post(api.url("/api/v1/purchases"))
        .header("Content-Type", "application/json")
        .body(raw);
    if let Some(sig) = sig {
        req = req.header("X-Livefront-Signature", sig);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// A purchase signed now with the shop secret.
async fn purchase(api: &Api, body: &Value) -> Result<(u16, Value)> {
    let sig = signature(
        SHOP_SECRET,
        Utc::now().timestamp(),
        &serde_json::to_vec(body)?,
    );
    post_purchase(api, body, Some(sig)).await
}

async fn set_tag(api: &Api, token: &str, tag: &str) -> Result<(u16, Value)> {
    api.request(
        Method::PATCH,
        "/api/v1/me",
        Some(token),
        Some(json!({"associate_tag": tag})),
    )
    .await
}

async fn product(api: &Api, token: &str, fields: Value) -> Result<String> {
    let (status, p) = api
        .request(Method::POST, "/api/v1/products", Some(token), Some(fields))
        .await?;
    anyhow::ensure!(status == 201, "product: {status} {p}");
    Ok(p["id"].as_str().context("id")?.to_string())
}

async fn public_stream(api: &Api, token: &str, title: &str, category: &str) -> Result<Value> {
    let (status, s) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(token),
            Some(json!({"title": title, "mode": "public", "category": category})),
        )
        .await?;
    anyhow::ensure!(status == 201, "stream: {status} {s}");
    Ok(s)
}

fn ids(row: &Value) -> Vec<String> {
    row.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn level(api: &Api, token: &str) -> Result<Value> {
    let (status, v) = api.get("/api/v1/me/level", Some(token)).await?;
    anyhow::ensure!(status == 200, "level: {status} {v}");
    Ok(v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_link_click_out_and_signed_purchase_earn_a_commission_once() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.shop.secret = Some(SHOP_SECRET.into());
        c.commerce.rates.insert("beauty".into(), "0.04".into());
        c.commerce.levels.thresholds = vec![livefront::config::LevelThreshold {
            public_minutes: 0.05,
            sales: 1,
        }];
        c.commerce
            .levels
            .benefits
            .insert("home_featured_row".into(), 2);
    })
    .await?;
    let api = server.api.clone();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let alice = api.create_creator("alice").await?;
    let bob = api.create_creator("bob").await?;

    // Associate tags: validated, unique.
    assert_eq!(set_tag(&api, &alice, "Alice 20").await?.0, 400);
    let (status, me) = set_tag(&api, &alice, "alice-20").await?;
    assert_eq!(
        (status, me["associate_tag"].as_str()),
        (200, Some("alice-20")),
        "{me}"
    );
    let (status, body) = set_tag(&api, &bob, "alice-20").await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert_eq!(set_tag(&api, &bob, "bob-20").await?.0, 200);

    let lipstick = product(&api, &alice, json!({"sku": "lip", "title": "Velvet lipstick", "price": "19.99", "currency": "EUR", "category": "beauty", "url": "https://shop.example/p/1?color=dark%20red&tag=old"})).await?;
    let mug = product(&api, &alice, json!({"sku": "mug", "title": "Mug", "price": "10.00", "currency": "EUR", "url": "https://shop.example/p/2"})).await?;
    let hidden = product(&api, &alice, json!({"sku": "hid", "title": "Not shown", "price": "1.00", "currency": "EUR", "url": "https://shop.example/p/3"})).await?;
    let stream = public_stream(&api, &alice, "Spring beauty", "beauty").await?;
    let id = stream["id"].as_str().context("id")?.to_string();
    let (status, body) = api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{id}/products"),
            Some(&alice),
            Some(json!({"product_ids": [lipstick, mug]})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");

    let _alice_publisher = Publish::small(120.0).spawn(&server.publish_url(&stream))?;
    source_segments(&api, &alice, &id, 1).await?;
    let (status, body) = api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{id}/focus"),
            Some(&alice),
            Some(json!({"product_id": lipstick})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");

    // Only the stream's creator makes share links.
    let links = format!("/api/v1/streams/{id}/links");
    let (status, _) = api.request(Method::POST, &links, Some(&bob), None).await?;
    assert_eq!(status, 403);
    let (status, link) = api
        .request(Method::POST, &links, Some(&alice), None)
        .await?;
    assert_eq!(status, 201, "{link}");
    assert_eq!(link["tag"], "alice-20");
    let url = link["url"].as_str().context("url")?;
    let code = link["code"].as_str().context("code")?;
    assert!(url.ends_with(&format!("/s/{code}")), "{url}");

    // Following it: a redirect to the watch page and an attribution cookie.
    let resp = no_redirects
        .get(api.url(&format!("/s/{code}")))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(resp.headers()["location"], format!("/watch/{id}").as_str());
    let cookie = resp.headers()["set-cookie"].to_str()?.to_string();
    for part in ["HttpOnly", "SameSite=Lax", "Max-Age=86400", "Path=/"] {
        assert!(cookie.contains(part), "{part} in {cookie}");
    }
    let session = cookie
        .split(';')
        .next()
        .and_then(|c| c.strip_prefix("lf_attr="))
        .context("lf_attr cookie")?
        .to_string();
    assert_eq!(
        no_redirects
            .get(api.url("/s/AAAAAAAA"))
            .send()
            .await?
            .status()
            .as_u16(),
        404
    );

    // Click-outs: the product URL with the creator's tag, other parameters kept.
    let resp = no_redirects
        .get(api.url(&format!("/go/{id}/{lipstick}")))
        .header("Cookie", format!("theme=dark; lf_attr={session}"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://shop.example/p/1?color=dark%20red&tag=alice-20"
    );
    let resp = no_redirects
        .get(api.url(&format!("/go/{id}/{mug}")))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 302);
    assert_eq!(
        resp.headers()["location"],
        "https://shop.example/p/2?tag=alice-20"
    );
    let resp = no_redirects
        .get(api.url(&format!("/go/{id}/{hidden}")))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 404, "not in the carousel");
    let (_, clicks) = api
        .get(&format!("/api/v1/streams/{id}/clicks"), Some(&alice))
        .await?;
    let clicks = clicks["clicks"].as_array().context("clicks")?.clone();
    let seen: Vec<(String, bool, String)> = clicks
        .iter()
        .map(|c| {
            (
                c["product_id"].as_str().unwrap_or_default().to_string(),
                c["attributed"] == true,
                c["focus_product_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (mug.clone(), false, lipstick.clone()),
            (lipstick.clone(), true, lipstick.clone())
        ],
        "newest first, with the session and the product in focus"
    );

    // The shop reports the order with the session: 4 % on beauty, the 3 % default on the rest.
    let order = json!({
        "order_id": "order-1",
        "items": [
            {"product_id": lipstick, "amount": "19.99", "currency": "EUR"},
            {"product_id": mug, "amount": "10.00", "currency": "EUR"}
        ],
        "attribution": session,
        "at": Utc::now(),
    });
    let (status, first) = purchase(&api, &order).await?;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["attributed"], true, "{first}");
    assert_eq!(first["attribution"], "session");
    assert_eq!(first["stream_id"], id.as_str());
    assert_eq!(first["creator"], "alice");
    let commissions: Vec<(&str, i64)> = first["lines"]
        .as_array()
        .context("lines")?
        .iter()
        .map(|l| {
            (
                l["commission"].as_str().unwrap_or(""),
                l["commission_minor"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        commissions,
        vec![("0.80", 80), ("0.30", 30)],
        "19.99 × 4 % = 0.7996 → 0.80"
    );

    let earnings = |api: Api, token: String| async move {
        let (status, e) = api.get("/api/v1/me/earnings", Some(&token)).await?;
        anyhow::ensure!(status == 200, "earnings: {status} {e}");
        anyhow::Ok(e)
    };
    let e = earnings(api.clone(), alice.clone()).await?;
    assert_eq!(
        e["totals"],
        json!([{"currency": "EUR", "sales": "29.99", "sales_minor": 2999, "commission": "1.10", "commission_minor": 110, "orders": 1}]),
        "{e}"
    );
    assert_eq!(e["by_stream"][0]["stream_id"], id.as_str());
    assert_eq!(e["by_stream"][0]["commission_minor"], 110);
    let by_category: Vec<(Value, Value)> = e["by_category"]
        .as_array()
        .context("by_category")?
        .iter()
        .map(|c| (c["category"].clone(), c["commission_minor"].clone()))
        .collect();
    assert!(by_category.contains(&(json!("beauty"), json!(80))), "{e}");
    assert!(by_category.contains(&(Value::Null, json!(30))), "{e}");

    // The same order again (signed anew): the stored result, no second ledger entry.
    let (status, again) = purchase(&api, &order).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["lines"], first["lines"]);
    assert_eq!(
        earnings(api.clone(), alice.clone()).await?["totals"],
        e["totals"]
    );
    // The same order id with other content is a conflict.
    let mut changed = order.clone();
    changed["items"][0]["amount"] = json!("199.99");
    let (status, body) = purchase(&api, &changed).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        earnings(api.clone(), alice.clone()).await?["totals"],
        e["totals"]
    );

    // A bare tag: the creator's stream public within the last 24 h; other currencies apart.
    let (status, by_tag) = purchase(
        &api,
        &json!({"order_id": "order-2", "attribution": "alice-20", "at": Utc::now(),
                "items": [{"product_id": mug, "amount": "1500", "currency": "JPY"}]}),
    )
    .await?;
    assert_eq!(status, 201, "{by_tag}");
    assert_eq!(
        (by_tag["attribution"].as_str(), by_tag["stream_id"].as_str()),
        (Some("tag"), Some(id.as_str())),
        "{by_tag}"
    );
    assert_eq!(by_tag["lines"][0]["commission"], "45", "1500 JPY × 3 %");
    let (status, bobs) = purchase(
        &api,
        &json!({"order_id": "order-3", "attribution": "bob-20", "at": Utc::now(),
                "items": [{"product_id": "elsewhere", "amount": "5.00", "currency": "EUR"}]}),
    )
    .await?;
    assert_eq!(status, 201, "{bobs}");
    assert_eq!(
        bobs["attributed"], false,
        "bob has no public stream: {bobs}"
    );
    let (status, body) = purchase(
        &api,
        &json!({"order_id": "order-4", "attribution": session, "at": Utc::now(),
                "items": [{"product_id": mug, "amount": "10.001", "currency": "EUR"}]}),
    )
    .await?;
    assert_eq!(status, 400, "more decimals than the currency has: {body}");
    let e = earnings(api.clone(), alice.clone()).await?;
    let currencies: Vec<&str> = e["totals"]
        .as_array()
        .context("totals")?
        .iter()
        .filter_map(|t| t["currency"].as_str())
        .collect();
    assert_eq!(currencies.len(), 2, "EUR and JPY apart: {e}");

    // Home: alice (an attributed sale and public minutes) is featured; bob, live and public but
    // with no sale, is level 1: in the live row, not in the featured one.
    let bob_stream = public_stream(&api, &bob, "Bob's kitchen", "kitchen").await?;
    let bob_id = bob_stream["id"].as_str().context("id")?.to_string();
    let _bob_publisher = Publish::small(120.0).spawn(&server.publish_url(&bob_stream))?;
    let home = wait_for("both live, alice featured", DEADLINE, || async {
        let (_, home) = api.get("/api/v1/home", None).await.ok()?;
        let live = ids(&home["live"]);
        let featured = ids(&home["featured"]);
        (live.contains(&id) && live.contains(&bob_id) && featured.contains(&id)).then_some(home)
    })
    .await?;
    assert!(!ids(&home["featured"]).contains(&bob_id), "{home}");
    let kitchen = home["categories"]
        .as_array()
        .context("categories")?
        .iter()
        .find(|c| c["category"] == "kitchen")
        .context("kitchen row")?;
    assert_eq!(ids(&kitchen["streams"]), vec![bob_id.clone()]);
    let alice_level = level(&api, &alice).await?;
    assert_eq!(alice_level["level"], 2, "{alice_level}");
    assert!(
        alice_level["benefits"]
            .as_array()
            .context("benefits")?
            .contains(&json!("home_featured_row"))
    );
    let bob_level = level(&api, &bob).await?;
    assert_eq!(
        (bob_level["level"].as_u64(), bob_level["sales"].as_u64()),
        (Some(1), Some(0)),
        "{bob_level}"
    );

    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_count_public_minutes_only() -> Result<()> {
    // Level 2 at 0.05 public minutes (3 s) and no sales.
    let mut server = Server::start_with(|c| {
        c.commerce.levels.thresholds = vec![livefront::config::LevelThreshold {
            public_minutes: 0.05,
            sales: 0,
        }];
    })
    .await?;
    let api = server.api.clone();
    let pro = api.create_creator("pro").await?;
    let rehearser = api.create_creator("rehearser").await?;
    let public = public_stream(&api, &pro, "On air", "tech").await?;
    let practice = api.create_stream(&rehearser, "Rehearsal").await?;
    assert_eq!(practice["mode"], "practice");
    assert_eq!(level(&api, &pro).await?["level"], 1, "nothing streamed yet");

    // The practice stream streams longer than the public one.
    let short = Publish::small(6.0).spawn(&server.publish_url(&public))?;
    let long = Publish::small(10.0).spawn(&server.publish_url(&practice))?;
    for publisher in [short, long] {
        let (status, stderr) = finish(publisher, DEADLINE).await?;
        assert!(status.success(), "{stderr}");
    }
    for (token, s) in [(&pro, &public), (&rehearser, &practice)] {
        let id = s["id"].as_str().context("id")?;
        wait_for("stream ended", DEADLINE, || async {
            let v = api.stream(token, id).await.ok()?;
            (v["state"] == "ended").then_some(())
        })
        .await?;
    }
    let pro_level = level(&api, &pro).await?;
    assert_eq!(pro_level["level"], 2, "{pro_level}");
    assert!(
        pro_level["public_minutes"].as_f64().unwrap_or(0.0) >= 0.05,
        "{pro_level}"
    );
    let rehearsed = level(&api, &rehearser).await?;
    assert_eq!(
        rehearsed["level"], 1,
        "practice minutes never count: {rehearsed}"
    );
    assert_eq!(rehearsed["public_minutes"], 0.0, "{rehearsed}");
    assert_eq!(rehearsed["next"]["level"], 2);
    assert_eq!(rehearsed["next"]["progress"]["public_minutes"], 0.0);
    // Click-outs of a practice stream are its creator's alone: others get what an unknown
    // stream gets.
    let id = practice["id"].as_str().context("id")?;
    let thing = product(&api, &rehearser, json!({"sku": "t", "title": "Thing", "price": "3.00", "currency": "EUR", "url": "https://shop.example/t"})).await?;
    let (status, body) = api
        .request(
            Method::PUT,
            &format!("/api/v1/streams/{id}/products"),
            Some(&rehearser),
            Some(json!({"product_ids": [thing]})),
        )
        .await?;
    assert_eq!(status, 200, "{body}");
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let click = |stream: String, token: Option<String>| {
        let (client, url) = (
            no_redirects.clone(),
            api.url(&format!("/go/{stream}/{thing}")),
        );
        async move {
            let mut req = client.get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await?;
            anyhow::Ok((resp.status().as_u16(), resp.text().await?))
        }
    };
    let unknown = click("zzzzzzzzzzzzzzzz".into(), None).await?;
    assert_eq!(unknown.0, 404);
    assert_eq!(click(id.into(), None).await?, unknown, "anonymous");
    assert_eq!(
        click(id.into(), Some(pro.clone())).await?,
        unknown,
        "another creator"
    );
    assert_eq!(
        click(id.into(), Some(rehearser.clone())).await?.0,
        302,
        "its creator"
    );
    // Making the ended rehearsal public afterwards adds no streamed minutes either.
    api.set_mode(&rehearser, id, "public").await?;
    assert_eq!(level(&api, &rehearser).await?["public_minutes"], 0.0);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_badly_signed_and_stale_purchases_are_refused() -> Result<()> {
    let mut server = Server::start_with(|c| c.shop.secret = Some(SHOP_SECRET.into())).await?;
    let api = server.api.clone();
    let order = json!({"order_id": "o-1", "at": Utc::now(), "attribution": null,
                       "items": [{"product_id": "p", "amount": "1.00", "currency": "EUR"}]});
    let raw = serde_json::to_vec(&order)?;
    let now = Utc::now().timestamp();
    let cases = [
        ("unsigned", None),
        (
            "other secret",
            Some(signature("not-the-shop-secret-000", now, &raw)),
        ),
        (
            "stale (6 minutes old)",
            Some(signature(SHOP_SECRET, now - 360, &raw)),
        ),
        ("another body", Some(signature(SHOP_SECRET, now, b"{}"))),
        ("garbage", Some("t=abc,v1=zz".to_string())),
    ];
    for (what, sig) in cases {
        let (status, body) = post_purchase(&api, &order, sig).await?;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"]["code"], "bad_signature", "{what}: {body}");
    }
    let (status, body) = purchase(&api, &order).await?;
    assert_eq!(status, 201, "signed properly: {body}");
    assert_eq!(body["attributed"], false);
    server.stop().await;

    // No secret configured: purchases are off, and say so.
    let mut server = Server::start().await?;
    let (status, body) = purchase(&server.api, &order).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("LIVEFRONT_SHOP_SECRET"),
        "{body}"
    );
    server.stop().await;
    Ok(())
}
