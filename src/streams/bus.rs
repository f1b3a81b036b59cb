//! A stream pipeline's bus: closed segments go to the HLS output, an error in a branch (recording,
//! poster, RTSP out, a rung) drops that branch, an error in the ingest ends the stream, EOS tells
//! the stopper that the files are complete.
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use gstreamer as gst;
use gstreamer::prelude::*;
use tokio::sync::oneshot;

use super::stream::LiveStream;
use crate::output::hls::RenditionInfo;
use crate::output::ts_segments::SEGMENT_CLOSED;
use crate::output::{codecs, disk_space};
use crate::pipeline::branch::{self, Branch};
use crate::pipeline::build::{DISCONTINUITY, SEGMENT_OPENED};
use crate::pipeline::spec::SOURCE_RENDITION;

/// What the pipeline knows about its tracks that the master playlist needs.
pub struct TrackConfig {
    /// The source's video configuration record and its codec.
    pub video: Option<(crate::ingest::VideoCodec, bytes::Bytes)>,
    pub asc: Option<bytes::Bytes>,
}

/// Told once per branch that failed, with the reason (the element and its error), after the
/// branch was taken out of the pipeline.
pub type OnBranchFailure = Box<dyn Fn(&Branch, &str) + Send + Sync>;

/// Runs until EOS or an error; reports which on `eos`.
pub async fn watch(
    bus: gst::Bus,
    pipeline: gst::Pipeline,
    stream: Arc<LiveStream>,
    config: TrackConfig,
    rungs: Vec<String>,
    on_branch_failure: OnBranchFailure,
    eos: oneshot::Sender<Result<(), String>>,
) {
    let mut messages = bus.stream();
    let mut described = std::collections::HashSet::new();
    let mut failed = std::collections::HashSet::new();
    let source_in_ts = pipeline
        .by_name(&format!("hls-{SOURCE_RENDITION}"))
        .is_some();
    let result = loop {
        let Some(msg) = messages.next().await else {
            break Err("bus closed".to_string());
        };
        match msg.view() {
            gst::MessageView::Element(el) => {
                let Some(s) = el.structure() else { continue };
                let Ok(running_time) = s.get::<u64>("running-time").map(Duration::from_nanos)
                else {
                    continue;
                };
                match s.name().as_str() {
                    SEGMENT_OPENED => {
                        let Ok(rendition) = s.get::<&str>("rendition") else {
                            continue;
                        };
                        stream.hls.fragment_opened(rendition, running_time);
                    }
                    DISCONTINUITY => {
                        let Ok(rendition) = s.get::<&str>("rendition") else {
                            continue;
                        };
                        // The new publisher may send another size or profile.
                        described.remove(rendition);
                        if !source_in_ts {
                            described.remove(SOURCE_RENDITION);
                        }
                        stream.hls.discontinuity_at(rendition, stream.resumed_at());
                    }
                    SEGMENT_CLOSED => {
                        let Some(rendition) = msg
                            .src()
                            .and_then(|src| src.name().strip_prefix("hls-").map(str::to_string))
                        else {
                            continue;
                        };
                        // A source that is not in MPEG-TS (AV1: CMAF only) is described with
                        // the first segment of any rendition.
                        let source_apart = (!source_in_ts)
                            .then(|| SOURCE_RENDITION.to_string())
                            .filter(|s| described.insert(s.clone()));
                        for described_now in std::iter::once(rendition.clone())
                            .filter(|r| described.insert(r.clone()))
                            .chain(source_apart)
                        {
                            let info = rendition_info(&pipeline, &described_now, &config);
                            for out in stream.outputs() {
                                out.set_info(&described_now, info.clone());
                            }
                        }
                        let Ok(location) = s.get::<String>("filename") else {
                            continue;
                        };
                        if let Err(e) =
                            stream
                                .hls
                                .fragment_closed(&rendition, location.as_ref(), running_time)
                        {
                            tracing::error!(error = %e, %location, "could not list a closed segment");
                        }
                    }
                    _ => {}
                }
            }
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(err) => {
                let element = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                let details = err.debug().map(|d| d.to_string()).unwrap_or_default();
                let names: Vec<&str> = rungs.iter().map(String::as_str).collect();
                let source = msg.src().and_then(|s| s.downcast_ref::<gst::Element>());
                let failed_branch =
                    source.map_or(Branch::Ingest, |e| branch::of_element(e, &names));
                // "Error while writing to file" says little: name the cause when it is the disk.
                let mut reason = format!("{element}: {}", err.error());
                if disk_space::is_full(&stream.paths.dir) {
                    reason = format!("disk full under data_dir: {reason}");
                }
                if let Branch::Target(_) = failed_branch {
                    // Its address holds a stream key: no details here; the stream owner takes
                    // the target out, logs a redacted reason and retries it.
                    on_branch_failure(&failed_branch, &format!("{element}: {}", err.error()));
                    continue;
                }
                if failed_branch != Branch::Ingest {
                    if !failed.insert(failed_branch.clone()) {
                        // The branch's queues report the same failure as their own.
                        tracing::debug!(branch = %failed_branch.label(), %element, error = %err.error(), "failed branch");
                        continue;
                    }
                    tracing::warn!(branch = %failed_branch.label(), %element, error = %err.error(), %details,
                        "branch failed; dropping it, the stream goes on");
                    let (p, b, r) = (pipeline.clone(), failed_branch.clone(), rungs.clone());
                    let removed = tokio::task::spawn_blocking(move || {
                        let names: Vec<&str> = r.iter().map(String::as_str).collect();
                        branch::remove(&p, &b, &names)
                    })
                    .await;
                    tracing::debug!(branch = %failed_branch.label(), ?removed, "branch removed");
                    on_branch_failure(&failed_branch, &reason);
                    continue;
                }
                tracing::error!(%element, error = %err.error(), %details, %reason, "pipeline error; ending the stream");
                stream.fail(reason.clone());
                break Err(reason);
            }
            gst::MessageView::Warning(w) => {
                let element = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                if element.contains("/target-") {
                    // May name the target's address, which holds its stream key.
                    tracing::debug!(%element, "simulcast target warning");
                    continue;
                }
                tracing::warn!(%element, warning = %w.error(), "pipeline warning");
            }
            _ => {}
        }
    };
    let _ = eos.send(result);
}

