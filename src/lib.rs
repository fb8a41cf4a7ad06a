//! chartvault: a scanned-record archive for hospitals.
//!
//! # Layers
//!
//! Imports point one way, down this list; no file imports one that imports it back.
//! `.ci/layers.py` checks it on every CI run.
//!
//! ```text
//! front ends        http/ (the only axum user), cli, mllp/ (HL7 v2)
//! features          access/ audit/ ingest/ search legal/ ops/ feeds/   services over the core
//! core              app (the Archive: store, vault, index, OCR pool, config), error
//! store             store/ (the only sqlx user): one file per aggregate, the vault, sealing
//! domain            domain, config, metrics: import nothing above them
//! ```
//!
//! `main.rs` and [`startup`] are the composition root: they wire the front ends to the core.
//!
//! # The map
//! - [`config`]: settings (embedded defaults < `config.toml` < environment < flags).
//! - [`domain`]: newtypes parsed at the edge, roles, categories, statuses, actions.
//! - [`metrics`]: the service's Prometheus metrics (`GET /metrics`).
//! - [`store`]: SQLite metadata, one file per aggregate; [`store::vault`]: object
//!   identities, blob names and the keyring over `chartvault-storage`; [`store::phi`]:
//!   sealing of the PHI columns and the MRN blind index.
//! - [`app`]: the [`app::Archive`] every service works on; [`error`]: the services' one
//!   error type.
//! - [`access`]: principals from bearer tokens, the one policy function, OIDC/SMART tokens.
//! - [`audit`]: the sealed, hash-chained audit log, its signed checkpoints and
//!   `chartvault audit verify`.
//! - [`ingest`]: upload → encrypted staging → preflight → durable accept; the job loop;
//!   pages → OCR (engine pool) → encrypted artifacts → index; barcode batches; corrections.
//! - [`search`]: queries with the caller's scope inside the index query; snippets and boxes
//!   from decrypted page text.
//! - [`legal`]: holds, crypto-shredding, retention, releases and productions.
//! - [`ops`]: KEK rotation, `chartvault verify`, `backup` / `restore`.
//! - [`feeds`]: the registration system's ADT events applied to patients; the EHR told of
//!   documents (MDM).
//! - [`http`]: the router, extractors and handlers; [`fhir`]: FHIR R4 over the same
//!   services; [`cli`]: the command line; [`mllp`]: the HL7 v2 listener and MDM sender.
//!
//! The at-rest guarantees live in crates of their own: `chartvault-storage` (keys, the
//! encrypted object format, blob stores) and `chartvault-index` (tantivy); decoding and OCR
//! in `chartvault-ocr`.

pub mod access;
pub mod app;
pub mod audit;
pub mod cli;
pub mod config;
pub mod dicomweb;
pub mod domain;
pub mod error;
pub mod feeds;
pub mod fhir;
pub mod http;
pub mod ingest;
pub mod legal;
pub mod metrics;
pub mod mllp;
pub mod ops;
pub mod search;
pub mod startup;
pub mod store;
