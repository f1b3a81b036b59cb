//! `database.*`: where the store keeps its rows. Unset: embedded SQLite in `data_dir`, as
//! always; `postgres://user:password@host:port/database`: a PostgreSQL server, which several
//! livefront nodes can share.
use serde::{Deserialize, Serialize};
use url::Url;

#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`; unset = SQLite in `data_dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &self.url.as_deref().map(redacted))
            .finish()
    }
}

/// The URL with its password replaced, for logs.
pub fn redacted(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(not a URL)".into(),
    }
}

impl DatabaseConfig {
    /// The message says what is wrong with `database.url`.
    pub fn validate(&self) -> Result<(), String> {
        let Some(text) = &self.url else {
            return Ok(());
        };
        let url = Url::parse(text).map_err(|e| format!("{} is not a URL ({e})", redacted(text)))?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "{}: only postgres://user:password@host:port/database is supported",
                redacted(text)
            ));
        }
        if url.host_str().unwrap_or_default().is_empty() || url.path().trim_matches('/').is_empty()
        {
            return Err(format!(
                "{}: name the host and the database (postgres://user:password@host:port/database)",
                redacted(text)
            ));
        }
        // TLS as the store will set it up (`sslrootcert` read and checked), and the rest as the
        // client library reads it.
        let (plain, _) =
            crate::store::db::pg_tls(text).map_err(|e| format!("{}: {e}", redacted(text)))?;
        plain
            .parse::<postgres::Config>()
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", redacted(text)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_are_checked_and_passwords_kept_out_of_messages() {
        let ok = |u: &str| {
            DatabaseConfig {
                url: Some(u.into()),
            }
            .validate()
        };
        assert_eq!(ok("postgres://lf:secret@127.0.0.1:5432/livefront"), Ok(()));
        // TLS with libpq's names: the root certificate must be there and be one (a real one is
        // checked end to end in tests/store_schema.rs); unused without `sslmode=require`.
        let root = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(root.path(), "not a certificate").unwrap();
        let root = root.path().display();
        let garbage = ok(&format!(
            "postgres://db/lf?sslmode=require&sslrootcert={root}"
        ));
        assert!(
            garbage
                .unwrap_err()
                .contains(&format!("sslrootcert {root}"))
        );
        assert_eq!(ok(&format!("postgres://db/lf?sslrootcert={root}")), Ok(()));
        let missing = ok("postgres://db/lf?sslmode=require&sslrootcert=/nonexistent/ca.pem");
        assert!(
            missing
                .unwrap_err()
                .contains("sslrootcert /nonexistent/ca.pem")
        );
        assert!(ok("postgres://db/lf?sslmode=sometimes").is_err());
        assert_eq!(
            ok("postgresql://db.internal/livefront?connect_timeout=5"),
            Ok(())
        );
        for bad in [
            "mysql://lf:secret@h/db",
            "postgres://lf:secret@h/",
            "not a url",
        ] {
            let e = ok(bad).unwrap_err();
            assert!(!e.contains("secret"), "{e}");
        }
        let shown = format!(
            "{:?}",
            DatabaseConfig {
                url: Some("postgres://lf:secret@h/db".into())
            }
        );
        assert!(
            shown.contains("***") && !shown.contains("secret"),
            "{shown}"
        );
    }
}
