//! Simulcast destinations of creators (an RTMP, RTMPS or SRT ingest point of another platform)
//! and which of them each stream sends to.
//!
//! The URL is checked here ([`DestinationUrl`]); the stream key is kept sealed
//! ([`super::sealed`]) and only its last four characters are ever shown. Logs get
//! [`DestinationUrl::for_logs`] (no query, no userinfo).
use std::fmt;

use super::db::{OptionalExtension, Row, params};
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use super::model::DestinationId;
use super::{CreatorId, Error, Store, StreamId, corrupt, parse_ts, ts};

/// RTMP's default port.
const RTMP_PORT: u16 = 1935;
/// RTMPS's usual port (Facebook, YouTube).
const RTMPS_PORT: u16 = 443;
pub const MAX_URL_CHARS: usize = 1024;

/// The protocol of a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Rtmp,
    Rtmps,
    Srt,
}

/// Where a destination is: `rtmp://`, `rtmps://` or `srt://` with a host (and, for SRT, a port).
#[derive(Clone, PartialEq, Eq)]
pub struct DestinationUrl {
    url: url::Url,
    pub protocol: Protocol,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DestinationError {
    #[error("url must be at most {MAX_URL_CHARS} characters")]
    TooLong,
    #[error("url is not a valid URL")]
    NotAUrl,
    #[error("url must start with rtmp://, rtmps:// or srt://")]
    Scheme,
    #[error("url has no host")]
    NoHost,
    #[error("an srt:// url needs a port")]
    NoPort,
    #[error("url must not carry a user name or password; put the stream key in `key`")]
    Userinfo,
    #[error("destination host {0} does not resolve")]
    Unresolved(String),
    #[error(
        "destination host {host} resolves to {addr}, a loopback, private or link-local address \
         (allow with simulcast.allow_private_destinations)"
    )]
    Private {
        host: String,
        addr: std::net::IpAddr,
    },
}

impl DestinationUrl {
    pub fn parse(s: &str) -> Result<DestinationUrl, DestinationError> {
        if s.len() > MAX_URL_CHARS {
            return Err(DestinationError::TooLong);
        }
        let url = url::Url::parse(s.trim()).map_err(|_| DestinationError::NotAUrl)?;
        let protocol = match url.scheme() {
            "rtmp" => Protocol::Rtmp,
            "rtmps" => Protocol::Rtmps,
            "srt" => Protocol::Srt,
            _ => return Err(DestinationError::Scheme),
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(DestinationError::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Userinfo);
        }
        if protocol == Protocol::Srt && url.port().is_none() {
            return Err(DestinationError::NoPort);
        }
        Ok(DestinationUrl { url, protocol })
    }

    fn port(&self) -> u16 {
        self.url.port().unwrap_or(match self.protocol {
            Protocol::Rtmp | Protocol::Srt => RTMP_PORT,
            Protocol::Rtmps => RTMPS_PORT,
        })
    }

    /// Resolves the host and refuses loopback, private and link-local addresses unless
    /// `allow_private` (the policy of webhooks and RTSP pulls: a creator must not make the server
    /// push into its own network). Checked when a destination is saved and before every connection.
    pub async fn check_address(&self, allow_private: bool) -> Result<(), DestinationError> {
        use crate::address::{HostRefusal, resolve_public};
        let host = self.url.host_str().ok_or(DestinationError::NoHost)?;
        match resolve_public(host, self.port(), allow_private).await {
            Ok(_) => Ok(()),
            Err(HostRefusal::Unresolved) => Err(DestinationError::Unresolved(host.to_string())),
            Err(HostRefusal::Private(addr)) => Err(DestinationError::Private {
                host: host.to_string(),
                addr,
            }),
        }
    }

    /// What the creator gave (no key in it).
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// For logs: scheme, host, port and path; no query (SRT options may hold secrets).
    pub fn for_logs(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        url.to_string()
    }

    /// The address a sink connects to, the key added: `rtmp(s)://host/app/KEY` (the key is the
    /// stream name after the application path), `srt://host:port?streamid=KEY` (other query
    /// options kept). For the pipeline only: never log it.
    pub fn with_key(&self, key: Option<&str>) -> String {
        let Some(key) = key.filter(|k| !k.is_empty()) else {
            return self.url.to_string();
        };
        match self.protocol {
            Protocol::Rtmp | Protocol::Rtmps => {
                format!("{}/{key}", self.url.as_str().trim_end_matches('/'))
            }
            Protocol::Srt => {
                let mut url = self.url.clone();
                let others: Vec<(String, String)> = url
                    .query_pairs()
                    .filter(|(k, _)| k != "streamid")
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                {
                    let mut q = url.query_pairs_mut();
                    q.clear();
                    for (k, v) in &others {
                        q.append_pair(k, v);
                    }
                    q.append_pair("streamid", key);
                }
                url.to_string()
            }
        }
    }
}

