//! The crate's one error type.
//!
//! Promise: no variant carries page text, patient data or user query words. `Query` messages
//! describe only the syntax problem, so the app may show them to the user verbatim (as a 400).

/// Everything that can go wrong while opening, searching or writing the index.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// tantivy failed (I/O in the directory, a corrupt or incompatible index, a lock held by
    /// another writer, ...).
    #[error("search index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The index directory could not be prepared.
    #[error("search index I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The user's query (or its paging) is not acceptable; the message is safe to show.
    #[error("{0}")]
    Query(String),
    /// A page record the caller gave cannot be indexed (e.g. page number 0).
    #[error("invalid page record: {0}")]
    InvalidRecord(&'static str),
    /// A stored index document lacks a field this crate always writes.
    #[error("search index document is corrupt: {0}")]
    CorruptDocument(&'static str),
    /// The writer thread failed to commit a batch; the batch is rolled back and must be retried.
    #[error("search index commit failed: {0}")]
    CommitFailed(String),
    /// `meta.json` does not decrypt, or is not tantivy index metadata.
    #[error("the search index metadata is corrupt: {0}")]
    CorruptMeta(String),
    /// Publishing a commit to object storage, or following the published commits, failed.
    #[error("the published search index: {0}")]
    Published(String),
    /// The writer thread has stopped (shut down or crashed); nothing more can be written.
    #[error("the search index writer has stopped")]
    WriterGone,
}

impl IndexError {
    pub(crate) fn query(message: &str) -> Self {
        IndexError::Query(message.to_string())
    }
}
