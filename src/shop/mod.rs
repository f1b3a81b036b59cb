//! Commerce rules as plain code (no HTTP, no SQL): associate tags and tagged product links,
//! creator levels, promo codes (money itself is `crate::store::money`).
pub mod cart;
pub mod levels;
pub mod promos;

use rand::Rng;

/// Lifetime of an attribution session (and the window a bare tag looks back over).
pub const ATTRIBUTION_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// How far a shop's clock may be off ours: an order's `at` (whole seconds, the shop's clock)
/// counts this much before a session's start (fractions, our clock) and after the window's end.
pub const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
/// Name of the attribution cookie.
pub const SESSION_COOKIE: &str = "lf_attr";
const SESSION_LEN: usize = 32;
const CODE_LEN: usize = 8;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

fn random(len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A new attribution session id (32 characters, ~190 random bits).
pub fn new_session_id() -> String {
    random(SESSION_LEN)
}

/// A new share-link code (8 characters).
pub fn new_link_code() -> String {
    random(CODE_LEN)
}

/// Whether `s` could be a session id (checked before any lookup).
pub fn valid_session_id(s: &str) -> bool {
    s.len() == SESSION_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `s` could be a share-link code.
pub fn valid_link_code(s: &str) -> bool {
    s.len() == CODE_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Associate tags: 3-32 characters of a-z, 0-9 and `-`, starting and ending with a letter or
/// digit (`alice-20`).
pub fn valid_tag(tag: &str) -> bool {
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (3..=32).contains(&tag.len())
        && tag.bytes().all(|b| edge(b) || b == b'-')
        && tag.bytes().next().is_some_and(edge)
        && tag.bytes().last().is_some_and(edge)
}

/// A product URL a click-out may redirect to: absolute http(s) with a host and no userinfo
/// (`https://shop.example@elsewhere.example/` reads as the shop but goes elsewhere).
pub fn product_url(url: &str) -> Option<url::Url> {
    let parsed = url::Url::parse(url).ok()?;
    (matches!(parsed.scheme(), "http" | "https")
        && parsed.host_str().is_some_and(|h| !h.is_empty())
        && parsed.username().is_empty()
        && parsed.password().is_none())
    .then_some(parsed)
}

/// `url` with `tag=<tag>` as its query parameter: other parameters and the fragment stay as they
/// are, an existing `tag` is replaced. `None` when `url` is not an absolute http(s) URL.
pub fn tagged_url(url: &str, tag: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    // The other parameters stay byte for byte as the product URL has them.
    let mut parts: Vec<String> = parsed
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let key = p.split_once('=').map_or(*p, |(k, _)| k);
            url::form_urlencoded::parse(key.as_bytes())
                .next()
                .is_none_or(|(k, _)| k != "tag")
        })
        .map(String::from)
        .collect();
    parts.push(
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("tag", tag)
            .finish(),
    );
    parsed.set_query(Some(&parts.join("&")));
    Some(parsed.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_short_lowercase_words() {
        for good in ["alice-20", "abc", "a1-b2-c3", "x0x"] {
            assert!(valid_tag(good), "{good}");
        }
        for bad in [
            "",
            "ab",
            "-alice",
            "alice-",
            "Alice-20",
            "alice_20",
            "alice 20",
            "al&ce",
            "a/b",
            "ünï",
            &"a".repeat(33),
        ] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn the_tag_is_added_as_a_query_parameter_keeping_the_others() {
        assert_eq!(
            tagged_url("https://shop.example/p/1", "alice-20").unwrap(),
            "https://shop.example/p/1?tag=alice-20"
        );
        assert_eq!(
            tagged_url(
                "https://shop.example/p?id=7&color=dark%20red#reviews",
                "alice-20"
            )
            .unwrap(),
            "https://shop.example/p?id=7&color=dark%20red&tag=alice-20#reviews"
        );
        assert_eq!(
            tagged_url("https://shop.example/p?tag=someone-else&x=1", "alice-20").unwrap(),
            "https://shop.example/p?x=1&tag=alice-20",
            "a tag already in the URL is replaced, not doubled"
        );
        assert_eq!(
            tagged_url("http://shop.example/", "a&b c").unwrap(),
            "http://shop.example/?tag=a%26b+c",
            "the value is encoded"
        );
        assert_eq!(tagged_url("javascript:alert(1)", "alice-20"), None);
        assert_eq!(tagged_url("not a url", "alice-20"), None);
    }

    #[test]
    fn random_ids_have_their_shape() {
        let (s, c) = (new_session_id(), new_link_code());
        assert!(valid_session_id(&s) && valid_link_code(&c));
        assert_ne!(s, new_session_id());
        assert!(!valid_session_id("short") && !valid_link_code("../etc/x"));
    }
}
