//! The OCR pool: a fixed set of dedicated OS threads, each owning one libtesseract engine.
//!
//! Promises:
//! - each thread creates its engine once, at [`OcrPool::start`], and reuses it page after
//!   page (only an engine that panicked is dropped, and a new one created for the next
//!   page);
//! - a page given a time limit ([`OcrPool::process_within`]) stops recognising when the
//!   limit passes, and its engine takes the next page at once;
//! - `start` fails fast, with a message naming the Debian package, when the language data is
//!   missing;
//! - Tesseract receives decoded pixels through `SetImage` (8-bit gray, one byte per pixel),
//!   never file bytes: leptonica's file parsers never see untrusted input, and nothing goes
//!   through temporary files;
//! - each engine is single-threaded. OpenMP reads `OMP_THREAD_LIMIT` once, when libgomp is
//!   loaded at process start, so the binary's `main` must not rely on this crate for it: the
//!   service's launcher sets `OMP_THREAD_LIMIT=1` in the environment. `start` also sets it
//!   when unset (for child processes such as the `tesseract` CLI), and every engine thread
//!   turns OpenMP parallel regions off for itself (`omp_set_max_active_levels(0)`, looked up
//!   at run time), which works whatever the environment was at start;
//! - logs (`tracing`) carry sizes, timings and word counts, never page text;
//! - dropping the last [`OcrPool`] handle lets the engine threads finish their queue and
//!   exit.
//!
//! The queue is unbounded: callers bound concurrency (the ingest worker awaits its pages).
//! Parallelism comes from one engine per core; a page is never split across threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use image::GrayImage;
use tokio::sync::oneshot;

use crate::cleanup::{self, CleanupConfig};
use crate::engine::{Engine, EngineInitError};
use crate::osd::OsdEngine;
use crate::{OcrError, PageOcr};

/// The resolution assumed when a page states none, or an implausible one.
pub const DEFAULT_DPI: u32 = 300;
/// Below this, a stated resolution is taken to be wrong (Tesseract itself warns below 70).
const MIN_PLAUSIBLE_DPI: u32 = 70;
/// Tesseract's page segmentation modes run from 0 to 13.
const MAX_PAGE_SEG_MODE: u32 = 13;

/// How to run the pool.
#[derive(Debug, Clone, PartialEq)]
pub struct OcrConfig {
    /// Engine threads (one engine each). Default: the available parallelism.
    pub threads: usize,
    /// Tesseract language(s), e.g. `"eng"` or `"eng+deu"`.
    pub language: String,
    /// Tesseract page segmentation mode; 3 (fully automatic) is the CLI's default.
    pub page_seg_mode: u32,
    /// Folder holding `<language>.traineddata`; `None` uses Tesseract's default
    /// (`TESSDATA_PREFIX`, then the compiled-in path).
    pub tessdata_dir: Option<PathBuf>,
    /// What [`OcrPool::process`] does to a page before OCR.
    pub cleanup: CleanupConfig,
}

impl Default for OcrConfig {
    fn default() -> Self {
        OcrConfig {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            language: "eng".into(),
            page_seg_mode: 3,
            tessdata_dir: None,
            cleanup: CleanupConfig::default(),
        }
    }
}

/// A page after [`OcrPool::process`]: cleaned up, and recognised unless blank.
#[derive(Debug, Clone)]
pub struct ProcessedPage {
    /// The page as stored and recognised: at most `target_dpi`, upright, straightened. Word
    /// boxes are in its pixels.
    pub image: GrayImage,
    /// The resolution of `image` (the stated one, or [`DEFAULT_DPI`] when none was plausible).
    pub dpi: u32,
    /// How far the page was turned clockwise: 0, 90, 180 or 270.
    pub rotation: u16,
    /// The skew that was measured, in degrees (clockwise positive); the stored page is
    /// straightened when it was off by 0.4° or more.
    pub skew_degrees: Option<f32>,
    /// The fraction of the page covered by ink (see [`crate::cleanup::ink_coverage`]).
    pub ink: f32,
    /// The page is blank: not recognised (`ocr` is empty).
    pub blank: bool,
    pub ocr: PageOcr,
    /// Time spent recognising (every reading of the page, a turned one included).
    pub recognition_time: Duration,
    /// Time spent on everything else: resolution, blank check, skew, orientation.
    pub cleanup_time: Duration,
}

