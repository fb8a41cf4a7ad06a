//! The parent's side of one decoder process: starting it under its limits, serving it the
//! file's bytes, reading its answers within the idle timeout, and ending it.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use image::GrayImage;

use super::wire::{self, Job, PageHeader, Request, WireError};
use super::Sandbox;
use crate::{DecodedPage, Preflight, ScanError};

/// How long a child that closed its pipes gets to finish dying before it is killed (its
/// exit status says what happened).
const EXIT_GRACE: Duration = Duration::from_secs(2);

/// What a child answered (read requests are served on the way).
pub(super) enum Answer {
    Preflight(Box<Preflight>),
    Opened,
    Page(usize, DecodedPage),
    Failed(ScanError),
}

/// Why a call ends without an answer.
pub(super) enum Stop {
    /// Not the file's fault, and maybe not for ever: the caller's reader failed, or no
    /// decoder process could be started.
    Transient(io::Error),
    /// The decoder process stopped on the file (crash, memory ceiling, silence, garbage).
    Stopped(String),
}

impl Stop {
    /// The error for the caller; `page` (1-based) is the page being decoded, if any.
    pub(super) fn error(self, page: Option<usize>) -> ScanError {
        match self {
            Stop::Transient(error) => ScanError::Io(error),
            Stop::Stopped(detail) => ScanError::DecoderStopped { page, detail },
        }
    }
}

/// One request to one decoder process.
pub(super) struct Session<R> {
    process: DecoderProcess,
    file: R,
    /// Where `file` is positioned.
    position: u64,
    buffer: Vec<u8>,
    /// Bounds a page the child may send: the request's pixel limit.
    max_pixels: u64,
}

impl<R: Read + Seek> Session<R> {
    /// Starts a decoder process, waits for its greeting, limits it, sends it `job` and waits
    /// until it has taken it.
    pub(super) fn start(sandbox: &Sandbox, mut file: R, job: Job) -> Result<Session<R>, Stop> {
        let file_len = file.seek(SeekFrom::End(0)).map_err(Stop::Transient)?;
        let max_pixels = match &job {
            Job::Preflight { .. } => 0,
            // A DICOM preview (or its placeholder) is bounded by its own side, not the limits.
            Job::DecodePages { limits, .. } => limits
                .max_pixels_per_page
                .max(u64::from(crate::DICOM_PREVIEW_MAX_SIDE).pow(2)),
        };
        let mut process = DecoderProcess::spawn(sandbox)?;
        process.await_greeting()?;
        process.limit()?;
        let request = serde_json::to_vec(&Request { file_len, job })
            .expect("a request serialises: it holds no maps and no non-finite floats");
        process.send(wire::TAG_REQUEST, &[&request])?;
        process.await_acceptance()?;
        Ok(Session {
            process,
            file,
            position: file_len,
            buffer: Vec::new(),
            max_pixels,
        })
    }

    /// The child's next answer, serving its read requests until it comes.
    pub(super) fn next_answer(&mut self) -> Result<Answer, Stop> {
        loop {
            let (tag, len) = self.process.receive_head()?;
            match tag {
                wire::TAG_READ => {
                    let request = self.process.receive_payload(len, 12)?;
                    if request.len() != 12 {
                        return Err(self.misbehaved());
                    }
                    let mut offset = [0u8; 8];
                    offset.copy_from_slice(&request[..8]);
                    let mut length = [0u8; 4];
                    length.copy_from_slice(&request[8..]);
                    self.serve(u64::from_le_bytes(offset), u32::from_le_bytes(length))?;
                }
                wire::TAG_PREFLIGHT => {
                    let json = self.process.receive_payload(len, wire::MAX_JSON)?;
                    return match serde_json::from_slice(&json) {
                        Ok(preflight) => Ok(Answer::Preflight(Box::new(preflight))),
                        Err(_) => Err(self.misbehaved()),
                    };
                }
                wire::TAG_FAILED => {
                    let json = self.process.receive_payload(len, wire::MAX_JSON)?;
                    return match serde_json::from_slice::<WireError>(&json) {
                        Ok(error) => Ok(Answer::Failed(error.into())),
                        Err(_) => Err(self.misbehaved()),
                    };
                }
                wire::TAG_PAGE => return self.receive_page(len),
                wire::TAG_OPENED if len == 0 => return Ok(Answer::Opened),
                _ => return Err(self.misbehaved()),
            }
        }
    }

