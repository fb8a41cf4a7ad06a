//! Streaming, counting copies of hayro-syntax 0.9's stream decoders, chained like hayro chains
//! them, each stage capped.
//!
//! Promise: for any input, each decoder here produces at least as many bytes as the hayro
//! decoder it copies allocates before it stops (same output where hayro succeeds, and where
//! hayro fails, the output up to the failure, which hayro has allocated by then), in fixed
//! memory: a 32 KiB window for Flate, a 4096-entry table for LZW, a small buffer between
//! stages. They follow hayro's leniency, not the format's rules: a decoder stricter than
//! hayro's (miniz_oxide, zlib) stops at a bad stored-block length, an incomplete Huffman code
//! or a preset-dictionary flag where hayro's fallback carries on, so counting with it lets a
//! bomb behind such a flaw through. The decoders are only ever run to count: their output
//! goes nowhere but into the next stage, and the last stage does not even produce it
//! ([`Decode::skip`]).
//!
//! hayro's Flate decoder (with its `unsafe` feature on, as hayro-interpret sets it) tries
//! strict zlib, then strict raw deflate from byte 0, then its lenient fallback; each of these
//! is bounded by [`Step::Flate`] here, which runs the lenient decoder from both starts.

use super::inflate::Inflate;
use super::stage::{Decode, Input, Meter};

/// One decoding step of a chain, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    /// FlateDecode as hayro decodes it: both the zlib reading (after a zlib-looking header)
    /// and the raw-deflate reading from byte 0, each followed by the rest of the chain.
    Flate,
    /// FlateDecode from one start only (`zlib`: skip a 2-byte header).
    FlateFrom {
        zlib: bool,
    },
    /// LZWDecode; `early_change` as `/EarlyChange` (default 1).
    Lzw {
        early_change: bool,
    },
    RunLength,
    AsciiHex,
    Ascii85,
}

/// What running a chain over a stream's data found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Count {
    /// Bytes produced by all stages together (each stage's output is a buffer of its own in
    /// hayro).
    pub bytes: u64,
    /// A stage went over the cap.
    pub over_cap: bool,
    /// Building Huffman tables took more than [`WORK_CAP`] table entries.
    pub over_work: bool,
    /// Bytes of the data read (in steps of the input buffer), over all readings.
    pub consumed: u64,
    /// Huffman table entries filled, over all readings.
    pub work: u64,
}

/// Huffman table entries a stream may make the decoder fill (hayro fills up to a 2^15-entry
/// table per block, many times over for an over-subscribed code; ~1 ns each). A legitimate
/// 128 MiB stream, a few thousand blocks, fills at most a few hundred million.
pub(super) const WORK_CAP: u64 = 1 << 30;

/// A stage with its own cap, reporting to the run's meter.
struct Metered<'a> {
    inner: Box<dyn Decode + 'a>,
    meter: &'a Meter,
    produced: u64,
    cap: u64,
}

impl Metered<'_> {
    fn count(&mut self, n: u64) {
        self.produced += n;
        self.meter.bytes.set(self.meter.bytes.get() + n);
        if self.produced > self.cap {
            self.meter.over_cap.set(true);
        }
    }
}

impl Decode for Metered<'_> {
    fn read(&mut self, out: &mut [u8]) -> usize {
        if self.meter.stopped() {
            return 0;
        }
        let n = self.inner.read(out);
        self.count(n as u64);
        n
    }

    fn skip(&mut self, max: u64) -> u64 {
        if self.meter.stopped() {
            return 0;
        }
        // No further than just past the cap.
        let max = max.min(self.cap.saturating_sub(self.produced).saturating_add(1));
        let n = self.inner.skip(max);
        self.count(n);
        n
    }
}

/// Most readings of one chain counted: each FlateDecode step has two (zlib after a
/// zlib-looking header, raw deflate from byte 0), hayro takes whichever succeeds first, and
/// what the next step sees depends on it, so every combination is run.
const MAX_BRANCHES: usize = 64;

