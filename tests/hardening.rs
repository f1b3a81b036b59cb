//! What a hostile creator, viewer or stranger could do before issue 17, each reproduced from
//! outside against a real server: out-of-range dates, slow and idle connections, made-up viewer
//! sessions, oversized id lists, replaced admin tokens.
mod common;

use anyhow::{Context, Result};
use common::*;
use livefront::app::App;
use reqwest::Method;
use serde_json::{Value, json};

async fn create(api: &Api, token: &str, body: Value) -> Result<Value> {
    let (status, v) = api
        .request(Method::POST, "/api/v1/streams", Some(token), Some(body))
        .await?;
    anyhow::ensure!(status == 201, "{status} {v}");
    Ok(v)
}

/// Runs `sql` on the server's SQLite file, as an older version or a hand edit could have left it.
fn write_db(dir: &std::path::Path, sql: &str) -> Result<()> {
    let db = rusqlite::Connection::open(dir.join("livefront.db"))?;
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    db.execute_batch(sql)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_outside_the_years_1970_to_9999_are_refused() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&token),
            Some(json!({"title": "x", "scheduled_at": "+10000-01-01T00:00:00Z"})),
        )
        .await?;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], "bad_request", "{v}");
    let stream = create(&api, &token, json!({"title": "x"})).await?;
    let id = stream["id"].as_str().context("id")?;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/api/v1/streams/{id}"),
            json!({"scheduled_at": "+10000-01-01T00:00:00Z"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/streams/{id}"),
            json!({"scheduled_at": "1969-12-31T23:59:59Z"}),
        ),
        (
            Method::POST,
            format!("/api/v1/streams/{id}/promos"),
            json!({"code": "FAR", "description": "d", "discount": "10%",
                   "ends_at": "+10000-01-01T00:00:00Z"}),
        ),
        (
            Method::POST,
            format!("/api/v1/streams/{id}/promos"),
            json!({"code": "EARLY", "description": "d", "discount": "10%",
                   "starts_at": "-0001-01-01T00:00:00Z"}),
        ),
    ] {
        let (status, v) = api
            .request(method, &path, Some(&token), Some(body.clone()))
            .await?;
        assert_eq!(status, 400, "{path} {body}: {v}");
    }
    let (status, v) = api
        .get(
            "/api/v1/me/earnings?from=0001-01-01T00:00:00Z",
            Some(&token),
        )
        .await?;
    assert_eq!(status, 400, "{v}");
    for path in ["/api/v1/home", "/api/v1/categories", "/api/v1/live"] {
        assert_eq!(api.status(path, None).await?, 200, "{path}");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_stream_row_does_not_break_listings_or_start_up() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let far = create(
        &api,
        &token,
        json!({"title": "Far", "mode": "public", "category": "beauty", "scheduled_at": soon}),
    )
    .await?;
    let bad = create(
        &api,
        &token,
        json!({"title": "Bad", "mode": "public", "category": "beauty", "scheduled_at": soon}),
    )
    .await?;
    let good = create(
        &api,
        &token,
        json!({"title": "Good", "mode": "public", "category": "home", "scheduled_at": soon}),
    )
    .await?;
    let (far, bad, good) = (
        far["id"].as_str().context("id")?,
        bad["id"].as_str().context("id")?,
        good["id"].as_str().context("id")?,
    );
    // What the API accepted before: a five-digit year; and a value nothing can read, on a pulled
    // stream left live (start-up reads both kinds).
    write_db(
        &server.data_dir(),
        &format!(
            "UPDATE streams SET scheduled_at = '+10000-01-01T00:00:00.000Z' WHERE id = '{far}';
             UPDATE streams SET scheduled_at = 'someday', state = 'live' WHERE id = '{bad}';
             INSERT INTO stream_sources (stream_id, url, transport)
                 VALUES ('{bad}', 'rtsp://127.0.0.1:9/cam', 'tcp');"
        ),
    )?;
    let check = |api: Api| async move {
        for path in [
            "/api/v1/home",
            "/api/v1/categories",
            "/api/v1/live",
            "/api/v1/creators/demo/storefront",
        ] {
            let (status, v) = api.get(path, None).await?;
            assert_eq!(status, 200, "{path}: {v}");
        }
        let (_, home) = api.get("/api/v1/home", None).await?;
        let upcoming: Vec<&str> = home["upcoming"]
            .as_array()
            .context("upcoming")?
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert!(upcoming.contains(&good), "{home}");
        assert!(!upcoming.contains(&bad), "{home}");
        anyhow::Ok(upcoming.contains(&far))
    };
    assert!(check(api.clone()).await?, "a five-digit year is still read");
    let (status, _) = api
        .request(
            Method::POST,
            &format!("/api/v1/streams/{far}/end"),
            Some(&token),
            None,
        )
        .await?;
    assert!(
        status < 500,
        "the stream with a far date can still be ended: {status}"
    );

    server.stop().await;
    let app = App::start(test_config(&server.data_dir()))
        .await
        .context("start-up with a bad row in the store")?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    check(api).await?;
    app.stop().await;
    Ok(())
}

