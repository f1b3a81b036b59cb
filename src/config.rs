//! Configuration: built-in defaults → TOML file → `LIVEFRONT_` environment.
pub mod bus;
pub mod database;
pub mod ladder;
pub mod storage;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub const DEFAULT_CONFIG_FILE: &str = "config/livefront.toml";
const DEFAULT_HTTP_ADDR: &str = "0.0.0.0:8080";
const DEFAULT_RTMP_ADDR: &str = "0.0.0.0:1935";
const DEFAULT_SRT_ADDR: &str = "0.0.0.0:8890";
/// SRT receiver latency: how long SRT may wait for a retransmission before giving a packet up.
/// The connection runs at the larger of this and the publisher's own setting. 120 ms is libsrt's
/// default: enough for a few retransmissions on links up to ~40 ms RTT.
pub const DEFAULT_SRT_LATENCY: Duration = Duration::from_millis(120);
const DEFAULT_RTSP_ADDR: &str = "0.0.0.0:8554";
const DEFAULT_DATA_DIR: &str = "data";
const DEFAULT_WHIP_MAX_SESSIONS: usize = 64;
const DEFAULT_HLS_SEGMENT: Duration = Duration::from_secs(2);
/// Low-latency HLS part: ten per default segment (MEDIA-NOTES, "Low-latency HLS").
const DEFAULT_HLS_PART: Duration = Duration::from_millis(200);
/// PART-HOLD-BACK in parts: the spec's minimum (bench/README.md, "Low-latency HLS").
const DEFAULT_PART_HOLD_BACK: u32 = 2;
const DEFAULT_HLS_WINDOW: usize = 6;
const DEFAULT_DISK_LOW_FREE_MIB: u64 = 1024;
const DEFAULT_DISK_CHECK_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RECORDING_LINK_TTL: Duration = Duration::from_secs(6 * 3600);
const DEFAULT_PLAYBACK_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_HTTP_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
const DEFAULT_HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 8192;
const DEFAULT_RECONNECT_GRACE: Duration = Duration::from_secs(30);
const DEFAULT_WEBHOOK_RETRY_INITIAL: Duration = Duration::from_secs(10);
const DEFAULT_WEBHOOK_MAX_ATTEMPTS: u32 = 12;
const DEFAULT_SIMULCAST_MAX_TARGETS: usize = 5;
const DEFAULT_SIMULCAST_MAX_TARGETS_WITH_BENEFIT: usize = 10;
const DEFAULT_SIMULCAST_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DEFAULT_SIMULCAST_RETRY_MAX: Duration = Duration::from_secs(30);
const DEFAULT_CHAT_MAX_MESSAGE_CHARS: usize = 500;
const DEFAULT_CHAT_RATE_MESSAGES: u32 = 5;
const DEFAULT_CHAT_RATE_WINDOW: Duration = Duration::from_secs(10);
const DEFAULT_CHAT_REPLAY: usize = 50;
/// Events a live-channel receiver may fall behind before it is dropped.
pub const EVENT_BUFFER: usize = 256;
const DEFAULT_CHAT_QUEUE: usize = EVENT_BUFFER;
const DEFAULT_CHAT_SEND_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_CHAT_MAX_CONNECTIONS_PER_STREAM: usize = 5_000;
const DEFAULT_CHAT_MAX_CONNECTIONS_PER_ADDRESS: usize = 20;
const DEFAULT_CHAT_MAX_CONNECTIONS_PER_ADDRESS_ALL_STREAMS: usize = 100;
const DEFAULT_CHAT_VIEWER_COUNT_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_MAX_STRIKES: u32 = 3;
const DEFAULT_ANALYTICS_STEP: Duration = Duration::from_secs(10);
const DEFAULT_COMMISSION_RATE: &str = "0.03";
const DEFAULT_LEVEL_WINDOW_DAYS: u32 = 30;
/// From which level each benefit applies (besides share links and commissions, which every level
/// has): see [`Benefit`].
const DEFAULT_LEVEL_BENEFITS: &[(&str, u32)] = &[
    ("home_featured_row", 2),
    ("auctions", 3),
    ("more_simulcast_targets", 4),
];
/// Level 2, 3, 4: (public minutes, attributed orders) over the window.
const DEFAULT_LEVEL_THRESHOLDS: &[(f64, u64)] = &[(120.0, 0), (600.0, 5), (1800.0, 25)];

/// Short environment names from DESIGN.md, beside the nested `LIVEFRONT_HTTP__ADDR` form.
const ENV_ALIASES: &[(&str, &str)] = &[
    ("http_addr", "http.addr"),
    ("rtmp_addr", "rtmp.addr"),
    ("rtmps_addr", "rtmp.tls_addr"),
    ("srt_addr", "srt.addr"),
    ("srt_passphrase", "srt.passphrase"),
    ("srt_latency", "srt.latency"),
    ("rtsp_addr", "rtsp.addr"),
    ("rtsp_allow_private", "rtsp.allow_private_sources"),
    ("whip_ice_addresses", "whip.ice_addresses"),
    ("whip_public_ip", "whip.public_ip"),
    ("hls_segment", "hls.segment"),
    ("hls_window", "hls.window"),
    ("ladder", "hls.ladder"),
    ("reconnect_grace", "ingest.reconnect_grace"),
    ("webhooks_allow_private", "webhooks.allow_private_targets"),
    (
        "simulcast_allow_private",
        "simulcast.allow_private_destinations",
    ),
    ("simulcast_key", "simulcast.key"),
    ("trusted_proxies", "http.trusted_proxies"),
    ("max_strikes", "policy.max_strikes"),
    ("shop_secret", "shop.secret"),
    ("database_url", "database.url"),
    ("node_id", "node.id"),
    ("bus_url", "bus.url"),
    ("bus_ca", "bus.ca"),
    ("node_url", "node.url"),
    ("node_lease_ttl", "node.lease_ttl"),
    ("storage_url", "storage.url"),
    ("storage_access_key", "storage.access_key"),
    ("storage_secret_key", "storage.secret_key"),
    ("push_enabled", "push.enabled"),
    ("push_subject", "push.subject"),
    ("push_allow_private", "push.allow_private_endpoints"),
];
/// `LIVEFRONT_*` variables that are not configuration keys.
const ENV_NOT_CONFIG: &[&str] = &["log_format", "log", "config"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite store, segments and recordings live.
    pub data_dir: PathBuf,
    /// Base URL put into returned links; unset means `http://localhost:{bound http port}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Admin API token; unset means one is generated on first start, printed once and stored hashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    pub http: HttpConfig,
    pub rtmp: RtmpConfig,
    pub ingest: IngestConfig,
    pub srt: SrtConfig,
    pub rtsp: RtspConfig,
    pub whip: WhipConfig,
    pub hls: HlsConfig,
    pub recording: RecordingConfig,
    pub disk: DiskConfig,
    pub webhooks: WebhooksConfig,
    pub simulcast: SimulcastConfig,
    pub chat: ChatConfig,
    pub policy: PolicyConfig,
    pub shop: ShopConfig,
    pub commerce: CommerceConfig,
    pub analytics: AnalyticsConfig,
    pub sales: SalesConfig,
    pub push: PushConfig,
    /// Object storage for finished media (unset: the local disk).
    pub storage: storage::StorageConfig,
    /// The store's database (unset: SQLite in `data_dir`).
    pub database: database::DatabaseConfig,
    /// This node, when several share a database.
    pub node: NodeConfig,
    /// The message bus between nodes (unset: in-process only).
    pub bus: bus::BusConfig,
}

