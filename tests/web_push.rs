//! Web Push: a viewer's browser subscription gets every feed entry as an encrypted, VAPID-signed
//! push. The push service here is a real HTTP server on 127.0.0.1 that checks the VAPID JWT
//! against the server's published key and decrypts the body (RFC 8291) with the subscription's
//! private key, as a browser would. (A browser test is not possible: headless Chromium cannot
//! reach a real push service here.)
mod common;

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use common::*;
use reqwest::Method;
use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use serde_json::{Value, json};

/// One push as the push service received it.
#[derive(Clone, Debug)]
struct Received {
    name: String,
    authorization: String,
    encoding: String,
    ttl: String,
    body: Vec<u8>,
}

/// A push service: `POST /push/{name}` records the push and answers 201, or 410 for `gone`.
struct PushService {
    addr: std::net::SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn receive(
    State(received): State<Arc<Mutex<Vec<Received>>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let header = |h: &str| {
        headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    received.lock().unwrap().push(Received {
        name: name.clone(),
        authorization: header("authorization"),
        encoding: header("content-encoding"),
        ttl: header("ttl"),
        body: body.to_vec(),
    });
    if name == "gone" {
        StatusCode::GONE
    } else {
        StatusCode::CREATED
    }
}

impl PushService {
    async fn start() -> Result<PushService> {
        let received = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/push/{name}", axum::routing::post(receive))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = tokio_util::sync::CancellationToken::new();
        let until = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Ok(PushService {
            addr,
            received,
            stop,
            task,
        })
    }

    fn endpoint(&self, name: &str) -> String {
        format!("http://{}/push/{name}", self.addr)
    }

    fn received(&self, name: &str) -> Vec<Received> {
        let all = self.received.lock().unwrap();
        all.iter().filter(|r| r.name == name).cloned().collect()
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A browser's side of a subscription: its key pair and auth secret.
struct Browser {
    keys: Box<dyn ece::LocalKeyPair>,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Result<Browser> {
        let (keys, auth) = ece::generate_keypair_and_auth_secret()?;
        Ok(Browser { keys, auth })
    }

    /// `PushSubscription.toJSON()` for `endpoint`.
    fn subscription(&self, endpoint: &str) -> Result<Value> {
        Ok(json!({
            "endpoint": endpoint,
            "expirationTime": null,
            "keys": {"p256dh": B64.encode(self.keys.pub_as_raw()?), "auth": B64.encode(self.auth)},
        }))
    }

    fn decrypt(&self, body: &[u8]) -> Result<Value> {
        let plain = ece::decrypt(&self.keys.raw_components()?, &self.auth, body)?;
        Ok(serde_json::from_slice(&plain)?)
    }
}

async fn subscribe(api: &Api, token: &str, sub: Value) -> Result<(u16, Value)> {
    api.request(
        Method::POST,
        "/api/v1/me/push-subscriptions",
        Some(token),
        Some(sub),
    )
    .await
}

async fn endpoints(api: &Api, token: &str) -> Result<Vec<String>> {
    let (status, v) = api
        .get("/api/v1/me/push-subscriptions", Some(token))
        .await?;
    anyhow::ensure!(status == 200, "{status} {v}");
    Ok(v["subscriptions"]
        .as_array()
        .context("subscriptions")?
        .iter()
        .filter_map(|s| s["endpoint"].as_str().map(str::to_string))
        .collect())
}

/// Checks `vapid t=<jwt>, k=<key>`: signed by `key`, for `audience`, expiring within 24 h.
fn check_vapid(authorization: &str, key: &str, audience: &str) -> Result<()> {
    let (jwt, k) = authorization
        .strip_prefix("vapid t=")
        .and_then(|rest| rest.split_once(", k="))
        .with_context(|| format!("not a vapid header: {authorization}"))?;
    anyhow::ensure!(k == key, "k= is not the published key");
    let (signed, signature) = jwt.rsplit_once('.').context("jwt")?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, B64.decode(key)?)
        .verify(signed.as_bytes(), &B64.decode(signature)?)
        .map_err(|_| anyhow::anyhow!("the JWT signature does not verify with the published key"))?;
    let (header, claims) = signed.split_once('.').context("jwt")?;
    let header: Value = serde_json::from_slice(&B64.decode(header)?)?;
    assert_eq!(header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(&B64.decode(claims)?)?;
    assert_eq!(claims["aud"], audience, "{claims}");
    let exp = claims["exp"].as_i64().context("exp")?;
    let now = chrono::Utc::now().timestamp();
    assert!(exp > now && exp <= now + 24 * 3600, "{claims}");
    assert!(
        claims["sub"]
            .as_str()
            .is_some_and(|s| s.starts_with("http") || s.starts_with("mailto:")),
        "{claims}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_followed_creator_going_live_is_pushed_encrypted_and_signed_and_gone_subscriptions_are_removed()
-> Result<()> {
    let mut server = Server::start_with(|c| c.push.allow_private_endpoints = true).await?;
    let push = PushService::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());
    let stream = server.demo_stream.clone();
    let id = stream["id"].as_str().context("id")?.to_string();

    let (status, key) = api.get("/api/v1/push/key", None).await?;
    assert_eq!(status, 200, "{key}");
    let key = key["public_key"]
        .as_str()
        .context("public_key")?
        .to_string();
    assert_eq!(B64.decode(&key)?.len(), 65, "an uncompressed P-256 point");

    let vera = api.register_viewer("vera").await?;
    api.ok(Method::PUT, "/api/v1/creators/demo/follow", &vera, None)
        .await?;
    let (phone, laptop) = (Browser::new()?, Browser::new()?);
    let (status, v) = subscribe(&api, &vera, phone.subscription(&push.endpoint("phone"))?).await?;
    assert_eq!(status, 201, "{v}");
    let (status, v) = subscribe(&api, &vera, laptop.subscription(&push.endpoint("gone"))?).await?;
    assert_eq!(status, 201, "{v}");
    // The same browser subscribing again replaces its subscription.
    let (status, v) = subscribe(&api, &vera, phone.subscription(&push.endpoint("phone"))?).await?;
    assert_eq!(status, 201, "{v}");
    assert_eq!(endpoints(&api, &vera).await?.len(), 2);

    // Public first, then live: followers are told, and so are their browsers.
    api.set_mode(&creator, &id, "public").await?;
    let _publisher = Publish::small(30.0).spawn(&server.publish_url(&stream))?;
    let got = wait_for("a push to the phone", DEADLINE, || async {
        push.received("phone").into_iter().next()
    })
    .await?;
    check_vapid(&got.authorization, &key, &format!("http://{}", push.addr))?;
    assert_eq!(got.encoding, "aes128gcm");
    assert!(got.ttl.parse::<u32>().is_ok_and(|t| t > 0), "{}", got.ttl);
    let message = phone.decrypt(&got.body)?;
    assert_eq!(message["kind"], "live", "{message}");
    assert_eq!(message["stream_id"], id.as_str(), "{message}");
    assert_eq!(message["url"], format!("/watch/{id}"), "{message}");
    assert_eq!(message["title"], "@demo is live", "{message}");
    assert_eq!(message["body"], stream["title"], "{message}");
    assert!(
        laptop.decrypt(&got.body).is_err(),
        "only the subscription's own keys open it"
    );

    // The push service said 410 for the other one: it is forgotten.
    wait_for("the gone subscription removed", DEADLINE, || async {
        let list = endpoints(&api, &vera).await.ok()?;
        (list == vec![push.endpoint("phone")]).then_some(())
    })
    .await?;
    assert_eq!(push.received("gone").len(), 1, "404/410 is not retried");

    // Unsubscribing removes it; unknown endpoints are 404.
    let gone = json!({"endpoint": push.endpoint("phone")});
    let (status, _) = api
        .request(
            Method::DELETE,
            "/api/v1/me/push-subscriptions",
            Some(&vera),
            Some(gone.clone()),
        )
        .await?;
    assert_eq!(status, 204);
    let (status, _) = api
        .request(
            Method::DELETE,
            "/api/v1/me/push-subscriptions",
            Some(&vera),
            Some(gone),
        )
        .await?;
    assert_eq!(status, 404);
    assert!(endpoints(&api, &vera).await?.is_empty());

    server.stop().await;
    push.stop().await;
    Ok(())
}

fn assert_refused(status: u16, v: &Value, code: &str, says: &str) {
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains(says)),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_subscriptions_with_bad_keys_or_beyond_ten_are_refused() -> Result<()> {
    let mut server = Server::start_with(|c| c.push.allow_private_endpoints = true).await?;
    let api = server.api.clone();
    let mallory = api.register_viewer("mallory").await?;
    let browser = Browser::new()?;
    let endpoint = "http://127.0.0.1:9/push/x";

    let mut sub = browser.subscription(endpoint)?;
    sub["keys"]["p256dh"] = json!(B64.encode([4u8; 65]));
    let (status, v) = subscribe(&api, &mallory, sub).await?;
    assert_refused(status, &v, "bad_keys", "not a point on P-256");
    let mut sub = browser.subscription(endpoint)?;
    sub["keys"]["p256dh"] = json!("not base64!");
    let (status, v) = subscribe(&api, &mallory, sub).await?;
    assert_refused(status, &v, "bad_keys", "p256dh");
    let mut sub = browser.subscription(endpoint)?;
    sub["keys"]["auth"] = json!(B64.encode([1u8; 32]));
    let (status, v) = subscribe(&api, &mallory, sub).await?;
    assert_refused(status, &v, "bad_keys", "16 bytes");
    let (status, v) = subscribe(&api, &mallory, json!({"endpoint": endpoint})).await?;
    assert_eq!(status, 400, "{v}");
    let (status, v) = subscribe(
        &api,
        &mallory,
        browser.subscription(&format!("http://127.0.0.1:9/{}", "a".repeat(3000)))?,
    )
    .await?;
    assert_refused(status, &v, "bad_endpoint", "https://");
    assert!(endpoints(&api, &mallory).await?.is_empty(), "nothing kept");

    for i in 0..10 {
        let (status, v) = subscribe(
            &api,
            &mallory,
            browser.subscription(&format!("http://127.0.0.1:9/push/{i}"))?,
        )
        .await?;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = subscribe(
        &api,
        &mallory,
        browser.subscription("http://127.0.0.1:9/push/11")?,
    )
    .await?;
    assert_refused(status, &v, "too_many_subscriptions", "at most 10");
    // Subscribing one of the ten again is no new one.
    let (status, v) = subscribe(
        &api,
        &mallory,
        browser.subscription("http://127.0.0.1:9/push/3")?,
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    assert_eq!(endpoints(&api, &mallory).await?.len(), 10);

    // Only viewers subscribe.
    let (status, _) = subscribe(
        &api,
        &server.demo_token.clone(),
        browser.subscription(endpoint)?,
    )
    .await?;
    assert_eq!(status, 403);
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_private_push_endpoints_are_refused_without_the_switch() -> Result<()> {
    let mut server = Server::start().await?;
    let api = server.api.clone();
    let viewer = api.register_viewer("vera").await?;
    let browser = Browser::new()?;

    let (status, v) = subscribe(
        &api,
        &viewer,
        browser.subscription("http://push.example.com/x")?,
    )
    .await?;
    assert_refused(status, &v, "bad_endpoint", "https://");
    let (status, v) =
        subscribe(&api, &viewer, browser.subscription("https://127.0.0.1/x")?).await?;
    assert_refused(status, &v, "bad_endpoint", "push.allow_private_endpoints");
    let (status, v) =
        subscribe(&api, &viewer, browser.subscription("https://[::1]:8443/x")?).await?;
    assert_refused(status, &v, "bad_endpoint", "push.allow_private_endpoints");
    assert!(endpoints(&api, &viewer).await?.is_empty());
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_push_off_no_key_is_published() -> Result<()> {
    let mut server = Server::start_with(|c| c.push.enabled = false).await?;
    let (status, v) = server.api.get("/api/v1/push/key", None).await?;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["code"], "unavailable", "{v}");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_worker_is_served_at_the_root_as_javascript() -> Result<()> {
    let mut server = Server::start().await?;
    let resp = server.api.http.get(server.api.url("/sw.js")).send().await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()?
            .starts_with("text/javascript"),
        "{:?}",
        resp.headers()
    );
    let text = resp.text().await?;
    assert!(
        text.contains("\"push\"") && text.contains("notificationclick"),
        "{text}"
    );
    server.stop().await;
    Ok(())
}