    /// The caller's page sink has returned: its time is not the child's silence.
    pub(super) fn sink_returned(&mut self) {
        self.process.heard();
    }

    /// Kills a child that sent what the protocol does not allow.
    pub(super) fn misbehaved(&mut self) -> Stop {
        self.process.kill();
        self.process.garbled()
    }

    /// Sends the child up to `length` bytes of the file from `offset`.
    fn serve(&mut self, offset: u64, length: u32) -> Result<(), Stop> {
        let length = length.min(wire::MAX_READ) as usize;
        if self.position != offset {
            self.position = self
                .file
                .seek(SeekFrom::Start(offset))
                .map_err(Stop::Transient)?;
        }
        self.buffer.resize(length, 0);
        let mut filled = 0;
        while filled < length {
            match self.file.read(&mut self.buffer[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(Stop::Transient(error)),
            }
        }
        self.position += filled as u64;
        self.process.send(wire::TAG_DATA, &[&self.buffer[..filled]])
    }

    fn receive_page(&mut self, len: u64) -> Result<Answer, Stop> {
        let mut header_len = [0u8; 4];
        self.process.receive_exact(&mut header_len)?;
        let header_len = u64::from(u32::from_le_bytes(header_len));
        let json = self.process.receive_payload(header_len, wire::MAX_JSON)?;
        let Ok(header) = serde_json::from_slice::<PageHeader>(&json) else {
            return Err(self.misbehaved());
        };
        let pixels = u64::from(header.width) * u64::from(header.height);
        if pixels > self.max_pixels || len != 4 + header_len + pixels {
            return Err(self.misbehaved());
        }
        let mut image = vec![0u8; pixels as usize];
        self.process.receive_exact(&mut image)?;
        let image = GrayImage::from_raw(header.width, header.height, image)
            .expect("the buffer holds width × height pixels");
        Ok(Answer::Page(
            header.index,
            DecodedPage {
                image,
                dpi: header.dpi,
                text_layer: header.text_layer,
                no_image: header.no_image,
            },
        ))
    }
}

/// A running decoder process and its pipes; killed and reaped when dropped.
struct DecoderProcess {
    child: Child,
    link: Link,
    memory_ceiling: u64,
    /// Whether the child has taken the request under its limits: failures before that are
    /// the deployment's (wrong program, ceiling too small to start), after it the file's.
    accepted: bool,
}

impl DecoderProcess {
    fn spawn(sandbox: &Sandbox) -> Result<DecoderProcess, Stop> {
        let mut command = Command::new(&sandbox.program);
        command
            .args(&sandbox.args)
            // Nothing of the server's environment (which may hold the KEK, `keys.kek_env`)
            // reaches the process that parses hostile files; only what loading it needs.
            .env_clear()
            .env("OMP_THREAD_LIMIT", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
            command.env("LD_LIBRARY_PATH", path);
        }
        // No `pre_exec`: std then starts the child with posix_spawn (vfork-like) instead of
        // fork, which copies this process's page tables (90 ms for 1 GiB resident, during
        // which its other threads cannot fault pages in). The limits are set with prlimit
        // once the child has greeted us, before it is sent any of the file.
        let mut child = command.spawn().map_err(|error| {
            Stop::Transient(io::Error::new(
                error.kind(),
                format!("the decoder process could not be started: {error}"),
            ))
        })?;
        let to_child = child.stdin.take().expect("stdin is piped");
        let from_child = child.stdout.take().expect("stdout is piped");
        let link = Link::new(to_child, from_child, sandbox.idle_timeout);
        let mut process = DecoderProcess {
            child,
            link,
            memory_ceiling: sandbox.memory_ceiling,
            accepted: false,
        };
        if let Err(error) = process.link.make_non_blocking() {
            return Err(process.stop(&error));
        }
        Ok(process)
    }

