//! The store: creators, tokens, streams and recordings in embedded SQLite.
//!
//! Callers use only the async methods of [`Store`]; SQL stays in this module, so a PostgreSQL
//! backend can sit behind the same methods later. SQLite calls run on the blocking pool.
pub mod analytics;
mod cart;
mod chat;
mod commerce;
pub mod db;
pub mod destinations;
mod focus;
mod leases;
mod lifecycle;
pub mod model;
pub mod money;
mod products;
mod pull_source;
mod push;
mod rates;
mod reminders;
mod replays;
mod sales;
pub mod sealed;
mod social;
pub mod stream_key;
mod trust;
mod webhooks;

use std::path::Path;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use db::{Conn, OptionalExtension, Row, params};
use rand::Rng;
use sha2::{Digest, Sha256};

pub use chat::{ChatAuthor, ChatBan, ChatMessage, ChatRole, ChatRules};
pub use commerce::{
    AttributionSession, Click, Earnings, EarningsRow, LedgerLine, NewPurchase, Recorded, ShareLink,
};
pub use destinations::{Destination, DestinationError, DestinationUrl, NewDestination};
pub use focus::{Chapter, Clip, ClipState, FocusEvent, FocusedProduct, SessionStart, chapters};
pub use leases::{Holder, Lease, Renewal};
pub use lifecycle::StreamEdit;
pub use model::*;
pub use products::CatalogError;
pub use pull_source::{PullSource, SourceError, Transport};
pub use push::{PushAdded, PushSubscription};
pub use reminders::ReminderAdded;
pub use replays::PublicReplay;
pub use sales::{Claim, Confirm, FlashSale, StoredAuction};
pub use stream_key::StreamKey;
pub use trust::{
    NewPromo, Promo, PromoError, Redeemed, Redemption, Report, ReportTarget, Strike, Takedown,
    code_key,
};

