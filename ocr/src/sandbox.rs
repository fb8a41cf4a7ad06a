//! Decoding untrusted scans in a child process under a memory ceiling.
//!
//! This module owns the decoder process: [`Sandbox`] starts it, serves it the file's bytes
//! and reads back what [`crate::preflight`] and [`crate::PageReader`] would have returned
//! in this process; [`serve_child`] is the whole `main` of the child. The decoders (hayro,
//! dicom-rs, tiff, image) parse hostile input. A decompression bomb that escapes the format
//! guards makes Rust abort on allocation failure, and a decoder bug can crash: in the server
//! process either takes everything down, again on every restart since the job is re-run.
//! In a child, either fails one page.
//!
//! Promises:
//! - the child's data segment (heap and private anonymous mappings, `RLIMIT_DATA`) is capped
//!   at [`Sandbox::memory_ceiling`] before it is sent any byte of the file, as a hard limit
//!   it cannot raise; it neither dumps core nor can be traced or read through `/proc` (its
//!   memory holds page pixels: PHI);
//! - the file's bytes reach the child only through its pipes, as ranges it asks for (no path,
//!   no temporary file: plaintext never touches disk); the child holds what its decoder holds;
//! - an answer from the child is the answer in-process decoding gives: the same
//!   [`Preflight`], the same pixels, resolution and text layer, and the same [`ScanError`]
//!   variant with the same message;
//! - a failure of the caller's own reader is [`ScanError::Io`] (transient), as in-process;
//!   so is a child that cannot be started, or that fails before it has taken the request
//!   (wrong program, another protocol version, a ceiling too small to start): not the
//!   file's fault, a deployment problem;
//! - a child that crashes, is killed (its memory ceiling: the allocation failure aborts it),
//!   answers what cannot be read, or stays silent longer than the idle timeout once it has
//!   taken the request is [`ScanError::DecoderStopped`], saying so in words for the
//!   uploader, never content;
//! - the child is killed and reaped on every path out of a call (answer, error, early stop,
//!   panic in the caller's sink); it also dies with the thread that started it
//!   (`PR_SET_PDEATHSIG`), so it never outlives a crashed server;
//! - the child writes nothing but the protocol to its stdout (what a library prints there
//!   goes to stderr) and logs nothing.
//!
//! The child is started with posix_spawn, not fork: the server's memory is not copied, and
//! the cost of a call does not grow with it. Linux only (`prctl`, `prlimit`,
//! `F_SETPIPE_SZ`; `RLIMIT_DATA` covers mmap since Linux 4.7).
//!
//! The calls block; call them from a blocking thread. Each call starts one child and ends
//! it (about 2 ms; see the `sandbox_overhead` bench for this and the cost per page).

mod child;
mod parent;
mod wire;

use std::ffi::OsString;
use std::io::{Cursor, Read, Seek};
use std::ops::ControlFlow;
use std::time::Duration;

use image::{GrayImage, Luma};

use crate::{DecodedPage, Limits, Preflight, ScanError, ScanFormat};

pub use child::serve_child;

use parent::{Answer, Session};
use wire::Job;

/// How to start decoder processes, and their bounds. Cheap to clone; every call starts a
/// process of its own, so one `Sandbox` serves any number of threads at once.
#[derive(Debug, Clone)]
pub struct Sandbox {
    program: OsString,
    args: Vec<OsString>,
    memory_ceiling: u64,
    idle_timeout: Option<Duration>,
}

