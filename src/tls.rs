//! TLS for the listeners that speak it: HTTPS (`http.tls_cert`) and RTMPS (`rtmp.tls_addr`),
//! from PEM files an operator makes (a CA's chain, or a self-signed certificate).
//!
//! rustls is 0.21 (through tokio-rustls 0.24): later releases need `subtle` 2.5 or newer, and
//! the RTMP crate (rml_rtmp, through crypto-mac) pins `subtle` below 2.5.
use std::io::BufReader;
use std::path::Path;

use tokio_rustls::rustls;

/// Errors of [`server_config`]: which file, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: String },
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 or SEC1) in it")]
    NoKey { path: String },
    #[error("certificate {cert} and key {key} do not make a TLS configuration: {source}")]
    Config {
        cert: String,
        key: String,
        source: rustls::Error,
    },
}

/// A TLS server configuration from a PEM certificate chain and its private key (no ALPN: each
/// listener adds its own protocols).
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.display().to_string(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let chain: Vec<rustls::Certificate> = rustls_pemfile::certs(&mut BufReader::new(&cert_pem[..]))
        .map_err(|source| TlsError::Read {
            path: cert.display().to_string(),
            source,
        })?
        .into_iter()
        .map(rustls::Certificate)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.display().to_string(),
        });
    }
    let key_pem = read(key)?;
    let private_key = private_key(&key_pem).ok_or_else(|| TlsError::NoKey {
        path: key.display().to_string(),
    })?;
    rustls::ServerConfig::builder()
        .with_safe_defaults()
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|source| TlsError::Config {
            cert: cert.display().to_string(),
            key: key.display().to_string(),
            source,
        })
}

/// The first private key in a PEM file, whichever of the usual encodings it has.
fn private_key(pem: &[u8]) -> Option<rustls::PrivateKey> {
    let mut reader = BufReader::new(pem);
    loop {
        match rustls_pemfile::read_one(&mut reader).ok()?? {
            rustls_pemfile::Item::PKCS8Key(k)
            | rustls_pemfile::Item::RSAKey(k)
            | rustls_pemfile::Item::ECKey(k) => return Some(rustls::PrivateKey(k)),
            _ => continue,
        }
    }
}