impl fmt::Debug for DestinationUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DestinationUrl({})", self.for_logs())
    }
}

/// A creator's destination as stored. The key stays sealed; `Serialize` gives the API view.
#[derive(Debug, Clone, Serialize)]
pub struct Destination {
    pub id: DestinationId,
    #[serde(skip)]
    pub creator_id: CreatorId,
    pub name: String,
    pub url: String,
    #[serde(skip)]
    pub key_sealed: Option<Vec<u8>>,
    /// The key's last four characters, to recognise it by.
    pub key_last4: Option<String>,
    pub enabled: bool,
    /// A ladder rung to send instead of the source rendition (`None`: the source, passthrough).
    pub rendition: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Destination {
    pub fn parsed_url(&self) -> Result<DestinationUrl, DestinationError> {
        DestinationUrl::parse(&self.url)
    }
}

/// What a creator sends to create or change a destination, checked.
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub name: String,
    pub url: DestinationUrl,
    pub key_sealed: Option<Vec<u8>>,
    pub key_last4: Option<String>,
    pub enabled: bool,
    pub rendition: Option<String>,
}

/// The last four characters of a key (all of it when shorter: then nothing is shown).
pub fn last4(key: &str) -> Option<String> {
    let chars: Vec<char> = key.chars().collect();
    (chars.len() > 8).then(|| chars[chars.len() - 4..].iter().collect())
}

const COLUMNS: &str =
    "id, creator_id, name, url, key_sealed, key_last4, enabled, rendition, created_at";

fn from_row(r: &Row) -> super::db::Result<Destination> {
    Ok(Destination {
        id: DestinationId(r.get(0)?),
        creator_id: CreatorId(r.get(1)?),
        name: r.get(2)?,
        url: r.get(3)?,
        key_sealed: r.get(4)?,
        key_last4: r.get(5)?,
        enabled: r.get(6)?,
        rendition: r.get(7)?,
        created_at: parse_ts(Some(r.get(8)?))?.ok_or_else(|| corrupt("created_at"))?,
    })
}

impl Store {
    pub async fn create_destination(
        &self,
        creator: &CreatorId,
        new: NewDestination,
    ) -> Result<Destination, Error> {
        let d = Destination {
            id: DestinationId::generate(),
            creator_id: creator.clone(),
            name: new.name,
            url: new.url.as_str().to_string(),
            key_sealed: new.key_sealed,
            key_last4: new.key_last4,
            enabled: new.enabled,
            rendition: new.rendition,
            created_at: Utc::now(),
        };
        let row = d.clone();
        self.call(move |c| {
            c.execute(
                &format!("INSERT INTO destinations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                params![
                    row.id.0,
                    row.creator_id.0,
                    row.name,
                    row.url,
                    row.key_sealed,
                    row.key_last4,
                    row.enabled,
                    row.rendition,
                    ts(row.created_at)
                ],
            )?;
            Ok(())
        })
        .await?;
        Ok(d)
    }

