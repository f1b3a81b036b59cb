//! Cookies: the browser session's cookie and the CSRF token that cookie-authenticated writes
//! must echo (see [`super::session`] for how pages get them), and reading any cookie by name.
use axum::http::{HeaderMap, Method, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::ApiError;

pub const COOKIE: &str = "lf_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The session token in the request's cookies.
pub fn cookie_token(headers: &HeaderMap) -> Option<String> {
    named(headers, COOKIE).filter(|v| !v.is_empty())
}

/// The value of the request's cookie `name`, if it has one.
pub fn named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.trim().to_string())
}

/// The CSRF token belonging to a session token.
pub fn csrf_token(secret: &[u8], session_token: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("hmac takes any key length");
    mac.update(b"csrf:");
    mac.update(session_token.as_bytes());
    hex::encode(&mac.finalize().into_bytes()[..16])
}

/// Whether a request with this method changes something (and so needs the CSRF token).
pub fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A cookie-authenticated write must carry the session's CSRF token.
pub fn check_csrf(secret: &[u8], session_token: &str, headers: &HeaderMap) -> Result<(), ApiError> {
    let expected = csrf_token(secret, session_token);
    let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    // Constant-time enough for a 32-character hex string compared once per request.
    match sent {
        Some(s)
            if s.len() == expected.len()
                && s.bytes().zip(expected.bytes()).all(|(a, b)| a == b) =>
        {
            Ok(())
        }
        _ => Err(ApiError::Forbidden(
            "a cookie-authenticated write needs the X-CSRF-Token header (from GET /api/v1/session)"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn csrf_token_is_bound_to_the_session_and_secret() {
        let a = csrf_token(b"k", "lft_one");
        assert_eq!(a.len(), 32);
        assert_eq!(a, csrf_token(b"k", "lft_one"));
        assert_ne!(a, csrf_token(b"k", "lft_two"));
        assert_ne!(a, csrf_token(b"other", "lft_one"));
        let mut headers = HeaderMap::new();
        assert!(check_csrf(b"k", "lft_one", &headers).is_err());
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&a).unwrap());
        assert!(check_csrf(b"k", "lft_one", &headers).is_ok());
        assert!(check_csrf(b"k", "lft_two", &headers).is_err());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("lf_attr=x; lf_session=lft_abc; z=1"),
        );
        assert_eq!(cookie_token(&headers).as_deref(), Some("lft_abc"));
    }
}
