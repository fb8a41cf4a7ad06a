//! Orientation detection with Tesseract OSD, through libtesseract's C API (the `tesseract`
//! crate has no call for `DetectOrientationScript`).
//!
//! Promises:
//! - one [`OsdEngine`] per engine thread, created once with the `osd` model (Debian package
//!   `tesseract-ocr-osd`) and never shared between threads;
//! - the engine receives decoded pixels through `SetImage`, like the OCR engines;
//! - a page with too little text answers `None`, never an error.

use std::ffi::CString;
use std::os::raw::c_int;

use image::GrayImage;
use tesseract_sys::{
    TessBaseAPI, TessBaseAPIClear, TessBaseAPICreate, TessBaseAPIDelete,
    TessBaseAPIDetectOrientationScript, TessBaseAPIInit3, TessBaseAPISetImage,
    TessBaseAPISetPageSegMode, TessBaseAPISetSourceResolution, TessPageSegMode_PSM_OSD_ONLY,
};

use crate::OcrError;

/// What OSD found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Orientation {
    /// How far to turn the page clockwise to make it upright: 0, 90, 180 or 270.
    pub rotate: u16,
    /// Tesseract's orientation confidence (its margin over the next best; 0 = none).
    pub confidence: f32,
}

/// A libtesseract handle initialised with the `osd` model.
pub(crate) struct OsdEngine(*mut TessBaseAPI);

// SAFETY: the handle is owned by one engine thread at a time and never aliased.
unsafe impl Send for OsdEngine {}

impl Drop for OsdEngine {
    fn drop(&mut self) {
        // SAFETY: the handle came from TessBaseAPICreate and is deleted once.
        unsafe { TessBaseAPIDelete(self.0) }
    }
}

impl OsdEngine {
    pub(crate) fn new(tessdata_dir: Option<&str>) -> Result<OsdEngine, OcrError> {
        let datapath = tessdata_dir
            .map(CString::new)
            .transpose()
            .map_err(|_| OcrError::InvalidConfig("tessdata_dir contains a NUL byte".into()))?;
        // SAFETY: plain constructor; the handle is owned by the returned value.
        let engine = OsdEngine(unsafe { TessBaseAPICreate() });
        // SAFETY: the handle is valid; the strings are NUL-terminated and outlive the call.
        let status = unsafe {
            TessBaseAPIInit3(
                engine.0,
                datapath.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                c"osd".as_ptr(),
            )
        };
        if status != 0 {
            return Err(OcrError::LanguageDataMissing {
                language: "osd".into(),
                package: "tesseract-ocr-osd".into(),
            });
        }
        // SAFETY: valid handle.
        unsafe { TessBaseAPISetPageSegMode(engine.0, TessPageSegMode_PSM_OSD_ONLY) };
        Ok(engine)
    }

    /// The page's orientation, asked of a copy at half the resolution, binarised, when the
    /// page is large enough for its text to stay legible there (OSD's cost grows with the
    /// pixels; its answer does not need them).
    pub(crate) fn detect_on(&mut self, image: &GrayImage, dpi: u32) -> Option<Orientation> {
        let (width, height) = image.dimensions();
        if dpi >= 250 && width.min(height) >= 1500 {
            self.detect(&crate::cleanup::reduce_binarised(image), dpi / 2)
        } else {
            self.detect(image, dpi)
        }
    }

    /// The page's orientation, or `None` when OSD cannot tell (too little text).
    pub(crate) fn detect(&mut self, image: &GrayImage, dpi: u32) -> Option<Orientation> {
        let (width, height) = image.dimensions();
        let (Ok(w), Ok(h)) = (c_int::try_from(width), c_int::try_from(height)) else {
            return None;
        };
        if w == 0 || h == 0 {
            return None;
        }
        let mut degrees: c_int = 0;
        let mut confidence: f32 = 0.0;
        let mut script: *const std::os::raw::c_char = std::ptr::null();
        let mut script_confidence: f32 = 0.0;
        // SAFETY: the pixel buffer is w*h bytes, one byte per pixel, rows of w bytes, and
        // Tesseract copies it in SetImage; the out-pointers are valid locals; the script name
        // points into Tesseract's own tables and is not kept.
        let found = unsafe {
            TessBaseAPISetImage(self.0, image.as_raw().as_ptr(), w, h, 1, w);
            TessBaseAPISetSourceResolution(self.0, c_int::try_from(dpi).unwrap_or(300));
            let found = TessBaseAPIDetectOrientationScript(
                self.0,
                &mut degrees,
                &mut confidence,
                &mut script,
                &mut script_confidence,
            );
            TessBaseAPIClear(self.0);
            found
        };
        if found == 0 || !confidence.is_finite() {
            return None;
        }
        // `degrees` is how far the page is turned clockwise; turning it back the rest of the
        // way round makes it upright.
        let rotate = ((360 - degrees.rem_euclid(360)) % 360) as u16;
        Some(Orientation { rotate, confidence })
    }
}
