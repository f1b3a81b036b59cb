//! The focus timeline of a stream: which product the host showed, from which media time.
use chrono::{DateTime, Utc};
use rusqlite::{Row, params};

use super::{Error, Store, corrupt, parse_ts, ts};
use crate::store::model::{Product, ProductId, StreamId};

/// One focus change.
#[derive(Debug, Clone, PartialEq)]
pub struct FocusEvent {
    /// 1, 2, … in the stream.
    pub seq: u32,
    /// The product as it was shown; `None` when the focus was cleared.
    pub product: Option<FocusedProduct>,
    /// Media time of the stream (ms since its first frame; the recording's timeline).
    pub media_ms: u64,
    pub program_date_time: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

/// What a focus change showed of a product.
#[derive(Debug, Clone, PartialEq)]
pub struct FocusedProduct {
    pub id: ProductId,
    pub title: String,
    pub price: String,
    pub currency: String,
}

impl From<&Product> for FocusedProduct {
    fn from(p: &Product) -> Self {
        FocusedProduct {
            id: p.id.clone(),
            title: p.title.clone(),
            price: p.price.clone(),
            currency: p.currency.clone(),
        }
    }
}

impl FocusEvent {
    /// The id of its `EXT-X-DATERANGE`.
    pub fn marker_id(&self) -> String {
        format!("focus-{}", self.seq)
    }
}

const COLUMNS: &str =
    "seq, product_id, title, price, currency, media_ms, program_date_time, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<FocusEvent> {
    let product = match r.get::<_, Option<String>>(1)? {
        Some(id) => Some(FocusedProduct {
            id: ProductId(id),
            title: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
            price: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            currency: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        }),
        None => None,
    };
    Ok(FocusEvent {
        seq: r.get(0)?,
        product,
        media_ms: u64::try_from(r.get::<_, i64>(5)?).map_err(|_| corrupt("media_ms"))?,
        program_date_time: parse_ts(Some(r.get(6)?))?.ok_or_else(|| corrupt("date"))?,
        created_at: parse_ts(Some(r.get(7)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

impl Store {
    /// Appends a focus change to the stream's timeline and returns it with its number.
    pub async fn add_focus(
        &self,
        stream: &StreamId,
        product: Option<FocusedProduct>,
        media_ms: u64,
        program_date_time: DateTime<Utc>,
    ) -> Result<FocusEvent, Error> {
        let stream = stream.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let seq: u32 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) + 1 FROM focus_events WHERE stream_id = ?1",
                [&stream.0],
                |r| r.get(0),
            )?;
            let event = FocusEvent {
                seq,
                product,
                media_ms,
                program_date_time,
                created_at: Utc::now(),
            };
            let p = event.product.as_ref();
            tx.execute(
                "INSERT INTO focus_events (stream_id, seq, product_id, title, price, currency, \
                 media_ms, program_date_time, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    stream.0,
                    seq,
                    p.map(|p| &p.id.0),
                    p.map(|p| &p.title),
                    p.map(|p| &p.price),
                    p.map(|p| &p.currency),
                    i64::try_from(media_ms).unwrap_or(i64::MAX),
                    ts(program_date_time),
                    ts(event.created_at),
                ],
            )?;
            tx.commit()?;
            Ok(event)
        })
        .await
    }

    /// Every focus change of the stream, in order.
    pub async fn focus_timeline(&self, stream: &StreamId) -> Result<Vec<FocusEvent>, Error> {
        let stream = stream.clone();
        self.call(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM focus_events WHERE stream_id = ?1 ORDER BY seq"
            ))?;
            let rows = stmt.query_map([stream.0], from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
