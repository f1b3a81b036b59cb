//! A real WebSocket client of a stream's live channel (`/api/v1/streams/{id}/live`).
use anyhow::{Context, Result, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Api, DEADLINE};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a token is sent on the upgrade request.
#[derive(Clone, Copy)]
pub enum Token<'a> {
    None,
    Header(&'a str),
    /// An API token in `?token=` (refused: browsers use a ticket).
    Query(&'a str),
    /// A ticket from `POST …/live/ticket` in `?ticket=`.
    Ticket(&'a str),
}

impl<'a> From<Option<&'a str>> for Token<'a> {
    fn from(t: Option<&'a str>) -> Self {
        t.map_or(Token::None, Token::Header)
    }
}

/// The `ws://` URL of a stream's live channel.
pub fn live_url(api: &Api, stream_id: &str, token: Token<'_>) -> String {
    let base = api.base.replacen("http://", "ws://", 1);
    match token {
        Token::Query(t) => format!("{base}/api/v1/streams/{stream_id}/live?token={t}"),
        Token::Ticket(t) => format!("{base}/api/v1/streams/{stream_id}/live?ticket={t}"),
        _ => format!("{base}/api/v1/streams/{stream_id}/live"),
    }
}

pub fn request(url: &str, token: Token<'_>) -> Result<tungstenite::handshake::client::Request> {
    let mut req = url.into_client_request()?;
    if let Token::Header(t) = token {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}"))?,
        );
    }
    Ok(req)
}

/// `POST /api/v1/streams/{id}/live/ticket` with `token` in the header: status and body.
pub async fn ticket(api: &Api, stream_id: &str, token: Option<&str>) -> Result<(u16, Value)> {
    api.request(
        reqwest::Method::POST,
        &format!("/api/v1/streams/{stream_id}/live/ticket"),
        token,
        None,
    )
    .await
}

/// What a refused upgrade answered: status and body.
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

pub struct LiveClient {
    pub socket: Socket,
}

impl LiveClient {
    /// Connects, or returns the HTTP answer of a refused upgrade.
    pub async fn try_connect(
        api: &Api,
        stream_id: &str,
        token: Token<'_>,
    ) -> Result<Result<LiveClient, Refused>> {
        let req = request(&live_url(api, stream_id, token), token)?;
        match tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(req)).await? {
            Ok((socket, _)) => Ok(Ok(LiveClient { socket })),
            Err(tungstenite::Error::Http(response)) => Ok(Err(Refused {
                status: response.status().as_u16(),
                body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                    .into_owned(),
            })),
            Err(e) => Err(e.into()),
        }
    }

    /// Connects and reads the greeting: `stream_state` then `viewer_count`; returns the
    /// replayed chat messages that follow are left to read.
    pub async fn connect(api: &Api, stream_id: &str, token: Token<'_>) -> Result<LiveClient> {
        let mut client = match LiveClient::try_connect(api, stream_id, token).await? {
            Ok(c) => c,
            Err(refused) => bail!("live connection refused: {refused:?}"),
        };
        let state = client.next_any().await?;
        anyhow::ensure!(state["type"] == "stream_state", "first event: {state}");
        let counts = client.next_any().await?;
        anyhow::ensure!(counts["type"] == "viewer_count", "second event: {counts}");
        Ok(client)
    }

    pub async fn send_json(&mut self, v: Value) -> Result<()> {
        self.socket.send(Message::text(v.to_string())).await?;
        Ok(())
    }

    pub async fn say(&mut self, text: &str) -> Result<()> {
        self.send_json(json!({"type": "chat_message", "text": text}))
            .await
    }

    /// The next event, whatever it is (pings are answered and skipped).
    pub async fn next_any(&mut self) -> Result<Value> {
        loop {
            let frame = tokio::time::timeout(DEADLINE, self.socket.next())
                .await
                .context("no event in time")?
                .context("connection ended")??;
            match frame {
                Message::Text(t) => return Ok(serde_json::from_str(t.as_str())?),
                Message::Close(c) => bail!("connection closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next event that is not a `viewer_count` (those come whenever counts change).
    pub async fn next(&mut self) -> Result<Value> {
        loop {
            let v = self.next_any().await?;
            if v["type"] != "viewer_count" {
                return Ok(v);
            }
        }
    }

    /// The next event, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Result<Value> {
        let v = self.next().await?;
        anyhow::ensure!(v["type"] == kind, "expected {kind}, got {v}");
        Ok(v)
    }

    /// Reads until the connection ends; returns the events read and the close frame, if any.
    pub async fn drain_until_closed(&mut self) -> Result<(Vec<Value>, Option<CloseFrame>)> {
        let mut events = Vec::new();
        let drain = async {
            loop {
                match self.socket.next().await {
                    None | Some(Err(_)) => return anyhow::Ok(None),
                    Some(Ok(Message::Close(c))) => return Ok(c),
                    Some(Ok(Message::Text(t))) => events.push(serde_json::from_str(t.as_str())?),
                    Some(Ok(_)) => {}
                }
            }
        };
        let close = tokio::time::timeout(DEADLINE, drain)
            .await
            .context("connection still open")??;
        Ok((events, close))
    }
}
