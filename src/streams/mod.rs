//! Streams: the one owner of every live stream's life. HTTP, ingest servers and shutdown call its
//! commands (authorize/publish, end, set mode, take down, focus, rotate key, pull, recover); it runs
//! the stream's pipeline (`crate::pipeline`), feeds its outputs (`crate::output`) and keeps the store
//! in step.
pub mod access;
pub mod archive;
pub mod bus;
pub mod clips;
pub mod events;
pub mod overload;
pub mod registry;
pub mod sales;
pub mod sessions;
pub mod simulcast;
pub mod stream;
pub mod takeover;

pub use registry::StreamRegistry;
