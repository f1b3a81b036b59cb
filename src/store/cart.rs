//! "Add to cart" taps on a stream's products, counted per product and stream for analytics.
use super::db::params;
use chrono::Utc;

use super::{Error, Store, ts};
use crate::store::model::{ProductId, StreamId, ViewerId};

impl Store {
    /// Counts one add-to-cart of `product` on `stream` (from the embedded player when `embedded`).
    pub async fn record_cart_add(
        &self,
        stream: &StreamId,
        product: &ProductId,
        viewer: Option<&ViewerId>,
        embedded: bool,
    ) -> Result<(), Error> {
        let (s, p, v) = (
            stream.as_str().to_string(),
            product.to_string(),
            viewer.map(|v| v.as_str().to_string()),
        );
        self.call(move |c| {
            c.execute(
                "INSERT INTO cart_adds (stream_id, product_id, viewer_id, embedded, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![s, p, v, embedded, ts(Utc::now())],
            )?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::ProductId;
    use crate::store::on_both_backends;
    use crate::store::testing::store_with_stream;

    on_both_backends! {
        async fn cart_adds_are_counted_per_product_in_the_stream_facts() {
            let (_dir, store, stream) = store_with_stream("alice").await;
            let p = ProductId::generate();
            store
                .record_cart_add(&stream.id, &p, None, false)
                .await
                .unwrap();
            store
                .record_cart_add(&stream.id, &p, None, true)
                .await
                .unwrap();
            let facts = store.stream_facts(&stream, None, false).await.unwrap();
            assert_eq!(facts.cart_adds.get(p.as_str()), Some(&2));
        }
    }
}