/// Reads until the server closes the socket (end of stream or reset); returns what it sent.
async fn until_closed(mut socket: tokio::net::TcpStream) -> Vec<u8> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_their_headers_are_closed_while_clients_are_served()
-> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut server = Server::start_with(|c| {
        c.http.header_read_timeout = std::time::Duration::from_secs(2);
    })
    .await?;
    let addr = server.app.as_ref().context("running")?.http_addr;
    let mut slow = Vec::new();
    for i in 0..200 {
        let mut socket = tokio::net::TcpStream::connect(addr).await?;
        // Half never send a byte; half send the start of a request and stop.
        if i % 2 == 1 {
            socket
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                .await?;
        }
        slow.push(tokio::spawn(until_closed(socket)));
    }
    // One more trickles a header that never ends, a byte at a time.
    let mut trickle = tokio::net::TcpStream::connect(addr).await?;
    let trickler = tokio::spawn(async move {
        trickle.write_all(b"GET /healthz HTTP/1.1\r\n").await?;
        loop {
            trickle.write_all(b"X").await?;
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        #[allow(unreachable_code)]
        anyhow::Ok(())
    });
    let (status, v) = server.api.get("/api/v1/home", None).await?;
    assert_eq!(status, 200, "a real client is served meanwhile: {v}");
    tokio::time::timeout(DEADLINE, async {
        for socket in slow {
            assert!(socket.await?.is_empty(), "closed without an answer");
        }
        assert!(trickler.await?.is_err(), "the trickling client is cut off");
        anyhow::Ok(())
    })
    .await
    .context("the server closes slow connections")??;
    let (status, v) = server.api.get("/api/v1/home", None).await?;
    assert_eq!(status, 200, "{v}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_with_503_until_one_closes() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.http.max_connections = 8;
        // Held sockets stay open for the whole test.
        c.http.header_read_timeout = std::time::Duration::from_secs(600);
    })
    .await?;
    let addr = server.app.as_ref().context("running")?.http_addr;
    // Fill every slot (the test's own HTTP client may hold one) with silent sockets.
    let mut held = Vec::new();
    let refusal = loop {
        anyhow::ensure!(held.len() <= 20, "no refusal after {} sockets", held.len());
        let socket = tokio::net::TcpStream::connect(addr).await?;
        // A held socket stays silent; a refused one is answered and closed at once.
        let mut buf = [0u8; 512];
        match tokio::time::timeout(std::time::Duration::from_millis(500), socket.peek(&mut buf))
            .await
        {
            Ok(_) => break until_closed(socket).await,
            Err(_) => held.push(socket),
        }
    };
    let text = String::from_utf8_lossy(&refusal);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains(r#""code":"unavailable""#), "{text}");
    drop(held);
    let api = Api::new(&server.api.base);
    wait_for("a slot again", DEADLINE, || async {
        (api.status("/healthz", None).await.ok()? == 200).then_some(())
    })
    .await?;
    server.stop().await;
    Ok(())
}

