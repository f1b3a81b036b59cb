//! HTTP: the control API under `/api/v1`, viewer media under `/hls`, recordings, the web pages
//! (`/`, `/@{handle}`, `/watch/{id}`, `/studio`, `/studio/go-live/{id}`, `/admin`), health, metrics.
pub mod access;
pub mod analytics;
pub mod audience;
pub mod cart;
pub mod chat;
pub mod clips;
pub mod commerce;
pub mod cookie;
pub mod cors;
pub mod dates;
pub mod destinations;
pub mod error;
pub mod extract;
pub mod focus;
pub mod hls;
pub mod home;
pub mod listings;
pub mod live;
pub mod low_latency;
pub mod moderation;
pub mod owner;
pub mod pages;
pub mod products;
pub mod promos;
pub mod push;
pub mod recordings;
pub mod reminders;
pub mod sales;
pub mod serve;
pub mod session;
pub mod signing;
pub mod stored;
pub mod streams;
pub mod viewers;
pub mod webhooks;
pub mod whip;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::live::LiveHub;
use crate::live::chat::Chat;
use crate::notifications::Notifier;
use crate::pipeline::health::HealthReport;
use crate::store::Mode;
use crate::store::Store;
use crate::streams::StreamRegistry;
use crate::webhooks::Webhooks;

/// Request bodies of the API (JSON) beyond this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What every handler can reach. axum clones it for every request: one pointer, not twenty.
pub type AppState = Arc<Shared>;

/// The state behind [`AppState`].
pub struct Shared {
    pub store: Store,
    pub registry: StreamRegistry,
    pub webhooks: Webhooks,
    pub notifier: Notifier,
    /// Web Push to viewers' browsers (`None`: `push.enabled = false`).
    pub push: Option<crate::push::WebPush>,
    /// Each stream's live event channel (chat, focus, viewer counts).
    pub live: LiveHub,
    /// Chat of the live channels: posting, moderation, connections per stream.
    pub chat: Chat,
    /// Flash sales and auctions of live streams.
    pub sales: crate::streams::sales::Sales,
    /// Per-viewer rates of claims and bids.
    pub sales_limits: sales::SalesLimits,
    /// Cancelled when the server stops: long-lived responses (event streams) end with it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// HLS requests and bytes served.
    pub hls_counters: Arc<hls::Counters>,
    /// The nodes that streams live elsewhere are relayed to.
    pub owners: Arc<owner::Owners>,
    /// Media files viewers fetch, kept in memory.
    pub files: Arc<crate::output::file_cache::FileCache>,
    /// Where finished media is: the disk, or object storage (downloads are proxied from it).
    pub storage: crate::storage::Storage,
    /// HLS sessions per stream (viewer counts).
    pub audience: Arc<audience::Audience>,
    /// Open viewer registration, limited per client address.
    pub registrations: Arc<crate::live::rate::SharedRateLimiter>,
    /// Add-to-cart taps per client address and viewer.
    pub cart_limits: Arc<cart::CartLimits>,
    pub config: Arc<Config>,
    /// Free space under `data_dir` (metrics, and a warning in live streams' health).
    pub disk: Arc<crate::output::disk_space::DiskSpace>,
    /// Key for signed links.
    pub secret: Arc<Vec<u8>>,
    /// Seals destination stream keys at rest.
    pub secrets: crate::store::sealed::SecretBox,
    /// Base of returned HTTP links, without a trailing slash.
    pub public_url: Arc<str>,
    /// `rtmp://host:port/live`, what OBS calls "Server".
    pub rtmp_url: Arc<str>,
    /// `rtmps://host:port/live`, when RTMPS is on (`rtmp.tls_addr`).
    pub rtmps_url: Option<Arc<str>>,
    /// `srt://host:port` (publish URLs add `?streamid=publish:KEY`).
    pub srt_url: Arc<str>,
    /// `rtsp://host:port`, the base of RTSP playback URLs.
    pub rtsp_url: Arc<str>,
    /// Streams pulled from RTSP sources (IP cameras).
    /// Name of the server's default ladder preset (not its path).
    pub default_ladder: Arc<str>,
    /// WHIP publishers' sessions.
    pub whip: Arc<crate::ingest::whip::Whip<StreamRegistry>>,
}

/// The OpenAPI document's frame; the paths come from the handlers' `#[utoipa::path]`.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "livefront",
        description = "Live-shopping broadcast server: streams, media, recordings, followers, webhooks, commerce."
    ),
    // What clients send on a stream's live channel (the WebSocket has no request body to hang it on).
    components(schemas(crate::live::ClientMessage)),
    modifiers(&BearerAuth)
)]
struct ApiDoc;

