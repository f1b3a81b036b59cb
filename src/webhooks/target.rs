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

/// Addresses a server-side request must not reach on a user's behalf.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                // 100.64.0.0/10, carrier-grade NAT
                || (v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // fc00::/7 unique local, fe80::/10 link-local
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
        }
    }
}

/// Parses and resolves a webhook URL.
pub async fn check(url: &str, allow_private: bool) -> Result<Target, Refused> {
    let url = reqwest::Url::parse(url).map_err(|_| Refused::Scheme)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Scheme);
    }
    let host = url.host_str().ok_or(Refused::NoHost)?.to_string();
    let port = url.port_or_known_default().ok_or(Refused::Scheme)?;
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare.as_str(), port))
        .await
        .map_err(|_| Refused::Unresolved(host.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(Refused::Unresolved(host));
    }
    if !allow_private && let Some(a) = addrs.iter().find(|a| is_private(a.ip())) {
        return Err(Refused::Private { host, addr: a.ip() });
    }
    Ok(Target {
        url,
        host: bare,
        addrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_special_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

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
