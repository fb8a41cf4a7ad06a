//! chartvault: a scanned-record archive for hospitals.
//!
//! The map of the service:
//! - [`config`]: settings (embedded defaults < `config.toml` < environment < flags).
//! - [`startup`]: builds the service from its config; [`http`]: the router and routes.
//! - [`auth`]: principals from bearer tokens, the one policy function, audit appends.
//! - [`audit`]: the sealed, hash-chained audit log, its signed checkpoints and
//!   `chartvault audit verify`.
//! - [`ingest`]: multipart upload → encrypted staging → preflight → durable accept.
//! - [`worker`]: the job loop: decode → OCR (engine pool) → encrypted artifacts → index.
//! - [`search`]: queries with the caller's scope inside the index query; snippets and boxes
//!   from decrypted page text.
//! - [`shred`]: crypto-shredding of a document and the one "may this be destroyed?" check.
//! - [`vault`]: object identities, blob names and the keyring over `chartvault-storage`.
//! - [`jwt`]: OIDC/SMART bearer tokens: JWT verification against a JWKS, scopes.
//! - [`kek`]: where the KEK comes from; rotation and retirement.
//! - [`phi`]: sealing of the PHI columns and the MRN blind index.
//! - [`db`]: SQLite metadata; [`domain`]: newtypes parsed at the edge; [`error`]: the one
//!   error type and its HTTP mapping; [`cli`]: the command line.
//! - [`verify`]: `chartvault verify`, the read-only integrity check of a data directory;
//!   [`backup`]: `chartvault backup` / `restore`, online snapshots and their restore.
//!
//! The at-rest guarantees live in crates of their own: `chartvault-storage` (keys, the
//! encrypted object format, blob stores) and `chartvault-index` (tantivy); decoding and OCR
//! in `chartvault-ocr`.

pub mod audit;
pub mod auth;
pub mod backup;
pub mod batch;
pub mod cli;
pub mod config;
pub mod correct;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod ingest;
pub mod jwt;
pub mod kek;
pub mod phi;
pub mod redact;
pub mod release;
pub mod retention;
pub mod search;
pub mod shred;
pub mod startup;
pub mod vault;
pub mod verify;
pub mod worker;
