//! One recognition engine: a libtesseract handle driven through its C API, so that a page
//! can be recognised under a deadline (the `tesseract` crate passes no monitor to
//! `Recognize`).
//!
//! Promises:
//! - one [`Engine`] per engine thread, created once and never shared between threads;
//! - pixels go in through `SetImage` (8-bit gray, one byte per pixel), never file bytes;
//! - a page past its deadline stops recognising within the word it is on, and the engine
//!   is ready for the next page at once: the caller gets [`OcrError::PageTimeout`], not a
//!   thread still busy with the page;
//! - every string libtesseract hands out is freed, and the page's state is cleared after
//!   each page.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int};
use std::time::{Duration, Instant};

use image::GrayImage;
use tesseract_sys::{
    TessBaseAPI, TessBaseAPIClear, TessBaseAPICreate, TessBaseAPIDelete, TessBaseAPIEnd,
    TessBaseAPIGetTsvText, TessBaseAPIGetUTF8Text, TessBaseAPIInit3, TessBaseAPIMeanTextConf,
    TessBaseAPIRecognize, TessBaseAPISetImage, TessBaseAPISetSourceResolution,
    TessBaseAPISetVariable, TessDeleteText, TessMonitorCreate, TessMonitorDelete,
    TessMonitorSetDeadlineMSecs, ETEXT_DESC,
};

use crate::words::words_from_tsv;
use crate::{OcrError, PageOcr};

/// A libtesseract handle initialised with the configured languages.
pub(crate) struct Engine(*mut TessBaseAPI);

// SAFETY: the handle is owned by one engine thread at a time and never aliased.
unsafe impl Send for Engine {}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: the handle came from TessBaseAPICreate and is ended and deleted once.
        unsafe {
            TessBaseAPIEnd(self.0);
            TessBaseAPIDelete(self.0);
        }
    }
}

/// A progress monitor carrying a deadline, deleted when dropped.
struct Monitor(*mut ETEXT_DESC);

impl Drop for Monitor {
    fn drop(&mut self) {
        // SAFETY: the monitor came from TessMonitorCreate and is deleted once, after the
        // recognition that used it returned.
        unsafe { TessMonitorDelete(self.0) }
    }
}

/// Takes a string libtesseract allocated, copies it, and frees it.
///
/// # Safety
/// `text` is null or a NUL-terminated string from libtesseract not freed yet.
unsafe fn take_text(text: *mut c_char) -> Option<String> {
    if text.is_null() {
        return None;
    }
    // SAFETY: per the function's contract.
    let copied = unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: the string is libtesseract's and freed once, here.
    unsafe { TessDeleteText(text) };
    Some(copied)
}

impl Engine {
    /// An engine for `language` (codes joined by '+') from `tessdata_dir` (the system's
    /// when `None`), reading pages in `page_seg_mode`.
    pub(crate) fn new(
        tessdata_dir: Option<&str>,
        language: &str,
        page_seg_mode: &str,
    ) -> Result<Engine, EngineInitError> {
        let datapath = tessdata_dir
            .map(CString::new)
            .transpose()
            .map_err(|_| EngineInitError::Other("tessdata_dir contains a NUL byte".into()))?;
        let language = CString::new(language)
            .map_err(|_| EngineInitError::Other("the language contains a NUL byte".into()))?;
        // SAFETY: plain constructor; the handle is owned by the returned value.
        let engine = Engine(unsafe { TessBaseAPICreate() });
        // SAFETY: the handle is valid; the strings are NUL-terminated and outlive the call.
        let status = unsafe {
            TessBaseAPIInit3(
                engine.0,
                datapath.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
                language.as_ptr(),
            )
        };
        if status != 0 {
            return Err(EngineInitError::LanguageData);
        }
        let mode = CString::new(page_seg_mode)
            .map_err(|_| EngineInitError::Other("bad page segmentation mode".into()))?;
        // SAFETY: valid handle; NUL-terminated strings that outlive the call.
        let set = unsafe {
            TessBaseAPISetVariable(engine.0, c"tessedit_pageseg_mode".as_ptr(), mode.as_ptr())
        };
        if set == 0 {
            return Err(EngineInitError::Other(
                "Tesseract refused the page segmentation mode".into(),
            ));
        }
        Ok(engine)
    }

    /// Recognises `image` at `ppi`. With a `deadline`, recognition stops when it passes and
    /// the answer is [`OcrError::PageTimeout`] (reporting `limit`).
    pub(crate) fn recognize(
        &mut self,
        image: &GrayImage,
        ppi: c_int,
        deadline: Option<(Instant, Duration)>,
    ) -> Result<PageOcr, OcrError> {
        let (width, height) = image.dimensions();
        let (Ok(w), Ok(h)) = (c_int::try_from(width), c_int::try_from(height)) else {
            return Err(OcrError::InvalidPage("the page is too large".into()));
        };
        let timeout = |limit: Duration| OcrError::PageTimeout {
            limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        };
        // SAFETY: plain constructor; deleted by the guard after Recognize returned.
        let monitor = Monitor(unsafe { TessMonitorCreate() });
        if let Some((deadline, limit)) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(timeout(limit));
            }
            let millis = c_int::try_from(left.as_millis().max(1)).unwrap_or(c_int::MAX);
            // SAFETY: the monitor is valid.
            unsafe { TessMonitorSetDeadlineMSecs(monitor.0, millis) };
        }
        // SAFETY: the pixel buffer is w*h bytes, one byte per pixel, rows of w bytes, and
        // Tesseract copies it in SetImage; the monitor outlives the call.
        let status = unsafe {
            TessBaseAPISetImage(self.0, image.as_raw().as_ptr(), w, h, 1, w);
            TessBaseAPISetSourceResolution(self.0, ppi);
            TessBaseAPIRecognize(self.0, monitor.0)
        };
        drop(monitor);
        let outcome = match deadline {
            Some((deadline, limit)) if Instant::now() >= deadline => Err(timeout(limit)),
            _ if status != 0 => Err(OcrError::Recognition(
                "Tesseract could not recognise the page".into(),
            )),
            _ => self.results(),
        };
        // SAFETY: valid handle; frees the page's results, keeps the model loaded.
        unsafe { TessBaseAPIClear(self.0) };
        outcome
    }

    fn results(&mut self) -> Result<PageOcr, OcrError> {
        let missing = || OcrError::Recognition("Tesseract returned no text".into());
        // SAFETY: valid handle after a successful Recognize; each string is freed by
        // take_text.
        let text = unsafe { take_text(TessBaseAPIGetUTF8Text(self.0)) }.ok_or_else(missing)?;
        // SAFETY: as above.
        let tsv = unsafe { take_text(TessBaseAPIGetTsvText(self.0, 0)) }.ok_or_else(missing)?;
        // SAFETY: valid handle.
        let mean_confidence = unsafe { TessBaseAPIMeanTextConf(self.0) } as f32;
        Ok(PageOcr {
            text,
            words: words_from_tsv(&tsv),
            mean_confidence,
        })
    }
}

/// Why an engine did not start.
#[derive(Debug)]
pub(crate) enum EngineInitError {
    /// The language data is not installed (or does not load).
    LanguageData,
    Other(String),
}