/// Each migration twice, by file name: the SQLite one in `migrations/`, the PostgreSQL one in
/// `migrations/postgres/` (the same schema; `tests/store_schema.rs` compares them).
macro_rules! migrations {
    ($($name:literal),* $(,)?) => {
        const MIGRATIONS: &[&str] = &[$(include_str!(concat!("migrations/", $name))),*];
        const POSTGRES_MIGRATIONS: &[&str] =
            &[$(include_str!(concat!("migrations/postgres/", $name))),*];
    };
}
migrations!(
    "0001_init.sql",
    "0002_stream_ladder.sql",
    "0003_webhooks.sql",
    "0004_viewers_follows.sql",
    "0005_stream_source.sql",
    "0006_products.sql",
    "0007_focus.sql",
    "0008_chat.sql",
    "0009_clips.sql",
    "0010_trust.sql",
    "0011_commerce.sql",
    "0012_public_replays.sql",
    "0013_notification_title.sql",
    "0014_chat_practice.sql",
    "0015_analytics.sql",
    "0016_destinations.sql",
    "0017_sales.sql",
    "0018_shop_hooks.sql",
    "0019_sale_notifications.sql",
    "0020_push_subscriptions.sql",
    "0021_stream_leases.sql",
    "0022_rate_events.sql",
    "0023_recording_jobs.sql",
    "0024_recording_sessions.sql",
);
const TOKEN_LEN: usize = 40;
const TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SETTING_SIGNING_SECRET: &str = "signing_secret";
/// How long a write waits for another writer (another process, a busy disk) before it fails.
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
const STREAM_COLUMNS: &str = "id, creator_id, title, category, scheduled_at, mode, state, stream_key, \
     created_at, started_at, ended_at, ladder";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database: {0}")]
    Database(#[from] db::Error),
    #[error("handle {0:?} is taken")]
    HandleTaken(String),
    #[error("database task failed: {0}")]
    Task(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Read-only connections beside the one writer: in WAL mode they read the last committed state
/// while a write waits for a lock (another process, a busy disk), so pages, playlists and the
/// API's token checks do not queue behind it.
const READERS: usize = 4;

#[derive(Clone)]
pub struct Store {
    /// The one connection that writes (SQLite allows one writer at a time anyway).
    conn: Arc<Mutex<Conn>>,
    readers: Arc<[Mutex<Conn>]>,
    /// On PostgreSQL, where other nodes may share it (`database.url`).
    shared: bool,
}

/// A freshly issued API token: shown once, stored hashed.
pub fn generate_token() -> String {
    let mut rng = rand::rng();
    let s: String = (0..TOKEN_LEN)
        .map(|_| TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())] as char)
        .collect();
    format!("lft_{s}")
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Reads a stored time. Lenient (`+10000-…` is read too), as older versions stored any year a
/// request named; the API now takes only years 1970–9999.
fn parse_ts(s: Option<String>) -> db::Result<Option<DateTime<Utc>>> {
    s.map(|s| {
        s.parse::<DateTime<Utc>>()
            .map_err(|e| db::Error::conversion(0, format!("time {s:?}: {e}")))
    })
    .transpose()
}

/// A UNIQUE constraint refused the write.
fn unique_violation(e: &Error) -> bool {
    matches!(e, Error::Database(e) if e.is_unique_violation())
}

fn corrupt(what: &str) -> db::Error {
    db::Error::conversion(0, format!("unexpected {what}"))
}

/// The rows that convert; a row that does not (a value written by an older version or by hand)
/// is logged and skipped, so that one bad row cannot break a listing or the start-up.
fn parsed_rows<T>(what: &str, rows: impl Iterator<Item = db::Result<T>>) -> db::Result<Vec<T>> {
    let mut out = Vec::new();
    for row in rows {
        match row {
            Ok(v) => out.push(v),
            Err(e @ db::Error::Conversion { .. }) => {
                tracing::warn!(what, error = %e, "skipping a row that does not convert")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// A stream row; a conversion error names the stream.
fn stream_from_row(row: &Row) -> db::Result<Stream> {
    let id: String = row.get(0)?;
    stream_fields(row).map_err(|e| match e {
        db::Error::Conversion { column, message } => {
            db::Error::conversion(column, format!("stream {id}: {message}"))
        }
        other => other,
    })
}

fn stream_fields(row: &Row) -> db::Result<Stream> {
    Ok(Stream {
        id: StreamId(row.get(0)?),
        creator_id: CreatorId(row.get(1)?),
        title: row.get(2)?,
        category: row.get(3)?,
        scheduled_at: parse_ts(row.get(4)?)?,
        mode: Mode::parse(&row.get::<_, String>(5)?).ok_or_else(|| corrupt("mode"))?,
        state: StreamState::parse(&row.get::<_, String>(6)?).ok_or_else(|| corrupt("state"))?,
        stream_key: StreamKey::from_string(row.get(7)?),
        created_at: parse_ts(Some(row.get(8)?))?.ok_or_else(|| corrupt("created_at"))?,
        started_at: parse_ts(row.get(9)?)?,
        ended_at: parse_ts(row.get(10)?)?,
        ladder: row.get(11)?,
    })
}

/// A connection that may only read (opened after the migrations ran).
fn open_reader(path: &Path) -> db::Result<Conn> {
    use rusqlite::OpenFlags;
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    // Only a checkpoint or a WAL reset makes a reader wait, briefly.
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(Conn::sqlite(conn))
}

impl Store {
    /// Opens (creating if needed) the database at `path` and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, Error> {
        let path = path.to_owned();
        Store::start(false, move || {
            let conn = rusqlite::Connection::open(&path).map_err(db::Error::from)?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
                .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
                .and_then(|()| conn.busy_timeout(BUSY_TIMEOUT))
                .map_err(db::Error::from)?;
            let mut conn = Conn::sqlite(conn);
            migrate(&mut conn)?;
            // One node uses a SQLite store: the leases it finds are an earlier run's.
            conn.execute(
                "UPDATE stream_leases SET expires_at = ?1",
                [ts(DateTime::<Utc>::UNIX_EPOCH)],
            )?;
            let readers = (0..READERS)
                .map(|_| open_reader(&path).map(Mutex::new))
                .collect::<db::Result<Vec<_>>>()?;
            Ok((conn, readers))
        })
        .await
    }

    /// Connects to the PostgreSQL database at `url` (several nodes may share it) and applies
    /// pending migrations, one node at a time.
    pub async fn connect(url: &str) -> Result<Store, Error> {
        let url = url.to_owned();
        Store::start(true, move || {
            let mut conn = Conn::postgres(&url, false, BUSY_TIMEOUT)?;
            migrate_postgres(&mut conn)?;
            let readers = (0..READERS)
                .map(|_| Conn::postgres(&url, true, BUSY_TIMEOUT).map(Mutex::new))
                .collect::<db::Result<Vec<_>>>()?;
            Ok((conn, readers))
        })
        .await
    }

    /// The store of the writer and readers that `open` makes on a blocking thread.
    async fn start<F>(shared: bool, open: F) -> Result<Store, Error>
    where
        F: FnOnce() -> Result<(Conn, Vec<Mutex<Conn>>), Error> + Send + 'static,
    {
        let (conn, readers) = tokio::task::spawn_blocking(open)
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
            readers: readers.into(),
            shared,
        })
    }

    /// Whether other nodes may share this store (PostgreSQL): what must hold across nodes is
    /// kept here then, not in this process's memory.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Runs `f` on the writer. Everything that changes a row goes here. On PostgreSQL `f` runs
    /// in one transaction holding the write lock of every node ([`Conn::begin_exclusive`]):
    /// writes are serialised as on SQLite, and a failed `f` leaves nothing behind.
    async fn call<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Conn) -> Result<T, Error> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| Error::Task("store lock poisoned".into()))?;
            if guard.dialect() == db::Dialect::Sqlite {
                return f(&mut guard);
            }
            let mut tx = guard.begin_exclusive()?;
            let out = f(&mut tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// Runs `f` on a read-only connection: a free one if there is one, else the least recently
    /// handed out. A statement that writes fails here ("attempt to write a readonly database").
    async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, Error> + Send + 'static,
    {
        let readers = self.readers.clone();
        tokio::task::spawn_blocking(move || {
            let free = readers.iter().find_map(|r| r.try_lock().ok());
            let guard = match free {
                Some(guard) => guard,
                None => {
                    static NEXT: std::sync::atomic::AtomicUsize =
                        std::sync::atomic::AtomicUsize::new(0);
                    let i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    readers[i % readers.len()]
                        .lock()
                        .map_err(|_| Error::Task("store lock poisoned".into()))?
                }
            };
            f(&guard)
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?
    }

    /// The server's secret for signed links, created on first use.
    pub async fn signing_secret(&self) -> Result<Vec<u8>, Error> {
        self.call(|c| {
            let existing: Option<String> = c
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    [SETTING_SIGNING_SECRET],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(hexed) = existing {
                return hex::decode(hexed)
                    .map_err(|e| Error::Corrupt(format!("signing secret: {e}")));
            }
            let secret: [u8; 32] = rand::rng().random();
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                params![SETTING_SIGNING_SECRET, hex::encode(secret)],
            )?;
            Ok(secret.to_vec())
        })
        .await
    }

    pub async fn has_admin_token(&self) -> Result<bool, Error> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT EXISTS(SELECT 1 FROM tokens WHERE role = 'admin')",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Makes `token` the only admin token: any other (a replaced configured one, the one
    /// generated on the first start) stops working.
    pub async fn set_admin_token(&self, token: &str) -> Result<(), Error> {
        let hash = hash_token(token);
        self.call(move |c| {
            let tx = c.transaction()?;
            let revoked = tx.execute(
                "DELETE FROM tokens WHERE role = 'admin' AND hash != ?1",
                [&hash],
            )?;
            tx.execute(
                "INSERT INTO tokens (hash, role, creator_id, created_at) VALUES (?1, 'admin', NULL, ?2) \
                 ON CONFLICT DO NOTHING",
                params![hash, ts(Utc::now())],
            )?;
            tx.commit()?;
            if revoked > 0 {
                tracing::info!(revoked, "admin_token is set: earlier admin tokens revoked");
            }
            Ok(())
        })
        .await
    }

    /// Stores (the hash of) an admin token; storing the same token twice is harmless.
    pub async fn add_admin_token(&self, token: &str) -> Result<(), Error> {
        let hash = hash_token(token);
        self.call(move |c| {
            c.execute(
                "INSERT INTO tokens (hash, role, creator_id, created_at) VALUES (?1, 'admin', NULL, ?2) \
                 ON CONFLICT DO NOTHING",
                params![hash, ts(Utc::now())],
            )?;
            Ok(())
        })
        .await
    }

    /// Creates a creator and its first API token (returned once, stored hashed).
    pub async fn create_creator(&self, handle: &str) -> Result<(Creator, String), Error> {
        let creator = Creator {
            id: CreatorId::generate(),
            handle: handle.to_string(),
            created_at: Utc::now(),
        };
        let token = generate_token();
        let (c2, hash) = (creator.clone(), hash_token(&token));
        self.call(move |c| {
            let tx = c.transaction()?;
            let inserted = tx.execute(
                "INSERT INTO creators (id, handle, created_at) VALUES (?1, ?2, ?3) ON CONFLICT(handle) DO NOTHING",
                params![c2.id.0, c2.handle, ts(c2.created_at)],
            )?;
            if inserted == 0 {
                return Err(Error::HandleTaken(c2.handle));
            }
            tx.execute(
                "INSERT INTO tokens (hash, role, creator_id, created_at) VALUES (?1, 'creator', ?2, ?3)",
                params![hash, c2.id.0, ts(Utc::now())],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        Ok((creator, token))
    }

    pub async fn creator_count(&self) -> Result<u64, Error> {
        self.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM creators", [], |r| r.get(0))?))
            .await
    }

    pub async fn creator(&self, id: &CreatorId) -> Result<Option<Creator>, Error> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row(
                "SELECT id, handle, created_at FROM creators WHERE id = ?1",
                [id.0],
                |r| {
                    Ok(Creator {
                        id: CreatorId(r.get(0)?),
                        handle: r.get(1)?,
                        created_at: parse_ts(Some(r.get(2)?))?
                            .ok_or_else(|| corrupt("created_at"))?,
                    })
                },
            )
            .optional()
            .map_err(Error::from)
        })
        .await
    }

    /// Who a bearer token belongs to, if anyone.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, Error> {
        let hash = hash_token(token);
        self.read(move |c| {
            let row: Option<(String, Option<String>, Option<String>)> = c
                .query_row(
                    "SELECT role, creator_id, viewer_id FROM tokens WHERE hash = ?1",
                    [hash],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            Ok(match row {
                Some((role, _, _)) if role == "admin" => Some(Principal::Admin),
                Some((role, Some(creator), _)) if role == "creator" => {
                    Some(Principal::Creator(CreatorId(creator)))
                }
                Some((role, _, Some(viewer))) if role == "viewer" => {
                    Some(Principal::Viewer(ViewerId(viewer)))
                }
                _ => None,
            })
        })
        .await
    }

    pub async fn create_stream(&self, new: NewStream) -> Result<Stream, Error> {
        let stream = Stream {
            id: StreamId::generate(),
            creator_id: new.creator_id,
            title: new.title,
            category: new.category,
            scheduled_at: new.scheduled_at,
            mode: new.mode,
            state: StreamState::Ready,
            stream_key: StreamKey::generate(),
            created_at: Utc::now(),
            started_at: None,
            ended_at: None,
            ladder: new.ladder,
        };
        let s = stream.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO streams (id, creator_id, title, category, scheduled_at, mode, state, stream_key, created_at, ladder)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    s.id.0,
                    s.creator_id.0,
                    s.title,
                    s.category,
                    s.scheduled_at.map(ts),
                    s.mode.as_str(),
                    s.state.as_str(),
                    s.stream_key.expose(),
                    ts(s.created_at),
                    s.ladder
                ],
            )?;
            Ok(())
        })
        .await?;
        Ok(stream)
    }

    pub async fn stream(&self, id: &StreamId) -> Result<Option<Stream>, Error> {
        let id = id.clone();
        self.read(move |c| {
            let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE id = ?1");
            Ok(c.query_row(&sql, [id.0], stream_from_row).optional()?)
        })
        .await
    }

    pub async fn stream_by_key(&self, key: &str) -> Result<Option<Stream>, Error> {
        let key = key.to_string();
        self.read(move |c| {
            let sql = format!("SELECT {STREAM_COLUMNS} FROM streams WHERE stream_key = ?1");
            Ok(c.query_row(&sql, [key], stream_from_row).optional()?)
        })
        .await
    }

    pub async fn streams_in_state(&self, state: StreamState) -> Result<Vec<Stream>, Error> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {STREAM_COLUMNS} FROM streams WHERE state = ?1 ORDER BY created_at"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([state.as_str()], stream_from_row)?;
            Ok(parsed_rows("stream", rows)?)
        })
        .await
    }

    /// Sets a stream's mode; a stream that was taken down never becomes public again.
    pub async fn set_mode(&self, id: &StreamId, mode: Mode) -> Result<(), Error> {
        let id = id.clone();
        self.call(move |c| {
            c.execute(
                "UPDATE streams SET mode = ?1 WHERE id = ?2 \
                 AND NOT (?1 = 'public' AND EXISTS (SELECT 1 FROM takedowns WHERE stream_id = ?2))",
                params![mode.as_str(), id.0],
            )?;
            commerce::sync_public_interval(c, &id.0)?;
            Ok(())
        })
        .await
    }

    /// Marks a stream live (first publish sets `started_at`).
    pub async fn mark_live(&self, id: &StreamId) -> Result<(), Error> {
        let id = id.clone();
        self.call(move |c| {
            c.execute(
                "UPDATE streams SET state = 'live', started_at = COALESCE(started_at, ?1) WHERE id = ?2",
                params![ts(Utc::now()), id.0],
            )?;
            commerce::sync_public_interval(c, &id.0)?;
            Ok(())
        })
        .await
    }

    /// A publisher left before sending any media: the stream is ready for the next attempt.
    pub async fn mark_ready(&self, id: &StreamId) -> Result<(), Error> {
        let id = id.clone();
        self.call(move |c| {
            c.execute(
                "UPDATE streams SET state = 'ready' WHERE id = ?1 AND state = 'live'",
                params![id.0],
            )?;
            commerce::sync_public_interval(c, &id.0)?;
            Ok(())
        })
        .await
    }

    pub async fn mark_ended(&self, id: &StreamId) -> Result<(), Error> {
        let id = id.clone();
        self.call(move |c| {
            c.execute(
                "UPDATE streams SET state = 'ended', ended_at = COALESCE(ended_at, ?1) WHERE id = ?2",
                params![ts(Utc::now()), id.0],
            )?;
            commerce::sync_public_interval(c, &id.0)?;
            Ok(())
        })
        .await
    }

    pub async fn set_recording(&self, rec: Recording) -> Result<(), Error> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO recordings (stream_id, state, bytes, duration_ms, error, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(stream_id) DO UPDATE SET state = excluded.state, bytes = excluded.bytes,
                   duration_ms = excluded.duration_ms, error = excluded.error, updated_at = excluded.updated_at",
                params![
                    rec.stream_id.0,
                    rec.state.as_str(),
                    rec.bytes as i64,
                    rec.duration_ms as i64,
                    rec.error,
                    ts(Utc::now())
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn recording(&self, id: &StreamId) -> Result<Option<Recording>, Error> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row(
                "SELECT stream_id, state, bytes, duration_ms, error FROM recordings WHERE stream_id = ?1",
                [id.0],
                |r| {
                    Ok(Recording {
                        stream_id: StreamId(r.get(0)?),
                        state: RecordingState::parse(&r.get::<_, String>(1)?).ok_or_else(|| corrupt("recording state"))?,
                        bytes: r.get::<_, i64>(2)?.max(0) as u64,
                        duration_ms: r.get::<_, i64>(3)?.max(0) as u64,
                        error: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(Error::from)
        })
        .await
    }

    /// Makes `id` a pulled stream.
    pub async fn set_source(&self, id: &StreamId, source: &PullSource) -> Result<(), Error> {
        let (id, url, transport) = (
            id.clone(),
            source.expose().to_string(),
            source.transport.as_str(),
        );
        self.call(move |c| {
            c.execute(
                "INSERT INTO stream_sources (stream_id, url, transport) VALUES (?1, ?2, ?3)
                 ON CONFLICT(stream_id) DO UPDATE SET url = excluded.url, transport = excluded.transport",
                params![id.0, url, transport],
            )?;
            Ok(())
        })
        .await
    }

    /// The source a stream is pulled from, if it is a pulled stream.
    pub async fn source(&self, id: &StreamId) -> Result<Option<PullSource>, Error> {
        let id = id.clone();
        self.read(move |c| {
            let row: Option<(String, String)> = c
                .query_row(
                    "SELECT url, transport FROM stream_sources WHERE stream_id = ?1",
                    [id.0],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            row.map(|(url, transport)| source_from(&url, &transport))
                .transpose()
        })
        .await
    }

    /// Pulled streams that have not ended (to pull again after a restart), oldest first.
    pub async fn pulled_streams(&self) -> Result<Vec<(Stream, PullSource)>, Error> {
        self.read(|c| {
            let cols = STREAM_COLUMNS
                .split(", ")
                .map(|col| format!("s.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT {cols}, src.url, src.transport FROM streams s
                 JOIN stream_sources src ON src.stream_id = s.id
                 WHERE s.state != 'ended' ORDER BY s.created_at"
            );
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    stream_from_row(r)?,
                    r.get::<_, String>(12)?,
                    r.get::<_, String>(13)?,
                ))
            })?;
            let mut out = Vec::new();
            for (stream, url, transport) in parsed_rows("pulled stream", rows)? {
                match source_from(&url, &transport) {
                    Ok(source) => out.push((stream, source)),
                    Err(e) => {
                        tracing::warn!(stream = %stream.id, error = %e, "skipping a pulled stream")
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Recordings left unfinished by a crash.
    /// Streams whose recording failed with an error that starts with `prefix`.
    pub async fn failed_recordings(&self, prefix: &'static str) -> Result<Vec<StreamId>, Error> {
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT stream_id FROM recordings WHERE state = 'failed' AND substr(error, 1, length(?1)) = ?1",
            )?;
            let rows = stmt.query_map([prefix], |r| Ok(StreamId(r.get(0)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    pub async fn unfinished_recordings(&self) -> Result<Vec<StreamId>, Error> {
        self.read(|c| {
            let mut stmt = c.prepare(
                "SELECT stream_id FROM recordings WHERE state IN ('recording', 'finalizing')",
            )?;
            let rows = stmt.query_map([], |r| Ok(StreamId(r.get(0)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

fn source_from(url: &str, transport: &str) -> Result<PullSource, Error> {
    let transport = Transport::parse(transport)
        .ok_or_else(|| Error::Corrupt(format!("source transport {transport:?}")))?;
    // Never put the URL itself in the error: it carries the camera's password.
    PullSource::parse(url, transport).map_err(|e| Error::Corrupt(format!("source url: {e}")))
}

fn migrate(conn: &mut Conn) -> Result<(), Error> {
    let version: usize = conn.query_row("PRAGMA user_version", (), |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1))?;
        tx.commit()?;
    }
    Ok(())
}

/// The PostgreSQL migrations not applied yet, in one transaction under the write lock: two
/// nodes starting together migrate once, and a failed migration leaves the schema as it was.
fn migrate_postgres(conn: &mut Conn) -> Result<(), Error> {
    let tx = conn.begin_exclusive()?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS livefront_schema_version (version BIGINT NOT NULL)",
    )?;
    let version: Option<usize> = tx
        .query_row("SELECT version FROM livefront_schema_version", (), |r| {
            r.get(0)
        })
        .optional()?;
    let version = version.unwrap_or(0);
    if version > POSTGRES_MIGRATIONS.len() {
        return Err(Error::Corrupt(format!(
            "the database is at schema version {version}, newer than this livefront ({})",
            POSTGRES_MIGRATIONS.len()
        )));
    }
    for sql in &POSTGRES_MIGRATIONS[version..] {
        tx.execute_batch(sql)?;
    }
    tx.execute("DELETE FROM livefront_schema_version", ())?;
    tx.execute(
        "INSERT INTO livefront_schema_version (version) VALUES (?1)",
        [POSTGRES_MIGRATIONS.len()],
    )?;
    tx.commit()?;
    Ok(())
}

/// The throwaway PostgreSQL server of the integration tests, shared by the store's unit tests.
#[cfg(test)]
#[path = "../../tests/common/postgres.rs"]
#[allow(dead_code)]
mod test_postgres;

/// A store test run twice, as `…::sqlite` and `…::postgres`: the same test suite on both
/// backends. The body gets its store from [`testing::temp_store`] (or a helper built on it).
#[cfg(test)]
macro_rules! on_both_backends {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            async fn body() $body

            #[tokio::test]
            async fn sqlite() {
                $crate::store::testing::BACKEND
                    .scope($crate::store::testing::Backend::Sqlite, body())
                    .await
            }

            #[tokio::test]
            async fn postgres() {
                $crate::store::testing::BACKEND
                    .scope($crate::store::testing::Backend::Postgres, body())
                    .await
            }
        }
    };
}
#[cfg(test)]
pub(crate) use on_both_backends;

/// What the store's and its users' unit tests start from.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    use super::test_postgres as postgres;

    /// Which database a test's store is in: see [`on_both_backends`].
    #[derive(Debug, Clone, Copy)]
    pub enum Backend {
        Sqlite,
        Postgres,
    }

    tokio::task_local! {
        pub static BACKEND: Backend;
    }

    /// One PostgreSQL server for the whole test binary, a fresh database per store; a watchdog
    /// stops the server when the test process ends.
    pub fn postgres_url() -> String {
        static SERVER: std::sync::OnceLock<postgres::Postgres> = std::sync::OnceLock::new();
        SERVER
            .get_or_init(|| {
                postgres::Postgres::start()
                    .expect("a test PostgreSQL server (scripts/install-postgres.sh installs it)")
            })
            .fresh_database()
            .unwrap()
    }

    /// An empty store: SQLite in a temporary directory (kept while the `TempDir` lives), or a
    /// fresh PostgreSQL database inside [`on_both_backends`]'s `postgres` test.
    pub async fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = match BACKEND.try_with(|b| *b).unwrap_or(Backend::Sqlite) {
            Backend::Sqlite => Store::open(&dir.path().join("t.db")).await.unwrap(),
            Backend::Postgres => {
                let url = tokio::task::spawn_blocking(postgres_url).await.unwrap();
                Store::connect(&url).await.unwrap()
            }
        };
        (dir, store)
    }

    /// A stream titled "t" of `creator`, in `mode`.
    pub async fn stream(store: &Store, creator: &CreatorId, mode: Mode) -> Stream {
        store
            .create_stream(NewStream {
                creator_id: creator.clone(),
                title: "t".into(),
                category: None,
                scheduled_at: None,
                mode,
                ladder: None,
            })
            .await
            .unwrap()
    }

    /// A temporary store with creator `handle` and a public stream of theirs.
    pub async fn store_with_stream(handle: &str) -> (tempfile::TempDir, Store, Stream) {
        let (dir, store) = temp_store().await;
        let (creator, _) = store.create_creator(handle).await.unwrap();
        let s = stream(&store, &creator.id, Mode::Public).await;
        (dir, store, s)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::temp_store;
    use super::*;

    on_both_backends! {
        async fn tokens_authenticate_to_their_creator_and_are_stored_hashed() {
            let (_d, store) = temp_store().await;
            let (alice, token) = store.create_creator("alice").await.unwrap();
            assert_eq!(
                store.authenticate(&token).await.unwrap(),
                Some(Principal::Creator(alice.id))
            );
            assert_eq!(store.authenticate("lft_wrong").await.unwrap(), None);
            let raw_hit: bool = store
                .call(move |c| {
                    Ok(c.query_row(
                        "SELECT EXISTS(SELECT 1 FROM tokens WHERE hash = ?1)",
                        [token],
                        |r| r.get(0),
                    )?)
                })
                .await
                .unwrap();
            assert!(!raw_hit, "the plain token must not be stored");
            assert!(matches!(
                store.create_creator("alice").await,
                Err(Error::HandleTaken(_))
            ));
        }
    }

    on_both_backends! {
        async fn stream_lifecycle_round_trips() {
            let (_d, store) = temp_store().await;
            let (alice, _) = store.create_creator("alice").await.unwrap();
            let s = store
                .create_stream(NewStream {
                    creator_id: alice.id.clone(),
                    title: "Spring haul".into(),
                    category: Some("fashion".into()),
                    scheduled_at: None,
                    mode: Mode::Practice,
                    ladder: None,
                })
                .await
                .unwrap();
            let by_key = store
                .stream_by_key(s.stream_key.expose())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(by_key.id, s.id);
            store.mark_live(&s.id).await.unwrap();
            assert_eq!(
                store
                    .streams_in_state(StreamState::Live)
                    .await
                    .unwrap()
                    .len(),
                1
            );
            store.set_mode(&s.id, Mode::Public).await.unwrap();
            store.mark_ended(&s.id).await.unwrap();
            let got = store.stream(&s.id).await.unwrap().unwrap();
            assert_eq!((got.mode, got.state), (Mode::Public, StreamState::Ended));
            assert!(got.started_at.is_some() && got.ended_at.is_some());
        }
    }

    #[tokio::test]
    async fn postgres_connections_cut_by_the_server_are_made_again() {
        let url = tokio::task::spawn_blocking(testing::postgres_url)
            .await
            .unwrap();
        let store = Store::connect(&url).await.unwrap();
        store.create_creator("alice").await.unwrap();
        // The server ends every session of the database (a restart, a failover, an admin).
        let cut = url.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = ::postgres::Client::connect(&cut, ::postgres::NoTls).unwrap();
            let others = "FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()";
            c.batch_execute(&format!("SELECT pg_terminate_backend(pid) {others}"))
                .unwrap();
            // Gone once the server has ended them (it signals them, they exit).
            while c
                .query_one(&format!("SELECT COUNT(*) {others}"), &[])
                .unwrap()
                .get::<_, i64>(0)
                > 0
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
        .await
        .unwrap();
        // A statement that finds its connection cut fails; the next one connects again.
        let _ = store.create_creator("bob").await;
        store.create_creator("carol").await.unwrap();
        for _ in 0..READERS {
            let _ = store.has_admin_token().await;
        }
        for _ in 0..2 * READERS {
            store.has_admin_token().await.unwrap();
        }
    }

    #[tokio::test]
    async fn migrations_are_idempotent_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let secret = Store::open(&path)
            .await
            .unwrap()
            .signing_secret()
            .await
            .unwrap();
        let again = Store::open(&path)
            .await
            .unwrap()
            .signing_secret()
            .await
            .unwrap();
        assert_eq!(secret, again);
    }
}
