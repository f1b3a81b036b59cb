//! A creator's product catalog and the carousels of their streams.
use super::db::{OptionalExtension, Row, params};

use super::{Error, Store, corrupt, parse_ts, ts, unique_violation};
use crate::store::model::{CreatorId, Product, ProductId, StreamId};

const PRODUCT_COLUMNS: &str =
    "id, creator_id, sku, title, price, currency, image_url, url, category, created_at";

fn product_from_row(r: &Row) -> super::db::Result<Product> {
    Ok(Product {
        id: ProductId(r.get(0)?),
        creator_id: CreatorId(r.get(1)?),
        sku: r.get(2)?,
        title: r.get(3)?,
        price: r.get(4)?,
        currency: r.get(5)?,
        image_url: r.get(6)?,
        url: r.get(7)?,
        category: r.get(8)?,
        created_at: parse_ts(Some(r.get(9)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

/// Why a catalog change was refused.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("sku {0:?} is already in your catalog")]
    SkuTaken(String),
    #[error("product {0} is not in your catalog")]
    NotYours(String),
    #[error(transparent)]
    Store(#[from] Error),
}

impl Store {
    /// Saves a new product, or the new version of an existing one (same id).
    pub async fn save_product(&self, p: Product) -> Result<(), CatalogError> {
        let sku = p.sku.clone();
        let result = self
            .call(move |c| {
                c.execute(
                    "INSERT INTO products (id, creator_id, sku, title, price, currency, image_url, url, category, created_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT(id) DO UPDATE SET sku = ?3, title = ?4, price = ?5, currency = ?6, \
                     image_url = ?7, url = ?8, category = ?9",
                    params![
                        p.id.0, p.creator_id.0, p.sku, p.title, p.price, p.currency, p.image_url,
                        p.url, p.category, ts(p.created_at)
                    ],
                )?;
                Ok(())
            })
            .await;
        match result {
            Err(e) if unique_violation(&e) => Err(CatalogError::SkuTaken(sku)),
            other => Ok(other?),
        }
    }

    pub async fn product(&self, id: &ProductId) -> Result<Option<Product>, Error> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE id = ?1"),
                [id.0],
                product_from_row,
            )
            .optional()
            .map_err(Error::from)
        })
        .await
    }

    pub async fn products_of(&self, creator: &CreatorId) -> Result<Vec<Product>, Error> {
        let creator = creator.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {PRODUCT_COLUMNS} FROM products WHERE creator_id = ?1 ORDER BY created_at, sku"
            ))?;
            let rows = stmt.query_map([creator.0], product_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    /// Deletes a product and takes it out of every carousel.
    pub async fn delete_product(&self, id: &ProductId) -> Result<(), Error> {
        let id = id.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM stream_products WHERE product_id = ?1", [&id.0])?;
            tx.execute("DELETE FROM products WHERE id = ?1", [&id.0])?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Replaces a stream's carousel with `ids`, in that order; every product must be `creator`'s.
    pub async fn set_carousel(
        &self,
        stream: &StreamId,
        creator: &CreatorId,
        ids: Vec<ProductId>,
    ) -> Result<(), CatalogError> {
        let (stream, creator) = (stream.clone(), creator.clone());
        self.call(move |c| {
            let tx = c.transaction()?;
            for id in &ids {
                let owner: Option<String> = tx
                    .query_row("SELECT creator_id FROM products WHERE id = ?1", [&id.0], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if owner.as_deref() != Some(creator.0.as_str()) {
                    return Ok(Err(CatalogError::NotYours(id.0.clone())));
                }
            }
            tx.execute("DELETE FROM stream_products WHERE stream_id = ?1", [&stream.0])?;
            for (position, id) in ids.iter().enumerate() {
                tx.execute(
                    "INSERT INTO stream_products (stream_id, product_id, position) VALUES (?1, ?2, ?3)",
                    params![stream.0, id.0, position as i64],
                )?;
            }
            tx.commit()?;
            Ok(Ok(()))
        })
        .await?
    }

    /// A stream's carousel, in order.
    pub async fn carousel(&self, stream: &StreamId) -> Result<Vec<Product>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let columns = PRODUCT_COLUMNS
                .split(", ")
                .map(|col| format!("p.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = c.prepare(&format!(
                "SELECT {columns} FROM stream_products sp JOIN products p ON p.id = sp.product_id \
                 WHERE sp.stream_id = ?1 ORDER BY sp.position"
            ))?;
            let rows = stmt.query_map([stream.0], product_from_row)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }
}