/// Runs `steps` over `data`, each stage capped at `cap` bytes, counting until the chain ends
/// or a cap is passed. A Flate step is run both ways (see [`Step::Flate`]), each combination
/// from the start (a stage's input cannot be rewound); the count is the largest combination's,
/// and all of them together may do at most [`BRANCH_WORK`] × `cap` bytes of work. Memory: the
/// fixed state of each decoder, whatever the output.
pub(super) fn run(data: &[u8], steps: &[Step], cap: u64) -> Count {
    run_with(data, steps, cap, WORK_CAP)
}

/// [`run`] with another cap on table-building work.
pub(super) fn run_with(data: &[u8], steps: &[Step], cap: u64, work_cap: u64) -> Count {
    let mut search = Branches {
        data,
        steps,
        cap,
        work_cap,
        fixed: Vec::with_capacity(steps.len()),
        count: Count::default(),
        work: 0,
        runs: 0,
    };
    search.expand();
    search.count
}

/// Work all readings of one chain may do together, in multiples of the cap.
const BRANCH_WORK: u64 = 4;

struct Branches<'d, 's> {
    data: &'d [u8],
    steps: &'s [Step],
    cap: u64,
    work_cap: u64,
    fixed: Vec<Step>,
    count: Count,
    work: u64,
    runs: usize,
}

impl Branches<'_, '_> {
    fn expand(&mut self) {
        if self.count.over_cap || self.count.over_work {
            return;
        }
        let Some(&step) = self.steps.get(self.fixed.len()) else {
            self.runs += 1;
            if self.runs > MAX_BRANCHES {
                self.count.over_work = true;
                return;
            }
            let count = run_fixed(self.data, &self.fixed, self.cap, self.work_cap);
            self.work = self.work.saturating_add(count.bytes);
            self.count.consumed += count.consumed;
            self.count.work += count.work;
            self.count.bytes = self.count.bytes.max(count.bytes);
            self.count.over_cap |= count.over_cap;
            self.count.over_work |=
                count.over_work || self.work > BRANCH_WORK.saturating_mul(self.cap);
            return;
        };
        let readings: &[Step] = match step {
            Step::Flate => &[
                Step::FlateFrom { zlib: true },
                Step::FlateFrom { zlib: false },
            ],
            _ => std::slice::from_ref(&self.steps[self.fixed.len()]),
        };
        for &reading in readings {
            self.fixed.push(reading);
            self.expand();
            self.fixed.pop();
        }
    }
}

/// Runs one chain without alternatives.
fn run_fixed(data: &[u8], steps: &[Step], cap: u64, work_cap: u64) -> Count {
    let meter = Meter::new(work_cap);
    run_metered(data, steps, cap, &meter);
    Count {
        bytes: meter.bytes.get(),
        over_cap: meter.over_cap.get(),
        over_work: meter.over_work.get(),
        consumed: meter.consumed.get(),
        work: meter.work.get(),
    }
}

fn run_metered<'a>(data: &'a [u8], steps: &[Step], cap: u64, meter: &'a Meter) {
    let Some((last, rest)) = steps.split_last() else {
        return;
    };
    let mut input = Input::bytes(data, meter);
    for step in rest {
        input = Input::stage(stage(*step, input, cap, meter));
    }
    let mut last = stage(*last, input, cap, meter);
    while !meter.stopped() && last.skip(1 << 20) > 0 {}
}

fn stage<'a>(step: Step, input: Input<'a>, cap: u64, meter: &'a Meter) -> Box<dyn Decode + 'a> {
    let inner: Box<dyn Decode + 'a> = match step {
        // Only reached through `run`, which replaces it by its two readings.
        Step::Flate | Step::FlateFrom { zlib: false } => {
            Box::new(Inflate::new(input, false, meter))
        }
        Step::FlateFrom { zlib: true } => Box::new(Inflate::new(input, true, meter)),
        Step::Lzw { early_change } => Box::new(Lzw::new(input, early_change)),
        Step::RunLength => Box::new(RunLength::new(input)),
        Step::AsciiHex => Box::new(AsciiHex::new(input)),
        Step::Ascii85 => Box::new(Ascii85::new(input)),
    };
    Box::new(Metered {
        inner,
        meter,
        produced: 0,
        cap,
    })
}