/// The first media playlist URI of a master playlist.
fn first_variant(master: &str) -> Option<&str> {
    master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_session_ids_and_404s_do_not_count_as_viewers() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let live = create(&api, &token, json!({"title": "Now", "mode": "public"})).await?;
    let id = live["id"].as_str().context("id")?.to_string();
    let _publisher = Publish::small(60.0).spawn(&server.publish_url(&live))?;
    let master_url = format!("/hls/{id}/master.m3u8");
    let master = wait_for("the stream playing", DEADLINE, || async {
        let (status, text) = api.get_text(&master_url, None).await.ok()?;
        (status == 200).then_some(text)
    })
    .await?;
    let media = first_variant(&master).context("a variant")?.to_string();
    let (path, query) = media.split_once('?').context("a query")?;
    let viewers = || async {
        let (_, row) = api.get("/api/v1/live", None).await?;
        anyhow::Ok(row["streams"][0]["viewers"].as_u64().unwrap_or(0))
    };
    // 40 made-up sids in the shape a player gets, on the real playlist.
    for i in 0..40 {
        let made_up = format!("{i:0>12}");
        let (status, _) = api
            .get_text(&format!("/hls/{id}/{path}?sid={made_up}"), None)
            .await?;
        assert_eq!(status, 200);
    }
    // A real sid on a playlist that does not exist.
    let (status, _) = api
        .get_text(&format!("/hls/{id}/nosuch/index.m3u8?{query}"), None)
        .await?;
    assert_eq!(status, 404);
    assert_eq!(viewers().await?, 0, "made-up sids and 404s count nobody");
    let (status, _) = api.get_text(&format!("/hls/{id}/{media}"), None).await?;
    assert_eq!(status, 200);
    assert_eq!(viewers().await?, 1, "the real player counts");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marking_notifications_read_takes_at_most_500_ids() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/viewers",
            None,
            Some(json!({"handle": "vera"})),
        )
        .await?;
    assert_eq!(status, 201, "{v}");
    let vera = v["token"].as_str().context("token")?.to_string();
    let (status, v) = api
        .request(
            Method::PUT,
            "/api/v1/creators/demo/follow",
            Some(&vera),
            None,
        )
        .await?;
    assert_eq!(status, 204, "{v}");
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    for title in ["One", "Two"] {
        create(
            &api,
            &token,
            json!({"title": title, "mode": "public", "scheduled_at": soon}),
        )
        .await?;
    }
    let feed = || async {
        let (status, v) = api.get("/api/v1/me/notifications", Some(&vera)).await?;
        anyhow::ensure!(status == 200, "{status} {v}");
        anyhow::Ok(v["notifications"].as_array().cloned().unwrap_or_default())
    };
    let notes = feed().await?;
    assert_eq!(notes.len(), 2, "{notes:?}");
    let first = notes[0]["id"].as_i64().context("id")?;
    let read = |ids: Vec<i64>| {
        api.request(
            Method::POST,
            "/api/v1/me/notifications/read",
            Some(&vera),
            Some(json!({ "ids": ids })),
        )
    };
    let (status, v) = read((0..501).collect()).await?;
    assert_eq!(status, 400, "{v}");
    assert!(feed().await?.iter().all(|n| n["read"] == false));
    let mut ids: Vec<i64> = (1_000_000..1_000_499).collect();
    ids.push(first);
    let (status, v) = read(ids).await?;
    assert_eq!((status, &v["marked"]), (200, &json!(1)), "{v}");
    let notes = feed().await?;
    let read_ids: Vec<i64> = notes
        .iter()
        .filter(|n| n["read"] == true)
        .filter_map(|n| n["id"].as_i64())
        .collect();
    assert_eq!(read_ids, [first], "{notes:?}");
    server.stop().await;
    Ok(())
}

