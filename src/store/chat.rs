//! The chat of each stream, and what creators moderate it with: bans and blocked words.
use super::db::{OptionalExtension, Row, params};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Error, Store, corrupt, parse_ts, ts};
use crate::store::model::{CreatorId, Principal, StreamId, ViewerId};

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChatRole {
    Viewer,
    /// The stream's creator (the host).
    Creator,
    Admin,
}

impl ChatRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRole::Viewer => "viewer",
            ChatRole::Creator => "creator",
            ChatRole::Admin => "admin",
        }
    }
    fn parse(s: &str) -> Option<ChatRole> {
        match s {
            "viewer" => Some(ChatRole::Viewer),
            "creator" => Some(ChatRole::Creator),
            "admin" => Some(ChatRole::Admin),
            _ => None,
        }
    }
}

/// The author of chat messages: a viewer, the stream's creator, or the admin.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatAuthor {
    pub handle: String,
    pub role: ChatRole,
    /// Set for viewers (the only ones a creator can ban).
    pub viewer_id: Option<ViewerId>,
}

/// One chat message as clients see it. `id` comes first: `live` reads it from the serialised event.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChatMessage {
    /// Increasing over the server (a later message has a larger id).
    pub id: i64,
    /// The author's handle.
    pub user: String,
    pub role: ChatRole,
    pub text: String,
    pub at: DateTime<Utc>,
}

/// A viewer banned from a creator's chats.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ChatBan {
    /// The viewer's handle.
    pub user: String,
    #[serde(skip)]
    #[schema(ignore)]
    pub viewer_id: ViewerId,
    /// When the ban ends by itself; null: until it is lifted.
    pub until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What a creator's chats enforce: the bans in force and the blocked words.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRules {
    pub bans: Vec<ChatBan>,
    pub blocked_words: Vec<String>,
}

const MESSAGE_COLUMNS: &str = "id, handle, role, text, created_at";

