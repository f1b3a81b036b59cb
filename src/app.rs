//! Wires the parts together: store, registry, RTMP server, HTTP server; and stops them in order.
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::analytics::{self, Recorder};
use crate::config::Config;
use crate::config::ladder::LadderSpec;
use crate::http::signing::{self, Purpose, Verdict};
use crate::http::{self, AppState};
use crate::ingest::rtmp::RtmpServer;
use crate::ingest::rtsp::Pulls;
use crate::ingest::srt::{self as srt_ingest, SrtServer};
use crate::ingest::whip::{self, Whip};
use crate::live::chat::Chat;
use crate::live::{Channel, LiveHub};
use crate::notifications::Notifier;
use crate::output::disk_space::DiskSpace;
use crate::output::rtsp::{self, RtspOut};
use crate::pipeline;
use crate::store::{self, Mode, NewStream, Store, Stream, StreamId};
use crate::streams::StreamRegistry;
use crate::streams::access::{self, Audience};
use crate::streams::events::{self, Listener};
use crate::webhooks::Webhooks;

const DB_FILE: &str = "livefront.db";
const DEMO_HANDLE: &str = "demo";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    Pipeline(#[from] pipeline::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Registry(#[from] crate::streams::registry::Error),
    #[error(transparent)]
    Secrets(#[from] store::sealed::Error),
    #[error("binding SRT on {addr}: {source}")]
    Srt {
        addr: String,
        source: srt_ingest::Error,
    },
    #[error(transparent)]
    Rtsp(#[from] rtsp::Error),
    #[error("object storage (storage.url): {0}")]
    Storage(#[from] crate::storage::Error),
    #[error(transparent)]
    Bus(#[from] crate::bus::Error),
    #[error("web push: {0}")]
    Vapid(#[from] crate::push::vapid::Error),
    #[error("TLS (http.tls_cert, http.tls_key): {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("{what} {addr}: {source}")]
    Io {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
}

/// Secrets created on the first start, to print once.
#[derive(Debug, Clone)]
pub struct FirstStart {
    /// `None` when the admin token comes from the config.
    pub admin_token: Option<String>,
    pub demo_token: String,
    pub demo_stream: Stream,
}

/// A running livefront.
pub struct App {
    pub http_addr: SocketAddr,
    pub rtmp_addr: SocketAddr,
    /// The RTMPS listener's address, when `rtmp.tls_addr` is set.
    pub rtmps_addr: Option<SocketAddr>,
    /// The bound UDP address of the SRT listener.
    pub srt_addr: SocketAddr,
    pub rtsp_addr: SocketAddr,
    pub public_url: String,
    pub rtmp_url: String,
    /// `rtmps://host:port/live`, when RTMPS is on.
    pub rtmps_url: Option<String>,
    /// `srt://host:port`; a stream's publish URL adds `?streamid=publish:KEY`.
    pub srt_url: String,
    /// `rtsp://host:port`; streams are at `{rtsp_url}/live/{id}`.
    pub rtsp_url: String,
    pub first_start: Option<FirstStart>,
    pub state: AppState,
    shutdown: CancellationToken,
    http_task: JoinHandle<()>,
    rtmp_task: JoinHandle<()>,
    rtmps_task: Option<JoinHandle<()>>,
    /// Stopped after the streams, so that their last events are sent (or stay queued).
    webhooks_stop: CancellationToken,
    webhooks_task: JoinHandle<()>,
    srt_task: JoinHandle<()>,
    /// `viewer_count` events of the streams with live-channel listeners.
    viewer_counts_task: JoinHandle<()>,
    /// The live channel's messages from the other nodes (with `bus.url`).
    nodes_task: Option<JoinHandle<()>>,
    /// Samples live streams for the creators' analytics.
    analytics_task: JoinHandle<()>,
    /// Measures free space under `data_dir`.
    disk_task: JoinHandle<()>,
    /// Renews the leases of this node's live streams.
    leases_task: JoinHandle<()>,
    reminders_task: JoinHandle<()>,
    push_task: Option<JoinHandle<()>>,
    /// Hands freed memory back to the OS.
    trim_task: JoinHandle<()>,
    rtsp: Arc<RtspOut>,
}

/// The store the configuration names: PostgreSQL at `database.url`, else SQLite in `data_dir`.
pub async fn open_store(config: &Config) -> Result<Store, store::Error> {
    match &config.database.url {
        Some(url) => {
            tracing::info!(url = %crate::config::database::redacted(url), "store: PostgreSQL");
            Store::connect(url).await
        }
        None => Store::open(&config.data_dir.join(DB_FILE)).await,
    }
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or(rest);
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

impl App {
    pub async fn start(mut config: Config) -> Result<App, Error> {
        config.validate()?;
        // One id for this node's whole run: its stream leases and its bus messages name it.
        config.node.id = Some(config.node.id_or_random());
        crate::shop::cart::check_config(&config.shop)?;
        pipeline::init()?;
        let config = Arc::new(config);
        std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
            what: "creating data dir",
            addr: config.data_dir.display().to_string(),
            source,
        })?;
        let storage = crate::storage::Storage::open(&config).await?;
        let store = open_store(&config).await?;
        let webhooks = Webhooks::new(store.clone(), config.webhooks.clone());
        let notifier = Notifier::new(store.clone());
        let node = config.node.id_or_random();
        let live = LiveHub::with_buffer(config.chat.queue);
        let live = match &config.bus.url {
            Some(url) => live.with_bus(Arc::new(
                crate::bus::Bus::connect(url, &node, config.bus.ca.as_deref()).await?,
            )),
            None => live,
        };
        let secret = Arc::new(store.signing_secret().await?);
        let audience = Arc::new(http::audience::Audience::new(&secret));
        let chat = Chat::new(store.clone(), live.clone(), config.chat.clone());
        let recorder = Recorder::new(
            store.clone(),
            config.analytics.step,
            Arc::new(Watchers {
                audience: audience.clone(),
                chat: chat.clone(),
                segment: config.hls.segment,
            }),
        );
        let events_dropped = Arc::new(AtomicU64::new(0));
        let secrets =
            store::sealed::SecretBox::load(config.simulcast.key.as_deref(), &config.data_dir)?;
        let registry = StreamRegistry::new(
            store.clone(),
            config.clone(),
            listeners(
                &live,
                &store,
                &webhooks,
                &notifier,
                &recorder,
                &events_dropped,
            ),
            events_dropped,
            secrets.clone(),
        );
        registry.attach_storage(storage.clone()).await?;
        registry.recover().await?;
        let sales = crate::streams::sales::Sales::new(
            registry.clone(),
            store.clone(),
            config.sales.clone(),
        );
        // Retried at the next start if the store fails now.
        if let Err(e) = sales.recover().await {
            tracing::error!(error = %e, "could not close the auctions left open");
        }
        let first_start = bootstrap(&store, &config).await?;

        let tls = match (&config.http.tls_cert, &config.http.tls_key) {
            (Some(cert), Some(key)) => Some(http::serve::tls_acceptor(cert, key)?),
            _ => None,
        };
        let http_listener = TcpListener::bind(config.http.addr)
            .await
            .map_err(|source| Error::Io {
                what: "binding HTTP on",
                addr: config.http.addr.to_string(),
                source,
            })?;
        let http_addr = http_listener.local_addr().map_err(|source| Error::Io {
            what: "HTTP",
            addr: String::new(),
            source,
        })?;
        // How the other nodes reach this one: `node.url`, else the bound address when it names
        // one (not 0.0.0.0).
        let scheme = if config.http.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        match &config.node.url {
            Some(url) => registry.set_node_url(url.clone()),
            None if !http_addr.ip().is_unspecified() => {
                registry.set_node_url(format!("{scheme}://{http_addr}"))
            }
            None if config.database.url.is_some() => tracing::warn!(
                "node.url is not set: other nodes cannot relay viewers of this node's streams"
            ),
            None => {}
        }
        let rtmp = RtmpServer::bind(config.rtmp.addr)
            .await
            .map_err(|source| Error::Io {
                what: "binding RTMP on",
                addr: config.rtmp.addr.to_string(),
                source,
            })?;
        let rtmp_addr = rtmp.local_addr();
        let rtmps = match (config.rtmp.tls_addr, config.rtmps_certificate()) {
            (Some(addr), Some((cert, key))) => Some(
                RtmpServer::bind(addr)
                    .await
                    .map_err(|source| Error::Io {
                        what: "binding RTMPS on",
                        addr: addr.to_string(),
                        source,
                    })?
                    .with_tls(crate::tls::server_config(cert, key)?),
            ),
            _ => None,
        };
        let rtmps_addr = rtmps.as_ref().map(RtmpServer::local_addr);
        let srt = SrtServer::bind(
            config.srt.addr,
            srt_ingest::SrtConfig {
                latency: config.srt.latency,
                passphrase: config.srt.passphrase.clone(),
                ..Default::default()
            },
        )
        .await
        .map_err(|source| Error::Srt {
            addr: config.srt.addr.to_string(),
            source,
        })?;
        let srt_addr = srt.local_addr();
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| {
                let scheme = if tls.is_some() { "https" } else { "http" };
                format!("{scheme}://localhost:{}", http_addr.port())
            })
            .trim_end_matches('/')
            .to_string();
        let rtmp_url = format!("rtmp://{}:{}/live", host_of(&public_url), rtmp_addr.port());
        let rtmps_url =
            rtmps_addr.map(|a| format!("rtmps://{}:{}/live", host_of(&public_url), a.port()));
        let srt_url = format!("srt://{}:{}", host_of(&public_url), srt_addr.port());
        // Read before the RTSP thread starts, so that no error below leaves it running.
        let resume = store.pulled_streams().await?;
        let shutdown = CancellationToken::new();
        let pulls = Pulls::new(
            Arc::new(registry.clone()),
            config.rtsp.allow_private_sources,
            shutdown.child_token(),
        );
        let whip = Whip::new(
            Arc::new(registry.clone()),
            whip::Ice {
                addresses: config.whip.ice_addresses.clone(),
                stun_server: config.whip.stun_server.clone(),
                ports: config.whip.udp_ports,
            },
            config.whip.public_ip,
            config.hls.segment,
            config.whip.max_sessions,
            shutdown.child_token(),
        );
        let rtsp = RtspOut::start(
            config.rtsp.addr,
            rtsp_access(registry.clone(), secret.clone()),
        )?;
        registry.attach_rtsp(rtsp.clone());
        let rtsp_addr = rtsp.local_addr();
        let rtsp_url = format!("rtsp://{}:{}", host_of(&public_url), rtsp_addr.port());
        let analytics_task = tokio::spawn(recorder.run(registry.clone(), shutdown.child_token()));
        let viewer_counts_task = tokio::spawn({
            let audience = audience.clone();
            chat.clone()
                .run_viewer_counts(move |id| audience.count(id), shutdown.child_token())
        });
        let owners = Arc::new(http::owner::Owners::new(live.bus().is_some()));
        let nodes_task = live.bus().map(|bus| {
            let owners = owners.clone();
            tokio::spawn(crate::live::nodes::run(
                bus.clone(),
                chat.clone(),
                Box::new(move |id| owners.forget(id)),
                shutdown.child_token(),
            ))
        });
        let disk = Arc::new(DiskSpace::new(&config.data_dir, config.disk.low_free_mib));
        disk.check();
        let disk_task = tokio::spawn(
            disk.clone()
                .watch(config.disk.check_interval, shutdown.child_token()),
        );
        let reminders_task = tokio::spawn(notifier.clone().run_reminders(shutdown.child_token()));
        let leases_task = tokio::spawn(registry.clone().keep_leases(shutdown.child_token()));
        let push = if config.push.enabled {
            let subject = config.push.subject.clone().unwrap_or(public_url.clone());
            let vapid = crate::push::Vapid::from_pkcs8(&store.vapid_key().await?, subject)?;
            Some(crate::push::WebPush::new(
                store.clone(),
                vapid,
                config.push.allow_private_endpoints,
            ))
        } else {
            None
        };
        let push_task = push
            .clone()
            .map(|p| tokio::spawn(p.run(notifier.subscribe(), shutdown.child_token())));
        let trim_task = tokio::spawn(crate::memory::trim_periodically(shutdown.child_token()));
        let state = Arc::new(http::Shared {
            store: store.clone(),
            registry: registry.clone(),
            webhooks: webhooks.clone(),
            notifier,
            push,
            live,
            chat,
            sales,
            sales_limits: http::sales::SalesLimits::new(&store, &config.sales),
            shutdown: shutdown.child_token(),
            registrations: Arc::new(http::viewers::registration_limit(&store)),
            cart_limits: Arc::new(http::cart::CartLimits::new(
                &store,
                config.shop.cart_adds_per_minute,
            )),
            audience,
            hls_counters: Arc::default(),
            owners,
            files: Arc::new(crate::output::file_cache::FileCache::with_storage(
                storage.clone(),
            )),
            storage,
            secret,
            secrets,
            config: config.clone(),
            disk,
            public_url: public_url.clone().into(),
            rtmp_url: rtmp_url.clone().into(),
            rtmps_url: rtmps_url.as_deref().map(Arc::from),
            srt_url: srt_url.clone().into(),
            rtsp_url: rtsp_url.clone().into(),
            default_ladder: LadderSpec::resolve(&config.hls.ladder)
                .map(|l| l.name)
                .unwrap_or_else(|_| config.hls.ladder.clone())
                .into(),
            whip,
        });
        let webhooks_stop = CancellationToken::new();
        let webhooks_task = tokio::spawn(webhooks.run(webhooks_stop.clone()));
        registry.attach_pulls(pulls, resume);
        let rtmp_task = tokio::spawn(rtmp.run(Arc::new(registry.clone()), shutdown.child_token()));
        let rtmps_task =
            rtmps.map(|r| tokio::spawn(r.run(Arc::new(registry.clone()), shutdown.child_token())));
        let srt_task = tokio::spawn(srt.run(Arc::new(registry.clone()), shutdown.child_token()));
        let http_shutdown = shutdown.child_token();
        let router = http::router(state.clone());
        let limits = http::serve::Limits {
            header_read_timeout: config.http.header_read_timeout,
            idle_timeout: config.http.idle_timeout,
            max_connections: http::serve::connection_cap(config.http.max_connections),
        };
        let http_task = tokio::spawn(async move {
            if let Err(e) =
                http::serve::serve(http_listener, router, tls, limits, http_shutdown).await
            {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });
        tracing::info!(http = %http_addr, rtmp = %rtmp_addr, rtmps = ?rtmps_addr, srt = %srt_addr, rtsp = %rtsp_addr, data_dir = %config.data_dir.display(), "livefront listening");
        Ok(App {
            http_addr,
            rtmp_addr,
            rtmps_addr,
            srt_addr,
            rtsp_addr,
            public_url,
            rtmp_url,
            rtmps_url,
            srt_url,
            rtsp_url,
            first_start,
            state,
            shutdown,
            http_task,
            rtmp_task,
            rtmps_task,
            webhooks_stop,
            webhooks_task,
            srt_task,
            viewer_counts_task,
            nodes_task,
            analytics_task,
            disk_task,
            leases_task,
            trim_task,
            reminders_task,
            push_task,
            rtsp,
        })
    }

    /// Graceful stop: no new publishers, live streams ended and finalised, then HTTP stops.
    pub async fn stop(mut self) {
        tracing::info!("shutting down: ending live streams");
        self.shutdown.cancel();
        let _ = (&mut self.rtmp_task).await;
        if let Some(task) = &mut self.rtmps_task {
            let _ = task.await;
        }
        let _ = (&mut self.srt_task).await;
        self.state.whip.wait().await;
        self.state.registry.shutdown().await;
        self.state.sales.shutdown().await;
        self.webhooks_stop.cancel();
        let _ = (&mut self.webhooks_task).await;
        let rtsp = self.rtsp.clone();
        let _ = tokio::task::spawn_blocking(move || rtsp.stop()).await;
        let _ = (&mut self.http_task).await;
        let _ = (&mut self.viewer_counts_task).await;
        if let Some(task) = &mut self.nodes_task {
            let _ = task.await;
        }
        let _ = (&mut self.analytics_task).await;
        let _ = (&mut self.disk_task).await;
        let _ = (&mut self.leases_task).await;
        let _ = (&mut self.reminders_task).await;
        if let Some(task) = &mut self.push_task {
            let _ = task.await;
        }
        let _ = (&mut self.trim_task).await;
        tracing::info!("stopped");
    }
}

impl Drop for App {
    /// An App dropped without `stop` (a panicking test, an aborted runtime) must not leave
    /// pipelines running on GStreamer's threads.
    fn drop(&mut self) {
        self.shutdown.cancel();
        self.webhooks_stop.cancel();
        self.state.registry.abort_pipelines();
        self.rtsp.quit();
    }
}

/// What reacts to stream events: the live channel at once; webhooks and follower notifications
/// in order on tasks of their own (they wait on the store and the network).
fn listeners(
    live: &LiveHub,
    store: &Store,
    webhooks: &Webhooks,
    notifier: &Notifier,
    recorder: &Recorder,
    dropped: &Arc<AtomicU64>,
) -> Vec<Arc<dyn Listener>> {
    let (webhooks, notifier, recorder) = (webhooks.clone(), notifier.clone(), recorder.clone());
    vec![
        Arc::new(Channel::new(live.clone(), store.clone())),
        events::queued("webhooks", dropped.clone(), move |e| {
            let webhooks = webhooks.clone();
            async move { webhooks.on_stream_event(&e).await }
        }),
        events::queued("notifications", dropped.clone(), move |e| {
            let notifier = notifier.clone();
            async move { notifier.on_stream_event(&e).await }
        }),
        events::queued("analytics", dropped.clone(), move |e| {
            let recorder = recorder.clone();
            async move { recorder.on_stream_event(&e).await }
        }),
    ]
}

/// The audience as the analytics count it: HLS sessions and live-channel connections.
struct Watchers {
    audience: Arc<http::audience::Audience>,
    chat: Chat,
    /// A session watches its last segment too.
    segment: std::time::Duration,
}

impl analytics::Watchers for Watchers {
    fn players(&self, stream: &StreamId) -> usize {
        // Live players reload their playlist every segment (or part): three segments without
        // one and the player has left.
        self.audience.public_count(stream, self.segment * 3)
    }

    fn sockets(&self, stream: &StreamId) -> usize {
        self.chat.rooms().audience(stream)
    }

    fn take_sessions(&self) -> Vec<store::analytics::SessionSpan> {
        self.audience.take_sessions(self.segment)
    }
}

/// Who may watch a live stream over RTSP: whoever presents the signed playback token of its URLs
/// (`?token=`, as for HLS), and anyone while it is public (until it is not).
fn rtsp_access(registry: StreamRegistry, secret: Arc<Vec<u8>>) -> rtsp::Access {
    Arc::new(move |id: &StreamId, token: Option<&str>| {
        let live = registry.live(id)?;
        let signed = token
            .is_some_and(|t| signing::verify(&secret, Purpose::Playback, id, t) == Verdict::Valid);
        match access::audience(live.mode(), live.is_taken_down(), false, signed)? {
            Audience::Owner => Some(rtsp::Grant::Owner),
            Audience::Public => Some(rtsp::Grant::Public),
        }
    })
}

/// First start with an empty store: an admin token (unless configured), a `demo` creator and
/// one practice stream.
async fn bootstrap(store: &Store, config: &Config) -> Result<Option<FirstStart>, Error> {
    let mut generated_admin = None;
    match &config.admin_token {
        // The configured token is the only admin token: a replaced one stops working.
        Some(token) => store.set_admin_token(token).await?,
        None if !store.has_admin_token().await? => {
            let token = store::generate_token();
            store.add_admin_token(&token).await?;
            generated_admin = Some(token);
        }
        None => {}
    }
    if store.creator_count().await? > 0 {
        return Ok(None);
    }
    let (demo, demo_token) = store.create_creator(DEMO_HANDLE).await?;
    let demo_stream = store
        .create_stream(NewStream {
            creator_id: demo.id,
            title: "My first livestream".into(),
            category: None,
            scheduled_at: None,
            mode: Mode::Practice,
            ladder: None,
        })
        .await?;
    Ok(Some(FirstStart {
        admin_token: generated_admin,
        demo_token,
        demo_stream,
    }))
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn host_is_taken_from_the_public_url() {
        assert_eq!(host_of("http://localhost:8080"), "localhost");
        assert_eq!(host_of("https://live.example.com/"), "live.example.com");
        assert_eq!(host_of("http://10.0.0.5:80/x"), "10.0.0.5");
    }
}
