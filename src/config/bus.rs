//! `bus.*`: the message bus that carries live events, chat and viewer counts between nodes.
//! Unset: everything stays in this process, as always; `nats://host:port`: a NATS server that all
//! nodes sharing one database connect to.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// `nats://host:port`, or `tls://host:port` for TLS only; unset = in-process only (one node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A PEM file of the root certificate(s) that the NATS server's certificate is checked
    /// against instead of the system's (a private CA); TLS is then required whatever the URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<std::path::PathBuf>,
}

impl BusConfig {
    /// The message says what is wrong with `bus.url`.
    pub fn validate(&self) -> Result<(), String> {
        let Some(text) = &self.url else {
            return Ok(());
        };
        if let Some(ca) = &self.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("bus.ca {}: {e}", ca.display()))?;
            let certs = rustls_pemfile::certs(&mut &pem[..]).unwrap_or_default();
            if certs.is_empty() {
                return Err(format!("bus.ca {}: no PEM certificate in it", ca.display()));
            }
        }
        let shape = || format!("{text:?} is not nats://host:port (or tls://host:port)");
        let rest = text
            .strip_prefix("nats://")
            .or_else(|| text.strip_prefix("tls://"))
            .ok_or_else(shape)?;
        let (host, port) = rest.rsplit_once(':').ok_or_else(shape)?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
        match port.parse::<u16>() {
            Ok(p) if p > 0 && host_ok => Ok(()),
            _ => Err(shape()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_urls_are_nats_host_and_port() {
        let check = |u: &str| {
            BusConfig {
                url: Some(u.into()),
                ca: None,
            }
            .validate()
        };
        assert_eq!(BusConfig::default().validate(), Ok(()));
        for good in [
            "nats://127.0.0.1:4222",
            "tls://bus.internal:4222",
            "nats://bus.internal:4222",
            "nats://[::1]:4222",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in [
            "redis://127.0.0.1:6379",
            "nats://127.0.0.1",
            "nats://:4222",
            "nats://127.0.0.1:0",
            "nats://user:pw@host:4222",
            "nats://host:4222/path",
            "tcp://host:4222",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        let missing = BusConfig {
            url: Some("tls://bus:4222".into()),
            ca: Some("/nonexistent/ca.pem".into()),
        };
        assert!(
            missing
                .validate()
                .unwrap_err()
                .contains("bus.ca /nonexistent/ca.pem")
        );
        let garbage = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(garbage.path(), "not a certificate").unwrap();
        let not_pem = BusConfig {
            url: Some("tls://bus:4222".into()),
            ca: Some(garbage.path().into()),
        };
        assert!(
            not_pem
                .validate()
                .unwrap_err()
                .contains("no PEM certificate")
        );
    }
}