/// Whether `token` is an admin token (it may create a creator).
async fn is_admin(api: &Api, token: &str, handle: &str) -> Result<bool> {
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/creators",
            Some(token),
            Some(json!({ "handle": handle })),
        )
        .await?;
    anyhow::ensure!(status == 201 || status == 401, "{status} {v}");
    Ok(status == 201)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_admin_token_is_the_only_admin_token() -> Result<()> {
    // First start without a configured token: one is generated.
    let mut server = Server::start_with(|c| c.admin_token = None).await?;
    let generated = server
        .app
        .as_ref()
        .and_then(|a| a.first_start.as_ref())
        .and_then(|f| f.admin_token.clone())
        .context("a generated admin token")?;
    assert!(is_admin(&server.api, &generated, "first").await?);
    server.stop().await;
    let restart = |token: &str| {
        let mut config = test_config(&server.data_dir());
        config.admin_token = Some(token.to_string());
        App::start(config)
    };
    // Configured: the generated one stops working.
    let app = restart(ADMIN_TOKEN).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    assert!(is_admin(&api, ADMIN_TOKEN, "second").await?);
    assert!(!is_admin(&api, &generated, "third").await?);
    app.stop().await;
    // Changed: the previous one stops working.
    let replaced = "a-new-admin-token-9876543210";
    let app = restart(replaced).await?;
    let api = Api::new(&format!("http://{}", app.http_addr));
    assert!(is_admin(&api, replaced, "fourth").await?);
    assert!(!is_admin(&api, ADMIN_TOKEN, "fifth").await?);
    assert!(!is_admin(&api, &generated, "sixth").await?);
    app.stop().await;
    Ok(())
}

const SHOP_SECRET: &str = "shop-secret-for-tests-0123";

/// A purchase signed now with the shop secret (the signature written here again, independently).
async fn purchase(api: &Api, body: &Value) -> Result<(u16, Value)> {
    use hmac::Mac;
    let raw = serde_json::to_vec(body)?;
    let t = chrono::Utc::now().timestamp();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SHOP_SECRET.as_bytes())?;
    mac.update(format!("{t}.").as_bytes());
    mac.update(&raw);
    let sig = format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()));
    let resp = api
        .http
        .post(api.url("/api/v1/purchases"))
        .header("Content-Type", "application/json")
        .header("X-Livefront-Signature", sig)
        .body(raw)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchases_in_the_second_of_the_click_or_within_the_clock_skew_are_attributed() -> Result<()>
{
    let mut server = Server::start_with(|c| c.shop.secret = Some(SHOP_SECRET.into())).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let stream = create(&api, &token, json!({"title": "Shop", "mode": "public"})).await?;
    let id = stream["id"].as_str().context("id")?;
    let (status, v) = api
        .request(
            Method::PATCH,
            "/api/v1/me",
            Some(&token),
            Some(json!({"associate_tag": "demo-20"})),
        )
        .await?;
    assert_eq!(status, 200, "{v}");
    let (status, link) = api
        .request(
            Method::POST,
            &format!("/api/v1/streams/{id}/links"),
            Some(&token),
            None,
        )
        .await?;
    assert_eq!(status, 201, "{link}");
    let code = link["code"].as_str().context("code")?;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = no_redirects
        .get(api.url(&format!("/s/{code}")))
        .send()
        .await?;
    let cookie = resp.headers()["set-cookie"].to_str()?.to_string();
    let session = cookie
        .split(';')
        .next()
        .and_then(|c| c.strip_prefix("lf_attr="))
        .context("lf_attr cookie")?
        .to_string();
    let now = chrono::Utc::now();
    let second = chrono::SubsecRound::trunc_subsecs(now, 0);
    for (n, at, attributed) in [
        // The shop's whole-second `at`, in the very second of the click.
        (1, second, true),
        // The shop's clock two minutes behind ours.
        (2, now - chrono::Duration::minutes(2), true),
        // Far before the click: not this session's.
        (3, now - chrono::Duration::minutes(30), false),
    ] {
        let order = json!({
            "order_id": format!("order-{n}"),
            "items": [{"product_id": "p", "amount": "1.00", "currency": "EUR"}],
            "attribution": session,
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        });
        let (status, v) = purchase(&api, &order).await?;
        assert_eq!(status, 201, "{v}");
        assert_eq!(v["attributed"], attributed, "order {n} at {at}: {v}");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_sources_on_private_addresses_are_refused_unless_allowed() -> Result<()> {
    let mut server = Server::start_with(|c| c.rtsp.allow_private_sources = false).await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    for url in [
        "rtsp://127.0.0.1:8554/cam",
        "rtsp://localhost/cam",
        "rtsp://192.168.1.10/stream1",
        "rtsp://169.254.169.254/latest",
        "rtsp://[::1]/cam",
    ] {
        let (status, v) = api
            .request(
                Method::POST,
                "/api/v1/streams",
                Some(&token),
                Some(json!({"title": "cam", "source": {"url": url}})),
            )
            .await?;
        assert_eq!(status, 400, "{url}: {v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("rtsp.allow_private_sources")),
            "{url}: {v}"
        );
    }
    let (_, streams) = api.get("/api/v1/streams", Some(&token)).await?;
    assert_eq!(
        streams["streams"].as_array().map(Vec::len),
        Some(1),
        "{streams}"
    );
    server.stop().await;

    let mut server = Server::start_with(|c| c.rtsp.allow_private_sources = true).await?;
    let (status, v) = server
        .api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&server.demo_token),
            Some(json!({"title": "cam", "source": {"url": "rtsp://127.0.0.1:9/cam"}})),
        )
        .await?;
    assert_eq!(status, 201, "the operator allows LAN cameras: {v}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn product_urls_are_http_or_https_with_a_host_and_no_userinfo() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let product = |sku: &str, url: &str| {
        api.request(
            Method::POST,
            "/api/v1/products",
            Some(&token),
            Some(json!({"sku": sku, "title": "Mug", "price": "10.00", "currency": "EUR", "url": url})),
        )
    };
    for (i, url) in [
        "https://shop.example@evil.example/login",
        "https://user:pw@shop.example/p/1",
        "javascript:alert(1)//https://shop.example/",
        "https://",
        "ftp://shop.example/p/1",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, v) = product(&format!("bad-{i}"), url).await?;
        assert_eq!(status, 400, "{url}: {v}");
    }
    let (status, v) = product("good", "https://shop.example/p/1?color=red").await?;
    assert_eq!(status, 201, "{v}");
    server.stop().await;
    Ok(())
}