/// This node among several that share one database (`database.url`): its name, and how the
/// others reach its HTTP port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// 1–64 characters of `A-Za-z0-9._-`; unset: `node-` and eight random letters, new at each
    /// start (a restarted node then takes its streams back only once their leases run out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `http(s)://host:port` where the other nodes reach this one's HTTP port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How long a node's hold on a live stream lasts unless renewed (it renews every third of
    /// it): after a node dies, its streams can be published on another node this long after
    /// its last renewal.
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            id: None,
            url: None,
            lease_ttl: Duration::from_secs(10),
        }
    }
}

impl NodeConfig {
    /// The configured id, or a new random one.
    pub fn id_or_random(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            use rand::Rng;
            let mut rng = rand::rng();
            let tail: String = (0..8)
                .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
                .collect();
            format!("node-{tail}")
        })
    }

    fn validate(&self) -> Result<(), (&'static str, String)> {
        let valid_id = |id: &str| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        };
        if let Some(id) = &self.id
            && !valid_id(id)
        {
            return Err((
                "node.id",
                format!("{id:?} is not 1-64 characters of A-Za-z0-9._-"),
            ));
        }
        if let Some(url) = &self.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err((
                "node.url",
                format!("{url:?} must start with http:// or https://"),
            ));
        }
        if !(Duration::from_secs(2)..=Duration::from_secs(120)).contains(&self.lease_ttl) {
            return Err((
                "node.lease_ttl",
                format!("{:?} is outside 2s..2min", self.lease_ttl),
            ));
        }
        Ok(())
    }
}

/// Flash sales and auctions on live streams (`/api/v1/streams/{id}/flash-sales`, `…/auctions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SalesConfig {
    /// A claimed unit is held this long for the shop to confirm (signed callback); then it goes
    /// back to the sale.
    #[serde(with = "humantime_serde")]
    pub reservation_ttl: Duration,
    /// Flash sales of one stream not yet over at once.
    pub max_open_sales: u32,
    /// Auctions of one stream open at once.
    pub max_open_auctions: u32,
    /// Claims one viewer may make per minute (over all sales).
    pub claims_per_minute: u32,
    /// Bids one viewer may make per second (over all auctions).
    pub bids_per_second: u32,
    /// Most bids one auction takes.
    pub max_bids: u32,
}

const DEFAULT_SALES_RESERVATION_TTL: Duration = Duration::from_secs(600);
const DEFAULT_SALES_MAX_OPEN_SALES: u32 = 2;
const DEFAULT_SALES_MAX_OPEN_AUCTIONS: u32 = 2;
const DEFAULT_SALES_CLAIMS_PER_MINUTE: u32 = 10;
const DEFAULT_SALES_BIDS_PER_SECOND: u32 = 2;
const DEFAULT_SALES_MAX_BIDS: u32 = 5000;

impl Default for SalesConfig {
    fn default() -> Self {
        SalesConfig {
            reservation_ttl: DEFAULT_SALES_RESERVATION_TTL,
            max_open_sales: DEFAULT_SALES_MAX_OPEN_SALES,
            max_open_auctions: DEFAULT_SALES_MAX_OPEN_AUCTIONS,
            claims_per_minute: DEFAULT_SALES_CLAIMS_PER_MINUTE,
            bids_per_second: DEFAULT_SALES_BIDS_PER_SECOND,
            max_bids: DEFAULT_SALES_MAX_BIDS,
        }
    }
}

/// Creator analytics (`GET /api/v1/streams/{id}/analytics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// The step of the time series recorded while a stream is live (viewers sampled once a step;
    /// chat, click-outs, orders, redemptions and follows counted per step).
    #[serde(with = "humantime_serde")]
    pub step: Duration,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            step: DEFAULT_ANALYTICS_STEP,
        }
    }
}

