//! Chat: posting (length, rate limit, bans, blocked words, then store and broadcast), moderation
//! (delete, ban, blocked words), replay, and the audience counts of the streams with listeners.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::rate::SharedRateLimiter;
use super::rooms::{Full, Limits, Rooms, Seat};
use super::wire::{self, RemoteCounts, Wire};
use super::words::{self, BlockedWords};
use super::{
    ErrorEvent, LiveEvent, LiveHub, MessageDeleted, UserBanned, UserUnbanned, ViewerCount,
};
use crate::config::ChatConfig;
use crate::store::{self, ChatAuthor, ChatBan, ChatMessage, CreatorId, Store, StreamId, ViewerId};

/// Why a message was not posted; each becomes an `error` event for its sender only.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("sending needs a token: a viewer's, the stream's creator's or the admin's")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("the message is empty")]
    Empty,
    #[error("the message is longer than {0} characters")]
    TooLong(usize),
    #[error("too many messages: at most {limit} per {window:?}")]
    RateLimited {
        limit: u32,
        window: Duration,
        retry_after: Duration,
    },
    #[error("you are banned from this chat")]
    Banned { until: Option<DateTime<Utc>> },
    #[error("the message contains a word this chat does not allow")]
    BlockedWord,
    #[error("the stream has ended; its chat is read-only")]
    StreamEnded,
    #[error("the message could not be stored")]
    Internal,
    /// A bid sent over the live channel was refused (the codes of `POST …/bids`).
    #[error("{message}")]
    Bid { code: &'static str, message: String },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Unauthorized => "unauthorized",
            Refusal::Forbidden(_) => "forbidden",
            Refusal::BadRequest(_) => "bad_request",
            Refusal::Empty => "empty",
            Refusal::TooLong(_) => "too_long",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::Banned { .. } => "banned",
            Refusal::BlockedWord => "blocked_word",
            Refusal::StreamEnded => "stream_ended",
            Refusal::Internal => "internal",
            Refusal::Bid { code, .. } => code,
        }
    }

    /// The `error` event telling the sender.
    pub fn event(&self) -> LiveEvent {
        LiveEvent::Error(ErrorEvent {
            code: self.code().into(),
            message: self.to_string(),
            retry_after_ms: match self {
                // Rounded up: retrying after exactly this long succeeds.
                Refusal::RateLimited { retry_after, .. } => {
                    Some(retry_after.as_micros().div_ceil(1000) as u64)
                }
                _ => None,
            },
            until: match self {
                Refusal::Banned { until } => *until,
                _ => None,
            },
        })
    }
}

/// What a creator's chats enforce, compiled once and kept until it changes.
struct Rules {
    bans: HashMap<ViewerId, Option<DateTime<Utc>>>,
    words: BlockedWords,
}

impl Rules {
    fn ban_of(&self, viewer: &ViewerId, now: DateTime<Utc>) -> Option<Option<DateTime<Utc>>> {
        self.bans
            .get(viewer)
            .copied()
            .filter(|until| until.is_none_or(|t| t > now))
    }
}

struct Inner {
    store: Store,
    hub: LiveHub,
    config: ChatConfig,
    /// Per author; across nodes on a shared store.
    rate: SharedRateLimiter,
    rooms: Arc<Rooms>,
    /// The other nodes' audience counts (with `bus.url`).
    remote: RemoteCounts,
    /// Per creator, loaded on first use and dropped on every change (all changes go through here).
    rules: Mutex<HashMap<CreatorId, Arc<Rules>>>,
}

#[derive(Clone)]
pub struct Chat {
    inner: Arc<Inner>,
}

