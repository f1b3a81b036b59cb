//! Logging: `tracing` to stderr, human-readable or JSON (`LIVEFRONT_LOG_FORMAT=json`); the level
//! from `RUST_LOG` (default [`DEFAULT_FILTER`]).
use tracing_subscriber::EnvFilter;

/// `info`, but srt-protocol only for errors: it warns once per malformed UDP datagram, so
/// anyone could flood the log through the SRT port. livefront logs SRT connections itself.
pub const DEFAULT_FILTER: &str = "info,srt_protocol=error";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = std::env::var("LIVEFRONT_LOG_FORMAT").is_ok_and(|v| v.eq_ignore_ascii_case("json"));
    let result = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests start several apps in one process) keeps the first subscriber.
    let _ = result;
}