impl Sandbox {
    /// Decoder processes run `program` with `args`, which must call [`serve_child`] (and
    /// nothing else first: no logging set-up, no runtime) and exit with its code. In the app
    /// that is its own binary (`/proc/self/exe`, which stays the running binary even when an
    /// upgrade replaces the file) with a hidden subcommand.
    ///
    /// `memory_ceiling` bounds the child's data segment in bytes (`RLIMIT_DATA`): the
    /// decoder's allocations and the child's own start-up (a few MiB) together.
    pub fn new<I, A>(program: impl Into<OsString>, args: I, memory_ceiling: u64) -> Sandbox
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        Sandbox {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            memory_ceiling,
            idle_timeout: None,
        }
    }

    /// Kills a child that sends nothing (no request for bytes, no page, no answer) for this
    /// long, failing the call with [`ScanError::DecoderStopped`]. Time the caller's page sink
    /// spends does not count. Without it a hung decoder blocks its caller for ever.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Sandbox {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The bound on each child's data segment, in bytes.
    pub fn memory_ceiling(&self) -> u64 {
        self.memory_ceiling
    }

    /// The idle timeout, if any.
    pub fn idle_timeout(&self) -> Option<Duration> {
        self.idle_timeout
    }

    /// [`crate::preflight`] in a child process: sniffs `reader`'s content and reads every page
    /// header, enforcing `limits`.
    pub fn preflight<R: Read + Seek>(
        &self,
        reader: R,
        limits: &Limits,
    ) -> Result<Preflight, ScanError> {
        let job = Job::Preflight {
            limits: limits.clone(),
        };
        let mut session = Session::start(self, reader, job).map_err(|stop| stop.error(None))?;
        match session.next_answer() {
            Ok(Answer::Preflight(preflight)) => Ok(*preflight),
            Ok(Answer::Failed(error)) => Err(error),
            Ok(_) => Err(session.misbehaved().error(None)),
            Err(stop) => Err(stop.error(None)),
        }
    }

    /// [`crate::PageReader::open`] on `reader` in a child process, then
    /// [`crate::PageReader::decode`] of each of `pages` (0-based) in order, handing each page
    /// to `sink` as soon as it arrives.
    ///
    /// Errors of the file as a whole are returned: the open fails, the file does not have
    /// `expected_pages` pages ([`ScanError::Malformed`]: "the file now has N pages, M were
    /// accepted"), the caller's reader fails or the child stops before the first page. Errors
    /// of a page go to `sink` as that page's result, and decoding stops after them: a page's
    /// decoder error, [`ScanError::DecoderStopped`] when the child stopped on it, or
    /// [`ScanError::Io`] when the caller's reader failed during it. `sink` returning
    /// [`ControlFlow::Break`] kills the child at once. Returns `Ok(())` once every page went
    /// to `sink`, or after a page error, or after a break.
    ///
    /// The child decodes the next page while `sink` handles the previous one.
    pub fn decode_pages<R: Read + Seek>(
        &self,
        reader: R,
        format: ScanFormat,
        limits: &Limits,
        expected_pages: usize,
        pages: &[usize],
        mut sink: impl FnMut(usize, Result<DecodedPage, ScanError>) -> ControlFlow<()>,
    ) -> Result<(), ScanError> {
        let job = Job::DecodePages {
            format,
            limits: limits.clone(),
            expected_pages,
            pages: pages.to_vec(),
        };
        let mut session = Session::start(self, reader, job).map_err(|stop| stop.error(None))?;
        match session.next_answer() {
            Ok(Answer::Opened) => {}
            Ok(Answer::Failed(error)) => return Err(error),
            Ok(_) => return Err(session.misbehaved().error(None)),
            Err(stop) => return Err(stop.error(None)),
        }
        for &index in pages {
            let result = match session.next_answer() {
                Ok(Answer::Page(answered, page)) if answered == index => Ok(page),
                Ok(Answer::Failed(error)) => Err(error),
                Ok(_) => Err(session.misbehaved().error(Some(index + 1))),
                Err(stop) => Err(stop.error(Some(index + 1))),
            };
            let failed = result.is_err();
            let flow = sink(index, result);
            session.sink_returned();
            if failed || flow.is_break() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Starts one child and decodes a blank 300-dpi letter page (2550×3300, as a PNG)
    /// through it: a deployment check for start-up. Fails with [`ScanError::Io`] for a
    /// wrong program or subcommand or a binary of another protocol version, and with
    /// [`ScanError::DecoderStopped`] for a ceiling too small for an ordinary page.
    pub fn check(&self) -> Result<(), ScanError> {
        let (width, height) = (2550, 3300);
        let mut png = Vec::new();
        GrayImage::from_pixel(width, height, Luma([255]))
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("a PNG encodes into memory");
        let mut decoded = None;
        self.decode_pages(
            Cursor::new(png),
            ScanFormat::Png,
            &Limits::default(),
            1,
            &[0],
            |_, page| {
                decoded = Some(page);
                ControlFlow::Continue(())
            },
        )?;
        let wrong = |detail: &str| ScanError::DecoderStopped {
            page: Some(1),
            detail: detail.into(),
        };
        let page = decoded.ok_or_else(|| wrong("the decoder answered no page"))??;
        if page.image.dimensions() != (width, height) || page.image.iter().any(|&v| v != 255) {
            return Err(wrong("the decoder answered a wrong page"));
        }
        Ok(())
    }
}
