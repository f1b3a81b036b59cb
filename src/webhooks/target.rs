//! Where a webhook may post: http(s) URLs whose host resolves to public addresses only, unless
//! the operator allows private targets (`webhooks.allow_private_targets`). The delivery connects
//! to the addresses checked here (no second lookup a DNS rebinding could change), and follows no
//! redirects.
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("webhook URL must be an absolute http:// or https:// URL")]
    Scheme,
    #[error("webhook URL has no host")]
    NoHost,
    #[error("webhook host {0} does not resolve")]
    Unresolved(String),
    #[error(
        "webhook host {host} resolves to {addr}, a loopback, private or link-local address \
         (allow with webhooks.allow_private_targets)"
    )]
    Private { host: String, addr: IpAddr },
}

/// A checked target: the URL and the addresses its host resolved to.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: reqwest::Url,
    pub host: String,
    pub addrs: Vec<SocketAddr>,
}

use crate::address::HostRefusal;
pub use crate::address::is_private;

/// Parses and resolves a webhook URL.
pub async fn check(url: &str, allow_private: bool) -> Result<Target, Refused> {
    let url = reqwest::Url::parse(url).map_err(|_| Refused::Scheme)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme);
    }
    let host = url.host_str().ok_or(Refused::NoHost)?.to_string();
    let port = url.port_or_known_default().ok_or(Refused::Scheme)?;
    let addrs = match crate::address::resolve_public(&host, port, allow_private).await {
        Ok(addrs) => addrs,
        Err(HostRefusal::Unresolved) => return Err(Refused::Unresolved(host)),
        Err(HostRefusal::Private(addr)) => return Err(Refused::Private { host, addr }),
    };
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    Ok(Target {
        url,
        host: bare,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_targets_are_refused_unless_allowed() {
        assert!(matches!(
            check("http://127.0.0.1:9/hook", false).await,
            Err(Refused::Private { .. })
        ));
        assert!(matches!(
            check("http://localhost:9/hook", false).await,
            Err(Refused::Private { .. })
        ));
        assert!(check("http://127.0.0.1:9/hook", true).await.is_ok());
        assert_eq!(
            check("ftp://example.com/", true).await.unwrap_err(),
            Refused::Scheme
        );
        assert_eq!(check("not a url", true).await.unwrap_err(), Refused::Scheme);
    }
}