/// The first segment named in a media playlist (its URI as listed, relative to the playlist).
fn first_segment(playlist: &str) -> Option<&str> {
    playlist
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_media_is_cached_briefly_while_live_and_for_good_once_ended() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let live = create(&api, &token, json!({"title": "Now", "mode": "public"})).await?;
    let id = live["id"].as_str().context("id")?.to_string();
    let publisher = Publish::small(60.0).spawn(&server.publish_url(&live))?;
    source_segments(&api, &token, &id, 2).await?;
    let cache_control = |url: String, token: Option<String>| {
        let api = api.clone();
        async move {
            let mut req = api.http.get(api.url(&url));
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            let resp = req.send().await?;
            anyhow::ensure!(resp.status() == 200, "{url}: {}", resp.status());
            anyhow::Ok(resp.headers()["cache-control"].to_str()?.to_string())
        }
    };
    let (_, ts) = api
        .get_text(&format!("/hls/{id}/source/index.m3u8"), None)
        .await?;
    let ts = format!(
        "/hls/{id}/source/{}",
        first_segment(&ts).context("a segment")?
    );
    let (_, ll) = api
        .get_text(&format!("/hls/{id}/ll/source/index.m3u8"), None)
        .await?;
    let m4s = format!(
        "/hls/{id}/ll/source/{}",
        first_segment(&ll).context("a segment")?
    );
    let quoted = |tag: &str| {
        let line = ll.lines().find(|l| l.starts_with(tag))?;
        let (_, rest) = line.split_once("URI=\"")?;
        rest.split('"').next()
    };
    let init = format!(
        "/hls/{id}/ll/source/{}",
        quoted("#EXT-X-MAP:").context("init")?
    );
    let part = format!(
        "/hls/{id}/ll/source/{}",
        quoted("#EXT-X-PART:").context("part")?
    );

    // Live: the stream can still go back to practice or be taken down, so a shared cache keeps
    // public media for two segment durations (2 s each), not for a year.
    for url in [&ts, &m4s, &init, &part] {
        assert_eq!(
            cache_control(url.clone(), None).await?,
            "public, max-age=4",
            "{url}"
        );
        let owner = cache_control(url.clone(), Some(token.clone())).await?;
        assert!(owner.starts_with("private"), "{url}: {owner}");
    }

    // Ended: the public replay does not change any more.
    api.end_stream(&token, &id).await?;
    finish(publisher, DEADLINE).await?;
    // (Once the pipeline has let go of it: polled.)
    wait_for("the replay cached for good", DEADLINE, || async {
        let value = cache_control(ts.clone(), None).await.ok()?;
        (value == "public, max-age=31536000, immutable").then_some(())
    })
    .await?;
    let owner = cache_control(ts.clone(), Some(token.clone())).await?;
    assert!(owner.starts_with("private"), "{owner}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_names_the_client_only_behind_a_trusted_proxy() -> Result<()> {
    // The limit: 10 sign-ups a minute from one address.
    let sign_up = |api: &Api, forwarded_for: &str, handle: String| {
        let request = api
            .http
            .post(api.url("/api/v1/viewers"))
            .header("x-forwarded-for", forwarded_for)
            .json(&json!({ "handle": handle }));
        async move { anyhow::Ok(request.send().await?.status().as_u16()) }
    };

    // No trusted proxy (the default): a made-up header changes nothing, the peer is the client.
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let mut statuses = Vec::new();
    for i in 0..11 {
        statuses.push(sign_up(&api, &format!("198.51.100.{i}"), format!("spoof{i}")).await?);
    }
    assert_eq!(statuses[..10], [201; 10]);
    assert_eq!(statuses[10], 429, "a spoofed X-Forwarded-For is ignored");
    server.stop().await;

    // Behind a trusted proxy (here the test itself, on loopback, and a 10/8 hop before it):
    // the rightmost address that is not a trusted proxy is the client; what the client wrote
    // to the left of it is ignored.
    let mut server = Server::start_with(|c| {
        c.http.trusted_proxies = vec!["127.0.0.1".parse().unwrap(), "10.0.0.0/8".parse().unwrap()];
    })
    .await?;
    let api = server.api.clone();
    for i in 0..10 {
        let chain = format!("192.0.2.{i}, 203.0.113.7, 10.1.2.3");
        assert_eq!(
            sign_up(&api, &chain, format!("a{i}")).await?,
            201,
            "{chain}"
        );
    }
    for chain in [
        "203.0.113.7",
        "192.0.2.99, 203.0.113.7",
        "1.1.1.1, 203.0.113.7, 10.9.9.9",
    ] {
        assert_eq!(
            sign_up(&api, chain, "again".into()).await?,
            429,
            "{chain}: the same client"
        );
    }
    assert_eq!(
        sign_up(&api, "203.0.113.7, 203.0.113.8", "other".into()).await?,
        201,
        "another client behind the same proxy has its own limit"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_end_the_store_refused_is_stored_once_it_can_write_again() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let live = create(&api, &token, json!({"title": "Now", "mode": "public"})).await?;
    let id = live["id"].as_str().context("id")?.to_string();
    let publisher = Publish::small(4.0).spawn(&server.publish_url(&live))?;
    let stream = || async { api.stream(&token, &id).await.ok() };
    wait_for("the stream live", DEADLINE, || async {
        let v = stream().await?;
        (v["state"] == "live" && !v["health"].is_null()).then_some(())
    })
    .await?;
    // Another process holds the store's write lock (a full disk refuses writes alike): the
    // publisher leaves, and its end cannot be stored.
    let db = rusqlite::Connection::open(server.data_dir().join("livefront.db"))?;
    db.busy_timeout(std::time::Duration::from_secs(10))?;
    db.execute_batch("BEGIN EXCLUSIVE")?;
    finish(publisher, DEADLINE).await?;
    // Each write the lock refuses holds the one writer for the store's busy timeout (5 s), and
    // the end queues behind the session's other writes (followers, reminders, analytics,
    // replay): allow for a slow machine. Reads go on meanwhile (read-only connections).
    let v = wait_for(
        "the publish over (its end refused)",
        DEADLINE * 2,
        || async {
            let v = stream().await?;
            v["health"].is_null().then_some(v)
        },
    )
    .await?;
    assert_eq!(v["state"], "live", "the store could not take the end: {v}");
    // The lock goes: the end and the finished recording are stored without a restart or a
    // new publish.
    db.execute_batch("COMMIT")?;
    drop(db);
    wait_for(
        "the stream ended, its recording ready",
        DEADLINE,
        || async {
            let v = stream().await?;
            (v["state"] == "ended" && v["recording"]["state"] == "ready").then_some(())
        },
    )
    .await?;
    server.stop().await;
    Ok(())
}
