//! The plumbing every decoder of the guard shares: the [`Decode`] trait, the [`Input`] a
//! stage reads (the stream's data or the previous stage's output), the run's [`Meter`], and
//! the zlib-header test hayro's fallback applies. The decoders themselves are in `filters`
//! and `inflate`.

use std::cell::Cell;

/// Shared by the stages of one run.
#[derive(Debug)]
pub(super) struct Meter {
    pub(super) bytes: Cell<u64>,
    pub(super) consumed: Cell<u64>,
    pub(super) work: Cell<u64>,
    work_cap: u64,
    pub(super) over_cap: Cell<bool>,
    pub(super) over_work: Cell<bool>,
}

impl Meter {
    pub(super) fn new(work_cap: u64) -> Meter {
        Meter {
            bytes: Cell::new(0),
            consumed: Cell::new(0),
            work: Cell::new(0),
            work_cap,
            over_cap: Cell::new(false),
            over_work: Cell::new(false),
        }
    }

    pub(super) fn stopped(&self) -> bool {
        self.over_cap.get() || self.over_work.get()
    }

    /// Adds table-building work; `false` once over the run's cap of it.
    pub(super) fn work(&self, entries: u64) -> bool {
        let work = self.work.get().saturating_add(entries);
        self.work.set(work);
        if work > self.work_cap {
            self.over_work.set(true);
        }
        !self.over_work.get()
    }
}

/// A decoder: writes its next output into `out`, returning how many bytes; 0 means it has
/// ended (finished or failed: either way hayro stops there).
pub(super) trait Decode {
    fn read(&mut self, out: &mut [u8]) -> usize;

    /// For the last step of a chain, whose bytes nobody looks at: produces up to `max` bytes
    /// without handing them out, returning how many; 0 at the end. How much a decoder
    /// produces never depends on the values of the bytes it produced, so a decoder may count
    /// without keeping them (once it has, it must go on that way).
    fn skip(&mut self, max: u64) -> u64 {
        let mut scratch = [0u8; 4096];
        self.read(&mut scratch[..max.min(4096) as usize]) as u64
    }
}

/// The input of a stage: the stream's data, or the previous stage's output through a buffer.
pub(super) struct Input<'a> {
    source: Option<Box<dyn Decode + 'a>>,
    /// The data (first stage), handed out in steps of [`BUFFER`] counted on the meter.
    data: &'a [u8],
    meter: Option<&'a Meter>,
    buffer: Vec<u8>,
    pos: usize,
    end: usize,
}

const BUFFER: usize = 8 << 10;

impl<'a> Input<'a> {
    pub(super) fn bytes(data: &'a [u8], meter: &'a Meter) -> Input<'a> {
        Input {
            source: None,
            data,
            meter: Some(meter),
            buffer: Vec::new(),
            pos: 0,
            end: 0,
        }
    }

    pub(super) fn stage(source: Box<dyn Decode + 'a>) -> Input<'a> {
        Input {
            source: Some(source),
            data: &[],
            meter: None,
            buffer: vec![0; BUFFER],
            pos: 0,
            end: 0,
        }
    }

    #[inline]
    pub(super) fn byte(&mut self) -> Option<u8> {
        if self.pos == self.end && !self.refill() {
            return None;
        }
        let byte = match self.source {
            None => self.data[self.pos],
            Some(_) => self.buffer[self.pos],
        };
        self.pos += 1;
        Some(byte)
    }

    #[inline]
    pub(super) fn peek(&mut self) -> Option<u8> {
        if self.pos == self.end && !self.refill() {
            return None;
        }
        Some(match self.source {
            None => self.data[self.pos],
            Some(_) => self.buffer[self.pos],
        })
    }

    fn refill(&mut self) -> bool {
        let Some(source) = self.source.as_mut() else {
            if self.end == self.data.len() {
                return false;
            }
            let end = (self.end + BUFFER).min(self.data.len());
            if let Some(meter) = self.meter {
                meter
                    .consumed
                    .set(meter.consumed.get() + (end - self.end) as u64);
            }
            self.end = end;
            return true;
        };
        let n = source.read(&mut self.buffer);
        self.pos = 0;
        self.end = n;
        if n == 0 {
            // Ended: never ask again.
            self.source = None;
            self.buffer = Vec::new();
            self.data = &[];
            return false;
        }
        true
    }
}

/// Whether the first two bytes look like a zlib header to hayro's fallback decoder
/// (deflate, header checksum, no preset dictionary); hayro then decodes from byte 2.
pub(super) fn zlib_header(head: &[u8]) -> bool {
    head.len() >= 2
        && head[0] & 0x0f == 8
        && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0
        && head[1] & 0x20 == 0
}