/// The live channel of each stream (`/api/v1/streams/{id}/live`): chat limits and fan-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Longest chat message, in characters (after trimming); longer ones are refused.
    pub max_message_chars: usize,
    /// Messages one user may send within `rate_window` (over all streams).
    pub rate_messages: u32,
    #[serde(with = "humantime_serde")]
    pub rate_window: Duration,
    /// Messages replayed to a client when it joins.
    pub replay: usize,
    /// Events a client may fall behind before it is disconnected (per stream channel).
    pub queue: usize,
    /// A client that does not take an event within this long is disconnected.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Open live connections per stream; beyond this the upgrade is refused with 503.
    pub max_connections_per_stream: usize,
    /// Open live connections to one stream from one client address (IPv6: per /64); beyond this
    /// the upgrade is refused with 429. Behind a reverse proxy every client has its address.
    pub max_connections_per_address: usize,
    /// Open live connections to all streams together from one client address.
    pub max_connections_per_address_all_streams: usize,
    /// How often `viewer_count` events are considered (sent only when the counts changed).
    #[serde(with = "humantime_serde")]
    pub viewer_count_interval: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            max_message_chars: DEFAULT_CHAT_MAX_MESSAGE_CHARS,
            rate_messages: DEFAULT_CHAT_RATE_MESSAGES,
            rate_window: DEFAULT_CHAT_RATE_WINDOW,
            replay: DEFAULT_CHAT_REPLAY,
            queue: DEFAULT_CHAT_QUEUE,
            send_timeout: DEFAULT_CHAT_SEND_TIMEOUT,
            max_connections_per_stream: DEFAULT_CHAT_MAX_CONNECTIONS_PER_STREAM,
            max_connections_per_address: DEFAULT_CHAT_MAX_CONNECTIONS_PER_ADDRESS,
            max_connections_per_address_all_streams:
                DEFAULT_CHAT_MAX_CONNECTIONS_PER_ADDRESS_ALL_STREAMS,
            viewer_count_interval: DEFAULT_CHAT_VIEWER_COUNT_INTERVAL,
        }
    }
}

/// The shop backend that reports purchases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShopConfig {
    /// Secret of the signed `POST /api/v1/purchases` (`X-Livefront-Signature`); unset = the
    /// endpoint answers 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Where "Add to cart" sends the viewer: an http(s) URL template with `{product_id}`,
    /// `{sku}`, `{stream_id}`, `{tag}`, `{attribution}`, `{promo_code}` (values URL-encoded).
    /// Unset: the page only fires the `livefront:add-to-cart` event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cart_url: Option<String>,
    /// Add-to-cart taps counted per client address and per viewer per minute; beyond it 429.
    pub cart_adds_per_minute: u32,
    /// `frame-ancestors` of the embeddable player `/embed/{id}` (the only page that may be
    /// framed): `*`, `'self'` or origins such as `https://shop.example`.
    pub embed_frame_ancestors: Vec<String>,
}

pub const DEFAULT_CART_ADDS_PER_MINUTE: u32 = 30;

impl Default for ShopConfig {
    fn default() -> Self {
        ShopConfig {
            secret: None,
            cart_url: None,
            cart_adds_per_minute: DEFAULT_CART_ADDS_PER_MINUTE,
            embed_frame_ancestors: vec!["*".into()],
        }
    }
}

/// Commissions and creator levels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CommerceConfig {
    /// Commission rate per product category (lowercase), decimal strings from 0 to 1 with up to
    /// 6 decimals; `default` for every other category and for products without one. (Numbers are
    /// taken too, as environment variables arrive as numbers: they print back exactly.)
    #[serde(deserialize_with = "rates_from_strings_or_numbers")]
    pub rates: BTreeMap<String, String>,
    pub levels: LevelsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LevelsConfig {
    /// The rolling window (days) over which public minutes and attributed orders count.
    pub window_days: u32,
    /// From which level each benefit applies: `home_featured_row` (the home page's featured
    /// row), `auctions`, `more_simulcast_targets`. A benefit left out applies to nobody.
    pub benefits: BTreeMap<String, u32>,
    /// Level 2, 3, …: reached when both numbers are reached (and every lower level).
    pub thresholds: Vec<LevelThreshold>,
}

/// What a level may unlock, from the level `commerce.levels.benefits` names for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Benefit {
    /// Live streams in the home page's featured row.
    HomeFeaturedRow,
    /// May run auctions.
    Auctions,
    /// More simulcast destinations per stream.
    MoreSimulcastTargets,
}

impl Benefit {
    pub const ALL: [Benefit; 3] = [
        Benefit::HomeFeaturedRow,
        Benefit::Auctions,
        Benefit::MoreSimulcastTargets,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Benefit::HomeFeaturedRow => "home_featured_row",
            Benefit::Auctions => "auctions",
            Benefit::MoreSimulcastTargets => "more_simulcast_targets",
        }
    }

    pub fn parse(s: &str) -> Option<Benefit> {
        Benefit::ALL.into_iter().find(|b| b.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelThreshold {
    /// Minutes streamed while public and live (practice never counts).
    pub public_minutes: f64,
    /// Attributed orders.
    pub sales: u64,
}

fn rates_from_strings_or_numbers<'de, D>(d: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Rate {
        Text(String),
        Number(f64),
    }
    let raw = BTreeMap::<String, Rate>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                Rate::Text(s) => s,
                Rate::Number(n) => n.to_string(),
            };
            (k, v)
        })
        .collect())
}

impl Default for CommerceConfig {
    fn default() -> Self {
        CommerceConfig {
            rates: BTreeMap::from([("default".to_string(), DEFAULT_COMMISSION_RATE.to_string())]),
            levels: LevelsConfig::default(),
        }
    }
}

/// Community policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Active strikes (one per takedown) at which a creator can no longer go public, until an
    /// admin clears them.
    pub max_strikes: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            max_strikes: DEFAULT_MAX_STRIKES,
        }
    }
}

impl Default for LevelsConfig {
    fn default() -> Self {
        LevelsConfig {
            window_days: DEFAULT_LEVEL_WINDOW_DAYS,
            benefits: DEFAULT_LEVEL_BENEFITS
                .iter()
                .map(|&(name, level)| (name.to_string(), level))
                .collect(),
            thresholds: DEFAULT_LEVEL_THRESHOLDS
                .iter()
                .map(|&(public_minutes, sales)| LevelThreshold {
                    public_minutes,
                    sales,
                })
                .collect(),
        }
    }
}

impl CommerceConfig {
    /// The commission rate of a product category.
    pub fn rate(&self, category: Option<&str>) -> crate::store::money::Rate {
        let zero = || crate::store::money::Rate::parse("0").expect("0 is a rate");
        category
            .map(str::to_lowercase)
            .and_then(|c| self.rates.get(&c))
            .or_else(|| self.rates.get("default"))
            .and_then(|r| crate::store::money::Rate::parse(r))
            .unwrap_or_else(zero)
    }
}

