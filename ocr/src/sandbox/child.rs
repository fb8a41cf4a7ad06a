//! The decoder process's side: one request from the parent, answered with this crate's own
//! decoders reading the file through the pipes.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;

use super::wire::{self, Job, PageHeader, Request, WireError};
use crate::{DecodedPage, PageReader, ScanError};

/// Exit status when the request was answered (the answer may be an error).
const EXIT_ANSWERED: i32 = 0;
/// Exit status when the parent could not be talked to (gone, or not speaking the protocol).
const EXIT_NO_PARENT: i32 = 2;

/// Bytes asked for at a time when the decoder reads less (TIFF's 8 KiB buffer, the first
/// small reads of `read_to_end`): sequential reading is then one round trip per 256 KiB.
const READ_AHEAD: usize = 256 << 10;
/// The longest request the child accepts.
const MAX_REQUEST: u64 = 1 << 20;

/// The whole `main` of a decoder process started by [`crate::Sandbox`]: reads one request
/// on stdin, answers it on stdout, and returns the exit status to exit with.
///
/// Call it first thing in `main`, before any logging or runtime is set up: it disables core
/// dumps, makes the process undumpable and arms its death with the parent, moves the
/// protocol off file descriptors 0 and 1 (whatever a library prints to stdout goes to
/// stderr), and replaces the panic hook with one that prints only where a panic happened
/// (a panic message may quote the file).
pub fn serve_child() -> i32 {
    protect_process();
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|location| format!(" at {}:{}", location.file(), location.line()))
            .unwrap_or_default();
        eprintln!("chartvault decoder: a decoder panicked{location}");
    }));
    let Ok(link) = ChildLink::from_stdio() else {
        return EXIT_NO_PARENT;
    };
    let link = Rc::new(RefCell::new(link));
    match serve(&link) {
        Ok(()) => EXIT_ANSWERED,
        Err(_) => EXIT_NO_PARENT,
    }
}

/// No core dumps, no tracing or reading through `/proc`, and death with the parent's thread
/// that started this process (a hung decoder must not outlive a crashed server). The parent
/// also sets `RLIMIT_CORE` to 0 before it sends the request.
fn protect_process() {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls; `none` lives across the call. If one fails, the parent's
    // limits still hold; a parent that died before the death signal was armed leaves the
    // request unread: this process exits on the closed pipe.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &none);
        libc::prctl(libc::PR_SET_DUMPABLE, 0 as libc::c_ulong);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
    }
}

fn serve(link: &Rc<RefCell<ChildLink>>) -> io::Result<()> {
    link.borrow_mut()
        .send(wire::TAG_GREETING, &[wire::GREETING])?;
    let request: Request = {
        let mut link = link.borrow_mut();
        let (tag, len) = wire::read_frame_head(&mut link.input)?;
        if tag != wire::TAG_REQUEST {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "no request"));
        }
        let json = wire::read_payload(&mut link.input, len, MAX_REQUEST)?;
        serde_json::from_slice(&json)?
    };
    link.borrow_mut().send(wire::TAG_ACCEPTED, &[])?;
    let file = ParentFile::new(link.clone(), request.file_len);
    match request.job {
        Job::Preflight { limits } => match crate::preflight(file, &limits) {
            Ok(preflight) => {
                let json = serde_json::to_vec(&preflight)?;
                link.borrow_mut().send(wire::TAG_PREFLIGHT, &[&json])
            }
            Err(error) => send_failure(link, &error),
        },
        Job::DecodePages {
            format,
            limits,
            expected_pages,
            pages,
        } => {
            let mut reader = match PageReader::open(file, format, &limits) {
                Ok(reader) => reader,
                Err(error) => return send_failure(link, &error),
            };
            if reader.page_count() != expected_pages {
                let error = ScanError::Malformed {
                    format,
                    detail: format!(
                        "the file now has {} pages, {expected_pages} were accepted",
                        reader.page_count()
                    ),
                };
                return send_failure(link, &error);
            }
            link.borrow_mut().send(wire::TAG_OPENED, &[])?;
            for index in pages {
                match reader.decode(index) {
                    Ok(page) => send_page(link, index, &page)?,
                    Err(error) => return send_failure(link, &error),
                }
            }
            Ok(())
        }
    }
}

fn send_failure(link: &Rc<RefCell<ChildLink>>, error: &ScanError) -> io::Result<()> {
    let json = serde_json::to_vec(&WireError::from(error))?;
    link.borrow_mut().send(wire::TAG_FAILED, &[&json])
}

