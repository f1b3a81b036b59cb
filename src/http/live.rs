//! The live channel of a stream over WebSocket, `GET /api/v1/streams/{id}/live`: one task per
//! connection carries the stream's events out (from its [`LiveHub`] channel) and chat messages in.
//!
//! A client that falls `chat.queue` events behind is closed with code 4000, one that does not take
//! an event within `chat.send_timeout` is dropped: either way the others never wait for it.
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{
    CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade,
    rejection::WebSocketUpgradeRejection,
};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::Instant;
use tracing::Instrument;

use super::AppState;
use super::access::visible_stream;
use super::error::ApiError;
use super::extract::MaybeAuth;
use crate::live::chat::Refusal;
use crate::live::rooms::{Full, Seat};
use crate::live::{ClientMessage, Focus, LiveEvent, StreamStatus, announced_mode, chat_message_id};
use crate::store::{ChatAuthor, CreatorId, Mode, Principal, StreamId, StreamState, ViewerId};

/// The server pings a quiet client this often; one silent for three intervals is gone.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Frames larger than this end the connection (a chat message is refused long before, with an
/// `error` event).
const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Read buffer per connection (tungstenite's default, 128 KiB, is sized for large transfers;
/// clients here send short chat messages).
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Events written before one flush when a client has several waiting.
const MAX_BATCH: usize = 64;
/// Close codes (4000-4999 are the application's).
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TOO_SLOW: u16 = 4000;
const CLOSE_NOT_FOUND: u16 = 4404;

/// How long a live channel ticket opens the channel (it is spent at the upgrade: the
/// connection then lasts as long as it likes).
const TICKET_LIFETIME: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
pub struct LiveQuery {
    /// A ticket from `POST …/live/ticket`, for clients that cannot set headers on a WebSocket.
    ticket: Option<String>,
    /// An API token: refused (a URL ends up in logs, proxies and history).
    token: Option<String>,
}

/// A ticket's subject: whom it was given to.
fn subject(who: &Principal) -> String {
    match who {
        Principal::Admin => "admin".into(),
        Principal::Creator(c) => format!("creator:{}", c.0),
        Principal::Viewer(v) => format!("viewer:{}", v.0),
    }
}

fn principal(subject: &str) -> Option<Principal> {
    match subject.split_once(':') {
        None if subject == "admin" => Some(Principal::Admin),
        Some(("creator", id)) => CreatorId::parse(id).map(Principal::Creator),
        Some(("viewer", id)) => ViewerId::parse(id).map(Principal::Viewer),
        _ => None,
    }
}

/// A short-lived ticket to the live channel for a client that cannot send headers on a
/// WebSocket: `{ticket, expires_at, url}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct LiveTicket {
    /// For `?ticket=` on `GET /api/v1/streams/{id}/live`; valid for 60 s, for this stream and
    /// this principal only.
    ticket: String,
    expires_at: chrono::DateTime<chrono::Utc>,
    /// The channel's URL with the ticket (`ws://` or `wss://`).
    url: String,
}

/// A ticket to the stream's live channel, for browsers and other clients that cannot set the
/// `Authorization` header on a WebSocket: valid for 60 s, for this stream and the caller only.
#[utoipa::path(post, path = "/api/v1/streams/{id}/live/ticket", tag = "chat",
    params(("id" = String, Path, description = "stream id")),
    responses((status = 200, description = "a ticket", body = LiveTicket),
              (status = 401, description = "missing or unknown token"),
              (status = 404, description = "not found (or not yours to see)")),
    security(("bearer" = [])))]
pub async fn ticket(
    State(state): State<AppState>,
    super::extract::Auth(who): super::extract::Auth,
    Path(id): Path<String>,
) -> Result<axum::Json<LiveTicket>, ApiError> {
    let (stream, _) = visible_stream(&state, &id, &Some(who.clone())).await?;
    let expires_at =
        chrono::Utc::now() + chrono::TimeDelta::from_std(TICKET_LIFETIME).expect("a minute fits");
    let ticket = super::signing::sign_ticket(
        &state.secret,
        super::signing::Purpose::Live,
        &stream.id,
        &subject(&who),
        expires_at.timestamp(),
    );
    let base = state
        .public_url
        .replacen("https://", "wss://", 1)
        .replacen("http://", "ws://", 1);
    let url = format!("{base}/api/v1/streams/{}/live?ticket={ticket}", stream.id);
    Ok(axum::Json(LiveTicket {
        ticket,
        expires_at,
        url,
    }))
}