/// Web Push (VAPID) to viewers' browsers for every entry of their notification feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PushConfig {
    /// Send Web Push at all (off: no key is published, subscribing is refused).
    pub enabled: bool,
    /// The VAPID `sub` claim, a contact for push services (`mailto:` or `https://`); unset:
    /// `public_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Accept `http://` endpoints and endpoints on loopback, private and link-local addresses
    /// (off: a viewer could otherwise make the server call into its own network). For tests.
    pub allow_private_endpoints: bool,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            enabled: true,
            subject: None,
            allow_private_endpoints: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Let webhooks post to loopback, private and link-local addresses (off: a creator could
    /// otherwise make the server call into its own network).
    pub allow_private_targets: bool,
    /// Wait before the first retry; doubles with every failed attempt, up to an hour.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig {
            allow_private_targets: false,
            retry_initial: DEFAULT_WEBHOOK_RETRY_INITIAL,
            max_attempts: DEFAULT_WEBHOOK_MAX_ATTEMPTS,
        }
    }
}

/// Simulcast: public media sent on to creators' RTMP(S)/SRT destinations.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulcastConfig {
    /// The key (64 hex characters) that seals destination stream keys at rest. Unset: the file
    /// `simulcast.key` in `data_dir`, generated on the first start. Losing it makes stored keys
    /// unreadable (their destinations fail until the key is entered again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Let destinations be loopback, private or link-local addresses (off: a creator could
    /// otherwise make the server push into its own network).
    pub allow_private_destinations: bool,
    /// Destinations one stream sends to at once.
    pub max_targets: usize,
    /// The same for creators whose level has the benefit `more_simulcast_targets`.
    pub max_targets_with_benefit: usize,
    /// Wait before reconnecting a failed target; doubles with every failure, up to `retry_max`.
    #[serde(with = "humantime_serde")]
    pub retry_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Check the certificate of rtmps:// destinations (turn off only for a test's own
    /// self-signed receiver).
    pub tls_validation: bool,
}

impl std::fmt::Debug for SimulcastConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulcastConfig")
            .field("key", &self.key.as_ref().map(|_| "(set)"))
            .field(
                "allow_private_destinations",
                &self.allow_private_destinations,
            )
            .field("max_targets", &self.max_targets)
            .field("max_targets_with_benefit", &self.max_targets_with_benefit)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("tls_validation", &self.tls_validation)
            .finish()
    }
}

impl Default for SimulcastConfig {
    fn default() -> Self {
        SimulcastConfig {
            key: None,
            allow_private_destinations: false,
            max_targets: DEFAULT_SIMULCAST_MAX_TARGETS,
            max_targets_with_benefit: DEFAULT_SIMULCAST_MAX_TARGETS_WITH_BENEFIT,
            retry_initial: DEFAULT_SIMULCAST_RETRY_INITIAL,
            retry_max: DEFAULT_SIMULCAST_RETRY_MAX,
            tls_validation: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// Lifetime of the signed `?token=` in a practice stream's playback URL.
    #[serde(with = "humantime_serde")]
    pub playback_token_ttl: Duration,
    /// PEM certificate chain: with `tls_key`, the listener speaks TLS with HTTP/2 and HTTP/1.1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// A client must send a request's headers within this (also the keep-alive wait between
    /// HTTP/1.1 requests); then the connection is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A connection on which no byte moves for this long is closed (HTTP/2 included).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Open HTTP connections (live WebSockets included); beyond this a new one gets a 503 and is
    /// closed. Lowered at start-up to keep 1024 file descriptors for media.
    pub max_connections: usize,
    /// Reverse proxies (addresses or blocks, `10.0.0.0/8`) whose `X-Forwarded-For` names the
    /// client for per-address limits (sign-up, live connections). Empty: the header is ignored
    /// and the peer is the client. A list, or one comma-separated string
    /// (`LIVEFRONT_TRUSTED_PROXIES=10.0.0.0/8,::1`).
    #[serde(deserialize_with = "comma_list")]
    pub trusted_proxies: Vec<crate::address::Cidr>,
}

/// A list of address blocks, or one string of them separated by commas (from the environment).
/// A list given as a list or as one comma-separated string (what an environment variable holds).
fn comma_list<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        One(String),
        Many(Vec<String>),
    }
    let items = match List::deserialize(d)? {
        List::One(s) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        List::Many(v) => v,
    };
    items
        .iter()
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}

/// WHIP ingest (`POST /whip/{stream id}`): WebRTC from OBS 30+ or a browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WhipConfig {
    /// Local addresses ICE offers as host candidates (a list, or comma-separated in the
    /// environment); empty = every interface but loopback.
    #[serde(deserialize_with = "comma_list")]
    pub ice_addresses: Vec<std::net::IpAddr>,
    /// The address publishers outside reach this server at, behind 1:1 NAT: each host candidate
    /// is offered again with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_ip: Option<std::net::IpAddr>,
    /// `stun://host:port`, for a server-reflexive candidate (none by default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stun_server: Option<String>,
    /// First and last UDP port ICE may use (`[50000, 50100]`); unset = any ephemeral port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_ports: Option<(u16, u16)>,
    /// WHIP sessions at once on this server, at most.
    pub max_sessions: usize,
}

impl Default for WhipConfig {
    fn default() -> Self {
        WhipConfig {
            ice_addresses: Vec::new(),
            public_ip: None,
            stun_server: None,
            udp_ports: None,
            max_sessions: DEFAULT_WHIP_MAX_SESSIONS,
        }
    }
}

/// What happens around publishers, whatever their protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// How long a stream whose publisher dropped stays live waiting for it to come back (same key,
    /// any protocol) and continue the same session. 0 ends the stream at once.
    #[serde(with = "humantime_serde")]
    pub reconnect_grace: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            reconnect_grace: DEFAULT_RECONNECT_GRACE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtmpConfig {
    pub addr: SocketAddr,
    /// RTMPS (RTMP over TLS) on this address as well (off when absent). OBS: Server
    /// `rtmps://HOST:PORT/live`.
    pub tls_addr: Option<SocketAddr>,
    /// PEM certificate chain for RTMPS (default: `http.tls_cert`).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert` (default: `http.tls_key`).
    pub tls_key: Option<PathBuf>,
}

