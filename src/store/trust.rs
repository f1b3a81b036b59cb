//! Trust and commerce: promo codes and redemptions, viewer reports, takedowns and strikes.
use super::db::{OptionalExtension, Row, TransactionBehavior, params};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Error, Store, corrupt, parse_ts, parsed_rows, ts, unique_violation};
use crate::store::model::{CreatorId, Stream, StreamId, ViewerId};

/// A promo code of a stream, with how often it was redeemed.
#[derive(Debug, Clone, PartialEq)]
pub struct Promo {
    pub id: i64,
    pub stream_id: StreamId,
    /// As the creator typed it.
    pub code: String,
    pub description: String,
    pub discount: String,
    pub live_only: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<u32>,
    pub created_at: DateTime<Utc>,
    pub redemptions: u32,
}

#[derive(Debug, Clone)]
pub struct NewPromo {
    pub stream_id: StreamId,
    pub code: String,
    pub description: String,
    pub discount: String,
    pub live_only: bool,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub max_redemptions: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum PromoError {
    #[error("this stream already has the code {0:?} (codes are compared without case)")]
    CodeTaken(String),
    #[error(transparent)]
    Store(#[from] Error),
}

/// One viewer's redemption of one code.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Redemption {
    pub id: i64,
    pub code: String,
    #[schema(value_type = String)]
    pub stream_id: StreamId,
    pub discount: String,
    pub description: String,
    pub redeemed_at: DateTime<Utc>,
}

/// What a redemption attempt did.
#[derive(Debug, Clone, PartialEq)]
pub enum Redeemed {
    New(Redemption),
    /// This viewer had redeemed the code before: the same redemption.
    Existing(Redemption),
    /// Every redemption is taken.
    Exhausted,
}

/// What a report is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportTarget {
    #[schema(value_type = String)]
    StreamId(StreamId),
    /// An id of the chat (opaque here).
    ChatMessageId(String),
}

impl ReportTarget {
    fn kind_and_id(&self) -> (&'static str, &str) {
        match self {
            ReportTarget::StreamId(id) => ("stream", id.as_str()),
            ReportTarget::ChatMessageId(id) => ("chat_message", id),
        }
    }

    fn from_kind(kind: &str, id: String) -> Option<ReportTarget> {
        match kind {
            "stream" => Some(ReportTarget::StreamId(StreamId(id))),
            "chat_message" => Some(ReportTarget::ChatMessageId(id)),
            _ => None,
        }
    }
}

/// A viewer's report, as the admin queue shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Report {
    pub id: i64,
    pub target: ReportTarget,
    pub reason: String,
    /// Handle of the viewer who reported.
    pub reporter: String,
    pub created_at: DateTime<Utc>,
    /// Reports on the same target, from every viewer.
    pub target_reports: u32,
}

/// A stream an admin took down.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Takedown {
    #[schema(value_type = String)]
    pub stream_id: StreamId,
    pub reason: String,
    pub policy: String,
    pub created_at: DateTime<Utc>,
}

/// A strike against a creator (one per takedown).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Strike {
    pub id: i64,
    #[schema(value_type = String)]
    pub stream_id: StreamId,
    pub reason: String,
    pub policy: String,
    pub created_at: DateTime<Utc>,
    /// Set when an admin cleared it; cleared strikes do not count.
    pub cleared_at: Option<DateTime<Utc>>,
}

const PROMO_SELECT: &str = "SELECT p.id, p.stream_id, p.code, p.description, p.discount, p.live_only, \
     p.starts_at, p.ends_at, p.max_redemptions, p.created_at, \
     (SELECT COUNT(*) FROM promo_redemptions r WHERE r.promo_id = p.id) FROM promos p";

fn promo_from_row(r: &Row) -> super::db::Result<Promo> {
    Ok(Promo {
        id: r.get(0)?,
        stream_id: StreamId(r.get(1)?),
        code: r.get(2)?,
        description: r.get(3)?,
        discount: r.get(4)?,
        live_only: r.get(5)?,
        starts_at: parse_ts(r.get(6)?)?,
        ends_at: parse_ts(r.get(7)?)?,
        max_redemptions: r.get(8)?,
        created_at: parse_ts(Some(r.get(9)?))?.ok_or_else(|| corrupt("created_at"))?,
        redemptions: r.get(10)?,
    })
}

const REDEMPTION_SELECT: &str = "SELECT r.id, p.code, p.stream_id, p.discount, p.description, r.created_at \
     FROM promo_redemptions r JOIN promos p ON p.id = r.promo_id";