impl Chat {
    pub fn new(store: Store, hub: LiveHub, config: ChatConfig) -> Self {
        Chat {
            inner: Arc::new(Inner {
                rate: SharedRateLimiter::new(
                    &store,
                    "chat",
                    config.rate_messages,
                    config.rate_window,
                ),
                store,
                hub,
                rooms: Rooms::new(Limits {
                    per_stream: config.max_connections_per_stream,
                    per_address: config.max_connections_per_address,
                    per_address_all_streams: config.max_connections_per_address_all_streams,
                }),
                remote: RemoteCounts::new(config.viewer_count_interval),
                config,
                rules: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ChatConfig {
        &self.inner.config
    }

    pub fn hub(&self) -> &LiveHub {
        &self.inner.hub
    }

    pub fn rooms(&self) -> &Arc<Rooms> {
        &self.inner.rooms
    }

    pub fn remote_counts(&self) -> &RemoteCounts {
        &self.inner.remote
    }

    /// A stream's audience over all nodes: this node's connections and `watching` (its HLS
    /// players), plus the other nodes' fresh counts.
    pub fn viewer_count(&self, stream: &StreamId, watching: usize) -> ViewerCount {
        let remote = self.inner.remote.sum(stream, Instant::now());
        ViewerCount {
            watching: watching + remote.watching,
            connected: self.inner.rooms.connected(stream) + remote.connected,
        }
    }

    /// A seat in a stream's room for a client at `address` (its `owner` or not), unless the
    /// stream has `chat.max_connections_per_stream` or the address its share.
    pub fn join(
        &self,
        stream: &StreamId,
        creator: &CreatorId,
        address: std::net::IpAddr,
        owner: bool,
    ) -> Result<Seat, Full> {
        self.inner.rooms.join(stream, creator, address, owner)
    }

    /// The last `chat.replay` messages of a stream, oldest first (the rehearsal's only for its
    /// owner).
    pub async fn replay(
        &self,
        stream: &StreamId,
        owner: bool,
    ) -> Result<Vec<ChatMessage>, store::Error> {
        if self.inner.config.replay == 0 {
            return Ok(Vec::new());
        }
        let mut page = self
            .inner
            .store
            .chat_page(stream, None, self.inner.config.replay as u32, owner)
            .await?;
        page.reverse();
        Ok(page)
    }

    async fn rules(&self, creator: &CreatorId) -> Result<Arc<Rules>, store::Error> {
        if let Some(r) = self.cached_rules().get(creator) {
            return Ok(r.clone());
        }
        let stored = self.inner.store.chat_rules(creator).await?;
        let rules = Arc::new(Rules {
            bans: stored
                .bans
                .into_iter()
                .map(|b| (b.viewer_id, b.until))
                .collect(),
            words: BlockedWords::new(stored.blocked_words.iter().map(String::as_str)),
        });
        self.cached_rules().insert(creator.clone(), rules.clone());
        Ok(rules)
    }

    fn cached_rules(&self) -> std::sync::MutexGuard<'_, HashMap<CreatorId, Arc<Rules>>> {
        self.inner.rules.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A creator's rules changed here: reloaded on next use here and on the other nodes, and
    /// `event` sent to the sockets of the creator's streams on every node.
    fn rules_changed(&self, creator: &CreatorId, event: Option<LiveEvent>) {
        let text = event.map(|e| e.to_text());
        self.inner.hub.publish(&Wire::Rules {
            creator: creator.to_string(),
            event: text.as_deref().map(str::to_string),
        });
        self.rules_changed_elsewhere(creator, text.as_deref());
    }

    /// A creator's rules changed on another node (or here): reloaded on next use, and `event`
    /// sent to this node's sockets of the creator's streams.
    pub fn rules_changed_elsewhere(&self, creator: &CreatorId, event: Option<&str>) {
        self.cached_rules().remove(creator);
        if let Some(event) = event {
            let text: Arc<str> = event.into();
            for stream in self.inner.rooms.streams_of(creator) {
                self.inner.hub.deliver(&stream, text.clone());
            }
        }
    }

    /// Posts `text` by `author` in a stream of `creator`: checked, stored, then sent to everyone
    /// connected to the stream (the author too).
    pub async fn post(
        &self,
        stream: &StreamId,
        creator: &CreatorId,
        author: &ChatAuthor,
        text: &str,
    ) -> Result<ChatMessage, Refusal> {
        let config = &self.inner.config;
        let text = text.trim();
        if text.is_empty() {
            return Err(Refusal::Empty);
        }
        if text.chars().count() > config.max_message_chars {
            return Err(Refusal::TooLong(config.max_message_chars));
        }
        let key = format!("{}:{}", author.role.as_str(), author.handle);
        if let Err(retry_after) = self.inner.rate.check(key).await {
            return Err(Refusal::RateLimited {
                limit: config.rate_messages,
                window: config.rate_window,
                retry_after,
            });
        }
        let rules = self.rules(creator).await.map_err(|e| {
            tracing::error!(%stream, error = %e, "could not load the chat rules");
            Refusal::Internal
        })?;
        if let Some(viewer) = &author.viewer_id
            && let Some(until) = rules.ban_of(viewer, Utc::now())
        {
            return Err(Refusal::Banned { until });
        }
        if rules.words.matches(text) {
            return Err(Refusal::BlockedWord);
        }
        let message = self
            .inner
            .store
            .post_chat(stream, author, text)
            .await
            .map_err(|e| {
                tracing::error!(%stream, error = %e, "could not store a chat message");
                Refusal::Internal
            })?
            .ok_or(Refusal::StreamEnded)?;
        self.inner
            .hub
            .send(stream, &LiveEvent::ChatMessage(message.clone()));
        Ok(message)
    }

    /// Deletes a message; false when the stream has no such message.
    pub async fn delete(&self, stream: &StreamId, id: i64) -> Result<bool, store::Error> {
        let deleted = self.inner.store.delete_chat(stream, id).await?;
        if deleted {
            tracing::info!(%stream, message = id, "chat message deleted");
            self.inner
                .hub
                .send(stream, &LiveEvent::MessageDeleted(MessageDeleted { id }));
        }
        Ok(deleted)
    }

    /// Bans a viewer (by handle) from the chats of all of `creator`'s streams for `duration`
    /// (`None`: until lifted); `None` when there is no such viewer. Streams with listeners hear
    /// `user_banned`.
    pub async fn ban(
        &self,
        creator: &CreatorId,
        handle: &str,
        duration: Option<Duration>,
    ) -> Result<Option<ChatBan>, store::Error> {
        let Some(viewer) = self.inner.store.viewer_by_handle(handle).await? else {
            return Ok(None);
        };
        let until = duration.map(|d| Utc::now() + d);
        let ban = self.inner.store.ban(creator, &viewer, until).await?;
        tracing::info!(%creator, until = ?ban.until, "viewer banned from chat");
        let event = LiveEvent::UserBanned(UserBanned {
            user: ban.user.clone(),
            until: ban.until,
        });
        self.rules_changed(creator, Some(event));
        Ok(Some(ban))
    }

    /// Lifts a ban; false when the viewer was not banned.
    pub async fn unban(&self, creator: &CreatorId, handle: &str) -> Result<bool, store::Error> {
        let Some(viewer) = self.inner.store.viewer_by_handle(handle).await? else {
            return Ok(false);
        };
        let lifted = self.inner.store.unban(creator, &viewer).await?;
        let event = lifted.then(|| {
            LiveEvent::UserUnbanned(UserUnbanned {
                user: handle.to_string(),
            })
        });
        self.rules_changed(creator, event);
        Ok(lifted)
    }

    /// Replaces a creator's blocked words; returns them as stored (normalised, sorted). An entry
    /// with nothing to match on, or too long, is refused with its text.
    pub async fn set_blocked_words(
        &self,
        creator: &CreatorId,
        entries: &[String],
    ) -> Result<Result<Vec<String>, String>, store::Error> {
        if entries.len() > words::MAX_WORDS {
            return Ok(Err(format!("at most {} words", words::MAX_WORDS)));
        }
        let mut normalised = Vec::with_capacity(entries.len());
        for entry in entries {
            match words::normalise(entry) {
                Some(w) => normalised.push(w),
                None => {
                    return Ok(Err(format!(
                        "{entry:?} must have a letter, digit or symbol and at most {} characters",
                        words::MAX_WORD_CHARS
                    )));
                }
            }
        }
        normalised.sort();
        normalised.dedup();
        self.inner
            .store
            .set_blocked_words(creator, normalised.clone())
            .await?;
        self.rules_changed(creator, None);
        Ok(Ok(normalised))
    }

    /// Sends `viewer_count` to every stream with listeners whose counts changed, every
    /// `chat.viewer_count_interval`, until `stop`; with a bus, first tells the other nodes this
    /// node's own counts (so each shows the sum). `watching` counts a stream's players here.
    pub async fn run_viewer_counts(
        self,
        watching: impl Fn(&StreamId) -> usize + Send + 'static,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.inner.config.viewer_count_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let streams = self.inner.rooms.streams();
            if self.inner.hub.bus().is_some() {
                self.publish_counts(&streams, &watching);
            }
            for stream in streams {
                let counts = self.viewer_count(&stream, watching(&stream));
                if let Some(counts) = self.inner.rooms.count_changed(&stream, counts) {
                    self.inner
                        .hub
                        .send(&stream, &LiveEvent::ViewerCount(counts));
                }
            }
            self.inner.rate.prune(Instant::now());
        }
    }

    /// This node's own counts of the streams it has sockets of, for the other nodes.
    fn publish_counts(&self, streams: &[StreamId], watching: &impl Fn(&StreamId) -> usize) {
        if streams.len() > wire::MAX_STREAMS_PER_NODE {
            tracing::warn!(
                streams = streams.len(),
                "more streams with listeners than the bus carries counts of; some are left out"
            );
        }
        let streams = streams
            .iter()
            .take(wire::MAX_STREAMS_PER_NODE)
            .map(|s| wire::NodeCount {
                stream: s.to_string(),
                watching: watching(s),
                connected: self.inner.rooms.connected(s),
            })
            .collect();
        self.inner.hub.publish(&Wire::Counts { streams });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Principal;
    use crate::store::testing::store_with_stream;

    async fn setup(config: ChatConfig) -> (tempfile::TempDir, Chat, Store, StreamId, CreatorId) {
        let (dir, store, stream) = store_with_stream("host").await;
        let chat = Chat::new(store.clone(), LiveHub::default(), config);
        (dir, chat, store, stream.id, stream.creator_id)
    }

    async fn viewer(store: &Store, handle: &str) -> ChatAuthor {
        let (v, _) = store.create_viewer(handle).await.unwrap();
        store
            .chat_author(&Principal::Viewer(v.id))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn messages_are_checked_in_order_and_broadcast_once_stored() {
        let config = ChatConfig {
            max_message_chars: 10,
            rate_messages: 2,
            ..ChatConfig::default()
        };
        let (_d, chat, store, stream, creator) = setup(config).await;
        let fan = viewer(&store, "fan").await;
        let mut rx = chat.hub().subscribe(&stream);
        let post = |text: &'static str| {
            let (chat, stream, creator, fan) =
                (chat.clone(), stream.clone(), creator.clone(), fan.clone());
            async move { chat.post(&stream, &creator, &fan, text).await }
        };
        assert_eq!(post("   ").await, Err(Refusal::Empty));
        assert_eq!(post("0123456789x").await, Err(Refusal::TooLong(10)));
        let sent = post("  hello ").await.unwrap();
        assert_eq!(sent.text, "hello");
        assert_eq!(
            &*rx.recv().await.unwrap(),
            &*LiveEvent::ChatMessage(sent).to_text()
        );
        chat.set_blocked_words(&creator, &["Bad".into()])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(post("so BAD").await, Err(Refusal::BlockedWord));
        let limited = post("third").await.unwrap_err();
        assert_eq!(limited.code(), "rate_limited");
        let LiveEvent::Error(e) = limited.event() else {
            panic!()
        };
        assert!(e.retry_after_ms.is_some_and(|ms| ms > 0 && ms <= 10_000));
        assert!(rx.try_recv().is_err(), "nothing refused was broadcast");
    }

    #[tokio::test]
    async fn a_ban_refuses_the_viewer_and_is_announced_where_the_creator_has_listeners() {
        let (_d, chat, store, stream, creator) = setup(ChatConfig::default()).await;
        let troll = viewer(&store, "troll").await;
        let _seat = chat
            .join(
                &stream,
                &creator,
                std::net::Ipv4Addr::LOCALHOST.into(),
                false,
            )
            .unwrap();
        let mut rx = chat.hub().subscribe(&stream);
        // Rules are cached before the ban: the ban must still apply.
        chat.post(&stream, &creator, &troll, "first").await.unwrap();
        rx.recv().await.unwrap();
        let ban = chat
            .ban(&creator, "troll", Some(Duration::from_secs(600)))
            .await
            .unwrap()
            .unwrap();
        let text = rx.recv().await.unwrap();
        assert!(
            text.starts_with(r#"{"type":"user_banned","user":"troll","until":""#),
            "{text}"
        );
        let refused = chat
            .post(&stream, &creator, &troll, "again")
            .await
            .unwrap_err();
        assert_eq!(refused, Refusal::Banned { until: ban.until });
        assert!(chat.ban(&creator, "nobody", None).await.unwrap().is_none());
        assert!(chat.unban(&creator, "troll").await.unwrap());
        chat.post(&stream, &creator, &troll, "back").await.unwrap();
    }
}