impl Config {
    /// The certificate and key RTMPS uses: its own, else the HTTP listener's.
    pub fn rtmps_certificate(&self) -> Option<(&Path, &Path)> {
        match (&self.rtmp.tls_cert, &self.rtmp.tls_key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => Some((
                self.http.tls_cert.as_deref()?,
                self.http.tls_key.as_deref()?,
            )),
            _ => None,
        }
    }
}

/// RTSP out (every live stream at `rtsp://HOST:PORT/live/{id}`) and, later, RTSP-specific ingest
/// settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RtspConfig {
    pub addr: SocketAddr,
    /// Let pulled streams (`source` of a stream) connect to loopback, private and link-local
    /// addresses (off: a creator could otherwise make the server pull from its own network).
    pub allow_private_sources: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SrtConfig {
    /// UDP address; one port serves every publisher (routed by `streamid`).
    pub addr: SocketAddr,
    /// Receiver latency: time SRT may spend recovering lost packets. The connection runs at the
    /// larger of this and the publisher's own latency.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// AES passphrase (10–79 characters) that every SRT publisher must then use; unset = no
    /// encryption.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HlsConfig {
    /// Target segment duration; segments are cut at the first keyframe after it.
    #[serde(with = "humantime_serde")]
    pub segment: Duration,
    /// Segments in the live playlist.
    pub window: usize,
    /// Ladder preset: a built-in name (`default`, `lowcpu`, `passthrough`) or a path to a TOML file.
    pub ladder: String,
    /// Serve low-latency HLS (CMAF parts, blocking reload) at the master URL, besides MPEG-TS.
    pub low_latency: bool,
    /// Low-latency part duration; the segment must be an exact multiple of it.
    #[serde(with = "humantime_serde")]
    pub part: Duration,
    /// How far behind the live edge low-latency players start and stay, in parts
    /// (`PART-HOLD-BACK` = this × `PART-TARGET`): 2 (RFC 8216bis's minimum) to 5.
    pub part_hold_back: u32,
}

impl HlsConfig {
    /// The part duration when low latency is on.
    pub fn low_latency_part(&self) -> Option<Duration> {
        self.low_latency.then_some(self.part)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// Lifetime of a signed recording `download_url`.
    #[serde(with = "humantime_serde")]
    pub link_ttl: Duration,
}

/// Free space under `data_dir`: below `low_free_mib` a warning shows in every live stream's
/// health and in `/metrics`, and is logged once each time free space falls below it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Warn when less than this many MiB are free (0: never warn; a full disk is still reported).
    pub low_free_mib: u64,
    /// How often free space is measured.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            low_free_mib: DEFAULT_DISK_LOW_FREE_MIB,
            check_interval: DEFAULT_DISK_CHECK_INTERVAL,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            public_url: None,
            admin_token: None,
            http: HttpConfig::default(),
            rtmp: RtmpConfig::default(),
            ingest: IngestConfig::default(),
            srt: SrtConfig::default(),
            rtsp: RtspConfig::default(),
            whip: WhipConfig::default(),
            hls: HlsConfig::default(),
            recording: RecordingConfig::default(),
            disk: DiskConfig::default(),
            webhooks: WebhooksConfig::default(),
            simulcast: SimulcastConfig::default(),
            chat: ChatConfig::default(),
            policy: PolicyConfig::default(),
            shop: ShopConfig::default(),
            commerce: CommerceConfig::default(),
            analytics: AnalyticsConfig::default(),
            sales: SalesConfig::default(),
            push: PushConfig::default(),
            storage: storage::StorageConfig::default(),
            database: database::DatabaseConfig::default(),
            node: NodeConfig::default(),
            bus: bus::BusConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            addr: DEFAULT_HTTP_ADDR.parse().expect("valid default address"),
            playback_token_ttl: DEFAULT_PLAYBACK_TOKEN_TTL,
            tls_cert: None,
            tls_key: None,
            header_read_timeout: DEFAULT_HTTP_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_HTTP_IDLE_TIMEOUT,
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            trusted_proxies: Vec::new(),
        }
    }
}

