//! RTSP out: every live stream is served at `rtsp://HOST:PORT/live/{id}` by gst-rtsp-server, from
//! the publisher's H.264/AAC as it is (no re-encode), for VLC, NVRs and monitoring.
//!
//! The server runs its own GLib main loop on one thread. A stream is mounted when its pipeline
//! starts ([`RtspOut::publish`]) and unmounted when it stops ([`RtspOut::unpublish`]): unknown or
//! ended ids answer 404. Each mount's media is shared by all its viewers and fed by [`Feed`].
//!
//! Access is decided per DESCRIBE/SETUP/PLAY by the [`Access`] the application passes in (public
//! streams are open; practice streams need the signed playback token `?token=` that the stream
//! object's `playback.rtsp` URL carries, the same token as its HLS URL). A refusal is a 404, as
//! for HLS, so a practice stream's existence is not leaked. RTSP Basic/Digest auth is not offered:
//! players only send credentials after a 401 challenge, which would tell strangers that a
//! practice stream exists, and an NVR takes a URL with a token just as well.
mod feed;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp::RTSPStatusCode;
use gstreamer_rtsp_server::prelude::*;
use gstreamer_rtsp_server::{
    RTSPClient, RTSPContext, RTSPFilterResult, RTSPMediaFactory, RTSPMountPoints, RTSPServer,
};

pub use feed::Track;
use feed::{Feed, media_launch};

use crate::store::StreamId;

/// The path prefix of every stream: `/live/{id}`.
pub const MOUNT_PREFIX: &str = "/live/";

/// Decides whether a viewer may play a stream, given the `?token=` of the request URL (called on
/// the RTSP thread; must not block): `None` refuses.
pub type Access = Arc<dyn Fn(&StreamId, Option<&str>) -> Option<Grant> + Send + Sync>;

/// Why a viewer may play a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// The stream is public: until it is not ([`RtspOut::hide`]).
    Public,
    /// The owner's signed token: whatever the mode.
    Owner,
}

/// Clients let in because a stream was public, by stream (weak: a closed client goes away).
type PublicViewers = Arc<Mutex<HashMap<StreamId, Vec<glib::WeakRef<RTSPClient>>>>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("rtsp server could not listen on {addr}: {message}")]
    Bind { addr: SocketAddr, message: String },
    #[error("rtsp feed for stream {id}: {message}")]
    Feed { id: String, message: String },
}