fn message_from_row(r: &Row) -> super::db::Result<ChatMessage> {
    Ok(ChatMessage {
        id: r.get(0)?,
        user: r.get(1)?,
        role: ChatRole::parse(&r.get::<_, String>(2)?).ok_or_else(|| corrupt("chat role"))?,
        text: r.get(3)?,
        at: parse_ts(Some(r.get(4)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

fn ban_from_row(r: &Row) -> super::db::Result<ChatBan> {
    Ok(ChatBan {
        user: r.get(0)?,
        viewer_id: ViewerId(r.get(1)?),
        until: parse_ts(r.get(2)?)?,
        created_at: parse_ts(Some(r.get(3)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

/// Bans of `?1` in force at `?2`.
const ACTIVE_BANS: &str = "SELECT viewers.handle, b.viewer_id, b.until, b.created_at FROM chat_bans b \
     JOIN viewers ON viewers.id = b.viewer_id \
     WHERE b.creator_id = ?1 AND (b.until IS NULL OR b.until > ?2) ORDER BY b.created_at DESC";

impl Store {
    /// The chat author a principal writes as: its handle (the admin is `admin`), or `None` when
    /// the account is gone.
    pub async fn chat_author(&self, who: &Principal) -> Result<Option<ChatAuthor>, Error> {
        let who = who.clone();
        self.read(move |c| {
            Ok(match who {
                Principal::Admin => Some(ChatAuthor {
                    handle: "admin".into(),
                    role: ChatRole::Admin,
                    viewer_id: None,
                }),
                Principal::Creator(id) => c
                    .query_row("SELECT handle FROM creators WHERE id = ?1", [id.0], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .map(|handle| ChatAuthor {
                        handle,
                        role: ChatRole::Creator,
                        viewer_id: None,
                    }),
                Principal::Viewer(id) => c
                    .query_row("SELECT handle FROM viewers WHERE id = ?1", [&id.0], |r| {
                        r.get(0)
                    })
                    .optional()?
                    .map(|handle| ChatAuthor {
                        handle,
                        role: ChatRole::Viewer,
                        viewer_id: Some(id),
                    }),
            })
        })
        .await
    }

    /// Stores a message in a stream's chat; `None` when the stream has ended (or is gone).
    pub async fn post_chat(
        &self,
        stream: &StreamId,
        author: &ChatAuthor,
        text: &str,
    ) -> Result<Option<ChatMessage>, Error> {
        let (stream, author, text) = (stream.clone(), author.clone(), text.to_string());
        self.call(move |c| {
            let at = Utc::now();
            let id: Option<i64> = c
                .query_row(
                "INSERT INTO chat_messages (stream_id, handle, role, viewer_id, text, created_at, practice) \
                 SELECT id, ?2, ?3, ?4, ?5, ?6, CASE WHEN mode != 'public' THEN 1 ELSE 0 END FROM streams \
                 WHERE id = ?1 AND state != 'ended' RETURNING id",
                params![
                    stream.0,
                    author.handle,
                    author.role.as_str(),
                    author.viewer_id.map(|v| v.0),
                    text,
                    ts(at)
                ],
                |r| r.get(0),
            )
            .optional()?;
            let Some(id) = id else {
                return Ok(None);
            };
            // Stored at millisecond precision: return what a later read returns.
            let at = parse_ts(Some(ts(at)))?.ok_or_else(|| corrupt("created_at"))?;
            Ok(Some(ChatMessage {
                id,
                user: author.handle,
                role: author.role,
                text,
                at,
            }))
        })
        .await
    }

    /// A stream's messages (not deleted), newest first, older than `before` (an id) when given;
    /// those posted while it was practice (the rehearsal) only with `rehearsal`, for its owner.
    pub async fn chat_page(
        &self,
        stream: &StreamId,
        before: Option<i64>,
        limit: u32,
        rehearsal: bool,
    ) -> Result<Vec<ChatMessage>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM chat_messages \
                 WHERE stream_id = ?1 AND id < ?2 AND deleted_at IS NULL AND (?4 = 1 OR practice = 0) \
                 ORDER BY id DESC LIMIT ?3"
            ))?;
            let rows = stmt.query_map(
                params![stream.0, before.unwrap_or(i64::MAX), limit, rehearsal],
                message_from_row,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Marks a message of `stream` deleted; false when there is no such (undeleted) message.
    pub async fn delete_chat(&self, stream: &StreamId, id: i64) -> Result<bool, Error> {
        let stream = stream.clone();
        self.call(move |c| {
            Ok(c.execute(
                "UPDATE chat_messages SET deleted_at = ?3 \
                 WHERE id = ?1 AND stream_id = ?2 AND deleted_at IS NULL",
                params![id, stream.0, ts(Utc::now())],
            )? > 0)
        })
        .await
    }

    pub async fn viewer_by_handle(&self, handle: &str) -> Result<Option<ViewerId>, Error> {
        let handle = handle.to_string();
        self.read(move |c| {
            Ok(
                c.query_row("SELECT id FROM viewers WHERE handle = ?1", [handle], |r| {
                    r.get(0)
                })
                .optional()?
                .map(ViewerId),
            )
        })
        .await
    }

    /// Bans a viewer from a creator's chats until `until` (`None`: until lifted), replacing any
    /// ban of that viewer.
    pub async fn ban(
        &self,
        creator: &CreatorId,
        viewer: &ViewerId,
        until: Option<DateTime<Utc>>,
    ) -> Result<ChatBan, Error> {
        let (creator, viewer) = (creator.clone(), viewer.clone());
        self.call(move |c| {
            let now = ts(Utc::now());
            c.execute(
                "INSERT INTO chat_bans (creator_id, viewer_id, created_at, until) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (creator_id, viewer_id) DO UPDATE SET created_at = ?3, until = ?4",
                params![creator.0, viewer.0, now, until.map(ts)],
            )?;
            Ok(c.query_row(
                "SELECT viewers.handle, b.viewer_id, b.until, b.created_at FROM chat_bans b \
                 JOIN viewers ON viewers.id = b.viewer_id WHERE b.creator_id = ?1 AND b.viewer_id = ?2",
                params![creator.0, viewer.0],
                ban_from_row,
            )?)
        })
        .await
    }

    /// Lifts a ban; false when the viewer was not banned (or the ban had run out).
    pub async fn unban(&self, creator: &CreatorId, viewer: &ViewerId) -> Result<bool, Error> {
        let (creator, viewer) = (creator.clone(), viewer.clone());
        self.call(move |c| {
            let tx = c.transaction()?;
            let active = tx.execute(
                "DELETE FROM chat_bans WHERE creator_id = ?1 AND viewer_id = ?2 \
                 AND (until IS NULL OR until > ?3)",
                params![creator.0, viewer.0, ts(Utc::now())],
            )? > 0;
            // A ban that ran out is just cleared.
            tx.execute(
                "DELETE FROM chat_bans WHERE creator_id = ?1 AND viewer_id = ?2",
                params![creator.0, viewer.0],
            )?;
            tx.commit()?;
            Ok(active)
        })
        .await
    }

    /// A creator's bans in force, newest first.
    pub async fn bans(&self, creator: &CreatorId) -> Result<Vec<ChatBan>, Error> {
        Ok(self.chat_rules(creator).await?.bans)
    }

    /// Replaces a creator's blocked words (already normalised by the caller).
    pub async fn set_blocked_words(
        &self,
        creator: &CreatorId,
        words: Vec<String>,
    ) -> Result<(), Error> {
        let creator = creator.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM chat_blocked_words WHERE creator_id = ?1",
                [&creator.0],
            )?;
            for word in words {
                tx.execute(
                    "INSERT INTO chat_blocked_words (creator_id, word) VALUES (?1, ?2) \
                     ON CONFLICT DO NOTHING",
                    params![creator.0, word],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// What a creator's chats enforce now: bans in force and blocked words (sorted).
    pub async fn chat_rules(&self, creator: &CreatorId) -> Result<ChatRules, Error> {
        let creator = creator.clone();
        self.read(move |c| {
            let bans = {
                let mut stmt = c.prepare_cached(ACTIVE_BANS)?;
                let rows = stmt.query_map(params![creator.0, ts(Utc::now())], ban_from_row)?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            let blocked_words = {
                let mut stmt = c.prepare_cached(
                    "SELECT word FROM chat_blocked_words WHERE creator_id = ?1 ORDER BY word",
                )?;
                let rows = stmt.query_map([&creator.0], |r| r.get(0))?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            Ok(ChatRules {
                bans,
                blocked_words,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;

    async fn setup() -> (tempfile::TempDir, Store, StreamId, CreatorId) {
        let (dir, store, stream) = store_with_stream("host").await;
        (dir, store, stream.id, stream.creator_id)
    }

    on_both_backends! {
        async fn messages_page_newest_first_without_deleted_ones_and_stop_at_the_end() {
            let (_d, store, stream, _) = setup().await;
            let (viewer, _) = store.create_viewer("fan").await.unwrap();
            let author = store
                .chat_author(&Principal::Viewer(viewer.id))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (author.handle.as_str(), author.role),
                ("fan", ChatRole::Viewer)
            );
            let mut ids = Vec::new();
            for i in 0..5 {
                let m = store
                    .post_chat(&stream, &author, &format!("m{i}"))
                    .await
                    .unwrap()
                    .unwrap();
                ids.push(m.id);
            }
            assert!(store.delete_chat(&stream, ids[3]).await.unwrap());
            assert!(!store.delete_chat(&stream, ids[3]).await.unwrap());
            let page = store.chat_page(&stream, None, 2, true).await.unwrap();
            let texts: Vec<_> = page.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["m4", "m2"]);
            let older = store
                .chat_page(&stream, Some(page[1].id), 10, true)
                .await
                .unwrap();
            let texts: Vec<_> = older.iter().map(|m| m.text.as_str()).collect();
            assert_eq!(texts, ["m1", "m0"]);
            store.mark_ended(&stream).await.unwrap();
            assert_eq!(
                store.post_chat(&stream, &author, "late").await.unwrap(),
                None
            );
        }
    }

    on_both_backends! {
        async fn bans_run_out_and_can_be_lifted() {
            let (_d, store, _, creator) = setup().await;
            let (a, _) = store.create_viewer("aaa").await.unwrap();
            let (b, _) = store.create_viewer("bbb").await.unwrap();
            store.ban(&creator, &a.id, None).await.unwrap();
            let past = Utc::now() - chrono::Duration::seconds(1);
            store.ban(&creator, &b.id, Some(past)).await.unwrap();
            let bans = store.bans(&creator).await.unwrap();
            assert_eq!(bans.len(), 1);
            assert_eq!((bans[0].user.as_str(), bans[0].until), ("aaa", None));
            assert!(!store.unban(&creator, &b.id).await.unwrap(), "ran out");
            assert!(store.unban(&creator, &a.id).await.unwrap());
            assert!(store.bans(&creator).await.unwrap().is_empty());
        }
    }
}