/// `Authorization: Bearer <token>` (admin, creator or viewer token).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        // WHIP: the stream key as a bearer token (OBS's "Bearer Token").
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "stream_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// Every route, each through `routes!` so that it is in the OpenAPI document too (a unit test
/// checks that nothing is added with a bare `.route`).
fn routes() -> OpenApiRouter<AppState> {
    let media = OpenApiRouter::new()
        .routes(routes!(hls::master))
        .routes(routes!(hls::rendition_file))
        .routes(routes!(low_latency::rendition_file))
        .routes(routes!(recordings::download))
        .routes(routes!(recordings::replay_download))
        .routes(routes!(clips::download))
        .routes(routes!(hls::thumbnail))
        .layer(cors::MediaCorsLayer);
    let api = OpenApiRouter::new()
        .routes(routes!(streams::create_creator))
        .routes(routes!(streams::create, streams::list))
        .routes(routes!(streams::get_one, streams::edit, streams::delete))
        .routes(routes!(streams::rotate_key))
        .routes(routes!(streams::set_mode))
        .routes(routes!(streams::end))
        .routes(routes!(recordings::status))
        .routes(routes!(recordings::replay_status))
        .routes(routes!(streams::pipeline_dot))
        .routes(routes!(destinations::create, destinations::list))
        .routes(routes!(
            destinations::get_one,
            destinations::edit,
            destinations::remove
        ))
        .routes(routes!(destinations::choose, destinations::chosen))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::remove))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(viewers::register))
        .routes(routes!(viewers::revoke_token))
        .routes(routes!(viewers::creator_card))
        .routes(routes!(viewers::follow, viewers::unfollow))
        .routes(routes!(listings::storefront))
        .routes(routes!(listings::live))
        .routes(routes!(listings::categories))
        .routes(routes!(viewers::following))
        .routes(routes!(viewers::notifications))
        .routes(routes!(viewers::mark_read))
        .routes(routes!(viewers::events))
        .routes(routes!(push::key))
        .routes(routes!(push::subscribe, push::list, push::unsubscribe))
        .routes(routes!(products::create, products::list))
        .routes(routes!(products::get_one, products::edit, products::delete))
        .routes(routes!(products::set_carousel, products::carousel))
        .routes(routes!(focus::set_focus))
        .routes(routes!(focus::list_chapters))
        .routes(routes!(clips::list))
        .routes(routes!(live::connect))
        .routes(routes!(live::ticket))
        .routes(routes!(chat::page))
        .routes(routes!(chat::delete_message))
        .routes(routes!(chat::ban, chat::bans))
        .routes(routes!(chat::unban))
        .routes(routes!(chat::set_blocked_words, chat::blocked_words))
        .routes(routes!(promos::create, promos::list))
        .routes(routes!(promos::redeem))
        .routes(routes!(cart::add))
        .routes(routes!(reminders::set, reminders::remove))
        .routes(routes!(reminders::viewer_state))
        .routes(routes!(moderation::report))
        .routes(routes!(moderation::reports))
        .routes(routes!(moderation::takedown))
        .routes(routes!(moderation::violations))
        .routes(routes!(moderation::clear_strikes))
        .routes(routes!(commerce::edit_me))
        .routes(routes!(commerce::create_link, commerce::latest_link))
        .routes(routes!(commerce::follow_link))
        .routes(routes!(commerce::click_out))
        .routes(routes!(commerce::clicks))
        .routes(routes!(commerce::purchase))
        .routes(routes!(sales::create_sale))
        .routes(routes!(sales::open_sales))
        .routes(routes!(sales::get_sale))
        .routes(routes!(sales::claim))
        .routes(routes!(sales::confirm))
        .routes(routes!(sales::create_auction))
        .routes(routes!(sales::get_auction))
        .routes(routes!(sales::bid, sales::bid_log))
        .routes(routes!(commerce::earnings))
        .routes(routes!(commerce::level))
        .routes(routes!(analytics::stream_analytics))
        .routes(routes!(analytics::creator_analytics))
        .routes(routes!(home::home))
        .routes(routes!(
            session::sign_in,
            session::current,
            session::sign_out
        ))
        .routes(routes!(openapi_json))
        .routes(routes!(whip::publish, whip::preflight))
        .routes(routes!(whip::end, whip::session_preflight))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES));
    let pages = OpenApiRouter::new()
        .routes(routes!(pages::home))
        .routes(routes!(pages::storefront))
        .routes(routes!(pages::watch))
        .routes(routes!(pages::embed))
        .routes(routes!(pages::studio))
        .routes(routes!(pages::go_live))
        .routes(routes!(pages::admin))
        .routes(routes!(pages::asset))
        .routes(routes!(pages::service_worker));
    // Media requests get no request span: playlists, segments and parts are most requests (an
    // LL-HLS viewer makes about five a second), they log nothing of their own, and the span and
    // its timing cost them a tenth of their CPU (bench/serve.sh).
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(healthz))
        .merge(pages)
        .routes(routes!(metrics))
        .merge(api)
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let path = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("", |p| p.as_str());
            tracing::info_span!("request", method = %req.method(), path)
        }))
        .merge(media)
}