/// hayro's LZW decoder: MSB-first codes of 9 to 12 bits, clear 256, end 257; a code beyond
/// the next free entry, or the KwKwK case on a full table, fails; a full table otherwise keeps
/// decoding without adding entries.
pub(super) struct Lzw<'a> {
    input: Input<'a>,
    early_change: bool,
    /// Entry `i` (from 258): previous entry, last byte, first byte, length.
    prefix: Vec<u16>,
    last: Vec<u8>,
    first: Vec<u8>,
    length: Vec<u16>,
    previous: Option<usize>,
    /// Bits read but not consumed, MSB first.
    acc: u32,
    bits: u8,
    /// The current entry's bytes being handed out, back to front in `pending[..pending_len]`.
    pending: Vec<u8>,
    pending_pos: usize,
    /// Counting only (see [`Decode::skip`]): bytes produced and not yet reported.
    counting: bool,
    pending_count: u64,
    done: bool,
}

const LZW_CLEAR: usize = 256;
const LZW_END: usize = 257;
const LZW_MAX: usize = 4096;
const LZW_FIRST: usize = 258;

impl<'a> Lzw<'a> {
    pub(super) fn new(input: Input<'a>, early_change: bool) -> Lzw<'a> {
        Lzw {
            input,
            early_change,
            prefix: Vec::new(),
            last: Vec::new(),
            first: Vec::new(),
            length: Vec::new(),
            previous: None,
            acc: 0,
            bits: 0,
            pending: Vec::new(),
            pending_pos: 0,
            counting: false,
            pending_count: 0,
            done: false,
        }
    }

    fn size(&self) -> usize {
        LZW_FIRST + self.prefix.len()
    }

    fn code_length(&self) -> u8 {
        match self.size() + usize::from(self.early_change) {
            s if s >= 2048 => 12,
            s if s >= 1024 => 11,
            s if s >= 512 => 10,
            _ => 9,
        }
    }

    /// hayro's `BitReader::read`: `None` when fewer bits than asked remain.
    fn code(&mut self, width: u8) -> Option<usize> {
        while self.bits < width {
            let byte = self.input.byte()?;
            self.acc = self.acc << 8 | u32::from(byte);
            self.bits += 8;
        }
        self.bits -= width;
        let code = (self.acc >> self.bits) & ((1 << width) - 1);
        self.acc &= (1 << self.bits) - 1;
        Some(code as usize)
    }

    fn entry_length(&self, code: usize) -> usize {
        if code < 256 {
            1
        } else {
            usize::from(self.length[code - LZW_FIRST])
        }
    }

    fn first_byte(&self, code: usize) -> u8 {
        if code < 256 {
            code as u8
        } else {
            self.first[code - LZW_FIRST]
        }
    }

    /// Adds an entry (previous + byte); `false` when the table is full.
    fn register(&mut self, previous: usize, byte: u8) -> bool {
        if self.size() >= LZW_MAX {
            return false;
        }
        let length = self.entry_length(previous) + 1;
        let first = self.first_byte(previous);
        self.prefix.push(previous as u16);
        self.last.push(byte);
        self.first.push(first);
        self.length.push(length as u16);
        true
    }

    /// Puts the bytes of entry `code` into `pending` (only its length when counting).
    fn emit(&mut self, mut code: usize) {
        let length = self.entry_length(code);
        if self.counting {
            self.pending_count += length as u64;
            return;
        }
        self.pending.clear();
        self.pending.resize(length, 0);
        for slot in self.pending.iter_mut().rev() {
            if code < 256 {
                *slot = code as u8;
                break;
            }
            *slot = self.last[code - LZW_FIRST];
            code = usize::from(self.prefix[code - LZW_FIRST]);
        }
        self.pending_pos = 0;
    }

    /// Decodes one code; `false` when the stream has ended.
    fn step(&mut self) -> bool {
        let width = self.code_length();
        let Some(code) = self.code(width) else {
            return false;
        };
        match code {
            LZW_CLEAR => {
                self.prefix.clear();
                self.last.clear();
                self.first.clear();
                self.length.clear();
                self.previous = None;
            }
            LZW_END => return false,
            new => {
                let size = self.size();
                if new > size {
                    return false;
                }
                if new < size {
                    // Codes 256 and 257 are handled above; every other code below the size
                    // has an entry.
                    let first = self.first_byte(new);
                    self.emit(new);
                    if let Some(previous) = self.previous {
                        let _ = self.register(previous, first);
                    }
                } else {
                    let Some(previous) = self.previous else {
                        return false;
                    };
                    let first = self.first_byte(previous);
                    if !self.register(previous, first) {
                        return false;
                    }
                    self.emit(new);
                }
                self.previous = Some(new);
            }
        }
        true
    }
}

impl Decode for Lzw<'_> {
    fn skip(&mut self, max: u64) -> u64 {
        if !self.counting {
            // Hand out what is pending first.
            let rest = (self.pending.len() - self.pending_pos) as u64;
            self.pending_count += rest;
            self.pending_pos = self.pending.len();
            self.counting = true;
        }
        while self.pending_count < max && !self.done {
            if !self.step() {
                self.done = true;
            }
        }
        let n = self.pending_count.min(max);
        self.pending_count -= n;
        n
    }

    fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            if self.pending_pos < self.pending.len() {
                let take = (self.pending.len() - self.pending_pos).min(out.len() - n);
                out[n..n + take]
                    .copy_from_slice(&self.pending[self.pending_pos..self.pending_pos + take]);
                self.pending_pos += take;
                n += take;
                continue;
            }
            if self.done || !self.step() {
                self.done = true;
                break;
            }
        }
        n
    }
}

/// hayro's RunLengthDecode: a length byte 0–127 copies that many plus one bytes (fewer at the
/// end of the data ends the stream), 129–255 repeats the next byte 257 − n times, 128 ends.
pub(super) struct RunLength<'a> {
    input: Input<'a>,
    /// Bytes still to copy from the input, or to repeat.
    copy: usize,
    repeat: Option<(u8, usize)>,
    done: bool,
}

impl<'a> RunLength<'a> {
    pub(super) fn new(input: Input<'a>) -> RunLength<'a> {
        RunLength {
            input,
            copy: 0,
            repeat: None,
            done: false,
        }
    }
}

impl Decode for RunLength<'_> {
    fn skip(&mut self, max: u64) -> u64 {
        let mut n = 0u64;
        while n < max && !self.done {
            if let Some((byte, left)) = self.repeat {
                let take = (left as u64).min(max - n);
                n += take;
                self.repeat = (left as u64 > take).then_some((byte, left - take as usize));
                continue;
            }
            let mut one = [0u8; 1];
            n += self.read(&mut one) as u64;
        }
        n
    }

    fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() && !self.done {
            if let Some((byte, left)) = self.repeat {
                let take = left.min(out.len() - n);
                out[n..n + take].fill(byte);
                n += take;
                self.repeat = (left > take).then_some((byte, left - take));
                continue;
            }
            if self.copy > 0 {
                // hayro copies a literal run only if all of it is there (else it stops
                // without it); counting the bytes that are there is an upper bound.
                match self.input.byte() {
                    Some(byte) => {
                        out[n] = byte;
                        n += 1;
                        self.copy -= 1;
                    }
                    None => self.done = true,
                }
                continue;
            }
            match self.input.byte() {
                None | Some(128) => self.done = true,
                Some(length @ 0..=127) => self.copy = usize::from(length) + 1,
                Some(length) => match self.input.byte() {
                    Some(byte) => self.repeat = Some((byte, 257 - usize::from(length))),
                    None => self.done = true,
                },
            }
        }
        n
    }
}

