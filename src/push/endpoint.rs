//! Where a Web Push may go: the browser's push service endpoint, an `https://` URL whose host
//! resolves to public addresses only, unless the operator allows private endpoints
//! (`push.allow_private_endpoints`, which also allows `http://`). The push connects to the
//! addresses checked here and follows no redirects, like a webhook.
use std::net::{IpAddr, SocketAddr};

use crate::address::HostRefusal;

/// The longest endpoint accepted (real ones are a few hundred characters).
pub const MAX_ENDPOINT_CHARS: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("endpoint must be an absolute https:// URL of at most {MAX_ENDPOINT_CHARS} characters")]
    Url,
    #[error("endpoint must be https:// (http:// needs push.allow_private_endpoints on the server)")]
    NotHttps,
    #[error("endpoint host {0} does not resolve")]
    Unresolved(String),
    #[error(
        "endpoint host {host} resolves to {addr}, a loopback, private or link-local address \
         (allow with push.allow_private_endpoints)"
    )]
    Private { host: String, addr: IpAddr },
}

/// A checked endpoint: the URL, its origin (the VAPID audience) and its host's addresses.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    pub origin: String,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

/// Parses and resolves a push endpoint.
pub async fn check(endpoint: &str, allow_private: bool) -> Result<Target, Refused> {
    if endpoint.len() > MAX_ENDPOINT_CHARS {
        return Err(Refused::Url);
    }
    let url = reqwest::Url::parse(endpoint).map_err(|_| Refused::Url)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(Refused::NotHttps),
        _ => return Err(Refused::Url),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Url);
    }
    let host = url.host_str().ok_or(Refused::Url)?.to_string();
    let port = url.port_or_known_default().ok_or(Refused::Url)?;
    let addrs = match crate::address::resolve_public(&host, port, allow_private).await {
        Ok(addrs) => addrs,
        Err(HostRefusal::Unresolved) => return Err(Refused::Unresolved(host)),
        Err(HostRefusal::Private(addr)) => return Err(Refused::Private { host, addr }),
    };
    Ok(Target {
        origin: url.origin().ascii_serialization(),
        host: host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        url,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plain_http_and_loopback_endpoints_are_refused_unless_allowed() {
        assert_eq!(
            check("http://127.0.0.1:9/push/1", false).await.unwrap_err(),
            Refused::NotHttps
        );
        assert!(matches!(
            check("https://127.0.0.1:9/push/1", false).await,
            Err(Refused::Private { .. })
        ));
        let ok = check("http://127.0.0.1:9/push/1", true).await.unwrap();
        assert_eq!(ok.origin, "http://127.0.0.1:9");
        assert_eq!(
            check("ftp://example.com/", true).await.unwrap_err(),
            Refused::Url
        );
        assert_eq!(
            check("https://u:p@127.0.0.1/", true).await.unwrap_err(),
            Refused::Url
        );
        let long = format!("https://127.0.0.1/{}", "a".repeat(MAX_ENDPOINT_CHARS));
        assert_eq!(check(&long, true).await.unwrap_err(), Refused::Url);
    }
}