/// The OpenAPI document of this server.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().into_openapi()
}

pub fn router(state: AppState) -> Router {
    routes()
        .split_for_parts()
        .0
        .fallback(|| async { error::ApiError::NoRoute })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            owner::relay,
        ))
        .with_state(state)
}

/// Liveness: `ok`, followed by a line about the disk under `data_dir` when space is low or gone
/// (the server still answers; streams cannot write segments or recordings on a full disk), and
/// one when live upload to object storage fails (segments wait on the disk meanwhile).
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "ok")))]
async fn healthz(State(state): State<AppState>) -> String {
    let mut text = String::from("ok\n");
    if let Some(warning) = state.disk.warning() {
        text.push_str(&format!("{warning}\n"));
    }
    let uploads = state.registry.counters().uploads.report();
    if let Some(error) = &uploads.failing {
        text.push_str(&format!(
            "object storage: live upload failing, {} segments waiting: {error}\n",
            uploads.waiting
        ));
    }
    text
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "OpenAPI 3.1 JSON")))]
async fn openapi_json() -> impl IntoResponse {
    static DOCUMENT: std::sync::OnceLock<utoipa::openapi::OpenApi> = std::sync::OnceLock::new();
    axum::Json(DOCUMENT.get_or_init(openapi))
}

/// Reads one number out of a stream's ingest health.
type HealthGauge = fn(&HealthReport) -> Option<f64>;

