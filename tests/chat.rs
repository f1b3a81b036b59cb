//! The live channel of a stream (`GET /api/v1/streams/{id}/live`, WebSocket) with real clients:
//! chat between clients, replay, limits, moderation, slow clients, connection limits, practice.
mod common;

use std::time::Duration;

use anyhow::{Context, Result};
use common::ws::{LiveClient, Refused, Token, ticket};
use common::*;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

async fn viewer(api: &Api, handle: &str) -> Result<String> {
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/viewers",
            None,
            Some(json!({ "handle": handle })),
        )
        .await?;
    anyhow::ensure!(status == 201, "register viewer: {status} {v}");
    Ok(v["token"].as_str().context("token")?.to_string())
}

async fn public_stream(api: &Api, creator: &str, title: &str) -> Result<String> {
    let (status, v) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(creator),
            Some(json!({"title": title, "mode": "public"})),
        )
        .await?;
    anyhow::ensure!(status == 201, "create stream: {status} {v}");
    Ok(v["id"].as_str().context("id")?.to_string())
}

fn texts(messages: &[Value]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect()
}

/// Reads `n` chat messages (nothing else may come in between, except viewer counts).
async fn chat_messages(client: &mut LiveClient, n: usize) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(client.expect("chat_message").await?);
    }
    Ok(out)
}