/// Who a ticket in the query was given to (401 for a forged, expired or foreign ticket).
fn ticket_holder(state: &AppState, id: &str, ticket: &str) -> Result<Principal, ApiError> {
    let id = StreamId::parse(id).ok_or(ApiError::NotFound)?;
    super::signing::verify_ticket(&state.secret, super::signing::Purpose::Live, &id, ticket)
        .ok()
        .and_then(principal)
        .ok_or(ApiError::Unauthorized)
}

/// The stream's live events (WebSocket). Anyone who may see the stream may listen; a viewer
/// token, the stream creator's or the admin's may also send `{"type":"chat_message","text":…}`.
/// Events are JSON text frames, `{"type":…}` (see the `LiveEvent` schema).
#[utoipa::path(get, path = "/api/v1/streams/{id}/live", tag = "chat",
    params(("id" = String, Path, description = "stream id"),
           ("ticket" = Option<String>, Query, description = "a ticket from POST /api/v1/streams/{id}/live/ticket, for clients that cannot set the Authorization header (API tokens are refused in the query)")),
    responses((status = 101, description = "WebSocket of live events (LiveEvent) and chat", body = crate::live::LiveEvent),
              (status = 400, description = "an API token in the query (use a ticket)"),
              (status = 401, description = "unknown token, or a forged or expired ticket"),
              (status = 404, description = "not found (or not yours to see)"),
              (status = 426, description = "not a WebSocket upgrade request"),
              (status = 429, description = "this client address has its maximum of live connections"),
              (status = 503, description = "the stream has its maximum of live connections")),
    security((), ("bearer" = [])))]
pub async fn connect(
    State(state): State<AppState>,
    super::extract::ClientIp(client): super::extract::ClientIp,
    MaybeAuth(header_auth): MaybeAuth,
    Path(id): Path<String>,
    Query(query): Query<LiveQuery>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    if query.token.is_some() {
        return Err(ApiError::BadRequest {
            code: "token_in_query",
            message: "API tokens are not accepted in the URL; send the Authorization header, \
                      or a ticket from POST /api/v1/streams/{id}/live/ticket as ?ticket="
                .into(),
        });
    }
    let who = match (header_auth, query.ticket) {
        (Some(p), _) => Some(p),
        (None, Some(ticket)) => Some(ticket_holder(&state, &id, &ticket)?),
        (None, None) => None,
    };
    let (stream, owner) = visible_stream(&state, &id, &who).await?;
    let upgrade = upgrade.map_err(|r| ApiError::UpgradeRequired(r.body_text()))?;
    let author = match &who {
        None => Err(Refusal::Unauthorized),
        Some(Principal::Creator(_)) if !owner => Err(Refusal::Forbidden(
            "creators chat in their own streams; use a viewer account here",
        )),
        Some(p) => state
            .store
            .chat_author(p)
            .await?
            .ok_or(Refusal::Unauthorized),
    };
    let seat = state
        .chat
        .join(&stream.id, &stream.creator_id, client, owner)
        .map_err(|full| {
            let limits = state.chat.config();
            match full {
                Full::Stream => ApiError::Unavailable(format!(
                    "this stream has its maximum of {} live connections; try again later",
                    limits.max_connections_per_stream
                )),
                Full::Address => ApiError::TooManyRequests(format!(
                    "at most {} live connections to a stream (and {} in all) from one address",
                    limits.max_connections_per_address,
                    limits.max_connections_per_address_all_streams
                )),
            }
        })?;
    let status = StreamStatus {
        state: stream.state,
        mode: stream.mode,
        reconnecting: state
            .registry
            .live(&stream.id)
            .is_some_and(|s| s.health().reconnecting),
    };
    let span = tracing::info_span!("live", stream = %stream.id);
    let connection = Connection {
        // Subscribed before the replay is read: nothing sent in between is missed.
        events: state.live.subscribe(&stream.id),
        state,
        stream: stream.id,
        creator: stream.creator_id,
        owner,
        author,
        who,
        _seat: seat,
    };
    Ok(upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "websocket upgrade failed"))
        .on_upgrade(move |socket| connection.run(socket, status).instrument(span)))
}

/// One client of a stream's live channel.
struct Connection {
    state: AppState,
    stream: StreamId,
    creator: CreatorId,
    /// The stream's creator or the admin: stays when the stream turns practice.
    owner: bool,
    /// Who this client chats as, or why it cannot.
    author: Result<ChatAuthor, Refusal>,
    /// Who connected (bids are theirs).
    who: Option<Principal>,
    events: broadcast::Receiver<Arc<str>>,
    _seat: Seat,
}