impl ProcessedPage {
    /// Whether clean-up rotated the page straight (a skew of [`STRAIGHTEN_MIN_DEGREES`] or
    /// more was measured).
    pub fn straightened(&self) -> bool {
        self.skew_degrees
            .is_some_and(|skew| skew.abs() >= STRAIGHTEN_MIN_DEGREES)
    }
}

enum Work {
    /// Recognise the pixels as they are.
    Recognize,
    /// Clean up, then recognise unless blank.
    Process,
    /// Clean up (resolution, blank detection, skew), without recognising.
    CleanUp,
}

enum Outcome {
    Recognized(Result<PageOcr, OcrError>),
    Processed(Result<ProcessedPage, OcrError>),
}

struct Job {
    image: GrayImage,
    dpi: Option<u32>,
    work: Work,
    reply: oneshot::Sender<Outcome>,
    /// Told when an engine starts on the page (time limits count from then).
    started: Option<oneshot::Sender<()>>,
    /// How long the page may take from then.
    limit: Option<Duration>,
}

/// What every engine is created with.
#[derive(Debug)]
struct EngineSettings {
    tessdata_dir: Option<String>,
    language: String,
    page_seg_mode: String,
    cleanup: CleanupConfig,
}

/// A handle to the engine threads; cheap to clone, shareable across tasks.
#[derive(Clone)]
pub struct OcrPool {
    jobs: mpsc::Sender<Job>,
    threads: usize,
}

impl std::fmt::Debug for OcrPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OcrPool")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl OcrPool {
    /// Starts `config.threads` engine threads and waits until every engine is initialised.
    pub fn start(config: &OcrConfig) -> Result<OcrPool, OcrError> {
        let settings = Arc::new(validate(config)?);
        if std::env::var_os("OMP_THREAD_LIMIT").is_none() {
            // Too late for this process's libgomp (see the module docs), right for children.
            std::env::set_var("OMP_THREAD_LIMIT", "1");
        }

        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        let (ready_tx, ready_rx) = mpsc::channel();
        for index in 0..config.threads {
            let settings = Arc::clone(&settings);
            let queue = Arc::clone(&queue);
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("ocr-engine-{index}"))
                .spawn(move || engine_thread(index, &settings, &queue, ready))
                .map_err(OcrError::ThreadSpawn)?;
        }
        drop(ready_tx);
        for _ in 0..config.threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                // Dropping `jobs` on return stops the threads that did start.
                Ok(Err(error)) => return Err(error),
                Err(_) => return Err(OcrError::EngineInit("an engine thread exited".into())),
            }
        }
        tracing::info!(
            threads = config.threads,
            language = %settings.language,
            page_seg_mode = %settings.page_seg_mode,
            "OCR pool started"
        );
        Ok(OcrPool {
            jobs,
            threads: config.threads,
        })
    }

    /// A pool with no engines, for a process that recognises nothing itself (an API node
    /// whose pages worker processes recognise): every page it is given fails with
    /// [`OcrError::PoolClosed`].
    pub fn without_engines() -> OcrPool {
        let (jobs, _) = mpsc::channel::<Job>();
        OcrPool { jobs, threads: 0 }
    }

    /// Recognises one page of pixels. `dpi` is the page's resolution if known; unknown or
    /// implausible (< 70) values become [`DEFAULT_DPI`].
    pub async fn recognize(&self, page: GrayImage, dpi: Option<u32>) -> Result<PageOcr, OcrError> {
        match self.submit(page, dpi, Work::Recognize).await? {
            Outcome::Recognized(result) => result,
            Outcome::Processed(_) => unreachable!("a recognise job answers Recognized"),
        }
    }

    /// Cleans a page up (resolution, blank detection, orientation, skew: see
    /// [`CleanupConfig`]) and recognises it unless it is blank.
    pub async fn process(
        &self,
        page: GrayImage,
        dpi: Option<u32>,
    ) -> Result<ProcessedPage, OcrError> {
        match self.submit(page, dpi, Work::Process).await? {
            Outcome::Processed(result) => result,
            Outcome::Recognized(_) => unreachable!("a process job answers Processed"),
        }
    }

    /// Cleans a page up (resolution, blank detection, skew) without recognising it: for pages
    /// whose content is known without reading it, such as a cover sheet whose barcode was
    /// read. Its `ocr` is empty and it is not turned (orientation comes from a reading).
    pub async fn clean_up(
        &self,
        page: GrayImage,
        dpi: Option<u32>,
    ) -> Result<ProcessedPage, OcrError> {
        match self.submit(page, dpi, Work::CleanUp).await? {
            Outcome::Processed(result) => result,
            Outcome::Recognized(_) => unreachable!("a clean-up job answers Processed"),
        }
    }

    /// As [`OcrPool::process`], failing with [`OcrError::PageTimeout`] when the page takes
    /// longer than `limit` from the moment an engine starts on it: time spent waiting for a
    /// free engine behind other pages does not count. The engine stops recognising when the
    /// limit passes (libtesseract's own deadline) and takes the next page.
    pub async fn process_within(
        &self,
        image: GrayImage,
        dpi: Option<u32>,
        limit: std::time::Duration,
    ) -> Result<ProcessedPage, OcrError> {
        let (reply, response) = oneshot::channel();
        let (started, engine_started) = oneshot::channel();
        self.jobs
            .send(Job {
                image,
                dpi,
                work: Work::Process,
                reply,
                started: Some(started),
                limit: Some(limit),
            })
            .map_err(|_| OcrError::PoolClosed)?;
        // Queue wait: as long as it takes (the engine drops `started` unsent only when the
        // pool stops, which `response` then reports).
        let _ = engine_started.await;
        let outcome = tokio::time::timeout(limit, response)
            .await
            .map_err(|_| OcrError::PageTimeout {
                limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
            })?
            .map_err(|_| OcrError::PoolClosed)?;
        match outcome {
            Outcome::Processed(result) => result,
            Outcome::Recognized(_) => unreachable!("a process job answers Processed"),
        }
    }

    async fn submit(
        &self,
        image: GrayImage,
        dpi: Option<u32>,
        work: Work,
    ) -> Result<Outcome, OcrError> {
        let (reply, response) = oneshot::channel();
        self.jobs
            .send(Job {
                image,
                dpi,
                work,
                reply,
                started: None,
                limit: None,
            })
            .map_err(|_| OcrError::PoolClosed)?;
        response.await.map_err(|_| OcrError::PoolClosed)
    }

    /// How many engine threads the pool runs.
    pub fn threads(&self) -> usize {
        self.threads
    }
}

