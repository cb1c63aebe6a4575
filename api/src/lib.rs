//! The `callvault` binary's library: configuration, application services,
//! the HTTP and GraphQL surface, and the command-line tools. `main.rs` only
//! wires these together.

pub mod access;
pub mod audio;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod custody;
pub mod demo;
pub mod error;
pub mod graphql;
pub mod http;
pub mod outbox;
pub mod remote;
pub mod retention;
pub mod service;
pub mod telemetry;

pub use http::{AppState, app};