impl Default for RtmpConfig {
    fn default() -> Self {
        RtmpConfig {
            addr: DEFAULT_RTMP_ADDR.parse().expect("valid default address"),
            tls_addr: None,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl Default for SrtConfig {
    fn default() -> Self {
        SrtConfig {
            addr: DEFAULT_SRT_ADDR.parse().expect("valid default address"),
            latency: DEFAULT_SRT_LATENCY,
            passphrase: None,
        }
    }
}

impl Default for RtspConfig {
    fn default() -> Self {
        RtspConfig {
            addr: DEFAULT_RTSP_ADDR.parse().expect("valid default address"),
            allow_private_sources: false,
        }
    }
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            segment: DEFAULT_HLS_SEGMENT,
            window: DEFAULT_HLS_WINDOW,
            ladder: ladder::DEFAULT_LADDER.into(),
            low_latency: true,
            part: DEFAULT_HLS_PART,
            part_hold_back: DEFAULT_PART_HOLD_BACK,
        }
    }
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            link_ttl: DEFAULT_RECORDING_LINK_TTL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("config key {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Defaults, then `file` (or `config/livefront.toml` when it exists), then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config, Error> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE))
            }
            None => {}
        }
        let env = Env::prefixed("LIVEFRONT_")
            .filter(|key| {
                !ENV_NOT_CONFIG
                    .iter()
                    .any(|k| key.as_str().eq_ignore_ascii_case(k))
            })
            .map(|key| {
                let lower = key.as_str().to_ascii_lowercase();
                match ENV_ALIASES.iter().find(|(alias, _)| *alias == lower) {
                    Some((_, path)) => (*path).into(),
                    None => lower.replace("__", ".").into(),
                }
            });
        let config: Config = figment.merge(env).extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.hls.segment < Duration::from_millis(500)
            || self.hls.segment > Duration::from_secs(20)
        {
            return Err(Error::Invalid {
                key: "hls.segment",
                message: format!("{:?} is outside 500ms..20s", self.hls.segment),
            });
        }
        for (key, value) in [
            ("http.header_read_timeout", self.http.header_read_timeout),
            ("http.idle_timeout", self.http.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(Error::Invalid {
                    key,
                    message: "must be above 0".into(),
                });
            }
        }
        if let Some((first, last)) = self.whip.udp_ports
            && (first == 0 || first > last)
        {
            return Err(Error::Invalid {
                key: "whip.udp_ports",
                message: format!("[{first}, {last}] is not a port range"),
            });
        }
        if let Some(stun) = &self.whip.stun_server
            && !stun.starts_with("stun://")
        {
            return Err(Error::Invalid {
                key: "whip.stun_server",
                message: format!("{stun:?} is not stun://host:port"),
            });
        }
        if self.whip.max_sessions == 0 {
            return Err(Error::Invalid {
                key: "whip.max_sessions",
                message: "must be above 0".into(),
            });
        }
        if self.sales.reservation_ttl < Duration::from_secs(1) {
            return Err(Error::Invalid {
                key: "sales.reservation_ttl",
                message: format!("{:?} is below 1s", self.sales.reservation_ttl),
            });
        }
        for (key, value) in [
            ("sales.max_open_sales", self.sales.max_open_sales),
            ("sales.max_open_auctions", self.sales.max_open_auctions),
            ("sales.claims_per_minute", self.sales.claims_per_minute),
            ("sales.bids_per_second", self.sales.bids_per_second),
            ("sales.max_bids", self.sales.max_bids),
        ] {
            if value == 0 {
                return Err(Error::Invalid {
                    key,
                    message: "must be at least 1".into(),
                });
            }
        }
        if self.disk.check_interval < Duration::from_millis(100) {
            return Err(Error::Invalid {
                key: "disk.check_interval",
                message: format!("{:?} is below 100ms", self.disk.check_interval),
            });
        }
        if self.simulcast.retry_initial.is_zero()
            || self.simulcast.retry_max < self.simulcast.retry_initial
        {
            return Err(Error::Invalid {
                key: "simulcast.retry_max",
                message: "retry_initial must be above 0 and retry_max at least retry_initial"
                    .into(),
            });
        }
        if self.simulcast.max_targets == 0 || self.simulcast.max_targets > 50 {
            return Err(Error::Invalid {
                key: "simulcast.max_targets",
                message: "must be 1..=50".into(),
            });
        }
        if !(self.simulcast.max_targets..=50).contains(&self.simulcast.max_targets_with_benefit) {
            return Err(Error::Invalid {
                key: "simulcast.max_targets_with_benefit",
                message: "must be from simulcast.max_targets to 50".into(),
            });
        }
        if let Some(key) = &self.simulcast.key
            && hex::decode(key.trim()).map_or(true, |k| k.len() != 32)
        {
            return Err(Error::Invalid {
                key: "simulcast.key",
                message: "must be 32 bytes as 64 hex characters".into(),
            });
        }
        if self.http.max_connections == 0 {
            return Err(Error::Invalid {
                key: "http.max_connections",
                message: "must be at least 1".into(),
            });
        }
        match (&self.http.tls_cert, &self.http.tls_key) {
            (Some(_), None) => {
                return Err(Error::Invalid {
                    key: "http.tls_key",
                    message: "http.tls_cert is set: set the key of that certificate too".into(),
                });
            }
            (None, Some(_)) => {
                return Err(Error::Invalid {
                    key: "http.tls_cert",
                    message: "http.tls_key is set: set the certificate (chain) too".into(),
                });
            }
            _ => {}
        }
        if self.rtmp.tls_addr.is_some() && self.rtmps_certificate().is_none() {
            return Err(Error::Invalid {
                key: "rtmp.tls_addr",
                message: "RTMPS needs a certificate: set rtmp.tls_cert and rtmp.tls_key (or http.tls_cert and http.tls_key)".into(),
            });
        }
        if self.hls.low_latency {
            let (part, segment) = (self.hls.part, self.hls.segment);
            if part < Duration::from_millis(100) || part > Duration::from_secs(1) {
                return Err(Error::Invalid {
                    key: "hls.part",
                    message: format!("{part:?} is outside 100ms..1s"),
                });
            }
            if !(2..=5).contains(&self.hls.part_hold_back) {
                return Err(Error::Invalid {
                    key: "hls.part_hold_back",
                    message: format!(
                        "{} parts is outside 2..=5 (RFC 8216bis: PART-HOLD-BACK is at least twice PART-TARGET)",
                        self.hls.part_hold_back
                    ),
                });
            }
            if segment.as_nanos() % part.as_nanos() != 0 {
                return Err(Error::Invalid {
                    key: "hls.part",
                    message: format!(
                        "the segment ({segment:?}) must be an exact multiple of the part ({part:?}); \
                         players drift on a remainder"
                    ),
                });
            }
        }
        if let Err(e) = ladder::LadderSpec::resolve(&self.hls.ladder) {
            return Err(Error::Invalid {
                key: "hls.ladder",
                message: e.to_string(),
            });
        }
        if !(3..=100).contains(&self.hls.window) {
            return Err(Error::Invalid {
                key: "hls.window",
                message: format!("{} is outside 3..=100 segments", self.hls.window),
            });
        }
        if let Some(url) = &self.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(Error::Invalid {
                key: "public_url",
                message: format!("{url:?} must start with http:// or https://"),
            });
        }
        if let Some(p) = &self.srt.passphrase
            && !(10..=79).contains(&p.len())
        {
            return Err(Error::Invalid {
                key: "srt.passphrase",
                message: format!("must be 10 to 79 characters, not {}", p.len()),
            });
        }
        if self.srt.latency < Duration::from_millis(20)
            || self.srt.latency > Duration::from_secs(10)
        {
            return Err(Error::Invalid {
                key: "srt.latency",
                message: format!("{:?} is outside 20ms..10s", self.srt.latency),
            });
        }
        self.chat.validate()?;
        if let Some(sub) = &self.push.subject
            && !(sub.starts_with("mailto:") || sub.starts_with("https://"))
        {
            return Err(Error::Invalid {
                key: "push.subject",
                message: format!("{sub:?} must start with mailto: or https://"),
            });
        }
        if self.policy.max_strikes == 0 {
            return Err(Error::Invalid {
                key: "policy.max_strikes",
                message: "must be at least 1".into(),
            });
        }
        if self.shop.cart_adds_per_minute == 0 {
            return Err(Error::Invalid {
                key: "shop.cart_adds_per_minute",
                message: "must be at least 1".into(),
            });
        }
        if matches!(&self.shop.secret, Some(s) if s.len() < 16) {
            return Err(Error::Invalid {
                key: "shop.secret",
                message: "must be at least 16 characters".into(),
            });
        }
        if !self.commerce.rates.contains_key("default") {
            return Err(Error::Invalid {
                key: "commerce.rates",
                message: "needs a `default` rate".into(),
            });
        }
        for (category, rate) in &self.commerce.rates {
            if crate::store::money::Rate::parse(rate).is_none()
                || *category != category.to_lowercase()
            {
                return Err(Error::Invalid {
                    key: "commerce.rates",
                    message: format!(
                        "{category} = {rate:?}: categories are lowercase, rates decimal strings from 0 to 1 with up to 6 decimals"
                    ),
                });
            }
        }
        if !(1..=365).contains(&self.commerce.levels.window_days) {
            return Err(Error::Invalid {
                key: "commerce.levels.window_days",
                message: format!("{} is outside 1..=365", self.commerce.levels.window_days),
            });
        }
        for (name, level) in &self.commerce.levels.benefits {
            if Benefit::parse(name).is_none() || *level == 0 {
                return Err(Error::Invalid {
                    key: "commerce.levels.benefits",
                    message: format!(
                        "{name} = {level}: benefits are {} with a level from 1",
                        Benefit::ALL.map(|b| b.as_str()).join(", ")
                    ),
                });
            }
        }
        if self
            .commerce
            .levels
            .thresholds
            .iter()
            .any(|t| !t.public_minutes.is_finite() || t.public_minutes < 0.0)
        {
            return Err(Error::Invalid {
                key: "commerce.levels.thresholds",
                message: "public_minutes must be a non-negative number".into(),
            });
        }
        if self.analytics.step < Duration::from_secs(1)
            || self.analytics.step > Duration::from_secs(300)
        {
            return Err(Error::Invalid {
                key: "analytics.step",
                message: format!("{:?} is outside 1s..5min", self.analytics.step),
            });
        }
        if let Err((key, message)) = self.storage.validate() {
            return Err(Error::Invalid { key, message });
        }
        if let Err((key, message)) = self.node.validate() {
            return Err(Error::Invalid { key, message });
        }
        if let Err(message) = self.bus.validate() {
            return Err(Error::Invalid {
                key: "bus.url",
                message,
            });
        }
        if let Err(message) = self.database.validate() {
            return Err(Error::Invalid {
                key: "database.url",
                message,
            });
        }
        if matches!(&self.admin_token, Some(t) if t.len() < 16) {
            return Err(Error::Invalid {
                key: "admin_token",
                message: "must be at least 16 characters".into(),
            });
        }
        Ok(())
    }
}

