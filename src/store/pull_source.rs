//! Where a pulled stream comes from: an RTSP URL (with the camera's credentials) and a transport.
//!
//! The URL is kept whole only here and in the store; logs get [`PullSource::for_logs`] (no
//! userinfo at all) and API responses [`PullSource::for_owner`] (the user name, no password).
use std::fmt;

use serde::{Deserialize, Serialize};

/// How RTP travels from the camera.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Interleaved in the RTSP TCP connection: works through NAT and firewalls.
    #[default]
    Tcp,
    /// RTP/RTCP over UDP (LAN only: no reordering, no receiver reports).
    Udp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Transport> {
        match s {
            "tcp" => Some(Transport::Tcp),
            "udp" => Some(Transport::Udp),
            _ => None,
        }
    }
}

/// An RTSP source to pull. `Debug`/`Display` never show the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct PullSource {
    url: url::Url,
    pub transport: Transport,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SourceError {
    #[error("source url is not a valid URL")]
    NotAUrl,
    #[error("source url must start with rtsp://")]
    NotRtsp,
    #[error("source url has no host")]
    NoHost,
    #[error("source host {0} does not resolve")]
    Unresolved(String),
    #[error(
        "source host {host} resolves to {addr}, a loopback, private or link-local address \
         (allow with rtsp.allow_private_sources)"
    )]
    Private {
        host: String,
        addr: std::net::IpAddr,
    },
}

/// RTSP's default port.
const DEFAULT_PORT: u16 = 554;

impl PullSource {
    pub fn parse(url: &str, transport: Transport) -> Result<PullSource, SourceError> {
        let url = url::Url::parse(url).map_err(|_| SourceError::NotAUrl)?;
        if url.scheme() != "rtsp" {
            return Err(SourceError::NotRtsp);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(SourceError::NoHost);
        }
        Ok(PullSource { url, transport })
    }

    /// Resolves the host and refuses loopback, private and link-local addresses unless
    /// `allow_private` (the webhooks' policy: a creator must not make the server pull from its
    /// own network). Checked when a pull is created and before every connection.
    pub async fn check_address(&self, allow_private: bool) -> Result<(), SourceError> {
        use crate::address::{HostRefusal, resolve_public};
        let host = self.url.host_str().ok_or(SourceError::NoHost)?;
        let port = self.url.port().unwrap_or(DEFAULT_PORT);
        match resolve_public(host, port, allow_private).await {
            Ok(_) => Ok(()),
            Err(HostRefusal::Unresolved) => Err(SourceError::Unresolved(host.to_string())),
            Err(HostRefusal::Private(addr)) => Err(SourceError::Private {
                host: host.to_string(),
                addr,
            }),
        }
    }

    /// The whole URL, credentials included: for the store and the RTSP client only.
    pub fn expose(&self) -> &str {
        self.url.as_str()
    }

    /// The user name and password in the URL (percent-decoded), if any.
    pub fn credentials(&self) -> Option<(String, String)> {
        if self.url.username().is_empty() && self.url.password().is_none() {
            return None;
        }
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Some((
            decode(self.url.username()),
            decode(self.url.password().unwrap_or_default()),
        ))
    }

    /// The URL without any userinfo, for connecting (credentials go separately) and logs.
    pub fn without_userinfo(&self) -> url::Url {
        let mut url = self.url.clone();
        let _ = url.set_username("");
        let _ = url.set_password(None);
        url
    }

    /// For logs: no user name, no password.
    pub fn for_logs(&self) -> String {
        self.without_userinfo().to_string()
    }

    /// For the creator's API responses: the user name stays, the password does not.
    pub fn for_owner(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        url.to_string()
    }
}

impl fmt::Debug for PullSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PullSource({} over {})",
            self.for_logs(),
            self.transport.as_str()
        )
    }
}

impl fmt::Display for PullSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.for_logs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_and_private_sources_are_refused_unless_allowed() {
        for url in [
            "rtsp://127.0.0.1:8554/cam",
            "rtsp://localhost/cam",
            "rtsp://10.0.0.9/live",
            "rtsp://[::1]:8554/cam",
        ] {
            let s = PullSource::parse(url, Transport::Tcp).unwrap();
            assert!(
                matches!(
                    s.check_address(false).await,
                    Err(SourceError::Private { .. })
                ),
                "{url}"
            );
            assert_eq!(s.check_address(true).await, Ok(()), "{url}");
        }
        let public = PullSource::parse("rtsp://93.184.216.34/cam", Transport::Tcp).unwrap();
        assert_eq!(public.check_address(false).await, Ok(()));
    }

    #[test]
    fn credentials_stay_out_of_logs_and_responses() {
        let s = PullSource::parse(
            "rtsp://admin:s%40cret@cam.local:554/h264?ch=1",
            Transport::Tcp,
        )
        .unwrap();
        assert_eq!(s.for_logs(), "rtsp://cam.local:554/h264?ch=1");
        assert_eq!(s.for_owner(), "rtsp://admin@cam.local:554/h264?ch=1");
        assert_eq!(format!("{s} {s:?}").matches("cret").count(), 0);
        assert_eq!(s.credentials(), Some(("admin".into(), "s@cret".into())));
        assert_eq!(s.expose(), "rtsp://admin:s%40cret@cam.local:554/h264?ch=1");
        let open = PullSource::parse("rtsp://10.0.0.9/live", Transport::Udp).unwrap();
        assert_eq!(open.credentials(), None);
    }

    #[test]
    fn only_rtsp_urls_with_a_host_are_sources() {
        assert_eq!(
            PullSource::parse("http://cam/x", Transport::Tcp),
            Err(SourceError::NotRtsp)
        );
        assert_eq!(
            PullSource::parse("not a url", Transport::Tcp),
            Err(SourceError::NotAUrl)
        );
        assert!(PullSource::parse("rtsp:///x", Transport::Tcp).is_err());
    }
}
