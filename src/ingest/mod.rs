//! Scans in: upload, the job loop, barcode batches and corrections.
//!
//! - [`upload`]: multipart upload → encrypted staging → preflight → durable accept.
//! - [`worker`]: the job loop that resumes after a crash.
//! - [`pages`]: one document's pages: decode → OCR (engine pool) → encrypted artifacts → index.
//! - [`batch`]: barcode-separated batches split into documents.
//! - [`correct`]: corrections: a new version of a document, the old one kept.
//! - [`intake`]: scanner hot folders, taken through the same upload services.
//! - [`dicom`]: DICOM instances stored through DICOMweb, and their recorded data sets.

pub mod batch;
pub mod correct;
pub mod dicom;
pub mod hashes;
pub mod intake;
pub mod pages;
pub mod upload;
pub mod worker;