impl ChatConfig {
    fn validate(&self) -> Result<(), Error> {
        let invalid = |key, message: String| Err(Error::Invalid { key, message });
        if !(1..=10_000).contains(&self.max_message_chars) {
            return invalid(
                "chat.max_message_chars",
                format!("{} is outside 1..=10000", self.max_message_chars),
            );
        }
        if self.rate_messages == 0 {
            return invalid("chat.rate_messages", "must be at least 1".into());
        }
        if self.rate_window < Duration::from_millis(100)
            || self.rate_window > Duration::from_secs(3600)
        {
            return invalid(
                "chat.rate_window",
                format!("{:?} is outside 100ms..1h", self.rate_window),
            );
        }
        if self.replay > 500 {
            return invalid("chat.replay", format!("{} is over 500", self.replay));
        }
        if !(8..=65_536).contains(&self.queue) {
            return invalid("chat.queue", format!("{} is outside 8..=65536", self.queue));
        }
        if self.send_timeout < Duration::from_millis(100)
            || self.send_timeout > Duration::from_secs(300)
        {
            return invalid(
                "chat.send_timeout",
                format!("{:?} is outside 100ms..5min", self.send_timeout),
            );
        }
        if self.max_connections_per_stream == 0 {
            return invalid(
                "chat.max_connections_per_stream",
                "must be at least 1".into(),
            );
        }
        if self.viewer_count_interval < Duration::from_millis(100)
            || self.viewer_count_interval > Duration::from_secs(300)
        {
            return invalid(
                "chat.viewer_count_interval",
                format!("{:?} is outside 100ms..5min", self.viewer_count_interval),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_config_file_equals_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CONFIG_FILE);
        let text = std::fs::read_to_string(&path).expect("config/livefront.toml is shipped");
        let parsed: Config = toml::from_str(&text).expect("shipped config parses");
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_with_the_key_named() {
        let err = toml::from_str::<Config>("[http]\nadress = \"0.0.0.0:1\"\n").unwrap_err();
        assert!(err.to_string().contains("adress"), "{err}");
        let mut c = Config::default();
        c.hls.segment = Duration::from_secs(60);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("hls.segment")
        );
        for below_the_rfc_or_silly in [0, 1, 6] {
            let mut c = Config::default();
            c.hls.part_hold_back = below_the_rfc_or_silly;
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("hls.part_hold_back"), "{err}");
        }
    }

