//! The stream owner's events: one stream's full life arrives in the order it happened, and each
//! event carries the stream's status right after it.
mod common;

use anyhow::{Context, Result};
use common::*;
use livefront::streams::events::{EventKind, StreamEvent};
use tokio::sync::broadcast;

/// The next event of stream `id` (others' are skipped).
async fn next_of(events: &mut broadcast::Receiver<StreamEvent>, id: &str) -> Result<StreamEvent> {
    loop {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .context("no stream event in time")??;
        if event.stream.as_str() == id {
            return Ok(event);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_life_arrives_in_the_order_it_happened() -> Result<()> {
    let mut server = Server::start().await?;
    let (api, token) = (server.api.clone(), server.demo_token.clone());
    let id = server.demo_stream["id"].as_str().unwrap().to_string();
    let product = api.create_product(&token, "ev-1").await?;
    api.set_carousel(&token, &id, &[&product]).await?;
    let mut events = server
        .app
        .as_ref()
        .context("running")?
        .state
        .registry
        .subscribe();

    let publisher = Publish::small(60.0).spawn(&server.publish_url(&server.demo_stream))?;
    let live = next_of(&mut events, &id).await?;
    assert_eq!(
        live.kind,
        EventKind::WentLive {
            protocol: "rtmp".into()
        }
    );
    assert_eq!(
        (live.status.state.as_str(), live.status.mode.as_str()),
        ("live", "practice")
    );
    let app = server.app.as_ref().context("running")?;
    let row = app
        .state
        .store
        .stream(&live.stream)
        .await?
        .context("stream")?;
    assert_eq!(live.creator, row.creator_id);

    api.set_mode(&token, &id, "public").await?;
    let public = next_of(&mut events, &id).await?;
    assert!(
        matches!(
            public.kind,
            EventKind::ModeChanged {
                from: livefront::store::Mode::Practice,
                running: true
            }
        ),
        "{public:?}"
    );
    assert_eq!(public.status.mode.as_str(), "public");

    let (status, v) = api.focus(&token, &id, Some(&product)).await?;
    assert_eq!(status, 200, "{v}");
    let focus = next_of(&mut events, &id).await?;
    match &focus.kind {
        EventKind::FocusChanged { focus } => assert_eq!(
            focus.product.as_ref().map(|p| p.id.as_str()),
            Some(product.as_str())
        ),
        other => anyhow::bail!("expected focus_changed, got {other:?}"),
    }

    api.end_stream(&token, &id).await?;
    let ended = next_of(&mut events, &id).await?;
    assert!(
        matches!(ended.kind, EventKind::Ended { was_live: true, .. }),
        "{ended:?}"
    );
    assert_eq!(ended.status.state.as_str(), "ended");
    let recording = next_of(&mut events, &id).await?;
    match recording.kind {
        EventKind::RecordingReady { bytes, duration_s } => {
            assert!(bytes > 0 && duration_s > 0.0, "{recording:?}")
        }
        other => anyhow::bail!("expected recording_ready, got {other:?}"),
    }
    // Nothing else happened to the stream.
    assert!(
        matches!(
            events.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ),
        "an event after the recording"
    );
    finish(publisher, DEADLINE).await?;
    server.stop().await;
    Ok(())
}
