//! chartvault-index: the full-text index of OCRed chart pages.
//!
//! One tantivy document per page, keyed by (document id, page), carrying the opaque patient
//! id, document type, sensitivity category and service date as filter fields; the page text
//! is indexed (with positions, for phrases) but never stored.
//!
//! Map:
//! - [`schema`] — fields, the `cv_text` analyzer, term encodings.
//! - [`query`] — the user query language, parsed here so users can only search page text.
//! - [`search`] — [`SearchIndex`] and authorised [`SearchIndex::search`], where the caller's
//!   permissions are clauses of the tantivy query.
//! - [`highlight`] — [`Highlighter`], snippets and OCR word-box matching.
//! - [`writer`] — [`IndexWriterService`], the single batching writer thread.
//! - [`encrypted_directory`] — [`EncryptedDirectory`], the tantivy directory that keeps every
//!   index file encrypted at rest.
//! - [`publish`] — [`Publisher`] and [`Follower`]: commits published to object storage and
//!   followed from other machines.
//! - [`verify`] — [`verify_index_dir`], the offline integrity check of an encrypted index
//!   directory, file by file, without tantivy.
//! - [`error`] — [`IndexError`].
//!
//! The crate knows nothing of HTTP, the database or OCR; storage is any tantivy
//! `Directory`; production wraps the mmap directory in an [`EncryptedDirectory`] and hands it
//! to [`SearchIndex::open_in_directory`].

#![deny(missing_docs)]

pub mod encrypted_directory;
pub mod error;
pub mod highlight;
pub mod live;
pub mod patients;
pub mod publish;
pub mod query;
pub mod schema;
pub mod search;
pub mod verify;
pub mod writer;

pub use encrypted_directory::EncryptedDirectory;
pub use error::IndexError;
pub use highlight::Highlighter;
pub use live::LiveIndexFiles;
pub use patients::{NameScope, PatientMatch};
pub use publish::{Follower, Publisher, PUBLISHED_PREFIX};
pub use search::{SearchHit, SearchIndex, SearchRequest, SearchResults};
pub use verify::{verify_index_dir, IndexFileProblem, IndexVerifyReport};
pub use writer::{IndexWriterService, PageRecord};