    #[test]
    fn rtmps_needs_a_certificate_its_own_or_the_https_one() {
        let mut c = Config::default();
        c.rtmp.tls_addr = Some("127.0.0.1:1936".parse().unwrap());
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("rtmp.tls_addr"), "{err}");
        c.http.tls_cert = Some("/etc/cert.pem".into());
        c.http.tls_key = Some("/etc/key.pem".into());
        assert!(c.validate().is_ok());
        assert_eq!(
            c.rtmps_certificate(),
            Some((Path::new("/etc/cert.pem"), Path::new("/etc/key.pem")))
        );
        c.rtmp.tls_cert = Some("/etc/rtmps.pem".into());
        assert!(
            c.validate().is_err(),
            "its own certificate needs its own key"
        );
        c.rtmp.tls_key = Some("/etc/rtmps-key.pem".into());
        assert_eq!(
            c.rtmps_certificate(),
            Some((Path::new("/etc/rtmps.pem"), Path::new("/etc/rtmps-key.pem")))
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own signature
    fn environment_overrides_with_short_and_nested_names() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LIVEFRONT_HTTP_ADDR", "127.0.0.1:9000");
            jail.set_env("LIVEFRONT_RTMP__ADDR", "127.0.0.1:0");
            jail.set_env("LIVEFRONT_HLS_SEGMENT", "4s");
            jail.set_env("LIVEFRONT_SRT_ADDR", "127.0.0.1:0");
            jail.set_env("LIVEFRONT_SRT_LATENCY", "300ms");
            jail.set_env("LIVEFRONT_SRT_PASSPHRASE", "correct horse battery");
            jail.set_env("LIVEFRONT_LOG_FORMAT", "json");
            jail.set_env("LIVEFRONT_CHAT__RATE_MESSAGES", "20");
            jail.set_env("LIVEFRONT_CHAT__SEND_TIMEOUT", "3s");
            jail.set_env("LIVEFRONT_MAX_STRIKES", "5");
            jail.set_env("LIVEFRONT_SHOP_SECRET", "shop-secret-0123456789");
            jail.set_env("LIVEFRONT_COMMERCE__RATES__BEAUTY", "0.04");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.shop.secret.as_deref(), Some("shop-secret-0123456789"));
            assert_eq!(c.commerce.rate(Some("Beauty")).to_string(), "0.04");
            assert_eq!(c.commerce.rate(Some("garden")).to_string(), "0.03");
            assert_eq!(c.commerce.rate(None).to_string(), "0.03");
            assert_eq!(c.http.addr, "127.0.0.1:9000".parse().unwrap());
            assert_eq!(c.rtmp.addr, "127.0.0.1:0".parse().unwrap());
            assert_eq!(c.hls.segment, Duration::from_secs(4));
            assert_eq!(c.srt.addr, "127.0.0.1:0".parse().unwrap());
            assert_eq!(c.srt.latency, Duration::from_millis(300));
            assert_eq!(c.srt.passphrase.as_deref(), Some("correct horse battery"));
            assert_eq!(c.chat.rate_messages, 20);
            assert_eq!(c.chat.send_timeout, Duration::from_secs(3));
            assert_eq!(c.policy.max_strikes, 5);
            jail.set_env(
                "LIVEFRONT_STORAGE_URL",
                "s3://media?endpoint=http://127.0.0.1:9",
            );
            jail.set_env("LIVEFRONT_STORAGE_ACCESS_KEY", "key");
            jail.set_env("LIVEFRONT_STORAGE_SECRET_KEY", "secret");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.storage.access_key.as_deref(), Some("key"));
            assert_eq!(c.storage.secret_key.as_deref(), Some("secret"));
            jail.set_env("LIVEFRONT_STORAGE_URL", "s3://media");
            let e = Config::load(None).map(|_| ()).unwrap_err().to_string();
            assert!(e.contains("storage.url") && e.contains("endpoint"), "{e}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own signature
    fn nodes_name_their_database_id_and_url() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "LIVEFRONT_DATABASE_URL",
                "postgres://lf:pw@10.0.0.5:5432/livefront",
            );
            jail.set_env("LIVEFRONT_NODE_ID", "edge-1");
            jail.set_env("LIVEFRONT_NODE_URL", "http://10.0.0.11:8080");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(
                c.database.url.as_deref(),
                Some("postgres://lf:pw@10.0.0.5:5432/livefront")
            );
            assert_eq!(c.node.id_or_random(), "edge-1");
            assert_eq!(c.node.url.as_deref(), Some("http://10.0.0.11:8080"));
            for (key, bad) in [
                ("LIVEFRONT_NODE_ID", "edge 1"),
                ("LIVEFRONT_NODE_URL", "10.0.0.11:8080"),
                ("LIVEFRONT_DATABASE_URL", "sqlite://x.db"),
            ] {
                jail.set_env(key, bad);
                let e = Config::load(None).map(|_| ()).unwrap_err().to_string();
                assert!(
                    e.contains(&key[10..].to_ascii_lowercase().replacen('_', ".", 1)),
                    "{e}"
                );
                jail.set_env("LIVEFRONT_NODE_ID", "edge-1");
                jail.set_env("LIVEFRONT_NODE_URL", "http://10.0.0.11:8080");
                jail.set_env("LIVEFRONT_DATABASE_URL", "postgres://h/livefront");
            }
            jail.clear_env();
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let (a, b) = (c.node.id_or_random(), c.node.id_or_random());
            assert!(a.starts_with("node-") && a != b, "{a} {b}");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's own signature
    fn trusted_proxies_are_a_list_or_a_comma_separated_string() {
        figment::Jail::expect_with(|jail| {
            let proxies = |c: &Config| -> Vec<String> {
                c.http.trusted_proxies.iter().map(|&c| c.into()).collect()
            };
            jail.set_env("LIVEFRONT_TRUSTED_PROXIES", "10.0.0.0/8, ::1");
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(proxies(&c), ["10.0.0.0/8", "::1/128"]);
            jail.clear_env();
            jail.create_file(
                "livefront.toml",
                "[http]\ntrusted_proxies = [\"127.0.0.1\", \"2001:db8::/32\"]\n",
            )?;
            let c = Config::load(Some(std::path::Path::new("livefront.toml")))
                .map_err(|e| e.to_string())?;
            assert_eq!(proxies(&c), ["127.0.0.1/32", "2001:db8::/32"]);
            jail.set_env("LIVEFRONT_HTTP__TRUSTED_PROXIES", "10.0.0.0/33");
            let e = Config::load(None).map(|_| ()).unwrap_err().to_string();
            let named = e.to_lowercase().contains("http.trusted_proxies");
            assert!(named && e.contains("prefix"), "{e}");
            Ok(())
        });
    }
}