/// The running RTSP server.
pub struct RtspOut {
    server: RTSPServer,
    mounts: RTSPMountPoints,
    context: glib::MainContext,
    main_loop: glib::MainLoop,
    thread: Mutex<Option<JoinHandle<()>>>,
    local_addr: SocketAddr,
    feeds: Mutex<HashMap<StreamId, Feed>>,
    /// The access check of new clients; disconnected at stop, so that nothing it holds stays
    /// alive through the server.
    guard: Mutex<Option<glib::SignalHandlerId>>,
    public_viewers: PublicViewers,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl RtspOut {
    /// Listens on `addr` (port 0 picks a free port; see [`RtspOut::local_addr`]).
    pub fn start(addr: SocketAddr, access: Access) -> Result<Arc<RtspOut>, Error> {
        let bind_error = |message: String| Error::Bind { addr, message };
        let server = RTSPServer::new();
        server.set_address(&addr.ip().to_string());
        server.set_service(&addr.port().to_string());
        let mounts = server
            .mount_points()
            .ok_or_else(|| bind_error("server without mount points".into()))?;
        let public_viewers = PublicViewers::default();
        let viewers = public_viewers.clone();
        let guard = server.connect_client_connected(move |_, client| {
            guard_client(client, access.clone(), viewers.clone())
        });
        let context = glib::MainContext::new();
        // The listening source lives as long as the context, which the loop below runs.
        server
            .attach(Some(&context))
            .map_err(|e| bind_error(e.to_string()))?;
        let port =
            u16::try_from(server.bound_port()).map_err(|_| bind_error("no bound port".into()))?;
        let main_loop = glib::MainLoop::new(Some(&context), false);
        let thread = {
            let (main_loop, context) = (main_loop.clone(), context.clone());
            std::thread::Builder::new()
                .name("rtsp-out".into())
                .spawn(move || {
                    let _ = context.with_thread_default(|| main_loop.run());
                })
                .map_err(|e| bind_error(e.to_string()))?
        };
        let local_addr = SocketAddr::new(addr.ip(), port);
        tracing::info!(addr = %local_addr, "rtsp out listening");
        Ok(Arc::new(RtspOut {
            server,
            mounts,
            context,
            main_loop,
            thread: Mutex::new(Some(thread)),
            local_addr,
            feeds: Mutex::new(HashMap::new()),
            guard: Mutex::new(Some(guard)),
            public_viewers,
        }))
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Mounts a stream whose pipeline just started: finds its `rtsp-{video,audio}` appsinks and
    /// serves them at `/live/{id}`.
    pub fn publish(&self, id: &StreamId, pipeline: &gst::Pipeline) -> Result<(), Error> {
        let feed = Feed::default();
        let mut tracks = Vec::new();
        for track in [Track::Video, Track::Audio] {
            let name = format!("rtsp-{}", track.name());
            let Some(element) = pipeline.by_name(&name) else {
                continue;
            };
            let sink = element
                .downcast::<gst_app::AppSink>()
                .map_err(|_| Error::Feed {
                    id: id.to_string(),
                    message: format!("{name} is not an appsink"),
                })?;
            feed.connect(&sink, track);
            tracks.push(track);
        }
        if tracks.is_empty() {
            return Err(Error::Feed {
                id: id.to_string(),
                message: "the pipeline has no rtsp appsinks".into(),
            });
        }
        let factory = RTSPMediaFactory::new();
        // The stream's video parser says its codec (H.265 publishers get `h265parse`).
        let hevc = pipeline
            .by_name("parse-video")
            .and_then(|parser| parser.factory())
            .is_some_and(|factory| factory.name() == "h265parse");
        factory.set_launch(&media_launch(&tracks, hevc));
        factory.set_shared(true);
        let attach = feed.clone();
        factory.connect_media_configure(move |_, media| attach.attach(media));
        lock(&self.feeds).insert(id.clone(), feed);
        self.mounts
            .add_factory(&format!("{MOUNT_PREFIX}{id}"), factory);
        tracing::debug!(stream = %id, ?tracks, "rtsp mount added");
        Ok(())
    }

    /// Unmounts a stream (new requests get 404) and disconnects its viewers, who have had EOS
    /// from the stopping pipeline by now.
    pub fn unpublish(&self, id: &StreamId) {
        let path = format!("{MOUNT_PREFIX}{id}");
        self.mounts.remove_factory(&path);
        if let Some(feed) = lock(&self.feeds).remove(id) {
            feed.end();
        }
        let server = self.server.clone();
        self.context.invoke(move || {
            for client in viewers_of(&server, &path) {
                client.close();
            }
        });
    }

    /// The stream is no longer public (back to practice, taken down): the viewers it let in for
    /// that are disconnected at once; those with the owner's token stay.
    pub fn hide(&self, id: &StreamId) {
        let Some(viewers) = lock(&self.public_viewers).remove(id) else {
            return;
        };
        let clients: Vec<RTSPClient> = viewers.iter().filter_map(|w| w.upgrade()).collect();
        if clients.is_empty() {
            return;
        }
        tracing::info!(stream = %id, viewers = clients.len(), "rtsp viewers of a stream no longer public disconnected");
        self.context.invoke(move || {
            for client in clients {
                client.close();
            }
        });
    }

    /// Stops the server thread without waiting for it (viewers are disconnected).
    pub fn quit(&self) {
        if let Some(guard) = lock(&self.guard).take() {
            self.server.disconnect(guard);
        }
        let server = self.server.clone();
        let main_loop = self.main_loop.clone();
        self.context.invoke(move || {
            server.client_filter(Some(&mut |_, _| RTSPFilterResult::Remove));
            main_loop.quit();
        });
    }

    /// Stops the server thread and waits for it.
    pub fn stop(&self) {
        self.quit();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for RtspOut {
    fn drop(&mut self) {
        self.main_loop.quit();
    }
}

/// Clients with a session on `path`.
fn viewers_of(server: &RTSPServer, path: &str) -> Vec<RTSPClient> {
    server.client_filter(Some(&mut |_, client| {
        let sessions = client.session_filter(Some(&mut |_, session| {
            let medias = session.filter(Some(&mut |_, media| {
                if media.matches(path).is_some() {
                    RTSPFilterResult::Ref
                } else {
                    RTSPFilterResult::Keep
                }
            }));
            if medias.is_empty() {
                RTSPFilterResult::Keep
            } else {
                RTSPFilterResult::Ref
            }
        }));
        if sessions.is_empty() {
            RTSPFilterResult::Keep
        } else {
            RTSPFilterResult::Ref
        }
    }))
}

/// Checks every DESCRIBE, SETUP and PLAY of a client against `access`. Players build SETUP and
/// PLAY URLs from the DESCRIBE answer's base, without the query, so a stream granted once on a
/// connection stays granted on it (a client let in because the stream was public is listed in
/// `public_viewers`, and disconnected when it no longer is).
fn guard_client(client: &RTSPClient, access: Access, public_viewers: PublicViewers) {
    let granted: Mutex<HashSet<StreamId>> = Mutex::new(HashSet::new());
    let weak = client.downgrade();
    let check = move |ctx: &RTSPContext| -> RTSPStatusCode {
        let Some(url) = ctx.uri().map(|u| u.request_uri().to_string()) else {
            return RTSPStatusCode::BadRequest;
        };
        let Some((id, token)) = stream_of(&url) else {
            return RTSPStatusCode::NotFound;
        };
        if lock(&granted).contains(&id) {
            return RTSPStatusCode::Ok;
        }
        match access(&id, token.as_deref()) {
            Some(grant) => {
                if grant == Grant::Public {
                    let mut viewers = lock(&public_viewers);
                    let list = viewers.entry(id.clone()).or_default();
                    list.retain(|w| w.upgrade().is_some());
                    list.push(weak.clone());
                }
                lock(&granted).insert(id);
                RTSPStatusCode::Ok
            }
            None => {
                tracing::debug!(stream = %id, "rtsp viewer refused");
                RTSPStatusCode::NotFound
            }
        }
    };
    let check = Arc::new(check);
    let c = check.clone();
    client.connect_pre_describe_request(move |_, ctx| c(ctx));
    let c = check.clone();
    client.connect_pre_setup_request(move |_, ctx| c(ctx));
    client.connect_pre_play_request(move |_, ctx| check(ctx));
}

/// The stream id and `?token=` of a request URL (`rtsp://host/live/{id}[/control][?token=…]`).
fn stream_of(request_uri: &str) -> Option<(StreamId, Option<String>)> {
    let url = url::Url::parse(request_uri).ok()?;
    let rest = url.path().strip_prefix(MOUNT_PREFIX)?;
    let id = StreamId::parse(rest.split('/').next()?)?;
    let token = url
        .query_pairs()
        .find(|(k, _)| k == "token")
        // Some clients append the control path after the query (`?token=x/stream=0`).
        .map(|(_, v)| v.split('/').next().unwrap_or_default().to_string());
    Some((id, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_urls_name_the_stream_and_token() {
        let (id, token) = stream_of("rtsp://h:1/live/abc123?token=99.ff").unwrap();
        assert_eq!((id.as_str(), token.as_deref()), ("abc123", Some("99.ff")));
        let (id, token) = stream_of("rtsp://h:1/live/abc123/stream=0").unwrap();
        assert_eq!((id.as_str(), token), ("abc123", None));
        let (_, token) = stream_of("rtsp://h:1/live/abc?token=1.a/stream=1").unwrap();
        assert_eq!(token.as_deref(), Some("1.a"));
        assert!(stream_of("rtsp://h:1/other/abc").is_none());
        assert!(stream_of("rtsp://h:1/live/../x").is_none());
    }
}