    pub async fn destination(&self, id: &DestinationId) -> Result<Option<Destination>, Error> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row(
                &format!("SELECT {COLUMNS} FROM destinations WHERE id = ?1"),
                [id.0],
                from_row,
            )
            .optional()
            .map_err(Error::from)
        })
        .await
    }

    pub async fn destinations_of(&self, creator: &CreatorId) -> Result<Vec<Destination>, Error> {
        let creator = creator.clone();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM destinations WHERE creator_id = ?1 ORDER BY created_at, id"
            ))?;
            let rows = stmt.query_map([creator.0], from_row)?;
            Ok(super::parsed_rows("destination", rows)?)
        })
        .await
    }

    /// Replaces a destination's settings (what the caller merged from a PATCH).
    pub async fn update_destination(&self, d: Destination) -> Result<(), Error> {
        self.call(move |c| {
            c.execute(
                "UPDATE destinations SET name = ?2, url = ?3, key_sealed = ?4, key_last4 = ?5, \
                 enabled = ?6, rendition = ?7 WHERE id = ?1",
                params![
                    d.id.0,
                    d.name,
                    d.url,
                    d.key_sealed,
                    d.key_last4,
                    d.enabled,
                    d.rendition
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes a destination (streams stop choosing it); false when there was none.
    pub async fn delete_destination(&self, id: &DestinationId) -> Result<bool, Error> {
        let id = id.clone();
        self.call(move |c| Ok(c.execute("DELETE FROM destinations WHERE id = ?1", [id.0])? > 0))
            .await
    }

    /// Makes `ids` the destinations `stream` sends to (the caller checked they are the creator's).
    pub async fn set_stream_destinations(
        &self,
        stream: &StreamId,
        ids: Vec<DestinationId>,
    ) -> Result<(), Error> {
        let stream = stream.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            tx.execute(
                "DELETE FROM stream_destinations WHERE stream_id = ?1",
                [&stream.0],
            )?;
            for id in ids {
                tx.execute(
                    "INSERT INTO stream_destinations (stream_id, destination_id) VALUES (?1, ?2) \
                     ON CONFLICT DO NOTHING",
                    params![stream.0, id.0],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// The destinations `stream` sends to, in the creator's order.
    pub async fn stream_destinations(&self, stream: &StreamId) -> Result<Vec<Destination>, Error> {
        let stream = stream.clone();
        self.read(move |c| {
            let cols = COLUMNS
                .split(", ")
                .map(|col| format!("d.{col}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut stmt = c.prepare(&format!(
                "SELECT {cols} FROM destinations d JOIN stream_destinations s ON s.destination_id = d.id \
                 WHERE s.stream_id = ?1 ORDER BY d.created_at, d.id"
            ))?;
            let rows = stmt.query_map([stream.0], from_row)?;
            Ok(super::parsed_rows("destination", rows)?)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Mode;
    use crate::store::on_both_backends;
    use crate::store::testing::{stream, temp_store};

    #[test]
    fn only_rtmp_rtmps_and_srt_urls_with_a_host_are_destinations() {
        for ok in [
            "rtmp://a.rtmp.youtube.com/live2",
            "rtmps://live-api-s.facebook.com:443/rtmp/",
            "srt://ingest.example.com:9000?latency=2000",
        ] {
            assert!(DestinationUrl::parse(ok).is_ok(), "{ok}");
        }
        let err = |s: &str| DestinationUrl::parse(s).unwrap_err();
        assert_eq!(err("http://x/live"), DestinationError::Scheme);
        assert_eq!(err("file:///etc/passwd"), DestinationError::Scheme);
        assert_eq!(err("not a url"), DestinationError::NotAUrl);
        assert_eq!(err("srt://host.example"), DestinationError::NoPort);
        assert_eq!(err("rtmp://u:p@host/live"), DestinationError::Userinfo);
        assert_eq!(
            err(&format!("rtmp://h/{}", "a".repeat(2000))),
            DestinationError::TooLong
        );
    }

    #[test]
    fn the_key_goes_into_the_sink_address_only() {
        let rtmp = DestinationUrl::parse("rtmp://live.twitch.tv/app/").unwrap();
        assert_eq!(
            rtmp.with_key(Some("live_1_x")),
            "rtmp://live.twitch.tv/app/live_1_x"
        );
        let srt = DestinationUrl::parse("srt://h.example:9000?latency=200&streamid=old").unwrap();
        assert_eq!(
            srt.with_key(Some("k")),
            "srt://h.example:9000?latency=200&streamid=k"
        );
        assert_eq!(srt.for_logs(), "srt://h.example:9000");
        assert_eq!(last4("live_123456789_abcd").as_deref(), Some("abcd"));
        assert_eq!(last4("short"), None);
    }

    #[tokio::test]
    async fn private_destinations_are_refused_unless_allowed() {
        let d = DestinationUrl::parse("rtmp://127.0.0.1:1935/live").unwrap();
        assert!(matches!(
            d.check_address(false).await,
            Err(DestinationError::Private { .. })
        ));
        assert_eq!(d.check_address(true).await, Ok(()));
    }

    on_both_backends! {
        async fn streams_choose_among_stored_destinations() {
            let (_dir, store) = temp_store().await;
            let (creator, _) = store.create_creator("alice").await.unwrap();
            let s = stream(&store, &creator.id, Mode::Practice).await;
            let new = |name: &str| NewDestination {
                name: name.into(),
                url: DestinationUrl::parse("rtmp://example.com/live").unwrap(),
                key_sealed: Some(vec![1, 2, 3]),
                key_last4: Some("abcd".into()),
                enabled: true,
                rendition: None,
            };
            let a = store
                .create_destination(&creator.id, new("a"))
                .await
                .unwrap();
            let b = store
                .create_destination(&creator.id, new("b"))
                .await
                .unwrap();
            store
                .set_stream_destinations(&s.id, vec![b.id.clone(), a.id.clone()])
                .await
                .unwrap();
            let chosen = store.stream_destinations(&s.id).await.unwrap();
            assert_eq!(chosen.len(), 2);
            assert!(store.delete_destination(&a.id).await.unwrap());
            let chosen = store.stream_destinations(&s.id).await.unwrap();
            assert_eq!(
                chosen.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
                ["b"]
            );
            assert_eq!(chosen[0].key_sealed.as_deref(), Some(&[1u8, 2, 3][..]));
        }
    }
}