fn send_page(link: &Rc<RefCell<ChildLink>>, index: usize, page: &DecodedPage) -> io::Result<()> {
    let (width, height) = page.image.dimensions();
    let header = serde_json::to_vec(&PageHeader {
        index,
        width,
        height,
        dpi: page.dpi,
        text_layer: page.text_layer.clone(),
        no_image: page.no_image.clone(),
    })?;
    let header_len = u32::try_from(header.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "page header too long"))?;
    link.borrow_mut().send(
        wire::TAG_PAGE,
        &[&header_len.to_le_bytes(), &header, page.image.as_raw()],
    )
}

/// The child's pipes to the parent, on descriptors of their own.
struct ChildLink {
    input: BufReader<File>,
    output: BufWriter<File>,
}

impl ChildLink {
    /// Takes stdin and stdout for the protocol: duplicates them to new descriptors, then
    /// points descriptor 1 at stderr and descriptor 0 at `/dev/null`, so nothing else in the
    /// process can write into the protocol or read from it.
    fn from_stdio() -> io::Result<ChildLink> {
        let input = duplicate(libc::STDIN_FILENO)?;
        let output = duplicate(libc::STDOUT_FILENO)?;
        let null = File::open("/dev/null")?;
        // SAFETY: dup2 onto the standard descriptors, which this process owns.
        unsafe {
            use std::os::fd::AsRawFd;
            if libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO) < 0
                || libc::dup2(null.as_raw_fd(), libc::STDIN_FILENO) < 0
            {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(ChildLink {
            input: BufReader::with_capacity(64 << 10, input),
            output: BufWriter::with_capacity(64 << 10, output),
        })
    }

    fn send(&mut self, tag: u8, parts: &[&[u8]]) -> io::Result<()> {
        wire::write_frame(&mut self.output, tag, parts)?;
        self.output.flush()
    }

    /// Asks the parent for up to `out.len()` bytes at `offset`; returns how many came (0 at
    /// end of file).
    fn fetch(&mut self, offset: u64, out: &mut [u8]) -> io::Result<usize> {
        let asked = out.len().min(wire::MAX_READ as usize) as u32;
        self.send(
            wire::TAG_READ,
            &[&offset.to_le_bytes(), &asked.to_le_bytes()],
        )?;
        let (tag, len) = wire::read_frame_head(&mut self.input)?;
        if tag != wire::TAG_DATA || len > u64::from(asked) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the parent did not answer a read",
            ));
        }
        let len = len as usize;
        self.input.read_exact(&mut out[..len])?;
        Ok(len)
    }
}

/// A new close-on-exec descriptor for `fd`, as a `File`.
fn duplicate(fd: RawFd) -> io::Result<File> {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that nothing else owns.
    let new_fd = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if new_fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `new_fd` is open and owned by nobody else.
    Ok(unsafe { File::from_raw_fd(new_fd) })
}

/// The file being decoded, as the decoders see it: reads are ranges asked of the parent,
/// through a read-ahead buffer.
struct ParentFile {
    link: Rc<RefCell<ChildLink>>,
    len: u64,
    position: u64,
    ahead: Vec<u8>,
    /// The file offset of `ahead[0]`.
    ahead_start: u64,
}

impl ParentFile {
    fn new(link: Rc<RefCell<ChildLink>>, len: u64) -> ParentFile {
        ParentFile {
            link,
            len,
            position: 0,
            ahead: Vec::new(),
            ahead_start: 0,
        }
    }

    /// Copies what the read-ahead buffer holds at the current position.
    fn copy_buffered(&mut self, out: &mut [u8]) -> Option<usize> {
        let skip = self.position.checked_sub(self.ahead_start)?;
        let available = self.ahead.get(usize::try_from(skip).ok()?..)?;
        if available.is_empty() {
            return None;
        }
        let n = out.len().min(available.len());
        out[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Some(n)
    }
}

impl Read for ParentFile {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() || self.position >= self.len {
            return Ok(0);
        }
        if let Some(n) = self.copy_buffered(out) {
            return Ok(n);
        }
        let remaining = usize::try_from(self.len - self.position).unwrap_or(usize::MAX);
        if out.len() >= READ_AHEAD {
            let wanted = out.len().min(remaining);
            let n = self
                .link
                .borrow_mut()
                .fetch(self.position, &mut out[..wanted])?;
            self.position += n as u64;
            return Ok(n);
        }
        self.ahead.resize(READ_AHEAD.min(remaining), 0);
        let n = self
            .link
            .borrow_mut()
            .fetch(self.position, &mut self.ahead)?;
        self.ahead.truncate(n);
        self.ahead_start = self.position;
        Ok(self.copy_buffered(out).unwrap_or(0))
    }
}

impl Seek for ParentFile {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        let position = match target {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
            SeekFrom::End(delta) => self.len.checked_add_signed(delta),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        self.position = position;
        Ok(position)
    }
}
