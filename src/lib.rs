//! livefront: a self-hosted live-shopping broadcast server.
//!
//! Data flows one way: [`ingest`] → [`pipeline`] → [`output`] → [`http`], with [`store`] on the side.
//! [`app`] wires them together.
pub mod address;
pub mod analytics;
pub mod app;
pub mod bus;
pub mod config;
pub mod http;
pub mod ingest;
pub mod live;
pub mod memory;
pub mod notifications;
pub mod output;
pub mod pipeline;
pub mod push;
pub mod shop;
pub mod storage;
pub mod store;
pub mod streams;
pub mod telemetry;
pub mod tls;
pub mod webhooks;