/// PDF white space (hayro's `is_white_space_character`).
fn is_white_space(byte: u8) -> bool {
    matches!(byte, b'\0' | b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// hayro's ASCIIHexDecode: hex digit pairs up to `>` or the end, white space skipped, an odd
/// last digit padded with 0; any other byte fails.
pub(super) struct AsciiHex<'a> {
    input: Input<'a>,
    done: bool,
}

impl<'a> AsciiHex<'a> {
    pub(super) fn new(input: Input<'a>) -> AsciiHex<'a> {
        AsciiHex { input, done: false }
    }

    /// The next digit's value; `Err(())` at the end (`>` or no more data), `Ok(None)` for a
    /// byte that fails the stream.
    fn digit(&mut self) -> Result<Option<u8>, ()> {
        loop {
            match self.input.byte() {
                None | Some(b'>') => return Err(()),
                Some(byte) if is_white_space(byte) => continue,
                Some(byte) => return Ok((byte as char).to_digit(16).map(|d| d as u8)),
            }
        }
    }
}

impl Decode for AsciiHex<'_> {
    fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() && !self.done {
            let high = match self.digit() {
                Ok(Some(high)) => high,
                _ => {
                    self.done = true;
                    break;
                }
            };
            match self.digit() {
                Ok(Some(low)) => {
                    out[n] = high << 4 | low;
                    n += 1;
                }
                Ok(None) => self.done = true,
                Err(()) => {
                    out[n] = high << 4;
                    n += 1;
                    self.done = true;
                }
            }
        }
        n
    }
}

/// hayro's ASCII85Decode: groups of five digits `!`–`u` to four bytes, `z` four zeros (after
/// flushing a partial group), `~` or the end flushes and ends, white space skipped; any other
/// byte, a group of one digit or an overflowing group fails.
pub(super) struct Ascii85<'a> {
    input: Input<'a>,
    group: [u8; 5],
    in_group: usize,
    out: [u8; 8],
    out_len: usize,
    out_pos: usize,
    done: bool,
}

impl<'a> Ascii85<'a> {
    pub(super) fn new(input: Input<'a>) -> Ascii85<'a> {
        Ascii85 {
            input,
            group: [0; 5],
            in_group: 0,
            out: [0; 8],
            out_len: 0,
            out_pos: 0,
            done: false,
        }
    }

    /// Decodes the partial or full group into `out`; `false` if hayro fails on it.
    fn flush(&mut self) -> bool {
        let (count, output_len) = match self.in_group {
            0 => return true,
            1 => return false,
            n => (n, n - 1),
        };
        let mut value: u64 = 0;
        for index in 0..5 {
            let digit = if index < count {
                self.group[index] - b'!'
            } else {
                b'u' - b'!'
            };
            value = value * 85 + u64::from(digit);
        }
        if value > u64::from(u32::MAX) {
            return false;
        }
        let bytes = (value as u32).to_be_bytes();
        self.out[self.out_len..self.out_len + output_len].copy_from_slice(&bytes[..output_len]);
        self.out_len += output_len;
        self.in_group = 0;
        true
    }

    /// Reads until some output is ready or the stream ends.
    fn step(&mut self) {
        self.out_len = 0;
        self.out_pos = 0;
        while self.out_len == 0 && !self.done {
            let Some(byte) = self.input.byte() else {
                let _ = self.flush();
                self.done = true;
                return;
            };
            match byte {
                b if is_white_space(b) => {}
                b'!'..=b'u' => {
                    self.group[self.in_group] = byte;
                    self.in_group += 1;
                    if self.in_group == 5 && !self.flush() {
                        self.done = true;
                    }
                }
                b'z' => {
                    if !self.flush() {
                        self.done = true;
                        return;
                    }
                    self.out[self.out_len..self.out_len + 4].fill(0);
                    self.out_len += 4;
                }
                b'~' => {
                    let _ = self.flush();
                    self.done = true;
                }
                _ => self.done = true,
            }
        }
    }
}

impl Decode for Ascii85<'_> {
    fn read(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        while n < out.len() {
            if self.out_pos == self.out_len {
                if self.done {
                    break;
                }
                self.step();
                if self.out_len == 0 {
                    break;
                }
            }
            let take = (self.out_len - self.out_pos).min(out.len() - n);
            out[n..n + take].copy_from_slice(&self.out[self.out_pos..self.out_pos + take]);
            self.out_pos += take;
            n += take;
        }
        n
    }
}