async fn error_code(client: &mut LiveClient) -> Result<Value> {
    client.expect("error").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_chat_and_a_late_joiner_gets_the_last_50_replayed() -> Result<()> {
    let mut server = Server::start_with(|c| c.chat.rate_messages = 1000).await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "chatty").await?;
    let ann = viewer(&api, "ann").await?;
    let bob = viewer(&api, "bob").await?;
    let mut a = LiveClient::connect(&api, &id, Token::Header(&ann)).await?;
    let mut b = LiveClient::connect(&api, &id, Token::Header(&bob)).await?;

    // Bob answers once he has read Ann: both see the same two messages in that order.
    a.say("hello bob").await?;
    let (mut seen_by_a, mut seen_by_b) = (vec![a.expect("chat_message").await?], vec![]);
    seen_by_b.push(b.expect("chat_message").await?);
    b.say("hi ann").await?;
    seen_by_a.push(a.expect("chat_message").await?);
    seen_by_b.push(b.expect("chat_message").await?);
    for got in [seen_by_a, seen_by_b] {
        assert_eq!(texts(&got), ["hello bob", "hi ann"]);
        assert_eq!(
            (&got[0]["user"], &got[0]["role"]),
            (&json!("ann"), &json!("viewer"))
        );
        assert_eq!(got[1]["user"], "bob");
        assert!(got[0]["id"].as_i64() < got[1]["id"].as_i64(), "{got:?}");
        assert!(
            got[0]["at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{got:?}"
        );
    }

    // The host joins: the two messages so far are replayed, then it writes 60 more.
    let mut h = LiveClient::connect(&api, &id, Token::Header(&host)).await?;
    assert_eq!(
        texts(&chat_messages(&mut h, 2).await?),
        ["hello bob", "hi ann"]
    );
    for i in 0..60 {
        h.say(&format!("m{i}")).await?;
    }
    let sent = chat_messages(&mut h, 60).await?;
    assert_eq!(sent[0]["role"], "creator");
    assert_eq!(sent[0]["user"], "demo");
    assert_eq!(texts(&chat_messages(&mut a, 60).await?), texts(&sent));

    // A late joiner, without a token, gets exactly the last 50, oldest first, then live ones.
    let mut late = LiveClient::connect(&api, &id, Token::None).await?;
    let replayed = chat_messages(&mut late, 50).await?;
    let expected: Vec<String> = (10..60).map(|i| format!("m{i}")).collect();
    assert_eq!(texts(&replayed), expected);
    h.say("after the replay").await?;
    assert_eq!(
        late.expect("chat_message").await?["text"],
        "after the replay"
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_with_error_events_and_keep_the_connection() -> Result<()> {
    // Defaults: 500 characters, 5 messages per 10 s.
    let mut server = Server::start().await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "limits").await?;
    let fan = viewer(&api, "fan").await?;
    let mut c = LiveClient::connect(&api, &id, Token::Header(&fan)).await?;
    let mut anon = LiveClient::connect(&api, &id, Token::None).await?;

    anon.say("may I?").await?;
    let e = error_code(&mut anon).await?;
    assert_eq!(e["code"], "unauthorized", "{e}");

    c.say(&"x".repeat(501)).await?;
    let e = error_code(&mut c).await?;
    assert_eq!(e["code"], "too_long", "{e}");
    assert!(e["message"].as_str().unwrap().contains("500"), "{e}");
    c.send_json(json!({"type": "dance"})).await?;
    assert_eq!(error_code(&mut c).await?["code"], "bad_request");

    // 500 characters (1000 bytes) are fine; refused ones above did not count against the rate.
    c.say(&"é".repeat(500)).await?;
    for i in 2..=5 {
        c.say(&format!("message {i}")).await?;
    }
    assert_eq!(chat_messages(&mut c, 5).await?.len(), 5);
    c.say("sixth").await?;
    let e = error_code(&mut c).await?;
    assert_eq!(e["code"], "rate_limited", "{e}");
    let retry = e["retry_after_ms"].as_u64().context("retry_after_ms")?;
    assert!((1..=10_000).contains(&retry), "{e}");
    c.say("seventh").await?;
    assert_eq!(error_code(&mut c).await?["code"], "rate_limited");

    // The others saw the five messages and nothing refused.
    let seen = chat_messages(&mut anon, 5).await?;
    assert_eq!(seen[4]["text"], "message 5");
    let mut h = LiveClient::connect(&api, &id, Token::Header(&host)).await?;
    chat_messages(&mut h, 5).await?;
    h.say("marker").await?;
    assert_eq!(anon.expect("chat_message").await?["text"], "marker");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_viewer_is_refused_and_every_stream_of_the_creator_hears_it() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let one = public_stream(&api, &host, "one").await?;
    let two = public_stream(&api, &host, "two").await?;
    let troll = viewer(&api, "troll").await?;
    let fan = viewer(&api, "fan").await?;
    let mut t = LiveClient::connect(&api, &one, Token::Header(&troll)).await?;
    let mut f = LiveClient::connect(&api, &two, Token::Header(&fan)).await?;
    t.say("first").await?;
    t.expect("chat_message").await?;

    let (status, ban) = api
        .request(
            Method::POST,
            "/api/v1/me/chat/bans",
            Some(&host),
            Some(json!({"user": "troll", "duration_s": 600})),
        )
        .await?;
    assert_eq!(status, 201, "{ban}");
    assert_eq!(ban["user"], "troll");
    assert!(ban["until"].is_string(), "{ban}");
    for client in [&mut t, &mut f] {
        let event = client.expect("user_banned").await?;
        assert_eq!(
            (&event["user"], &event["until"]),
            (&ban["user"], &ban["until"])
        );
    }
    t.say("you cannot stop me").await?;
    let e = error_code(&mut t).await?;
    assert_eq!(
        (&e["code"], &e["until"]),
        (&json!("banned"), &ban["until"]),
        "{e}"
    );

    let (_, list) = api.get("/api/v1/me/chat/bans", Some(&host)).await?;
    assert_eq!(list["bans"].as_array().map(Vec::len), Some(1), "{list}");
    // Only creators ban, and only viewers who exist.
    let body = Some(json!({"user": "fan"}));
    let (status, _) = api
        .request(Method::POST, "/api/v1/me/chat/bans", Some(&fan), body)
        .await?;
    assert_eq!(status, 403);
    let (status, _) = api
        .request(
            Method::POST,
            "/api/v1/me/chat/bans",
            Some(&host),
            Some(json!({"user": "nobody"})),
        )
        .await?;
    assert_eq!(status, 404);

    // Lifted: the viewer writes again.
    let (status, _) = api
        .request(
            Method::DELETE,
            "/api/v1/me/chat/bans/troll",
            Some(&host),
            None,
        )
        .await?;
    assert_eq!(status, 204);
    assert_eq!(t.expect("user_unbanned").await?["user"], "troll");
    t.say("sorry").await?;
    assert_eq!(t.expect("chat_message").await?["text"], "sorry");
    let (status, _) = api
        .request(
            Method::DELETE,
            "/api/v1/me/chat/bans/troll",
            Some(&host),
            None,
        )
        .await?;
    assert_eq!(status, 404);

    // What the stream kept: the refused message is nowhere.
    let (_, page) = api
        .get(&format!("/api/v1/streams/{one}/chat"), None)
        .await?;
    assert_eq!(
        texts(page["messages"].as_array().unwrap()),
        ["sorry", "first"]
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_message_is_announced_and_gone_from_pages_and_replay() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "moderated").await?;
    let fan = viewer(&api, "fan").await?;
    let mut f = LiveClient::connect(&api, &id, Token::Header(&fan)).await?;
    for t in ["one", "two", "three"] {
        f.say(t).await?;
    }
    let sent = chat_messages(&mut f, 3).await?;
    let ids: Vec<i64> = sent.iter().map(|m| m["id"].as_i64().unwrap()).collect();

    let path = format!("/api/v1/streams/{id}/chat/{}", ids[1]);
    let (status, _) = api.request(Method::DELETE, &path, Some(&fan), None).await?;
    assert_eq!(status, 403, "a viewer cannot delete");
    let (status, _) = api
        .request(Method::DELETE, &path, Some(&host), None)
        .await?;
    assert_eq!(status, 204);
    assert_eq!(
        f.expect("message_deleted").await?,
        json!({"type": "message_deleted", "id": ids[1]})
    );
    let (status, _) = api
        .request(Method::DELETE, &path, Some(&host), None)
        .await?;
    assert_eq!(status, 404, "already deleted");
    let bad = format!("/api/v1/streams/{id}/chat/abc");
    assert_eq!(
        api.request(Method::DELETE, &bad, Some(&host), None)
            .await?
            .0,
        404
    );

    let (status, page) = api.get(&format!("/api/v1/streams/{id}/chat"), None).await?;
    assert_eq!(status, 200);
    assert_eq!(
        texts(page["messages"].as_array().unwrap()),
        ["three", "one"]
    );
    assert_eq!(page["next_before"], Value::Null);
    let (_, first) = api
        .get(&format!("/api/v1/streams/{id}/chat?limit=1"), None)
        .await?;
    assert_eq!(texts(first["messages"].as_array().unwrap()), ["three"]);
    let before = first["next_before"].as_i64().context("next_before")?;
    let (_, older) = api
        .get(
            &format!("/api/v1/streams/{id}/chat?limit=1&before={before}"),
            None,
        )
        .await?;
    assert_eq!(texts(older["messages"].as_array().unwrap()), ["one"]);

    let mut late = LiveClient::connect(&api, &id, Token::None).await?;
    assert_eq!(texts(&chat_messages(&mut late, 2).await?), ["one", "three"]);
    f.say("four").await?;
    assert_eq!(late.expect("chat_message").await?["text"], "four");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_words_are_refused_as_whole_words_in_any_case() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "clean").await?;
    let fan = viewer(&api, "fan").await?;
    let (status, v) = api
        .request(
            Method::PUT,
            "/api/v1/me/chat/blocked_words",
            Some(&host),
            Some(json!({"words": ["Spam", "buy  NOW", "spam"]})),
        )
        .await?;
    assert_eq!((status, &v), (200, &json!({"words": ["buy now", "spam"]})));
    let (_, v) = api
        .get("/api/v1/me/chat/blocked_words", Some(&host))
        .await?;
    assert_eq!(v, json!({"words": ["buy now", "spam"]}));
    let bad = Some(json!({"words": ["!!!"]}));
    let (status, _) = api
        .request(
            Method::PUT,
            "/api/v1/me/chat/blocked_words",
            Some(&host),
            bad,
        )
        .await?;
    assert_eq!(status, 400);
    let (status, _) = api
        .request(
            Method::PUT,
            "/api/v1/me/chat/blocked_words",
            Some(&fan),
            Some(json!({"words": []})),
        )
        .await?;
    assert_eq!(status, 403);

    let mut f = LiveClient::connect(&api, &id, Token::Header(&fan)).await?;
    f.say("SPAM!").await?;
    assert_eq!(error_code(&mut f).await?["code"], "blocked_word");
    f.say("Buy now, friends").await?;
    assert_eq!(error_code(&mut f).await?["code"], "blocked_word");
    f.say("no spammers here").await?;
    assert_eq!(f.expect("chat_message").await?["text"], "no spammers here");
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_others_get_everything() -> Result<()> {
    // More than the kernel can buffer for the client that does not read: the server's socket send
    // buffer grows up to tcp_wmem's maximum; its own receive buffer is pinned small below.
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")?;
    let wmem_max: usize = wmem
        .split_whitespace()
        .nth(2)
        .context("tcp_wmem")?
        .parse()?;
    const SIZE: usize = 10_000;
    let messages = (wmem_max + (2 << 20)) / SIZE;
    let mut server = Server::start_with(|c| {
        c.chat.rate_messages = 100_000;
        c.chat.max_message_chars = SIZE;
        c.chat.queue = 64;
        c.chat.send_timeout = Duration::from_secs(2);
    })
    .await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "firehose").await?;

    // The slow client: a tiny receive buffer, handshake, then it never reads.
    let url = common::ws::live_url(&api, &id, Token::None);
    let addr = api.base.trim_start_matches("http://").parse()?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_recv_buffer_size(4096)?;
    let tcp = tokio_tungstenite::MaybeTlsStream::Plain(socket.connect(addr).await?);
    let (socket, _) =
        tokio_tungstenite::client_async(common::ws::request(&url, Token::None)?, tcp).await?;
    let mut slow = LiveClient { socket };

    // A normal client reads everything as it comes.
    let mut normal = LiveClient::connect(&api, &id, Token::None).await?;
    let reader = tokio::spawn(async move {
        let got = chat_messages(&mut normal, messages).await?;
        anyhow::Ok(
            texts(&got)
                .iter()
                .map(|t| t[..8].to_string())
                .collect::<Vec<_>>(),
        )
    });

    // The host sends, each message once its own copy is back (so the server is never flooded).
    let mut h = LiveClient::connect(&api, &id, Token::Header(&host)).await?;
    let filler = "x".repeat(SIZE - 8);
    for i in 0..messages {
        let text = format!("{i:08}{filler}");
        h.say(&text).await?;
        let echo = h.expect("chat_message").await?;
        assert_eq!(echo["text"].as_str().map(|t| &t[..8]), Some(&text[..8]));
    }
    let received = reader.await??;
    let expected: Vec<String> = (0..messages).map(|i| format!("{i:08}")).collect();
    assert_eq!(
        received, expected,
        "the normal client got every message, in order"
    );

    // The slow client was cut off: it reads what its buffers held, then the end.
    let (events, close) = slow.drain_until_closed().await?;
    let chats = events
        .iter()
        .filter(|e| e["type"] == "chat_message")
        .count();
    assert!(
        chats < messages,
        "the slow client was not dropped ({chats} messages)"
    );
    if let Some(close) = close {
        assert_eq!(close.code, CloseCode::from(4000), "{close:?}");
    }
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_stream_refuses_the_upgrade_with_503_until_a_seat_frees() -> Result<()> {
    let mut server = Server::start_with(|c| c.chat.max_connections_per_stream = 2).await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "small room").await?;
    let first = LiveClient::connect(&api, &id, Token::None).await?;
    let _second = LiveClient::connect(&api, &id, Token::None).await?;
    let refused = LiveClient::try_connect(&api, &id, Token::None)
        .await?
        .err()
        .context("a third connection must be refused")?;
    assert_eq!(refused.status, 503);
    let body: Value = serde_json::from_str(&refused.body)?;
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    // Another stream is not affected.
    let other = public_stream(&api, &host, "other room").await?;
    LiveClient::connect(&api, &other, Token::None).await?;

    drop(first);
    wait_for("a free seat", DEADLINE, || async {
        LiveClient::try_connect(&api, &id, Token::None)
            .await
            .ok()?
            .ok()
    })
    .await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_a_stream_or_inflate_its_connected_count() -> Result<()> {
    let mut server = Server::start_with(|c| {
        c.chat.max_connections_per_address = 3;
        c.chat.max_connections_per_address_all_streams = 5;
    })
    .await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "popular").await?;
    let other = public_stream(&api, &host, "rival").await?;
    let refused_with_429 = |refused: Result<LiveClient, Refused>| match refused {
        Err(r) => {
            let body: Value = serde_json::from_str(&r.body).unwrap_or_default();
            r.status == 429 && body["error"]["code"] == "too_many_requests"
        }
        Ok(_) => false,
    };
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(LiveClient::connect(&api, &id, Token::None).await?);
    }
    assert!(
        refused_with_429(LiveClient::try_connect(&api, &id, Token::None).await?),
        "a fourth connection to one stream from one address"
    );
    for _ in 0..2 {
        held.push(LiveClient::connect(&api, &other, Token::None).await?);
    }
    let third = public_stream(&api, &host, "third").await?;
    assert!(
        refused_with_429(LiveClient::try_connect(&api, &third, Token::None).await?),
        "a sixth connection from one address over all streams"
    );
    // Someone else (another address) still gets in, and the stream counts the 3 + 1 seats.
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind("127.0.0.2:0".parse()?)?;
    let addr = server.app.as_ref().context("running")?.http_addr;
    let tcp = socket.connect(addr).await?;
    let url = common::ws::live_url(&api, &id, Token::None);
    let (socket, _) = tokio_tungstenite::client_async(
        common::ws::request(&url, Token::None)?,
        tokio_tungstenite::MaybeTlsStream::Plain(tcp),
    )
    .await?;
    let mut outsider = LiveClient { socket };
    assert_eq!(outsider.next_any().await?["type"], "stream_state");
    let counts = outsider.next_any().await?;
    assert_eq!(counts["type"], "viewer_count", "{counts}");
    assert_eq!(counts["connected"], 4, "{counts}");
    // A seat given back is free again.
    held.remove(0);
    wait_for("a free seat for the address", DEADLINE, || async {
        LiveClient::try_connect(&api, &id, Token::None)
            .await
            .ok()?
            .ok()
    })
    .await?;
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_chat_is_a_rehearsal_for_the_creator_alone() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    assert_eq!(server.demo_stream["mode"], "practice");
    let fan = viewer(&api, "fan").await?;
    let other = api.create_creator("other").await?;

    let mut h = LiveClient::connect(&api, &id, Token::Header(&host)).await?;
    h.say("testing, testing").await?;
    assert_eq!(h.expect("chat_message").await?["text"], "testing, testing");
    let (status, page) = api
        .get(&format!("/api/v1/streams/{id}/chat"), Some(&host))
        .await?;
    assert_eq!(
        (status, texts(page["messages"].as_array().unwrap())),
        (200, vec!["testing, testing"])
    );

    // Everyone else: exactly what an unknown stream answers.
    let unknown = "zzzzzzzzzzzzzzzz";
    for token in [Token::None, Token::Header(&fan), Token::Header(&other)] {
        let expected = LiveClient::try_connect(&api, unknown, token).await?.err();
        let got = LiveClient::try_connect(&api, &id, token).await?.err();
        assert!(matches!(&got, Some(Refused { status: 404, .. })), "{got:?}");
        assert_eq!(got, expected);
    }
    for token in [&fan, &other] {
        let got = ticket(&api, &id, Some(token)).await?;
        assert_eq!(got.0, 404, "{got:?}");
        assert_eq!(got, ticket(&api, unknown, Some(token)).await?);
    }
    for token in [None, Some(fan.as_str()), Some(other.as_str())] {
        let (status, body) = api
            .get_text(&format!("/api/v1/streams/{id}/chat"), token)
            .await?;
        let expected = api
            .get_text(&format!("/api/v1/streams/{unknown}/chat"), token)
            .await?;
        assert_eq!((status, &body), (expected.0, &expected.1));
        assert_eq!(status, 404);
    }

    // Public: the fan joins and is not replayed the rehearsal (the page leaves it out too); the
    // first message the fan gets is one said in public. Back to practice: the fan is closed
    // with 4404 before anything else is said; the host goes on.
    api.set_mode(&host, &id, "public").await?;
    assert_eq!(h.expect("stream_state").await?["mode"], "public");
    let mut f = LiveClient::connect(&api, &id, Token::Header(&fan)).await?;
    h.say("hello everyone").await?;
    assert_eq!(h.expect("chat_message").await?["text"], "hello everyone");
    assert_eq!(f.expect("chat_message").await?["text"], "hello everyone");
    let (_, page) = api
        .get(&format!("/api/v1/streams/{id}/chat"), Some(&fan))
        .await?;
    assert_eq!(
        texts(page["messages"].as_array().unwrap()),
        vec!["hello everyone"]
    );
    api.set_mode(&host, &id, "practice").await?;
    assert_eq!(h.expect("stream_state").await?["mode"], "practice");
    h.say("just us again").await?;
    assert_eq!(h.expect("chat_message").await?["text"], "just us again");
    let (events, close) = f.drain_until_closed().await?;
    assert!(
        events.iter().all(|e| e["type"] == "viewer_count"),
        "{events:?}"
    );
    assert_eq!(close.map(|c| c.code), Some(CloseCode::from(4404)));
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_open_the_live_channel_with_a_short_lived_ticket_not_an_api_token() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = public_stream(&api, &host, "browser").await?;
    let fan = viewer(&api, "fan").await?;
    let (status, t) = ticket(&api, &id, Some(&fan)).await?;
    assert_eq!(status, 200, "{t}");
    let fan_ticket = t["ticket"].as_str().context("ticket")?.to_string();
    assert!(!fan_ticket.contains(&fan), "the ticket is not the token");
    assert!(
        t["url"].as_str().is_some_and(
            |u| u.starts_with("ws://") && u.ends_with(&format!("/live?ticket={fan_ticket}"))
        ),
        "{t}"
    );
    let expires =
        chrono::DateTime::parse_from_rfc3339(t["expires_at"].as_str().context("expiry")?)?;
    let left = expires.signed_duration_since(chrono::Utc::now());
    assert!(
        left <= chrono::TimeDelta::seconds(60),
        "short-lived: {left}"
    );
    let mut f = LiveClient::connect(&api, &id, Token::Ticket(&fan_ticket)).await?;
    f.say("from a browser").await?;
    let m = f.expect("chat_message").await?;
    assert_eq!(
        (&m["user"], &m["text"]),
        (&json!("fan"), &json!("from a browser"))
    );
    // A long-lived API token in the URL is refused (it would end up in logs and history), the
    // fan's own included.
    for token in [fan.as_str(), "lft_not_a_token"] {
        let refused = LiveClient::try_connect(&api, &id, Token::Query(token))
            .await?
            .err()
            .context("a token in the query")?;
        assert_eq!(refused.status, 400, "{refused:?}");
        assert!(refused.body.contains("token_in_query"), "{refused:?}");
    }
    // A ticket opens only its own stream, for whom it was given, unaltered.
    let other = public_stream(&api, &host, "other").await?;
    let refused = LiveClient::try_connect(&api, &other, Token::Ticket(&fan_ticket))
        .await?
        .err()
        .context("another stream's ticket")?;
    assert_eq!(refused.status, 401);
    let (_, host_ticket) = ticket(&api, &id, Some(&host)).await?;
    let host_ticket = host_ticket["ticket"].as_str().context("ticket")?;
    let (subject, signature) = host_ticket.split_once('.').context("subject")?;
    let (fan_subject, _) = fan_ticket.split_once('.').context("subject")?;
    assert_ne!(subject, fan_subject);
    for forged in [
        format!("{fan_subject}.{signature}"),
        format!("admin.{signature}"),
        "viewer:x.9999999999.00".to_string(),
        "garbage".to_string(),
    ] {
        let refused = LiveClient::try_connect(&api, &id, Token::Ticket(&forged))
            .await?
            .err()
            .context("a forged ticket")?;
        assert_eq!(refused.status, 401, "{forged}: {refused:?}");
    }
    // A ticket needs a token; a practice stream's only for its creator (as an unknown id).
    assert_eq!(ticket(&api, &id, None).await?.0, 401);
    let practice = server.demo_stream["id"].as_str().unwrap().to_string();
    assert_eq!(
        ticket(&api, &practice, Some(&fan)).await?,
        ticket(&api, "zzzzzzzzzzzzzzzz", Some(&fan)).await?
    );
    let (status, t) = ticket(&api, &practice, Some(&host)).await?;
    assert_eq!(status, 200, "{t}");
    LiveClient::connect(
        &api,
        &practice,
        Token::Ticket(t["ticket"].as_str().unwrap()),
    )
    .await?;
    // A plain GET (no upgrade) says what is needed.
    let (status, body) = api.get(&format!("/api/v1/streams/{id}/live"), None).await?;
    assert_eq!(
        (status, &body["error"]["code"]),
        (426, &json!("upgrade_required"))
    );
    server.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_state_and_viewer_counts_follow_the_stream_and_chat_is_read_only_after_the_end()
-> Result<()> {
    let mut server = Server::start_with(|c| {
        c.chat.viewer_count_interval = Duration::from_millis(200);
    })
    .await?;
    let (api, host) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    api.set_mode(&host, &id, "public").await?;
    let fan = viewer(&api, "fan").await?;
    let mut f = LiveClient::connect(&api, &id, Token::Header(&fan)).await?;
    let mut h = LiveClient::connect(&api, &id, Token::Header(&host)).await?;
    // The fan hears of the second connection.
    loop {
        let v = f.next_any().await?;
        if v["type"] == "viewer_count" && v["connected"] == 2 {
            assert!(v["watching"].is_u64(), "{v}");
            break;
        }
    }

    let publisher = Publish::small(3.0).spawn(&server.publish_url(&server.demo_stream))?;
    let live = f.expect("stream_state").await?;
    assert_eq!(
        live,
        json!({"type": "stream_state", "state": "live", "mode": "public", "reconnecting": false})
    );
    let (status, stderr) = finish(publisher, DEADLINE).await?;
    assert!(status.success(), "{stderr}");
    assert_eq!(f.expect("stream_state").await?["state"], "ended");
    h.expect("stream_state").await?;
    h.expect("stream_state").await?;

    f.say("too late?").await?;
    assert_eq!(f.expect("error").await?["code"], "stream_ended");
    // The record stays readable, and new clients get the state at once.
    let (status, _) = api.get(&format!("/api/v1/streams/{id}/chat"), None).await?;
    assert_eq!(status, 200);
    let mut late = LiveClient::try_connect(&api, &id, Token::None)
        .await?
        .ok()
        .context("connect after the end")?;
    let first = late.next_any().await?;
    assert_eq!(
        (&first["type"], &first["state"]),
        (&json!("stream_state"), &json!("ended"))
    );
    server.stop().await;
    Ok(())
}
