//! HTTP: the control API under `/api/v1`, viewer media under `/hls`, recordings, health, metrics.
pub mod error;
pub mod extract;
pub mod hls;
pub mod recordings;
pub mod signing;
pub mod streams;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use tower_http::cors::{Any, CorsLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::ingest::rtsp::Pulls;
use crate::pipeline::StreamRegistry;
use crate::pipeline::health::HealthReport;
use crate::store::Mode;
use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub registry: StreamRegistry,
    pub config: Arc<Config>,
    /// Key for signed links.
    pub secret: Arc<Vec<u8>>,
    /// Base of returned HTTP links, without a trailing slash.
    pub public_url: Arc<str>,
    /// `rtmp://host:port/live`, what OBS calls "Server".
    pub rtmp_url: Arc<str>,
    /// `rtsp://host:port`, the base of RTSP playback URLs.
    pub rtsp_url: Arc<str>,
    /// Streams pulled from RTSP sources (IP cameras).
    pub pulls: Arc<Pulls<StreamRegistry>>,
    /// Name of the server's default ladder preset (not its path).
    pub default_ladder: Arc<str>,
}

pub fn router(state: AppState) -> Router {
    let media_cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([header::RANGE, header::AUTHORIZATION])
        .expose_headers([header::CONTENT_LENGTH, header::CONTENT_RANGE]);
    let media = Router::new()
        .route("/hls/{id}/{file}", get(hls::master))
        .route("/hls/{id}/{rendition}/{file}", get(hls::rendition_file))
        .route("/recordings/{file}", get(recordings::download))
        .route("/api/v1/streams/{id}/thumbnail.jpg", get(hls::thumbnail))
        .layer(media_cors);
    let api = Router::new()
        .route("/api/v1/creators", post(streams::create_creator))
        .route("/api/v1/streams", post(streams::create))
        .route("/api/v1/streams/{id}", get(streams::get_one))
        .route("/api/v1/streams/{id}/mode", put(streams::set_mode))
        .route("/api/v1/streams/{id}/end", post(streams::end))
        .route("/api/v1/streams/{id}/recording", get(recordings::status))
        .route(
            "/api/v1/streams/{id}/pipeline.dot",
            get(streams::pipeline_dot),
        );
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .merge(api)
        .merge(media)
        .fallback(|| async { error::ApiError::NotFound })
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            tracing::info_span!("request", method = %req.method(), path)
        }))
        .with_state(state)
}

/// Reads one number out of a stream's ingest health.
type HealthGauge = fn(&HealthReport) -> Option<f64>;

/// Prometheus text. Per-stream ingest health only for public streams: a practice stream's id
/// must not leak here.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    use std::fmt::Write;
    let c = state.registry.counters();
    let mut body = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            body,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "livefront_live_streams",
        "gauge",
        "Streams publishing or finalising now.",
        state.registry.live_count() as u64,
    );
    metric(
        "livefront_publishes_accepted_total",
        "counter",
        "Publish requests accepted.",
        c.publishes_accepted.load(Ordering::Relaxed),
    );
    metric(
        "livefront_publishes_refused_total",
        "counter",
        "Publish requests refused (bad, ended or busy key).",
        c.publishes_refused.load(Ordering::Relaxed),
    );
    metric(
        "livefront_streams_finalized_total",
        "counter",
        "Streams whose outputs were finalised.",
        c.streams_finalized.load(Ordering::Relaxed),
    );
    metric(
        "livefront_pipeline_failures_total",
        "counter",
        "Pipelines that failed to start.",
        c.pipeline_failures.load(Ordering::Relaxed),
    );
    let public: Vec<_> = state
        .registry
        .live_streams()
        .into_iter()
        .filter(|s| s.mode() == Mode::Public)
        .collect();
    let gauges: [(&str, &str, HealthGauge); 4] = [
        (
            "livefront_ingest_video_bitrate_kbps",
            "Video bitrate over the last 10 s.",
            |h| h.video.as_ref()?.bitrate_kbps,
        ),
        (
            "livefront_ingest_video_fps",
            "Measured video frame rate.",
            |h| h.video.as_ref()?.fps,
        ),
        (
            "livefront_ingest_keyframe_interval_seconds",
            "Measured keyframe interval.",
            |h| h.video.as_ref()?.keyframe_interval_s,
        ),
        (
            "livefront_ingest_av_drift_ms",
            "Latest audio minus latest video timestamp.",
            |h| h.av_drift_ms.map(|d| d as f64),
        ),
    ];
    let reports: Vec<_> = public.iter().map(|s| (s.id.clone(), s.health())).collect();
    for (name, help, value) in gauges {
        let _ = write!(body, "# HELP {name} {help}\n# TYPE {name} gauge\n");
        for (id, report) in &reports {
            if let Some(v) = value(report) {
                let _ = writeln!(body, "{name}{{stream=\"{id}\"}} {v}");
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
}
