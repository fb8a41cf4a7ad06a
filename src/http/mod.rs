//! The HTTP surface: the one place that builds the router, the shared state, and the
//! request middleware (request ids, tracing without PHI). The one front end of the archive
//! that speaks HTTP: handlers extract, call a service, and map its errors.

mod access;
mod admin;
mod audit;
mod batches;
pub mod client;
mod documents;
pub use documents::decrypting_stream;
pub mod error;
pub mod extract;
mod holds;
mod metrics;
pub(crate) mod multipart;
pub mod openapi;
mod patients;
mod qa;
mod releases;
mod retention;
pub mod routes;
mod search;
pub mod serve;
pub mod state;
pub mod tls;
