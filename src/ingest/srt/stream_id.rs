//! The SRT `streamid` a caller sends in its handshake, read as "which stream key, and does it
//! want to publish".
//!
//! Accepted forms:
//! - `publish:KEY` (what livefront hands out, and MediaMTX's form),
//! - plain `KEY`,
//! - the SRT access-control syntax `#!::r=KEY,m=publish` (other keys such as `u=`, `s=`, `h=`,
//!   `t=` are tolerated and ignored). A missing `m=` counts as publish: this server offers no SRT
//!   playback, so a caller without a mode can only be a publisher.
//!
//! Refused: no stream id, an empty key, and any other mode (`m=request`, `m=bidirectional`,
//! `read:KEY`, `play:KEY`).

/// Why a stream id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    #[error("missing stream id (expected publish:KEY)")]
    Missing,
    #[error("stream id has no stream key (expected publish:KEY)")]
    NoKey,
    #[error("mode {0:?} is not offered: this server only takes publishers (m=publish)")]
    Mode(String),
    #[error("malformed access-control stream id (expected #!::r=KEY,m=publish)")]
    Malformed,
}

/// The SRT access-control prefix.
const ACCESS_CONTROL_PREFIX: &str = "#!::";
/// Prefixes a caller may put before the key that mean "not a publisher".
const PLAYER_PREFIXES: &[&str] = &["read:", "play:", "request:"];

/// The stream key a caller wants to publish to.
pub fn publish_key(stream_id: Option<&str>) -> Result<&str, StreamIdError> {
    let id = stream_id.ok_or(StreamIdError::Missing)?.trim();
    if id.is_empty() {
        return Err(StreamIdError::Missing);
    }
    let key = if let Some(pairs) = id.strip_prefix(ACCESS_CONTROL_PREFIX) {
        parse_access_control(pairs)?
    } else if let Some(key) = id.strip_prefix("publish:") {
        key
    } else if let Some(prefix) = PLAYER_PREFIXES.iter().find(|p| id.starts_with(**p)) {
        return Err(StreamIdError::Mode(prefix.trim_end_matches(':').to_owned()));
    } else {
        id
    };
    if key.is_empty() {
        return Err(StreamIdError::NoKey);
    }
    Ok(key)
}

/// `r=KEY,m=publish,...`: the resource is the key; the mode must be publish (or absent).
fn parse_access_control(pairs: &str) -> Result<&str, StreamIdError> {
    let mut key = None;
    for pair in pairs.split(',').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').ok_or(StreamIdError::Malformed)?;
        match name.trim() {
            "r" => key = Some(value.trim()),
            "m" if !value.trim().eq_ignore_ascii_case("publish") => {
                return Err(StreamIdError::Mode(value.trim().to_owned()));
            }
            _ => {}
        }
    }
    key.ok_or(StreamIdError::NoKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> Result<&str, StreamIdError> {
        publish_key(Some(id))
    }

    #[test]
    fn all_publish_forms_give_the_key() {
        assert_eq!(key("publish:lf_abc"), Ok("lf_abc"));
        assert_eq!(key("lf_abc"), Ok("lf_abc"));
        assert_eq!(key("#!::r=lf_abc,m=publish"), Ok("lf_abc"));
        assert_eq!(key("#!::m=publish,r=lf_abc"), Ok("lf_abc"));
        assert_eq!(
            key("#!::u=alice,r=lf_abc,s=123,m=PUBLISH,h=example.com"),
            Ok("lf_abc")
        );
        assert_eq!(key("#!::r=lf_abc"), Ok("lf_abc"));
        assert_eq!(key(" publish:lf_abc "), Ok("lf_abc"));
    }

    #[test]
    fn players_missing_keys_and_garbage_are_refused() {
        assert_eq!(publish_key(None), Err(StreamIdError::Missing));
        assert_eq!(key(""), Err(StreamIdError::Missing));
        assert_eq!(key("publish:"), Err(StreamIdError::NoKey));
        assert_eq!(key("#!::m=publish"), Err(StreamIdError::NoKey));
        assert_eq!(key("#!::r=,m=publish"), Err(StreamIdError::NoKey));
        assert_eq!(
            key("#!::r=lf_abc,m=request"),
            Err(StreamIdError::Mode("request".into()))
        );
        assert_eq!(key("read:lf_abc"), Err(StreamIdError::Mode("read".into())));
        assert_eq!(key("#!::r"), Err(StreamIdError::Malformed));
    }
}