/// Prometheus text. Per-stream ingest health only for public streams: a practice stream's id
/// must not leak here.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
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
        "livefront_stream_events_dropped_total",
        "counter",
        "Stream events a slow listener (webhooks, notifications) was too far behind to take.",
        c.events_dropped.load(Ordering::Relaxed),
    );
    metric(
        "livefront_simulcast_failures_all_total",
        "counter",
        "Simulcast target connections that failed, over all streams (each retry counts).",
        c.target_failures.load(Ordering::Relaxed),
    );
    metric(
        "livefront_pipeline_failures_total",
        "counter",
        "Pipelines that failed to start.",
        c.pipeline_failures.load(Ordering::Relaxed),
    );
    let uploads = c.uploads.report();
    metric(
        "livefront_storage_live_uploads_total",
        "counter",
        "Segments and init sections put into object storage while their stream was live.",
        uploads.uploaded,
    );
    metric(
        "livefront_storage_live_upload_failures_total",
        "counter",
        "Failed live uploads to object storage (each retry counts).",
        uploads.failures,
    );
    metric(
        "livefront_storage_live_upload_waiting",
        "gauge",
        "Segments and init sections waiting for their live upload.",
        uploads.waiting,
    );
    metric(
        "livefront_storage_live_upload_left_total",
        "counter",
        "Segments left to the archive step at their stream's end (queue full, store down).",
        uploads.left_to_the_end,
    );
    if let Some(bus) = state.live.bus() {
        let b = bus.stats();
        metric(
            "livefront_bus_connected",
            "gauge",
            "1 while this node is connected to the bus (bus.url).",
            u64::from(bus.is_connected()),
        );
        for (name, help, value) in [
            (
                "livefront_bus_disconnects_total",
                "Times the connection to the bus was lost.",
                &b.disconnects,
            ),
            (
                "livefront_bus_published_total",
                "Messages sent to the other nodes.",
                &b.published,
            ),
            (
                "livefront_bus_dropped_total",
                "Messages not sent: the bus was down, the queue full, or the message too large.",
                &b.dropped,
            ),
            (
                "livefront_bus_received_total",
                "Messages taken from the other nodes.",
                &b.received,
            ),
            (
                "livefront_bus_rejected_total",
                "Messages from the bus dropped as unreadable (too large, malformed, unknown ids or events).",
                &b.rejected,
            ),
        ] {
            metric(name, "counter", help, value.load(Ordering::Relaxed));
        }
    }
    if let Some(free) = state.disk.free() {
        metric(
            "livefront_data_free_bytes",
            "gauge",
            "Bytes free under data_dir (segments, recordings, the store).",
            free,
        );
    }
    let level = state.disk.level();
    metric(
        "livefront_data_disk_low",
        "gauge",
        "1 when free space under data_dir is below disk.low_free_mib (or the disk is full).",
        u64::from(level != crate::output::disk_space::Level::Ok),
    );
    metric(
        "livefront_data_disk_full",
        "gauge",
        "1 when the disk under data_dir is full: segments and recordings cannot be written.",
        u64::from(level == crate::output::disk_space::Level::Full),
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
    let viewers: u64 = public
        .iter()
        .map(|s| state.audience.count(&s.id) as u64)
        .sum();
    metric(
        "livefront_viewers",
        "gauge",
        "HLS sessions seen in the last 30 s, over all public streams.",
        viewers,
    );
    let hls = &state.hls_counters;
    metric(
        "livefront_hls_requests_total",
        "counter",
        "HLS playlists and segments served.",
        hls.requests.load(Ordering::Relaxed),
    );
    metric(
        "livefront_hls_bytes_total",
        "counter",
        "Bytes of HLS playlists and segments served.",
        hls.bytes.load(Ordering::Relaxed),
    );
    let w = &state.webhooks.counters;
    metric(
        "livefront_webhook_deliveries_total",
        "counter",
        "Webhook deliveries that got a 2xx.",
        w.delivered.load(Ordering::Relaxed),
    );
    metric(
        "livefront_webhook_failed_attempts_total",
        "counter",
        "Webhook delivery attempts that failed (retried later).",
        w.failed_attempts.load(Ordering::Relaxed),
    );
    metric(
        "livefront_webhook_given_up_total",
        "counter",
        "Webhook deliveries given up after the last attempt.",
        w.given_up.load(Ordering::Relaxed),
    );
    let latency = &c.part_latency;
    let quantiles: Vec<(f64, f64)> = [0.5, 0.9, 0.99]
        .into_iter()
        .filter_map(|q| Some((q, latency.quantile(q)?.as_secs_f64())))
        .collect();
    if !quantiles.is_empty() {
        let name = "livefront_ll_part_latency_seconds";
        let _ = write!(
            body,
            "# HELP {name} Low-latency HLS: from the last frame of a part reaching the pipeline to the part listed (recent 1000 parts).\n# TYPE {name} summary\n"
        );
        for (q, seconds) in quantiles {
            let _ = writeln!(body, "{name}{{quantile=\"{q}\"}} {seconds:.4}");
        }
    }
    let _ = write!(
        body,
        "# HELP livefront_branch_failures_total Pipeline branches that failed and were dropped while their stream went on.\n\
         # TYPE livefront_branch_failures_total counter\n"
    );
    for (kind, n) in c.branch_failures.by_kind() {
        let _ = writeln!(
            body,
            "livefront_branch_failures_total{{branch=\"{kind}\"}} {n}"
        );
    }
    if let Ok(counts) = state.store.stream_counts().await {
        let name = "livefront_streams";
        let _ = write!(
            body,
            "# HELP {name} Streams by state and mode (counts only).\n# TYPE {name} gauge\n"
        );
        for (st, mode, n) in counts {
            let _ = writeln!(body, "{name}{{state=\"{st}\",mode=\"{mode}\"}} {n}");
        }
    }
    let targets: Vec<_> = public
        .iter()
        .flat_map(|s| s.simulcast.report().into_iter().map(|t| (s.id.clone(), t)))
        .collect();
    for (name, help, value) in [
        (
            "livefront_simulcast_bytes_total",
            "Bytes sent to a simulcast destination by a public stream.",
            (|t| t.bytes) as fn(&crate::streams::simulcast::TargetStatus) -> u64,
        ),
        (
            "livefront_simulcast_failures_total",
            "Connections to a simulcast destination that failed, by public stream.",
            |t| t.failures,
        ),
        (
            "livefront_simulcast_live",
            "1 while media goes out to the destination.",
            |t| u64::from(t.state == crate::streams::simulcast::TargetState::Live),
        ),
    ] {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = write!(body, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        for (stream, t) in &targets {
            let _ = writeln!(
                body,
                "{name}{{stream=\"{stream}\",destination=\"{}\"}} {}",
                t.id,
                value(t)
            );
        }
    }
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

#[cfg(test)]
mod tests {
    /// Routes added with a bare `.route` would be served but missing from the OpenAPI document.
    #[test]
    fn every_route_goes_through_the_openapi_router() {
        let bare = concat!(".rou", "te(");
        assert!(
            !include_str!("mod.rs").contains(bare),
            "use .routes(routes!(handler))"
        );
    }
}