/// What to do with one event of the stream's channel.
enum Relay {
    Send,
    /// Already replayed.
    Skip,
    /// The stream turned practice and this client is not its owner.
    Hide,
}

/// Why a connection ends.
enum End {
    /// The client left, or cannot be written to (timeout, broken socket).
    Gone,
    /// Close with this code and reason.
    Close(u16, String),
}

impl Connection {
    async fn run(mut self, mut socket: WebSocket, status: StreamStatus) {
        let end = self.serve(&mut socket, status).await;
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            };
            let timeout = self.state.chat.config().send_timeout;
            let _ = tokio::time::timeout(timeout, socket.send(Message::Close(Some(frame)))).await;
        }
    }

    async fn serve(&mut self, socket: &mut WebSocket, status: StreamStatus) -> End {
        let chat = self.state.chat.clone();
        let replay = match chat.replay(&self.stream, self.owner).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(stream = %self.stream, error = %e, "could not read the chat to replay");
                Vec::new()
            }
        };
        let replayed_up_to = replay.last().map(|m| m.id);
        let counts = chat.viewer_count(&self.stream, self.state.audience.count(&self.stream));
        // The product in focus now, so that a client joining mid-stream shows it at once: the
        // owner's, or on another node the newest stored change while the stream is live.
        let focus = match self.state.registry.live(&self.stream) {
            Some(live) => live.focus.lock().await.clone(),
            None if status.state == StreamState::Live => self
                .state
                .store
                .current_focus(&self.stream)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(stream = %self.stream, error = %e, "could not read the focus");
                    None
                }),
            None => None,
        };
        let focus = focus
            .as_ref()
            .filter(|f| f.product.is_some())
            .map(|f| LiveEvent::ProductFocused(Focus::from(f)));
        let hello = [
            LiveEvent::StreamState(status),
            LiveEvent::ViewerCount(counts),
        ]
        .into_iter()
        .chain(focus)
        .chain(replay.into_iter().map(LiveEvent::ChatMessage));
        let timeout = chat.config().send_timeout;
        let greet = async {
            for event in hello {
                socket.feed(text(&event.to_text())).await?;
            }
            socket.flush().await
        };
        if !matches!(tokio::time::timeout(timeout, greet).await, Ok(Ok(()))) {
            return End::Gone;
        }
        let shutdown = self.state.shutdown.clone();
        let mut ping = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    return End::Close(CLOSE_GOING_AWAY, "server shutting down".into());
                }
                event = self.events.recv() => {
                    let first = match event {
                        Ok(text) => text,
                        Err(RecvError::Lagged(n)) => return too_slow(n),
                        Err(RecvError::Closed) => return End::Gone,
                    };
                    if let Some(end) = self.relay(socket, first, replayed_up_to).await {
                        return end;
                    }
                }
                incoming = socket.recv() => {
                    let Some(Ok(message)) = incoming else {
                        return End::Gone;
                    };
                    last_heard = Instant::now();
                    let refusal = match message {
                        Message::Text(t) => self.on_text(t.as_str()).await.err(),
                        Message::Binary(_) => Some(Refusal::BadRequest("send JSON text frames".into())),
                        Message::Close(_) => return End::Gone,
                        Message::Ping(_) | Message::Pong(_) => None,
                    };
                    if let Some(refusal) = refusal
                        && !self.send_now(socket, text(&refusal.event().to_text())).await
                    {
                        return End::Gone;
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > 3 * PING_INTERVAL {
                        return End::Gone;
                    }
                    if !self.send_now(socket, Message::Ping(Default::default())).await {
                        return End::Gone;
                    }
                }
            }
        }
    }

    /// Writes `first` and whatever else is waiting (up to `MAX_BATCH`), then flushes once.
    async fn relay(
        &mut self,
        socket: &mut WebSocket,
        first: Arc<str>,
        replayed_up_to: Option<i64>,
    ) -> Option<End> {
        let timeout = self.state.chat.config().send_timeout;
        let mut next = Some(first);
        let mut written = 0;
        let write = async {
            while let Some(event) = next.take() {
                match self.triage(&event, replayed_up_to) {
                    Relay::Send => {
                        socket.feed(text(&event)).await.ok()?;
                        written += 1;
                    }
                    Relay::Skip => {}
                    Relay::Hide => {
                        return Some(Some(End::Close(CLOSE_NOT_FOUND, "not found".into())));
                    }
                }
                if written >= MAX_BATCH {
                    break;
                }
                next = match self.events.try_recv() {
                    Ok(e) => Some(e),
                    Err(TryRecvError::Lagged(n)) => return Some(Some(too_slow(n))),
                    Err(TryRecvError::Empty | TryRecvError::Closed) => None,
                };
            }
            socket.flush().await.ok()?;
            Some(None)
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Some(end)) => end,
            // Broken, or not reading: its buffers are full.
            Ok(None) | Err(_) => {
                tracing::debug!(stream = %self.stream, "live client dropped: not taking events");
                Some(End::Gone)
            }
        }
    }

    fn triage(&self, event: &str, replayed_up_to: Option<i64>) -> Relay {
        if let (Some(id), Some(up_to)) = (chat_message_id(event), replayed_up_to)
            && id <= up_to
        {
            return Relay::Skip;
        }
        if !self.owner && announced_mode(event) == Some(Mode::Practice) {
            return Relay::Hide;
        }
        if !self.owner && owner_only(event) {
            return Relay::Skip;
        }
        Relay::Send
    }

    /// A frame from the client: a chat message to post.
    async fn on_text(&self, frame: &str) -> Result<(), Refusal> {
        let message = serde_json::from_str(frame).map_err(|_| {
            Refusal::BadRequest(r#"expected {"type":"chat_message","text":"…"}"#.into())
        })?;
        let text = match message {
            ClientMessage::ChatMessage { text } => text,
            ClientMessage::Bid {
                auction_id,
                amount,
                max_amount,
            } => return self.on_bid(&auction_id, amount, max_amount).await,
        };
        let author = self.author.as_ref().map_err(Clone::clone)?;
        self.state
            .chat
            .post(&self.stream, &self.creator, author, &text)
            .await
            .map(|_| ())
    }

    /// A bid over the channel: the same checks as `POST …/bids`, the stream's visibility again
    /// included (it may have turned practice since the connection opened).
    async fn on_bid(
        &self,
        auction: &str,
        amount: Option<String>,
        max_amount: Option<String>,
    ) -> Result<(), Refusal> {
        let who = self.who.as_ref().ok_or(Refusal::Unauthorized)?;
        let refused = |e: ApiError| Refusal::Bid {
            code: e.code(),
            message: e.to_string(),
        };
        let (stream, _) = visible_stream(&self.state, self.stream.as_str(), &self.who)
            .await
            .map_err(refused)?;
        super::sales::place_bid(
            &self.state,
            &stream,
            auction,
            who,
            amount.as_deref(),
            max_amount.as_deref(),
        )
        .await
        .map(|_| ())
        .map_err(refused)
    }

    /// Sends one message to this client only (an `error` event, a ping).
    async fn send_now(&self, socket: &mut WebSocket, message: Message) -> bool {
        let timeout = self.state.chat.config().send_timeout;
        matches!(
            tokio::time::timeout(timeout, socket.send(message)).await,
            Ok(Ok(()))
        )
    }
}

