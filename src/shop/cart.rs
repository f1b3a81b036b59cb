//! The shop's cart link (`shop.cart_url`): a URL template whose `{placeholders}` are filled with
//! URL-encoded values, so a value can never change where the link goes (no open redirect, no
//! `javascript:`), and the frame-ancestors sources the embeddable player may be framed by.
use crate::config::{self, ShopConfig};

/// The placeholders a cart URL template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "product_id",
    "sku",
    "stream_id",
    "tag",
    "attribution",
    "promo_code",
];

/// Every character but the unreserved ones (RFC 3986 §2.3) is percent-encoded.
const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `template` with each `{name}` replaced by the URL-encoded value of `name` in `values` (empty
/// when absent). `None` unless the result is an absolute http(s) URL with a host and no userinfo.
pub fn fill(template: &str, values: &[(&str, &str)]) -> Option<String> {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let close = after.find('}')?;
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return None;
        }
        let value = values
            .iter()
            .find(|(k, _)| *k == name)
            .map_or("", |(_, v)| v);
        out.extend(percent_encoding::utf8_percent_encode(value, COMPONENT));
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return None;
    }
    out.push_str(rest);
    super::product_url(&out).map(String::from)
}

/// Checks `shop.cart_url` and `shop.embed_frame_ancestors` (when the server starts: the config
/// does not know the cart link's rules, which live here).
pub fn check_config(shop: &ShopConfig) -> Result<(), config::Error> {
    if let Some(t) = &shop.cart_url
        && let Err(message) = check_template(t)
    {
        return Err(config::Error::Invalid {
            key: "shop.cart_url",
            message,
        });
    }
    if shop.embed_frame_ancestors.is_empty()
        || shop.embed_frame_ancestors.len() > 32
        || !shop
            .embed_frame_ancestors
            .iter()
            .all(|s| valid_frame_ancestor(s))
    {
        return Err(config::Error::Invalid {
            key: "shop.embed_frame_ancestors",
            message: "1-32 sources, each *, 'self' or an origin such as https://shop.example"
                .into(),
        });
    }
    Ok(())
}

/// Why a template is refused (checked when the server starts).
pub fn check_template(template: &str) -> Result<(), String> {
    let sample: Vec<(&str, &str)> = PLACEHOLDERS.iter().map(|p| (*p, "x")).collect();
    if fill(template, &sample).is_none() {
        return Err(format!(
            "must be an absolute http(s) URL with a host, no userinfo, and placeholders among {{{}}}",
            PLACEHOLDERS.join("}, {")
        ));
    }
    Ok(())
}

/// A `frame-ancestors` source: `*`, `'self'`, or an origin `http(s)://host[:port]` (no path);
/// nothing that could end the directive or add another.
pub fn valid_frame_ancestor(s: &str) -> bool {
    if s == "*" || s == "'self'" {
        return true;
    }
    let Ok(url) = url::Url::parse(s) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.host_str().is_some_and(|h| !h.is_empty())
        && url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() == "/"
        && url.origin().ascii_serialization() == s.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_refuses_to_start_with_a_bad_cart_link_or_frame_ancestor() {
        assert!(check_config(&ShopConfig::default()).is_ok());
        let bad_link = ShopConfig {
            cart_url: Some("javascript:alert(1)//{sku}".into()),
            ..ShopConfig::default()
        };
        let err = check_config(&bad_link).unwrap_err().to_string();
        assert!(err.contains("shop.cart_url"), "{err}");
        let bad_ancestor = ShopConfig {
            embed_frame_ancestors: vec!["https://a.example; script-src *".into()],
            ..ShopConfig::default()
        };
        let err = check_config(&bad_ancestor).unwrap_err().to_string();
        assert!(err.contains("shop.embed_frame_ancestors"), "{err}");
    }

    #[test]
    fn values_are_encoded_and_cannot_change_where_the_link_goes() {
        let t = "https://shop.example/cart/add?sku={sku}&stream={stream_id}&code={promo_code}";
        assert_eq!(
            fill(
                t,
                &[
                    ("sku", "a&b=c/d?#e"),
                    ("stream_id", "s1"),
                    ("promo_code", "SPRING-10")
                ]
            )
            .unwrap(),
            "https://shop.example/cart/add?sku=a%26b%3Dc%2Fd%3F%23e&stream=s1&code=SPRING-10"
        );
        assert_eq!(
            fill("https://shop.example/{sku}", &[("sku", "@evil.example")]).unwrap(),
            "https://shop.example/%40evil.example"
        );
        assert_eq!(
            fill("https://shop.example/{sku}", &[]).unwrap(),
            "https://shop.example/",
            "absent values are empty"
        );
        assert_eq!(fill("{sku}", &[("sku", "javascript:alert(1)")]), None);
        assert_eq!(fill("{sku}//evil.example", &[("sku", "https:")]), None);
        assert_eq!(fill("https://shop.example/{unknown}", &[]), None);
        assert_eq!(fill("https://shop.example/{sku", &[]), None);
    }

    #[test]
    fn templates_are_checked_when_loaded() {
        assert!(check_template("https://shop.example/cart?p={product_id}&tag={tag}").is_ok());
        assert!(check_template("http://localhost:9000/add/{sku}").is_ok());
        for bad in [
            "javascript:alert(1)//{sku}",
            "/cart?p={sku}",
            "https://user@shop.example/{sku}",
            "https://shop.example/{nope}",
            "ftp://shop.example/{sku}",
            "{sku}",
        ] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frame_ancestors_are_origins_only() {
        for ok in [
            "*",
            "'self'",
            "https://shop.example",
            "http://127.0.0.1:8081",
        ] {
            assert!(valid_frame_ancestor(ok), "{ok}");
        }
        for bad in [
            "https://shop.example/path",
            "https://shop.example; script-src *",
            "'none' https://x.example",
            "javascript:x",
            "https://a@shop.example",
            "",
            "'unsafe-inline'",
        ] {
            assert!(!valid_frame_ancestor(bad), "{bad}");
        }
    }
}
