//! A webhook receiver on loopback: records every POST to `/hook` and answers 204.
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use axum::http::{HeaderMap, StatusCode};

/// What the receiver got: (event header, signature header, raw body).
pub type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on `addr` (port 0: any); answers 204 to every POST.
pub async fn receiver(
    addr: SocketAddr,
) -> Result<(SocketAddr, Received, tokio::task::JoinHandle<()>)> {
    let got: Received = Arc::default();
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let g = g.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                g.lock()
                    .unwrap()
                    .push((h("x-livefront-event"), h("x-livefront-signature"), body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((addr, got, task))
}
