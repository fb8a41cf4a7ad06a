//! Pages: one row per page of a document, with its OCR figures.

use super::base::*;
use crate::domain::TextSource;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PageRow {
    pub page: u32,
    pub width: u32,
    pub height: u32,
    pub dpi: Option<f64>,
    pub mean_confidence: f64,
    pub word_count: u32,
    /// A blank page: stored and numbered, not recognised.
    pub blank: bool,
    /// How far the scan was turned clockwise to make it upright (0, 90, 180, 270).
    pub rotation: u16,
    /// The skew measured on the scan and corrected in the stored image, in degrees.
    pub skew_degrees: Option<f64>,
    /// The fraction of the page covered by ink.
    pub ink: Option<f64>,
    /// Where the text came from: `ocr`, `text-layer` (a PDF's own text), `dicom` (a DICOM
    /// file's attributes) or `none` (blank).
    pub text_source: TextSource,
}

/// Pages: the per-page results of OCR and clean-up.
pub trait PageStore {
    fn insert_page(
        &self,
        document: DocumentId,
        page: &PageRow,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// [`Db::insert_page`] inside the caller's transaction.
    fn insert_page_tx(
        tx: &mut Tx,
        document: DocumentId,
        page: &PageRow,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    fn pages(&self, document: DocumentId)
        -> impl Future<Output = StoreResult<Vec<PageRow>>> + Send;
}