fn validate(config: &OcrConfig) -> Result<EngineSettings, OcrError> {
    if config.threads == 0 {
        return Err(OcrError::InvalidConfig("threads must be at least 1".into()));
    }
    let language_ok = !config.language.is_empty()
        && config.language.split('+').all(|part| {
            !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !language_ok {
        return Err(OcrError::InvalidConfig(
            "language must be Tesseract language codes joined by '+', e.g. eng or eng+deu".into(),
        ));
    }
    if config.page_seg_mode > MAX_PAGE_SEG_MODE || matches!(config.page_seg_mode, 0 | 2) {
        return Err(OcrError::InvalidConfig(format!(
            "page segmentation mode {} does not recognise text (use 1 or 3–13)",
            config.page_seg_mode
        )));
    }
    let tessdata_dir = match &config.tessdata_dir {
        Some(dir) => Some(
            dir.to_str()
                .ok_or_else(|| OcrError::InvalidConfig("tessdata_dir is not valid UTF-8".into()))?
                .to_owned(),
        ),
        None => None,
    };
    if let Some(dir) = &config.tessdata_dir {
        for language in config.language.split('+') {
            if !dir.join(format!("{language}.traineddata")).is_file() {
                return Err(language_missing(language));
            }
        }
    }
    Ok(EngineSettings {
        tessdata_dir,
        language: config.language.clone(),
        page_seg_mode: config.page_seg_mode.to_string(),
        cleanup: config.cleanup.clone(),
    })
}

/// Debian packages tesseract-ocr-<code> with underscores as dashes (chi_sim → chi-sim).
fn language_missing(language: &str) -> OcrError {
    let package = language
        .split('+')
        .map(|code| {
            format!(
                "tesseract-ocr-{}",
                code.to_ascii_lowercase().replace('_', "-")
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    OcrError::LanguageDataMissing {
        language: language.to_owned(),
        package,
    }
}

fn create_engine(settings: &EngineSettings) -> Result<Engine, OcrError> {
    Engine::new(
        settings.tessdata_dir.as_deref(),
        &settings.language,
        &settings.page_seg_mode,
    )
    .map_err(|error| match error {
        EngineInitError::LanguageData => language_missing(&settings.language),
        EngineInitError::Other(message) => OcrError::EngineInit(message),
    })
}

fn engine_thread(
    index: usize,
    settings: &EngineSettings,
    queue: &Mutex<mpsc::Receiver<Job>>,
    ready: mpsc::Sender<Result<(), OcrError>>,
) {
    disable_openmp_parallelism_for_this_thread();
    let started = Instant::now();
    let mut engine = match create_engine(settings) {
        Ok(engine) => Some(engine),
        Err(error) => {
            tracing::error!(engine = index, %error, "OCR engine failed to initialise");
            let _ = ready.send(Err(error));
            return;
        }
    };
    tracing::debug!(
        engine = index,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "OCR engine initialised"
    );
    let mut osd = if settings.cleanup.orientation {
        match OsdEngine::new(settings.tessdata_dir.as_deref()) {
            Ok(osd) => Some(osd),
            Err(error) => {
                tracing::error!(engine = index, %error, "orientation detection failed to initialise");
                let _ = ready.send(Err(error));
                return;
            }
        }
    } else {
        None
    };
    let _ = ready.send(Ok(()));
    drop(ready);

    loop {
        // Holding the lock only while waiting: one idle thread waits, the others queue on the lock.
        let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(mut job) = job else { break };
        if job.reply.is_closed() {
            continue; // the caller gave up waiting
        }
        if let Some(started) = job.started.take() {
            let _ = started.send(());
        }
        let started = Instant::now();
        let deadline = job.limit.map(|limit| (started + limit, limit));
        let (width, height) = job.image.dimensions();
        let outcome = catch_unwind(AssertUnwindSafe(|| match job.work {
            Work::Recognize => Outcome::Recognized(recognize_page(
                &mut engine,
                settings,
                &job.image,
                job.dpi,
                deadline,
            )),
            Work::Process => Outcome::Processed(process_page(
                &mut engine,
                osd.as_mut(),
                settings,
                job.image,
                job.dpi,
                deadline,
            )),
            Work::CleanUp => Outcome::Processed(Ok(clean_up_page(settings, job.image, job.dpi))),
        }))
        .unwrap_or_else(|_| {
            engine = None;
            let error = || OcrError::Recognition("the engine panicked".into());
            match job.work {
                Work::Recognize => Outcome::Recognized(Err(error())),
                Work::Process | Work::CleanUp => Outcome::Processed(Err(error())),
            }
        });
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let result = match &outcome {
            Outcome::Recognized(result) => result.as_ref().map(|page| (page, None)),
            Outcome::Processed(result) => result.as_ref().map(|page| (&page.ocr, Some(page))),
        };
        match result {
            Ok((page, processed)) => tracing::debug!(
                engine = index,
                width,
                height,
                words = page.words.len(),
                mean_confidence = page.mean_confidence,
                rotation = processed.map(|p| p.rotation),
                skew_degrees = processed.and_then(|p| p.skew_degrees),
                blank = processed.map(|p| p.blank),
                elapsed_ms,
                "page recognised"
            ),
            Err(error) => {
                tracing::warn!(engine = index, width, height, elapsed_ms, %error, "page not recognised")
            }
        }
        let _ = job.reply.send(outcome);
    }
    tracing::debug!(engine = index, "OCR engine thread stopping");
}

fn recognize_page(
    engine: &mut Option<Engine>,
    settings: &EngineSettings,
    image: &GrayImage,
    dpi: Option<u32>,
    deadline: Option<(Instant, Duration)>,
) -> Result<PageOcr, OcrError> {
    let (width, height) = image.dimensions();
    if width == 0 || height == 0 {
        return Err(OcrError::InvalidPage(format!(
            "the page is {width}x{height} pixels"
        )));
    }
    let ppi = i32::try_from(plausible_dpi(dpi)).unwrap_or(i32::MAX);
    if engine.is_none() {
        tracing::info!("re-creating an OCR engine after an earlier failure");
        *engine = Some(create_engine(settings)?);
    }
    engine
        .as_mut()
        .expect("an engine was just created")
        .recognize(image, ppi, deadline)
}

/// Recognises only the part of the page that holds ink ([`cleanup::ink_bounds`]), when that
/// is less than nine tenths of it, and places the words' boxes on the whole page. On a
/// typical chart page (a few lines at the top) this saves about a quarter of recognition.
fn recognize_inked(
    engine: &mut Option<Engine>,
    settings: &EngineSettings,
    image: &GrayImage,
    dpi: u32,
    deadline: Option<(Instant, Duration)>,
) -> Result<PageOcr, OcrError> {
    let area = |width: u32, height: u32| u64::from(width) * u64::from(height);
    match cleanup::ink_bounds(image, dpi as f32) {
        Some((left, top, width, height))
            if area(width, height) * 10 < area(image.width(), image.height()) * 9 =>
        {
            let part = image::imageops::crop_imm(image, left, top, width, height).to_image();
            let mut ocr = recognize_page(engine, settings, &part, Some(dpi), deadline)?;
            for word in &mut ocr.words {
                word.left += left;
                word.top += top;
            }
            Ok(ocr)
        }
        _ => recognize_page(engine, settings, image, Some(dpi), deadline),
    }
}

/// Resolution, blank check and skew, without a reading.
fn clean_up_page(settings: &EngineSettings, image: GrayImage, dpi: Option<u32>) -> ProcessedPage {
    let started = Instant::now();
    let cleanup = &settings.cleanup;
    let stated = plausible_dpi(dpi);
    let (image, dpi) = cleanup::normalise_resolution(image, stated as f32, cleanup.target_dpi);
    let dpi = dpi.round() as u32;
    let ink = cleanup::ink_coverage(&image, dpi as f32);
    let blank = ink < cleanup.blank_max_ink;
    let (image, skew_degrees) = if blank {
        (image, None)
    } else {
        straighten(image, cleanup.deskew)
    };
    ProcessedPage {
        image,
        dpi,
        rotation: 0,
        skew_degrees,
        ink,
        blank,
        ocr: PageOcr {
            text: String::new(),
            words: Vec::new(),
            mean_confidence: 0.0,
        },
        recognition_time: Duration::ZERO,
        cleanup_time: started.elapsed(),
    }
}

/// Resolution, blank check, orientation, skew, then OCR (see [`CleanupConfig`]).
fn process_page(
    engine: &mut Option<Engine>,
    osd: Option<&mut OsdEngine>,
    settings: &EngineSettings,
    image: GrayImage,
    dpi: Option<u32>,
    deadline: Option<(Instant, Duration)>,
) -> Result<ProcessedPage, OcrError> {
    let started = Instant::now();
    let cleanup = &settings.cleanup;
    // Resolution, blank check and skew, as for a page that is not read.
    let page = clean_up_page(settings, image, dpi);
    if page.blank {
        return Ok(page);
    }
    // Almost every page of a chart is upright: it is straightened and recognised as scanned,
    // and only a poor reading asks OSD whether it is turned (then the turned page is
    // recognised too). A confident OSD answer is applied; an unsure one is kept only if the
    // turned page reads better.
    let ProcessedPage {
        image,
        dpi,
        skew_degrees,
        ink,
        ..
    } = page;
    let mut recognition_time = Duration::ZERO;
    let mut timed = |image: &GrayImage| {
        let reading = Instant::now();
        let ocr = recognize_inked(engine, settings, image, dpi, deadline);
        recognition_time += reading.elapsed();
        ocr
    };
    let ocr = timed(&image)?;
    let mut best = (image, 0, ocr, skew_degrees);
    let orientation = match osd {
        Some(osd) if reads_poorly(&best.2) => osd.detect_on(&best.0, dpi),
        _ => None,
    };
    if let Some(o) = orientation.filter(|o| o.rotate != 0) {
        let turned = cleanup::rotate_quarter_turns(best.0.clone(), o.rotate);
        // A sideways page had no text lines to measure its skew by until it was turned.
        let (turned, turned_skew) = match best.3 {
            Some(_) if o.rotate == 180 => (turned, best.3),
            _ => straighten(turned, cleanup.deskew),
        };
        let ocr = timed(&turned)?;
        if o.confidence >= cleanup.min_orientation_confidence || score(&ocr) > score(&best.2) {
            best = (turned, o.rotate, ocr, turned_skew);
        }
    }
    let (image, rotation, ocr, skew_degrees) = best;
    Ok(ProcessedPage {
        image,
        dpi,
        rotation,
        skew_degrees,
        ink,
        blank: false,
        ocr,
        recognition_time,
        cleanup_time: started.elapsed().saturating_sub(recognition_time),
    })
}

/// Whether a reading looks like a page that is not upright. Upside down, text reads as
/// fragments the engine is unsure of (or hardly any words). Sideways, Tesseract finds the
/// vertical lines and reads them well, but its words stand taller than they are wide. An
/// upright page, even a sparse form, reads mostly confidently in words wider than tall.
fn reads_poorly(ocr: &PageOcr) -> bool {
    let words: Vec<&crate::words::OcrWord> = ocr
        .words
        .iter()
        .filter(|word| word.text.chars().filter(|c| c.is_alphanumeric()).count() >= 2)
        .collect();
    if words.len() < 3 {
        return true;
    }
    let confident = words.iter().filter(|word| word.confidence >= 60.0).count();
    let long: Vec<_> = words
        .iter()
        .filter(|word| word.text.chars().count() >= 4)
        .collect();
    let standing = long.iter().filter(|word| word.height > word.width).count();
    confident * 10 < words.len() * 6
        || ocr.mean_confidence < 55.0
        || (long.len() >= 3 && standing * 2 > long.len())
}

/// How good a recognition is, to choose between orientations: confident words count.
fn score(ocr: &PageOcr) -> f32 {
    ocr.words
        .iter()
        .filter(|word| word.confidence >= 60.0 && word.text.chars().any(char::is_alphanumeric))
        .count() as f32
        + ocr.mean_confidence / 100.0
}

/// The smallest skew worth a rotation. Recognition of a 300-dpi letter crooked by up to 0.5°
/// is as good as of the straight page (`cargo bench -p chartvault-ocr --bench cleanup_cost`);
/// from 0.8° it loses characters.
const STRAIGHTEN_MIN_DEGREES: f32 = 0.4;

/// Measures the skew and rotates the page straight when it is off by
/// [`STRAIGHTEN_MIN_DEGREES`] or more.
fn straighten(image: GrayImage, deskew: bool) -> (GrayImage, Option<f32>) {
    if !deskew {
        return (image, None);
    }
    match cleanup::estimate_skew(&image) {
        Some(skew) if skew.abs() >= STRAIGHTEN_MIN_DEGREES => {
            (cleanup::rotate(&image, -skew), Some(skew))
        }
        Some(skew) => (image, Some(skew)),
        None => (image, None),
    }
}

fn plausible_dpi(dpi: Option<u32>) -> u32 {
    dpi.filter(|dpi| *dpi >= MIN_PLAUSIBLE_DPI)
        .unwrap_or(DEFAULT_DPI)
}

/// Makes every OpenMP parallel region started from this thread run on this thread alone.
///
/// libgomp reads `OMP_THREAD_LIMIT` only when it is loaded, and Tesseract's LSTM code asks
/// for a fixed number of threads (`num_threads(4)`), which `omp_set_num_threads` does not
/// override. With max-active-levels 0, no parallel region is active, so each runs with one
/// thread. The functions are looked up at run time so that a Tesseract built without OpenMP
/// needs nothing.
fn disable_openmp_parallelism_for_this_thread() {
    type SetInt = unsafe extern "C" fn(libc::c_int);
    for (name, value) in [
        (c"omp_set_max_active_levels", 0),
        (c"omp_set_num_threads", 1),
    ] {
        // SAFETY: dlsym only looks a symbol up; the name is NUL-terminated.
        let symbol = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
        if symbol.is_null() {
            continue;
        }
        // SAFETY: both OpenMP routines have the C signature `void f(int)` in every runtime.
        unsafe {
            let set: SetInt = std::mem::transmute::<*mut libc::c_void, SetInt>(symbol);
            set(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_package_names_follow_language_codes() {
        let error = language_missing("chi_sim");
        assert!(
            error.to_string().contains("tesseract-ocr-chi-sim"),
            "{error}"
        );
        assert!(language_missing("eng")
            .to_string()
            .contains("tesseract-ocr-eng"));
    }

    #[test]
    fn unusable_configurations_are_rejected() {
        let base = OcrConfig::default();
        for config in [
            OcrConfig {
                threads: 0,
                ..base.clone()
            },
            OcrConfig {
                language: "../eng".into(),
                ..base.clone()
            },
            OcrConfig {
                page_seg_mode: 14,
                ..base.clone()
            },
        ] {
            assert!(matches!(validate(&config), Err(OcrError::InvalidConfig(_))));
        }
    }

    #[test]
    fn missing_language_data_names_the_package() {
        let dir = std::env::temp_dir();
        let config = OcrConfig {
            threads: 1,
            language: "xyz".into(),
            tessdata_dir: Some(dir),
            ..OcrConfig::default()
        };
        let error = OcrPool::start(&config).unwrap_err();
        assert!(
            matches!(error, OcrError::LanguageDataMissing { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("tesseract-ocr-xyz"), "{error}");
    }
}