fn redemption_from_row(r: &Row) -> super::db::Result<Redemption> {
    Ok(Redemption {
        id: r.get(0)?,
        code: r.get(1)?,
        stream_id: StreamId(r.get(2)?),
        discount: r.get(3)?,
        description: r.get(4)?,
        redeemed_at: parse_ts(Some(r.get(5)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

fn strike_from_row(r: &Row) -> super::db::Result<Strike> {
    Ok(Strike {
        id: r.get(0)?,
        stream_id: StreamId(r.get(1)?),
        reason: r.get(2)?,
        policy: r.get(3)?,
        created_at: parse_ts(Some(r.get(4)?))?.ok_or_else(|| corrupt("created_at"))?,
        cleared_at: parse_ts(r.get(5)?)?,
    })
}

/// The form codes are compared in.
pub fn code_key(code: &str) -> String {
    code.to_ascii_uppercase()
}

impl Store {
    pub async fn create_promo(&self, new: NewPromo) -> Result<Promo, PromoError> {
        let code = new.code.clone();
        let result = self
            .call(move |c| {
                let id: i64 = c.query_row(
                    "INSERT INTO promos (stream_id, code, code_key, description, discount, live_only, \
                     starts_at, ends_at, max_redemptions, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) RETURNING id",
                    params![
                        new.stream_id.0,
                        new.code,
                        code_key(&new.code),
                        new.description,
                        new.discount,
                        new.live_only,
                        new.starts_at.map(ts),
                        new.ends_at.map(ts),
                        new.max_redemptions,
                        ts(Utc::now())
                    ],
                    |r| r.get(0),
                )?;
                Ok(c.query_row(
                    &format!("{PROMO_SELECT} WHERE p.id = ?1"),
                    [id],
                    promo_from_row,
                )?)
            })
            .await;
        match result {
            Err(e) if unique_violation(&e) => Err(PromoError::CodeTaken(code)),
            other => Ok(other?),
        }
    }

    /// A stream's promo codes, oldest first.
    pub async fn promos_of_stream(&self, stream: &StreamId) -> Result<Vec<Promo>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "{PROMO_SELECT} WHERE p.stream_id = ?1 ORDER BY p.id"
            ))?;
            let rows = stmt.query_map([stream.0], promo_from_row)?;
            Ok(parsed_rows("promo", rows)?)
        })
        .await
    }

    /// Every stream's promos with this code (compared without case), newest first.
    pub async fn promos_with_code(&self, code: &str) -> Result<Vec<Promo>, Error> {
        let key = code_key(code);
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "{PROMO_SELECT} WHERE p.code_key = ?1 ORDER BY p.id DESC"
            ))?;
            let rows = stmt.query_map([key], promo_from_row)?;
            Ok(parsed_rows("promo", rows)?)
        })
        .await
    }

    /// This viewer's newest redemption of a code of the stream, if any.
    pub async fn redemption_on_stream(
        &self,
        stream: &StreamId,
        viewer: &ViewerId,
    ) -> Result<Option<Redemption>, Error> {
        let (stream, viewer) = (stream.clone(), viewer.clone());
        self.read(move |c| {
            Ok(c.query_row(
                &format!("{REDEMPTION_SELECT} WHERE p.stream_id = ?1 AND r.viewer_id = ?2 ORDER BY r.id DESC LIMIT 1"),
                params![stream.0, viewer.0],
                redemption_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// This viewer's redemption of the promo, if any.
    pub async fn redemption(
        &self,
        promo: i64,
        viewer: &ViewerId,
    ) -> Result<Option<Redemption>, Error> {
        let viewer = viewer.clone();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("{REDEMPTION_SELECT} WHERE r.promo_id = ?1 AND r.viewer_id = ?2"),
                params![promo, viewer.0],
                redemption_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// Redeems a promo for a viewer: the viewer's earlier redemption if there is one, else a new
    /// one unless `max_redemptions` are taken. The check and the insert are one statement in one
    /// immediate transaction, so racing viewers never take more than there are.
    pub async fn redeem(&self, promo: i64, viewer: &ViewerId) -> Result<Redeemed, Error> {
        let viewer = viewer.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let find = |tx: &super::db::Transaction<'_>| {
                tx.query_row(
                    &format!("{REDEMPTION_SELECT} WHERE r.promo_id = ?1 AND r.viewer_id = ?2"),
                    params![promo, viewer.0],
                    redemption_from_row,
                )
                .optional()
            };
            if let Some(r) = find(&tx)? {
                return Ok(Redeemed::Existing(r));
            }
            let inserted = tx.execute(
                "INSERT INTO promo_redemptions (promo_id, viewer_id, created_at) \
                 SELECT p.id, ?2, ?3 FROM promos p WHERE p.id = ?1 AND (p.max_redemptions IS NULL \
                   OR (SELECT COUNT(*) FROM promo_redemptions r WHERE r.promo_id = p.id) < p.max_redemptions)",
                params![promo, viewer.0, ts(Utc::now())],
            )?;
            if inserted == 0 {
                return Ok(Redeemed::Exhausted);
            }
            let r = find(&tx)?.ok_or_else(|| Error::Corrupt("redemption vanished".into()))?;
            tx.commit()?;
            Ok(Redeemed::New(r))
        })
        .await
    }

    /// Files a viewer's report; a second one on the same target returns the first (false).
    pub async fn file_report(
        &self,
        viewer: &ViewerId,
        target: ReportTarget,
        reason: String,
    ) -> Result<(Report, bool), Error> {
        let viewer = viewer.clone();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (kind, target_id) = target.kind_and_id();
            let inserted = tx.execute(
                "INSERT INTO reports (viewer_id, target_kind, target_id, reason, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                params![viewer.0, kind, target_id, reason, ts(Utc::now())],
            )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM reports WHERE viewer_id = ?1 AND target_kind = ?2 AND target_id = ?3",
                params![viewer.0, kind, target_id],
                |r| r.get(0),
            )?;
            let report = tx.query_row(
                &format!("{REPORT_SELECT} WHERE r.id = ?1"),
                [id],
                report_from_row,
            )?;
            tx.commit()?;
            Ok((report, inserted > 0))
        })
        .await
    }

    /// Reports, newest first, older than `before` (an id) when given.
    pub async fn reports(&self, before: Option<i64>, limit: u32) -> Result<Vec<Report>, Error> {
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "{REPORT_SELECT} WHERE r.id < ?1 ORDER BY r.id DESC LIMIT ?2"
            ))?;
            let rows =
                stmt.query_map(params![before.unwrap_or(i64::MAX), limit], report_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Takes a stream down: it becomes practice for good, and its creator gets a strike. One
    /// transaction; `None` when it was taken down before.
    pub async fn take_down(
        &self,
        stream: &Stream,
        reason: String,
        policy: String,
    ) -> Result<Option<(Takedown, Strike)>, Error> {
        let (id, creator) = (stream.id.clone(), stream.creator_id.clone());
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now = ts(Utc::now());
            let inserted = tx.execute(
                "INSERT INTO takedowns (stream_id, reason, policy, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT DO NOTHING",
                params![id.0, reason, policy, now],
            )?;
            if inserted == 0 {
                return Ok(None);
            }
            tx.execute(
                "UPDATE streams SET mode = 'practice' WHERE id = ?1",
                [&id.0],
            )?;
            let strike_id: i64 = tx.query_row(
                "INSERT INTO strikes (creator_id, stream_id, reason, policy, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                params![creator.0, id.0, reason, policy, now],
                |r| r.get(0),
            )?;
            let strike = tx.query_row(
                &format!("{STRIKE_SELECT} WHERE id = ?1"),
                [strike_id],
                strike_from_row,
            )?;
            let takedown = tx.query_row(
                &format!("{TAKEDOWN_SELECT} WHERE stream_id = ?1"),
                [&id.0],
                takedown_from_row,
            )?;
            tx.commit()?;
            Ok(Some((takedown, strike)))
        })
        .await
    }

    pub async fn takedown(&self, stream: &StreamId) -> Result<Option<Takedown>, Error> {
        let id = stream.clone();
        self.read(move |c| {
            Ok(c.query_row(
                &format!("{TAKEDOWN_SELECT} WHERE stream_id = ?1"),
                [id.0],
                takedown_from_row,
            )
            .optional()?)
        })
        .await
    }

    /// A creator's strikes, cleared ones too, newest first.
    pub async fn strikes(&self, creator: &CreatorId) -> Result<Vec<Strike>, Error> {
        let creator = creator.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "{STRIKE_SELECT} WHERE creator_id = ?1 ORDER BY id DESC"
            ))?;
            let rows = stmt.query_map([creator.0], strike_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Strikes that count (not cleared).
    pub async fn active_strikes(&self, creator: &CreatorId) -> Result<u32, Error> {
        let creator = creator.clone();
        self.read(move |c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM strikes WHERE creator_id = ?1 AND cleared_at IS NULL",
                [creator.0],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Clears a creator's strikes; returns how many were active.
    pub async fn clear_strikes(&self, creator: &CreatorId) -> Result<u32, Error> {
        let creator = creator.clone();
        self.call(move |c| {
            let n = c.execute(
                "UPDATE strikes SET cleared_at = ?2 WHERE creator_id = ?1 AND cleared_at IS NULL",
                params![creator.0, ts(Utc::now())],
            )?;
            Ok(n as u32)
        })
        .await
    }
}

const REPORT_SELECT: &str = "SELECT r.id, r.target_kind, r.target_id, r.reason, v.handle, r.created_at, \
     (SELECT COUNT(*) FROM reports o WHERE o.target_kind = r.target_kind AND o.target_id = r.target_id) \
     FROM reports r JOIN viewers v ON v.id = r.viewer_id";

fn report_from_row(r: &Row) -> super::db::Result<Report> {
    let kind: String = r.get(1)?;
    Ok(Report {
        id: r.get(0)?,
        target: ReportTarget::from_kind(&kind, r.get(2)?).ok_or_else(|| corrupt("target_kind"))?,
        reason: r.get(3)?,
        reporter: r.get(4)?,
        created_at: parse_ts(Some(r.get(5)?))?.ok_or_else(|| corrupt("created_at"))?,
        target_reports: r.get(6)?,
    })
}

const TAKEDOWN_SELECT: &str = "SELECT stream_id, reason, policy, created_at FROM takedowns";

fn takedown_from_row(r: &Row) -> super::db::Result<Takedown> {
    Ok(Takedown {
        stream_id: StreamId(r.get(0)?),
        reason: r.get(1)?,
        policy: r.get(2)?,
        created_at: parse_ts(Some(r.get(3)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

const STRIKE_SELECT: &str =
    "SELECT id, stream_id, reason, policy, created_at, cleared_at FROM strikes";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mode;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;

    async fn setup() -> (tempfile::TempDir, Store, Stream) {
        store_with_stream("alice").await
    }

    fn promo(stream: &Stream, code: &str, max: Option<u32>) -> NewPromo {
        NewPromo {
            stream_id: stream.id.clone(),
            code: code.into(),
            description: "d".into(),
            discount: "10%".into(),
            live_only: false,
            starts_at: None,
            ends_at: None,
            max_redemptions: max,
        }
    }

    on_both_backends! {
        async fn codes_are_unique_per_stream_without_case_and_redeemed_once_per_viewer() {
            let (_d, store, stream) = setup().await;
            let p = store
                .create_promo(promo(&stream, "Spring10", Some(1)))
                .await
                .unwrap();
            assert!(matches!(
                store.create_promo(promo(&stream, "SPRING10", None)).await,
                Err(PromoError::CodeTaken(_))
            ));
            assert_eq!(store.promos_with_code("spring10").await.unwrap().len(), 1);
            let (a, _) = store.create_viewer("a").await.unwrap();
            let (b, _) = store.create_viewer("b").await.unwrap();
            let Redeemed::New(first) = store.redeem(p.id, &a.id).await.unwrap() else {
                panic!("first redemption")
            };
            assert_eq!(
                store.redeem(p.id, &a.id).await.unwrap(),
                Redeemed::Existing(first)
            );
            assert_eq!(
                store.redeem(p.id, &b.id).await.unwrap(),
                Redeemed::Exhausted
            );
        }
    }

    on_both_backends! {
        async fn a_taken_down_stream_never_becomes_public_again() {
            let (_d, store, stream) = setup().await;
            let (t, s) = store
                .take_down(&stream, "r".into(), "p".into())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                (t.stream_id.clone(), s.stream_id),
                (stream.id.clone(), stream.id.clone())
            );
            assert!(
                store
                    .take_down(&stream, "r".into(), "p".into())
                    .await
                    .unwrap()
                    .is_none()
            );
            assert_eq!(
                store.stream(&stream.id).await.unwrap().unwrap().mode,
                Mode::Practice
            );
            store.set_mode(&stream.id, Mode::Public).await.unwrap();
            assert_eq!(
                store.stream(&stream.id).await.unwrap().unwrap().mode,
                Mode::Practice
            );
            assert_eq!(store.active_strikes(&stream.creator_id).await.unwrap(), 1);
            assert_eq!(store.clear_strikes(&stream.creator_id).await.unwrap(), 1);
            assert_eq!(store.active_strikes(&stream.creator_id).await.unwrap(), 0);
            assert_eq!(store.strikes(&stream.creator_id).await.unwrap().len(), 1);
        }
    }
}
