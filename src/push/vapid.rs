//! VAPID (RFC 8292): the server's P-256 key signs a short-lived JWT (ES256) for each push, so
//! a push service knows the pushes of a subscription come from the server that made it.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// How long a signed JWT is good for (RFC 8292 allows at most 24 hours).
const JWT_LIFETIME_S: i64 = 12 * 3600;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("vapid key is not a P-256 PKCS#8 key")]
    BadKey,
    #[error("vapid signing failed")]
    Sign,
}

/// The server's VAPID key and subject. `Debug` shows nothing of the key.
pub struct Vapid {
    key: EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    /// The public key, an uncompressed point in base64url (what browsers take as
    /// `applicationServerKey`).
    public: String,
    subject: String,
}

impl std::fmt::Debug for Vapid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vapid({})", self.public)
    }
}

impl Vapid {
    pub fn from_pkcs8(pkcs8: &[u8], subject: String) -> Result<Vapid, Error> {
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| Error::BadKey)?;
        let public = B64.encode(key.public_key().as_ref());
        Ok(Vapid {
            key,
            rng,
            public,
            subject,
        })
    }

    pub fn public_key(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push to an endpoint of `audience` (its origin) at
    /// `now` (unix seconds): `vapid t=<JWT>, k=<public key>`.
    pub fn authorization(&self, audience: &str, now: i64) -> Result<String, Error> {
        let header = B64.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now + JWT_LIFETIME_S,
            "sub": self.subject,
        });
        let signed = format!("{header}.{}", B64.encode(claims.to_string()));
        let signature = self
            .key
            .sign(&self.rng, signed.as_bytes())
            .map_err(|_| Error::Sign)?;
        Ok(format!(
            "vapid t={signed}.{}, k={}",
            B64.encode(signature.as_ref()),
            self.public
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};

    #[test]
    fn the_jwt_verifies_with_the_published_key() {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let vapid = Vapid::from_pkcs8(pkcs8.as_ref(), "mailto:ops@example.com".into()).unwrap();
        let header = vapid.authorization("https://push.example", 1_000).unwrap();
        let (t, k) = header
            .strip_prefix("vapid t=")
            .unwrap()
            .split_once(", k=")
            .unwrap();
        assert_eq!(k, vapid.public_key());
        let (signed, sig) = t.rsplit_once('.').unwrap();
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, B64.decode(k).unwrap())
            .verify(signed.as_bytes(), &B64.decode(sig).unwrap())
            .unwrap();
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(signed.split('.').nth(1).unwrap()).unwrap())
                .unwrap();
        assert_eq!(claims["aud"], "https://push.example");
        assert_eq!(claims["exp"], 1_000 + JWT_LIFETIME_S);
        assert_eq!(claims["sub"], "mailto:ops@example.com");
    }
}
