//! Secrets kept at rest (destination stream keys): sealed with ChaCha20-Poly1305 (`ring`) under
//! the server's simulcast key, which lives outside the database (`simulcast.key`, or the file
//! `simulcast.key` in `data_dir`, created on the first start). A stolen database alone reveals no
//! key; a changed server key makes stored keys unreadable (their destinations fail, named).
use std::path::Path;

use rand::Rng;
use ring::aead::{CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

/// Name of the generated key file in `data_dir`.
pub const KEY_FILE: &str = "simulcast.key";
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("simulcast key must be {KEY_LEN} bytes as 64 hex characters")]
    BadKey,
    #[error("simulcast key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "a sealed secret could not be opened (the simulcast key changed, or the row is corrupt)"
    )]
    Open,
}

/// Seals and opens secrets with the server's key. `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct SecretBox {
    key: std::sync::Arc<LessSafeKey>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8]) -> Result<SecretBox, Error> {
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, key).map_err(|_| Error::BadKey)?;
        Ok(SecretBox {
            key: std::sync::Arc::new(LessSafeKey::new(unbound)),
        })
    }

    /// The configured key (hex), else the key file in `data_dir`, created with a fresh random
    /// key (mode 0600) when there is none.
    pub fn load(configured: Option<&str>, data_dir: &Path) -> Result<SecretBox, Error> {
        if let Some(hexed) = configured {
            let key = hex::decode(hexed.trim()).map_err(|_| Error::BadKey)?;
            if key.len() != KEY_LEN {
                return Err(Error::BadKey);
            }
            return SecretBox::from_key(&key);
        }
        let path = data_dir.join(KEY_FILE);
        let io = |source| Error::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let key = hex::decode(text.trim()).map_err(|_| Error::BadKey)?;
                if key.len() != KEY_LEN {
                    return Err(Error::BadKey);
                }
                SecretBox::from_key(&key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; KEY_LEN] = rand::rng().random();
                write_private(&path, hex::encode(key).as_bytes()).map_err(io)?;
                tracing::info!(path = %path.display(), "generated the simulcast key (keep it with the database backups)");
                SecretBox::from_key(&key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, secret: &str) -> Vec<u8> {
        let nonce_bytes: [u8; NONCE_LEN] = rand::rng().random();
        let mut data = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                ring::aead::Aad::empty(),
                &mut data,
            )
            .expect("sealing a short secret cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&data);
        out
    }

    pub fn open(&self, sealed: &[u8]) -> Result<String, Error> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Open);
        }
        let (nonce, data) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Error::Open)?;
        let mut data = data.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, ring::aead::Aad::empty(), &mut data)
            .map_err(|_| Error::Open)?;
        String::from_utf8(plain.to_vec()).map_err(|_| Error::Open)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load(None, dir.path()).unwrap();
        let sealed = a.seal("live_123456_abcdef");
        assert!(
            !sealed.windows(6).any(|w| w == b"abcdef"),
            "not in the clear"
        );
        assert_ne!(
            a.seal("live_123456_abcdef"),
            sealed,
            "a fresh nonce each time"
        );
        // The key file is reused at the next start.
        let again = SecretBox::load(None, dir.path()).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "live_123456_abcdef");
        let other = SecretBox::load(Some(&"11".repeat(32)), dir.path()).unwrap();
        assert!(matches!(other.open(&sealed), Err(Error::Open)));
        assert!(matches!(
            SecretBox::load(Some("abcd"), dir.path()),
            Err(Error::BadKey)
        ));
        assert!(format!("{a:?}").len() < 20);
    }
}