    fn await_greeting(&mut self) -> Result<(), Stop> {
        let (tag, len) = self.receive_head()?;
        let greeting = self.receive_payload(len, wire::GREETING.len() as u64)?;
        if tag != wire::TAG_GREETING || greeting != wire::GREETING {
            self.kill();
            return Err(Stop::Transient(io::Error::other(
                "the decoder process is not a chartvault decoder of this version",
            )));
        }
        Ok(())
    }

    /// Caps the child's data segment at the ceiling and its core dumps at nothing (hard
    /// limits: the child cannot raise them again).
    fn limit(&mut self) -> Result<(), Stop> {
        let pid = self.child.id() as libc::pid_t;
        let ceiling = self.memory_ceiling as libc::rlim_t;
        for (resource, value) in [(libc::RLIMIT_DATA, ceiling), (libc::RLIMIT_CORE, 0)] {
            let limit = libc::rlimit {
                rlim_cur: value,
                rlim_max: value,
            };
            // SAFETY: `limit` outlives the call; no old limit is asked for. The pid is our
            // unreaped child's, so it cannot have been reused.
            if unsafe { libc::prlimit(pid, resource, &limit, std::ptr::null_mut()) } != 0 {
                let error = io::Error::last_os_error();
                self.kill();
                return Err(Stop::Transient(io::Error::new(
                    error.kind(),
                    format!("the decoder process could not be limited: {error}"),
                )));
            }
        }
        Ok(())
    }

    /// Waits until the child has parsed the request: from here on it works on the file.
    fn await_acceptance(&mut self) -> Result<(), Stop> {
        let (tag, len) = self.receive_head()?;
        if tag != wire::TAG_ACCEPTED || len != 0 {
            self.kill();
            return Err(self.garbled());
        }
        self.accepted = true;
        Ok(())
    }

    fn heard(&mut self) {
        self.link.last_heard = Instant::now();
    }

    fn send(&mut self, tag: u8, parts: &[&[u8]]) -> Result<(), Stop> {
        match wire::write_frame(&mut self.link, tag, parts) {
            Ok(()) => Ok(()),
            Err(error) => Err(self.stop(&error)),
        }
    }

    fn receive_head(&mut self) -> Result<(u8, u64), Stop> {
        match wire::read_frame_head(&mut self.link) {
            Ok(head) => Ok(head),
            Err(error) => Err(self.stop(&error)),
        }
    }

    fn receive_payload(&mut self, len: u64, max: u64) -> Result<Vec<u8>, Stop> {
        if len > max {
            self.kill();
            return Err(self.garbled());
        }
        match wire::read_payload(&mut self.link, len, max) {
            Ok(payload) => Ok(payload),
            Err(error) => Err(self.stop(&error)),
        }
    }

    fn receive_exact(&mut self, out: &mut [u8]) -> Result<(), Stop> {
        match self.link.read_exact(out) {
            Ok(()) => Ok(()),
            Err(error) => Err(self.stop(&error)),
        }
    }

    fn garbled(&self) -> Stop {
        if self.accepted {
            Stop::Stopped("the decoder's answer could not be understood".into())
        } else {
            Stop::Transient(io::Error::other(
                "the decoder process is not a chartvault decoder of this version",
            ))
        }
    }

    /// Ends the child after a failed exchange with it and says why it failed.
    fn stop(&mut self, error: &io::Error) -> Stop {
        let how = if error.kind() == io::ErrorKind::TimedOut {
            self.kill();
            let seconds = self.link.idle_timeout.unwrap_or_default().as_secs_f64();
            if self.accepted {
                return Stop::Stopped(format!(
                    "the decoder made no progress for {seconds:.1} s and was stopped"
                ));
            }
            format!("it gave no sign of life within {seconds:.1} s")
        } else {
            match self.exit_status() {
                Some(status) => describe_exit(status),
                None => "it stopped answering".to_owned(),
            }
        };
        if self.accepted {
            Stop::Stopped(format!(
                "it does not fit within the decoder's memory limit of {} MiB, or the \
                 decoder crashed ({how})",
                self.memory_ceiling >> 20
            ))
        } else {
            Stop::Transient(io::Error::other(format!(
                "the decoder process did not start: {how}"
            )))
        }
    }