/// Resolution, frame rate and codecs of a rendition, from the caps its parser negotiated (the
/// publisher's headers for the source).
fn rendition_info(
    pipeline: &gst::Pipeline,
    rendition: &str,
    config: &TrackConfig,
) -> RenditionInfo {
    let parser = if rendition == SOURCE_RENDITION {
        "parse-video".to_string()
    } else {
        format!("parse-{rendition}")
    };
    let caps = pipeline
        .by_name(&parser)
        .and_then(|p| p.static_pad("src"))
        .and_then(|pad| pad.current_caps());
    let s = caps.as_ref().and_then(|c| c.structure(0));
    let resolution = s.and_then(|s| {
        Some((
            s.get::<i32>("width").ok()? as u32,
            s.get::<i32>("height").ok()? as u32,
        ))
    });
    let frame_rate = s
        .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| f.numer() as f64 / f.denom() as f64);
    let video = if rendition == SOURCE_RENDITION {
        config
            .video
            .as_ref()
            .and_then(|(codec, record)| codec.codec_string(record))
    } else {
        s.and_then(|s| {
            codecs::avc1_from_names(s.get::<&str>("profile").ok()?, s.get::<&str>("level").ok()?)
        })
    };
    let codecs = codecs::join(video, config.asc.as_deref().and_then(codecs::mp4a));
    RenditionInfo {
        resolution,
        frame_rate,
        codecs,
    }
}
