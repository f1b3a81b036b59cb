//! Webhooks and their outbox of deliveries.
use super::db::{Dialect, OptionalExtension, Row, params};
use chrono::{DateTime, Utc};

use super::{Error, Store, corrupt, parse_ts, ts};
use crate::store::model::{CreatorId, Delivery, DeliveryState, Webhook, WebhookId};

/// Deliveries listed per request, newest first.
const DELIVERY_PAGE: u32 = 100;
/// Events queued once per webhook while an identical one (same `data`) is still pending.
const COALESCED: &[&str] = &["follower.added"];

fn webhook_from_row(r: &Row) -> super::db::Result<Webhook> {
    let events: String = r.get(3)?;
    Ok(Webhook {
        id: WebhookId(r.get(0)?),
        creator_id: CreatorId(r.get(1)?),
        url: r.get(2)?,
        events: events.split(',').map(str::to_string).collect(),
        secret: r.get(4)?,
        created_at: parse_ts(Some(r.get(5)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

fn delivery_from_row(r: &Row) -> super::db::Result<Delivery> {
    let state = match r.get::<_, String>(4)?.as_str() {
        "pending" => DeliveryState::Pending,
        "delivered" => DeliveryState::Delivered,
        "failed" => DeliveryState::Failed,
        _ => return Err(corrupt("delivery state")),
    };
    Ok(Delivery {
        id: r.get(0)?,
        webhook_id: WebhookId(r.get(1)?),
        event: r.get(2)?,
        body: r.get(3)?,
        state,
        attempts: r.get(5)?,
        next_attempt_at: parse_ts(Some(r.get(6)?))?.ok_or_else(|| corrupt("next_attempt_at"))?,
        last_status: r.get(7)?,
        last_error: r.get(8)?,
        created_at: parse_ts(Some(r.get(9)?))?.ok_or_else(|| corrupt("created_at"))?,
        delivered_at: parse_ts(r.get(10)?)?,
    })
}

const WEBHOOK_COLUMNS: &str = "id, creator_id, url, events, secret, created_at";
const DELIVERY_COLUMNS: &str = "id, webhook_id, event, body, state, attempts, next_attempt_at, \
     last_status, last_error, created_at, delivered_at";

impl Store {
    pub async fn create_webhook(&self, hook: Webhook) -> Result<(), Error> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO webhooks (id, creator_id, url, events, secret, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    hook.id.0,
                    hook.creator_id.0,
                    hook.url,
                    hook.events.join(","),
                    hook.secret,
                    ts(hook.created_at)
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn webhook(&self, id: &WebhookId) -> Result<Option<Webhook>, Error> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1"),
                [id.0],
                webhook_from_row,
            )
            .optional()
            .map_err(Error::from)
        })
        .await
    }

    pub async fn webhooks_of(&self, creator: &CreatorId) -> Result<Vec<Webhook>, Error> {
        let creator = creator.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE creator_id = ?1 ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([creator.0], webhook_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes a webhook and its deliveries; false when there was none.
    pub async fn delete_webhook(&self, id: &WebhookId) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM webhook_deliveries WHERE webhook_id = ?1",
                [&id.0],
            )?;
            let n = tx.execute("DELETE FROM webhooks WHERE id = ?1", [&id.0])?;
            tx.commit()?;
            Ok(n > 0)
        })
        .await
    }

    /// Queues `body` for every webhook of `creator` that subscribed to `event`; returns how many.
    pub async fn enqueue_event(
        &self,
        creator: &CreatorId,
        event: &str,
        body: String,
    ) -> Result<usize, Error> {
        let (creator, event) = (creator.clone(), event.to_string());
        self.call(move |c| {
            let tx = c.transaction()?;
            let hooks: Vec<(String, String)> = {
                let mut stmt =
                    tx.prepare("SELECT id, events FROM webhooks WHERE creator_id = ?1")?;
                let rows = stmt.query_map([&creator.0], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            let now = ts(Utc::now());
            let mut queued = 0;
            for (id, events) in hooks {
                // The same event still waiting for this webhook (a follow/unfollow loop) is
                // sent once.
                if COALESCED.contains(&event.as_str()) {
                    let same_data = match tx.dialect() {
                        Dialect::Sqlite => {
                            "json_extract(body, '$.data') = json_extract(?3, '$.data')"
                        }
                        Dialect::Postgres => {
                            "CAST(body AS JSONB) -> 'data' = CAST(?3 AS JSONB) -> 'data'"
                        }
                    };
                    let waiting: bool = tx.query_row(
                        &format!(
                            "SELECT EXISTS(SELECT 1 FROM webhook_deliveries WHERE webhook_id = ?1 \
                             AND event = ?2 AND state = 'pending' AND {same_data})"
                        ),
                        params![id, event, body],
                        |r| r.get(0),
                    )?;
                    if waiting {
                        continue;
                    }
                }
                if events.split(',').any(|e| e == event) {
                    tx.execute(
                        "INSERT INTO webhook_deliveries \
                         (webhook_id, event, body, state, attempts, next_attempt_at, created_at) \
                         VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4)",
                        params![id, event, body, now],
                    )?;
                    queued += 1;
                }
            }
            tx.commit()?;
            Ok(queued)
        })
        .await
    }

    /// Pending deliveries due by `now`: the oldest of each webhook, oldest first, with the
    /// webhook's creator (the sender spreads its slots over webhooks and creators).
    pub async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(CreatorId, Delivery)>, Error> {
        self.read(move |c| {
            let columns = DELIVERY_COLUMNS
                .split(", ")
                .map(|col| format!("d.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = c.prepare(&format!(
                "SELECT {columns}, w.creator_id FROM webhook_deliveries d \
                 JOIN webhooks w ON w.id = d.webhook_id \
                 WHERE d.id IN (SELECT MIN(id) FROM webhook_deliveries \
                   WHERE state = 'pending' AND next_attempt_at <= ?1 GROUP BY webhook_id) \
                 ORDER BY d.id LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![ts(now), limit], |r| {
                Ok((CreatorId(r.get(11)?), delivery_from_row(r)?))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Claims a due delivery for one attempt: it is not due again (for this node or another
    /// sharing the database) before `until`, unless the attempt's outcome is recorded first.
    /// False when it is not due any more (another node claimed or made it).
    pub async fn claim_delivery(
        &self,
        id: i64,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, Error> {
        self.call(move |c| {
            let claimed = c.execute(
                "UPDATE webhook_deliveries SET next_attempt_at = ?3 \
                 WHERE id = ?1 AND state = 'pending' AND next_attempt_at <= ?2",
                params![id, ts(now), ts(until)],
            )?;
            Ok(claimed > 0)
        })
        .await
    }

    /// When the next pending delivery is due, if any.
    pub async fn next_delivery_at(&self) -> Result<Option<DateTime<Utc>>, Error> {
        self.read(|c| {
            let next: Option<String> = c.query_row(
                "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'",
                [],
                |r| r.get(0),
            )?;
            Ok(parse_ts(next)?)
        })
        .await
    }

    /// Records an attempt: delivered, failed for good, or pending again at `retry_at`.
    pub async fn record_attempt(
        &self,
        id: i64,
        state: DeliveryState,
        status: Option<u16>,
        error: Option<String>,
        retry_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        self.call(move |c| {
            let delivered = (state == DeliveryState::Delivered).then(|| ts(Utc::now()));
            c.execute(
                "UPDATE webhook_deliveries SET state = ?2, attempts = attempts + 1, \
                 last_status = ?3, last_error = ?4, next_attempt_at = ?5, delivered_at = ?6 \
                 WHERE id = ?1",
                params![id, state.as_str(), status, error, ts(retry_at), delivered],
            )?;
            Ok(())
        })
        .await
    }

    /// A webhook's deliveries, newest first.
    pub async fn deliveries(&self, hook: &WebhookId) -> Result<Vec<Delivery>, Error> {
        let hook = hook.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ?1 \
                 ORDER BY id DESC LIMIT {DELIVERY_PAGE}"
            ))?;
            let rows = stmt.query_map([hook.0], delivery_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::model::{Webhook, WebhookId};
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;

    on_both_backends! {
        async fn a_due_delivery_is_claimed_by_one_sender_until_its_claim_runs_out() {
            let (_d, store, s) = store_with_stream("alice").await;
            let hook = Webhook {
                id: WebhookId::generate(),
                creator_id: s.creator_id.clone(),
                url: "https://example.com/hook".into(),
                events: vec!["stream.ended".into()],
                secret: "s".into(),
                created_at: Utc::now(),
            };
            store.create_webhook(hook).await.unwrap();
            let body = r#"{"event":"stream.ended","data":{}}"#.to_string();
            assert_eq!(store.enqueue_event(&s.creator_id, "stream.ended", body).await.unwrap(), 1);
            let now = Utc::now() + chrono::TimeDelta::seconds(1);
            let due = store.due_deliveries(now, 10).await.unwrap();
            let id = due[0].1.id;
            let until = now + chrono::TimeDelta::seconds(60);
            // Two nodes read it due; one claims it, the other is told no.
            assert!(store.claim_delivery(id, now, until).await.unwrap());
            assert!(!store.claim_delivery(id, now, until).await.unwrap());
            assert!(store.due_deliveries(now, 10).await.unwrap().is_empty());
            // A sender that died mid-attempt: due again once the claim runs out.
            let later = until + chrono::TimeDelta::seconds(1);
            assert_eq!(store.due_deliveries(later, 10).await.unwrap().len(), 1);
            assert!(store.claim_delivery(id, later, later).await.unwrap());
        }
    }
}
