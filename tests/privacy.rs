//! Practice mode hides a stream from everyone but its creator, everywhere. One table: every URL
//! that could reveal a stream × anonymous, a viewer, another creator. A new endpoint gets a row.
//!
//! Per-stream URLs must answer exactly what an unknown stream id answers (same status, same body);
//! listings and feeds must not mention the stream at all. The table (`PER_STREAM`, `LISTINGS`) is
//! in `common`: tests/trust.rs checks taken-down streams against it too.
mod common;

use anyhow::Result;
use common::ws::{LiveClient, Token, ticket};
use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn practice_streams_leak_nowhere() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, creator) = (server.api.clone(), server.demo_token.clone());

    // One practice stream that has ended (segments, recording, poster, a clip on disk: it was
    // public for a while, then back in practice), one live.
    let (_, ended) = api
        .request(
            Method::POST,
            "/api/v1/streams",
            Some(&creator),
            Some(json!({"title": "secret rehearsal", "category": "secret_category"})),
        )
        .await?;
    let ended_id = ended["id"].as_str().unwrap().to_string();
    let product = api.create_product(&creator, "secret").await?;
    api.set_carousel(&creator, &ended_id, &[&product]).await?;
    let mut publisher = Publish::small(60.0).spawn(&server.publish_url(&ended))?;
    source_segments(&api, &creator, &ended_id, 1).await?;
    api.set_mode(&creator, &ended_id, "public").await?;
    // A product in focus in public leaves a chapter, and so a clip (`/clips/{id}/1.mp4`).
    let (status, v) = api.focus(&creator, &ended_id, Some(&product)).await?;
    assert_eq!(status, 200, "{v}");
    api.playlist_with_segments(&format!("/hls/{ended_id}/source/index.m3u8"), 2)
        .await?;
    api.set_mode(&creator, &ended_id, "practice").await?;
    api.end_stream(&creator, &ended_id).await?;
    tokio::time::timeout(DEADLINE, publisher.wait()).await??;
    api.recording_ready(&creator, &ended_id).await?;
    let clips = api.clips_cut(Some(&creator), &ended_id, 1).await?;
    assert_eq!(clips[0]["state"], "ready", "{clips:?}");
    let live = server.demo_stream.clone();
    let live_id = live["id"].as_str().unwrap().to_string();
    let _publisher = Publish::small(30.0).spawn(&server.publish_url(&live))?;
    let playback = live["playback"]["hls"].as_str().unwrap().to_string();
    api.playlist_with_segments(&media_url(&playback), 2).await?;

    // The others: nobody, a viewer who follows the creator, another creator.
    let (_, v) = api
        .request(
            Method::POST,
            "/api/v1/viewers",
            None,
            Some(json!({"handle": "fan"})),
        )
        .await?;
    let fan = v["token"].as_str().unwrap().to_string();
    api.request(
        Method::PUT,
        "/api/v1/creators/demo/follow",
        Some(&fan),
        None,
    )
    .await?;
    let other = api.create_creator("other").await?;
    let others: [(&str, Option<&str>); 3] = [
        ("anonymous", None),
        ("viewer", Some(&fan)),
        ("other creator", Some(&other)),
    ];

    // The creator does see them (so the table checks something real).
    for url in PER_STREAM {
        let url = url.replace("{id}", &ended_id);
        let status = api.status(&url, Some(&creator)).await?;
        assert_eq!(status, 200, "the creator sees {url}");
    }

    // The live channel (WebSocket): the creator is let in, on both.
    for id in [&ended_id, &live_id] {
        LiveClient::connect(&api, id, Token::Header(&creator)).await?;
    }

    let unknown = "zzzzzzzzzzzzzzzz";
    for (who, token) in others {
        // The live channel answers the upgrade exactly as for an unknown id, and so does its
        // ticket (for browsers).
        let expected = LiveClient::try_connect(&api, unknown, Token::from(token))
            .await?
            .err();
        let expected_ticket = ticket(&api, unknown, token).await?;
        for id in [&ended_id, &live_id] {
            let got = LiveClient::try_connect(&api, id, Token::from(token))
                .await?
                .err();
            assert!(got.is_some(), "{who} was let into the live channel of {id}");
            assert_eq!(got, expected, "{who} on the live channel of {id}");
            let got = ticket(&api, id, token).await?;
            assert_eq!(got, expected_ticket, "{who} asking a ticket for {id}");
        }
        for url in PER_STREAM {
            let (expected_status, expected_body) =
                api.get_text(&url.replace("{id}", unknown), token).await?;
            for id in [&ended_id, &live_id] {
                let url = url.replace("{id}", id);
                let (status, body) = api.get_text(&url, token).await?;
                assert_eq!(
                    (status, &body),
                    (expected_status, &expected_body),
                    "{who} on {url} must see what an unknown id gets"
                );
            }
        }
        for url in LISTINGS {
            let (_, body) = api.get_text(url, token).await?;
            for secret in [
                ended_id.as_str(),
                live_id.as_str(),
                "secret rehearsal",
                "secret_category",
            ] {
                assert!(
                    !body.contains(secret),
                    "{who} on {url} sees {secret}: {body}"
                );
            }
        }
    }
    server.stop().await;
    Ok(())
}
