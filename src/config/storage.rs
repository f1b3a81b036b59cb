//! `storage.*`: where finished media goes. Unset: the local disk under `data_dir`, as always;
//! `s3://bucket?endpoint=http://host:port&region=…`: any S3-compatible object store.
use serde::{Deserialize, Serialize};
use url::Url;

/// Region signed into requests when the URL names none (S3-compatible servers mostly ignore it).
pub const DEFAULT_REGION: &str = "us-east-1";

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `s3://bucket?endpoint=http://host:port&region=…`; unset = local disk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &self.url)
            .field("access_key", &self.access_key.as_ref().map(|_| "(set)"))
            .field("secret_key", &self.secret_key.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// A parsed `storage.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrl {
    pub bucket: String,
    /// `http(s)://host[:port][/prefix]` of the S3 API; requests use path-style URLs
    /// (`endpoint/bucket/key`), which every S3-compatible server speaks.
    pub endpoint: Url,
    pub region: String,
}

impl StorageUrl {
    /// Parses `s3://bucket?endpoint=…&region=…`; the message says what is wrong.
    pub fn parse(text: &str) -> Result<StorageUrl, String> {
        let url = Url::parse(text).map_err(|e| format!("{text:?} is not a URL ({e})"))?;
        if url.scheme() != "s3" {
            return Err(format!(
                "{text:?}: only s3://bucket?endpoint=http://host:port&region=… is supported"
            ));
        }
        let bucket = url.host_str().unwrap_or_default().to_string();
        if !valid_bucket(&bucket) {
            return Err(format!(
                "{text:?}: the bucket name must be 3-63 characters of a-z, 0-9, '.' and '-'"
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials go in storage.access_key / storage.secret_key, not in the URL".into(),
            );
        }
        if !matches!(url.path(), "" | "/") {
            return Err(format!("{text:?}: no path after the bucket"));
        }
        let (mut endpoint, mut region) = (None, None);
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "endpoint" => endpoint = Some(v.into_owned()),
                "region" => region = Some(v.into_owned()),
                other => return Err(format!("{text:?}: unknown parameter {other:?}")),
            }
        }
        let endpoint = endpoint.ok_or_else(|| {
            format!("{text:?}: endpoint=http(s)://host:port of the S3 API is missing")
        })?;
        let endpoint = Url::parse(&endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .filter(|u| u.query().is_none() && u.username().is_empty())
            .ok_or_else(|| format!("endpoint {endpoint:?} must be http(s)://host[:port]"))?;
        let region = region.unwrap_or_else(|| DEFAULT_REGION.into());
        if region.is_empty()
            || region.len() > 64
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!("region {region:?} must be letters, digits and '-'"));
        }
        Ok(StorageUrl {
            bucket,
            endpoint,
            region,
        })
    }
}

fn valid_bucket(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

impl StorageConfig {
    /// The parsed URL (`None`: local disk), with the key and the problem named.
    pub fn validate(&self) -> Result<Option<StorageUrl>, (&'static str, String)> {
        let Some(text) = &self.url else {
            if self.access_key.is_some() || self.secret_key.is_some() {
                return Err(("storage.url", "keys are set but no storage.url".into()));
            }
            return Ok(None);
        };
        let url = StorageUrl::parse(text).map_err(|m| ("storage.url", m))?;
        match (&self.access_key, &self.secret_key) {
            (Some(_), Some(_)) => Ok(Some(url)),
            (None, _) => Err(("storage.access_key", "must be set with storage.url".into())),
            (_, None) => Err(("storage.secret_key", "must be set with storage.url".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_parses() {
        let u = StorageUrl::parse("s3://media-1?endpoint=http://127.0.0.1:9000&region=eu-west-1")
            .unwrap();
        assert_eq!(u.bucket, "media-1");
        assert_eq!(u.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(u.region, "eu-west-1");
        let u = StorageUrl::parse("s3://media?endpoint=https://s3.example.com").unwrap();
        assert_eq!(u.region, DEFAULT_REGION);
    }

    #[test]
    fn bad_urls_are_refused_with_the_reason() {
        for (url, says) in [
            ("http://bucket", "only s3://"),
            ("s3://bucket", "endpoint"),
            ("s3://B?endpoint=http://h", "bucket name"),
            ("s3://bucket?endpoint=ftp://h", "must be http(s)"),
            ("s3://bucket?endpoint=http://h&x=1", "unknown parameter"),
            ("s3://bucket/path?endpoint=http://h", "no path"),
            ("s3://k:s@bucket?endpoint=http://h", "access_key"),
            ("s3://bucket?endpoint=http://h&region=a%20b", "region"),
            ("not a url", "not a URL"),
        ] {
            let e = StorageUrl::parse(url).unwrap_err();
            assert!(e.contains(says), "{url}: {e}");
        }
    }

    #[test]
    fn keys_come_with_the_url() {
        let mut c = StorageConfig {
            url: Some("s3://media?endpoint=http://h:1".into()),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "storage.access_key");
        c.access_key = Some("k".into());
        assert_eq!(c.validate().unwrap_err().0, "storage.secret_key");
        c.secret_key = Some("s".into());
        assert!(c.validate().unwrap().is_some());
        assert!(
            !format!("{c:?}").contains("\"s\""),
            "secrets stay out of logs"
        );
    }
}
