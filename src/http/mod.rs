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
use crate::pipeline::StreamRegistry;
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

/// Prometheus text. No per-stream labels: a practice stream's id must not leak here.
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let c = state.registry.counters();
    let body = format!(
        "# HELP livefront_live_streams Streams publishing or finalising now.\n\
         # TYPE livefront_live_streams gauge\nlivefront_live_streams {}\n\
         # HELP livefront_publishes_accepted_total Publish requests accepted.\n\
         # TYPE livefront_publishes_accepted_total counter\nlivefront_publishes_accepted_total {}\n\
         # HELP livefront_publishes_refused_total Publish requests refused (bad, ended or busy key).\n\
         # TYPE livefront_publishes_refused_total counter\nlivefront_publishes_refused_total {}\n\
         # HELP livefront_streams_finalized_total Streams whose outputs were finalised.\n\
         # TYPE livefront_streams_finalized_total counter\nlivefront_streams_finalized_total {}\n\
         # HELP livefront_pipeline_failures_total Pipelines that failed to start.\n\
         # TYPE livefront_pipeline_failures_total counter\nlivefront_pipeline_failures_total {}\n",
        state.registry.live_count(),
        c.publishes_accepted.load(Ordering::Relaxed),
        c.publishes_refused.load(Ordering::Relaxed),
        c.streams_finalized.load(Ordering::Relaxed),
        c.pipeline_failures.load(Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        body,
    )
}