fn text(event: &str) -> Message {
    Message::Text(Utf8Bytes::from(event))
}

fn too_slow(missed: u64) -> End {
    tracing::debug!(missed, "live client dropped: fell behind");
    End::Close(
        CLOSE_TOO_SLOW,
        format!("too slow: fell {missed} events behind; reconnect"),
    )
}

/// Events for the stream's owner only (where the show is simulcast, and how that goes).
fn owner_only(event: &str) -> bool {
    event.starts_with(r#"{"type":"destination_state""#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveEvent;
    use crate::streams::simulcast::{TargetState, TargetStatus};

    #[test]
    fn destination_states_are_for_the_owner_only() {
        let status = TargetStatus {
            id: "abc".into(),
            name: "YouTube".into(),
            state: TargetState::Live,
            since: chrono::Utc::now(),
            bytes: 1,
            bitrate_kbps: None,
            error: None,
            failures: 0,
            retry_at: None,
            rendition: "source".into(),
        };
        let text = serde_json::to_string(&LiveEvent::DestinationState(status)).unwrap();
        assert!(owner_only(&text), "{text}");
        let other = serde_json::to_string(&LiveEvent::ViewerCount(crate::live::ViewerCount {
            watching: 1,
            connected: 1,
        }))
        .unwrap();
        assert!(!owner_only(&other));
    }
}
