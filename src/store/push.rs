//! Web Push: the server's VAPID key (created on first use, like the signing secret) and the
//! viewers' push subscriptions (one row per browser endpoint, bounded per viewer).
use super::db::{OptionalExtension, params};
use chrono::Utc;

use super::{Error, Store, ts};
use crate::store::model::ViewerId;

const SETTING_VAPID_KEY: &str = "vapid_key";

/// One browser's push subscription (RFC 8030 endpoint, RFC 8291 keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscription {
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed (65 bytes).
    pub p256dh: Vec<u8>,
    /// The browser's 16-byte authentication secret.
    pub auth: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushAdded {
    /// Stored (new, or the same endpoint subscribed again with fresh keys).
    Stored,
    /// The viewer already has `max` other subscriptions.
    TooMany,
}

impl Store {
    /// The server's VAPID key pair as PKCS#8 (P-256), created on first use. It never leaves the
    /// server; only its public half is published.
    pub async fn vapid_key(&self) -> Result<Vec<u8>, Error> {
        self.call(|c| {
            let existing: Option<String> = c
                .query_row(
                    "SELECT value FROM settings WHERE key = ?1",
                    [SETTING_VAPID_KEY],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(hexed) = existing {
                return hex::decode(hexed).map_err(|e| Error::Corrupt(format!("vapid key: {e}")));
            }
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &rng,
            )
            .map_err(|_| Error::Corrupt("vapid key: could not generate".into()))?;
            c.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                params![SETTING_VAPID_KEY, hex::encode(pkcs8.as_ref())],
            )?;
            Ok(pkcs8.as_ref().to_vec())
        })
        .await
    }

    /// Stores a viewer's subscription; an endpoint already stored (this browser subscribed
    /// before, maybe as another viewer) is replaced. At most `max` per viewer.
    pub async fn add_push_subscription(
        &self,
        viewer: &ViewerId,
        sub: PushSubscription,
        max: u32,
    ) -> Result<PushAdded, Error> {
        let v = viewer.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let others: i64 = tx.query_row(
                "SELECT COUNT(*) FROM push_subscriptions WHERE viewer_id = ?1 AND endpoint != ?2",
                params![v.0, sub.endpoint],
                |r| r.get(0),
            )?;
            if others >= i64::from(max) {
                return Ok(PushAdded::TooMany);
            }
            tx.execute(
                "INSERT INTO push_subscriptions (viewer_id, endpoint, p256dh, auth, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(endpoint) DO UPDATE SET \
                 viewer_id = excluded.viewer_id, p256dh = excluded.p256dh, auth = excluded.auth, \
                 created_at = excluded.created_at",
                params![v.0, sub.endpoint, sub.p256dh, sub.auth, ts(Utc::now())],
            )?;
            tx.commit()?;
            Ok(PushAdded::Stored)
        })
        .await
    }

    /// Removes one of the viewer's subscriptions; false when it was not theirs or not known.
    pub async fn remove_push_subscription(
        &self,
        viewer: &ViewerId,
        endpoint: &str,
    ) -> Result<bool, Error> {
        let (v, e) = (viewer.clone(), endpoint.to_string());
        self.call(move |c| {
            Ok(c.execute(
                "DELETE FROM push_subscriptions WHERE viewer_id = ?1 AND endpoint = ?2",
                params![v.0, e],
            )? > 0)
        })
        .await
    }

    /// An endpoint the push service says is gone (404/410): forgotten, whoever owned it.
    pub async fn drop_push_endpoint(&self, endpoint: &str) -> Result<bool, Error> {
        let e = endpoint.to_string();
        self.call(move |c| {
            Ok(c.execute("DELETE FROM push_subscriptions WHERE endpoint = ?1", [e])? > 0)
        })
        .await
    }

    /// A viewer's subscriptions, oldest first.
    pub async fn push_subscriptions(
        &self,
        viewer: &ViewerId,
    ) -> Result<Vec<PushSubscription>, Error> {
        let v = viewer.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT endpoint, p256dh, auth FROM push_subscriptions WHERE viewer_id = ?1 \
                 ORDER BY id",
            )?;
            let rows = stmt.query_map([v.0], |r| {
                Ok(PushSubscription {
                    endpoint: r.get(0)?,
                    p256dh: r.get(1)?,
                    auth: r.get(2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