    /// The child's exit status once it has died of its own; `None` when it had to be killed
    /// because it closed its pipes but kept running.
    fn exit_status(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + EXIT_GRACE;
        let mut pause = Duration::from_micros(100);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Ok(None) | Err(_) => {
                    self.kill();
                    return None;
                }
            }
        }
    }

    /// Kills and reaps the child (a no-op once it is reaped: its pid is never reused under
    /// us).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DecoderProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn describe_exit(status: ExitStatus) -> String {
    if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGABRT => ", SIGABRT",
            libc::SIGKILL => ", SIGKILL",
            libc::SIGSEGV => ", SIGSEGV",
            libc::SIGBUS => ", SIGBUS",
            libc::SIGILL => ", SIGILL",
            libc::SIGFPE => ", SIGFPE",
            _ => "",
        };
        return format!("the decoder process was ended by signal {signal}{name}");
    }
    match status.code() {
        Some(code) => format!("the decoder process exited with status {code} before answering"),
        None => "the decoder process ended before answering".to_owned(),
    }
}

/// The parent's ends of the child's stdin and stdout, non-blocking, so every wait is a
/// `poll` bounded by the idle timeout. Reads are buffered (frames are read a few bytes at a
/// time); large reads go straight into the caller's buffer.
struct Link {
    to_child: ChildStdin,
    from_child: ChildStdout,
    idle_timeout: Option<Duration>,
    /// When the child last showed progress: sent bytes, or took some.
    last_heard: Instant,
    buffer: Box<[u8]>,
    start: usize,
    end: usize,
}

/// Pipe capacity asked for: a page's pixels move in fewer, larger steps (the default is
/// 64 KiB; unprivileged processes may ask up to `/proc/sys/fs/pipe-max-size`, 1 MiB).
const PIPE_SIZE: libc::c_int = 1 << 20;
const LINK_BUFFER: usize = 64 << 10;

impl Link {
    fn new(to_child: ChildStdin, from_child: ChildStdout, idle_timeout: Option<Duration>) -> Link {
        Link {
            to_child,
            from_child,
            idle_timeout,
            last_heard: Instant::now(),
            buffer: vec![0u8; LINK_BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    fn make_non_blocking(&self) -> io::Result<()> {
        for fd in [self.to_child.as_raw_fd(), self.from_child.as_raw_fd()] {
            // SAFETY: fcntl on a descriptor this struct owns.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
                    return Err(io::Error::last_os_error());
                }
                // Best effort: a smaller pipe only means more steps.
                libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_SIZE);
            }
        }
        Ok(())
    }

    /// Waits until `fd` is ready for `events` (or hung up), within the idle timeout.
    fn wait_for(&self, fd: RawFd, events: libc::c_short) -> io::Result<()> {
        loop {
            let timeout_ms = match self.idle_timeout {
                None => -1,
                Some(timeout) => {
                    let quiet = self.last_heard.elapsed();
                    if quiet >= timeout {
                        return Err(io::Error::from(io::ErrorKind::TimedOut));
                    }
                    (timeout - quiet).as_millis().clamp(1, i32::MAX as u128) as libc::c_int
                }
            };
            let mut poll_fd = libc::pollfd {
                fd,
                events,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let ready = unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) };
            if ready > 0 {
                return Ok(());
            }
            if ready < 0 {
                let error = io::Error::last_os_error();
                if error.kind() != io::ErrorKind::Interrupted {
                    return Err(error);
                }
            }
        }
    }

    /// One `read` from the pipe, waiting for data within the idle timeout.
    fn read_pipe(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.from_child.read(out) {
                Ok(n) => {
                    if n > 0 {
                        self.last_heard = Instant::now();
                    }
                    return Ok(n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_for(self.from_child.as_raw_fd(), libc::POLLIN)?;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }
}

impl Read for Link {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if out.len() >= self.buffer.len() {
                return self.read_pipe(out);
            }
            let mut buffer = std::mem::take(&mut self.buffer);
            let filled = self.read_pipe(&mut buffer);
            self.buffer = buffer;
            self.start = 0;
            self.end = filled?;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buffer[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

impl Write for Link {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            match self.to_child.write(data) {
                Ok(n) => {
                    if n > 0 {
                        self.last_heard = Instant::now();
                    }
                    return Ok(n);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    self.wait_for(self.to_child.as_raw_fd(), libc::POLLOUT)?;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
