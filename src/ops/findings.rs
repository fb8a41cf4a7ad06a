//! What `chartvault verify` reports: findings, their kinds and severities, the report.

use std::path::PathBuf;

use chartvault_storage::BlobName;
use serde::Serialize;

use crate::store::vault::ObjectRef;

/// What a finding is about. Serialised in snake_case (`blob_corrupt`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A blob does not authenticate (or is not an object at all).
    BlobCorrupt,
    /// A row names a blob that does not exist.
    BlobMissing,
    /// A blob's key id has no keyring row: the blob can never be decrypted.
    KeyMissing,
    /// A keyring row does not unwrap under the KEK version it names.
    KeyCorrupt,
    /// An original's plaintext does not hash to `documents.sha256`.
    ChecksumMismatch,
    /// A blob no row references (including blobs of deleted documents, and files that are
    /// not blobs at all).
    OrphanBlob,
    /// A staging object or a blob store temp file: an upload or write in flight, or
    /// interrupted (the next server start removes them). Notice.
    InterruptedUpload,
    /// A keyring row that no blob and no service names. Notice.
    OrphanKey,
    /// An index file does not authenticate under the index key.
    IndexFileCorrupt,
    /// The index cannot be opened at all.
    IndexUnreadable,
    /// The index holds a page with no `pages` row (or of a deleted document).
    IndexPageWithoutRow,
    /// The index holds the same page twice.
    IndexPageDuplicate,
    /// A page of an `indexed` document is not in the index.
    RowPageNotIndexed,
}

impl FindingKind {
    pub fn severity(self) -> Severity {
        match self {
            FindingKind::InterruptedUpload | FindingKind::OrphanKey => Severity::Notice,
            _ => Severity::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::BlobCorrupt => "blob_corrupt",
            FindingKind::BlobMissing => "blob_missing",
            FindingKind::KeyMissing => "key_missing",
            FindingKind::KeyCorrupt => "key_corrupt",
            FindingKind::ChecksumMismatch => "checksum_mismatch",
            FindingKind::OrphanBlob => "orphan_blob",
            FindingKind::InterruptedUpload => "interrupted_upload",
            FindingKind::OrphanKey => "orphan_key",
            FindingKind::IndexFileCorrupt => "index_file_corrupt",
            FindingKind::IndexUnreadable => "index_unreadable",
            FindingKind::IndexPageWithoutRow => "index_page_without_row",
            FindingKind::IndexPageDuplicate => "index_page_duplicate",
            FindingKind::RowPageNotIndexed => "row_page_not_indexed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Notice,
}

/// One problem, named by ids and file names only.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub severity: Severity,
    /// The blob's name in the blob store, or the file's path under `blobs/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// An index file's name under `index/`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub description: String,
}

impl Finding {
    pub(crate) fn new(kind: FindingKind, description: impl Into<String>) -> Finding {
        Finding {
            kind,
            severity: kind.severity(),
            blob: None,
            file: None,
            document_id: None,
            page: None,
            key_id: None,
            description: description.into(),
        }
    }

    pub(crate) fn blob(kind: FindingKind, name: &str, description: impl Into<String>) -> Finding {
        let mut finding = Finding::new(kind, description);
        finding.blob = Some(name.to_string());
        if let Some(object) = BlobName::new(name)
            .ok()
            .and_then(|n| ObjectRef::from_blob_name(&n))
        {
            finding.document_id = Some(object.record_id().to_string());
            finding.page = object.page();
        }
        finding
    }

    pub(crate) fn with_key(mut self, key_id: &str) -> Finding {
        self.key_id = Some(key_id.to_string());
        self
    }
}

/// What was checked.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    pub documents: usize,
    pub deleted_documents: usize,
    pub pages: usize,
    /// Blobs decrypted and authenticated to their end.
    pub blobs: usize,
    pub blob_bytes: u64,
    /// Originals whose plaintext was hashed against `documents.sha256`.
    pub originals_hashed: usize,
    pub keyring_rows: usize,
    pub index_files: usize,
    pub index_bytes: u64,
    pub indexed_pages: usize,
    /// Page artifacts of documents still being processed (not yet recorded; not findings).
    pub in_progress_blobs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub data_dir: PathBuf,
    pub checked: Checked,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    pub fn notices(&self) -> usize {
        self.findings.len() - self.errors()
    }

    /// No error findings (notices allowed): what exit code 0 means.
    pub fn is_clean(&self) -> bool {
        self.errors() == 0
    }

    /// The process exit code: 0 clean, 1 with any error finding.
    pub fn exit_code(&self) -> u8 {
        if self.is_clean() {
            0
        } else {
            1
        }
    }

    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// The human summary (for stderr): counts, then one line per finding.
    pub fn summary(&self) -> String {
        let c = &self.checked;
        let mut out = format!(
            "verify {}: {} documents ({} deleted), {} pages, {} blobs ({:.1} MiB) authenticated, \
             {} originals hashed, {} keyring rows, {} index files ({:.1} MiB), {} indexed pages\n",
            self.data_dir.display(),
            c.documents,
            c.deleted_documents,
            c.pages,
            c.blobs,
            c.blob_bytes as f64 / (1024.0 * 1024.0),
            c.originals_hashed,
            c.keyring_rows,
            c.index_files,
            c.index_bytes as f64 / (1024.0 * 1024.0),
            c.indexed_pages,
        );
        if c.in_progress_blobs > 0 {
            out.push_str(&format!(
                "{} page artifacts of documents still being processed were skipped\n",
                c.in_progress_blobs
            ));
        }
        for finding in &self.findings {
            let subject = finding
                .blob
                .as_deref()
                .or(finding.file.as_deref())
                .or(finding.key_id.as_deref())
                .or(finding.document_id.as_deref())
                .unwrap_or("-");
            let page = finding
                .page
                .filter(|_| finding.blob.is_none())
                .map(|p| format!(" page {p}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<6} {:<22} {subject}{page}: {}\n",
                match finding.severity {
                    Severity::Error => "ERROR",
                    Severity::Notice => "notice",
                },
                finding.kind.as_str(),
                finding.description
            ));
        }
        out.push_str(&format!(
            "{}: {} errors, {} notices\n",
            if self.is_clean() {
                "clean"
            } else {
                "NOT CLEAN"
            },
            self.errors(),
            self.notices()
        ));
        out
    }
}
