//! Times taken from requests (JSON bodies and query strings): only years the store writes and
//! reads back as RFC 3339 and every listing can sort and print. A year-10000 date once made
//! `/api/v1/home` answer 500 for everyone.
use chrono::{DateTime, Datelike, Utc};

use super::error::ApiError;

/// The earliest year a request may name.
pub const MIN_YEAR: i32 = 1970;
/// The latest year a request may name (RFC 3339 has four-digit years).
pub const MAX_YEAR: i32 = 9999;

/// `t` when its year is within [`MIN_YEAR`]..=[`MAX_YEAR`]; else 400 naming the field.
pub fn check(name: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if (MIN_YEAR..=MAX_YEAR).contains(&t.year()) {
        Ok(t)
    } else {
        Err(ApiError::bad_request(format!(
            "{name} must be a time in the years {MIN_YEAR}-{MAX_YEAR}"
        )))
    }
}

/// [`check`] for an optional field.
pub fn check_opt(name: &str, t: Option<DateTime<Utc>>) -> Result<Option<DateTime<Utc>>, ApiError> {
    t.map(|t| check(name, t)).transpose()
}

/// An RFC 3339 query parameter, checked like a body field.
pub fn parse_query(name: &str, v: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    v.map(|s| {
        let t = DateTime::parse_from_rfc3339(s)
            .map_err(|_| ApiError::bad_request(format!("{name} must be an RFC 3339 time")))?;
        check(name, t.with_timezone(&Utc))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn years_outside_1970_to_9999_are_refused() {
        assert!(check("t", at("+10000-01-01T00:00:00Z")).is_err());
        assert!(check("t", at("1969-12-31T23:59:59Z")).is_err());
        assert!(check("t", at("1970-01-01T00:00:00Z")).is_ok());
        assert!(check("t", at("9999-12-31T23:59:59Z")).is_ok());
        assert!(parse_query("from", Some("0000-01-01T00:00:00Z")).is_err());
        assert!(parse_query("from", Some("not a time")).is_err());
        assert_eq!(parse_query("from", None).unwrap(), None);
    }
}
