//! A streaming copy of hayro-syntax 0.9's fallback Flate decoder (a port of pdf.js's
//! `FlateStream`), for counting: same leniency, bit for bit, but with a 32 KiB window instead
//! of the whole output in memory.
//!
//! Where it is more lenient than zlib (and than miniz_oxide): the stored-block length check
//! (`NLEN`) is ignored; incomplete and over-subscribed Huffman codes are accepted (the table is
//! filled in code order, later codes overwriting earlier ones); a distance reaching before the
//! start of the output copies nothing and decoding goes on; a length code 286 or 287 copies
//! nothing; a header with the preset-dictionary flag is not a zlib header, so the data is read
//! as raw deflate from byte 0. Where it stops: a block type of 3, a code the table has no
//! entry for, a distance code of 30 or 31, the end of the data, the end of the final block.

use std::sync::OnceLock;

use super::stage::{zlib_header, Decode, Input, Meter};

/// How far back a copy may reach (hayro's largest distance: 24577 + 2^13 − 1).
const WINDOW: usize = 32 << 10;

const CODE_LENGTH_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// (extra bits, base length) for length codes 257..=284 and 285.
const LENGTHS: [(u8, u16); 29] = [
    (0, 3),
    (0, 4),
    (0, 5),
    (0, 6),
    (0, 7),
    (0, 8),
    (0, 9),
    (0, 10),
    (1, 11),
    (1, 13),
    (1, 15),
    (1, 17),
    (2, 19),
    (2, 23),
    (2, 27),
    (2, 31),
    (3, 35),
    (3, 43),
    (3, 51),
    (3, 59),
    (4, 67),
    (4, 83),
    (4, 99),
    (4, 115),
    (5, 131),
    (5, 163),
    (5, 195),
    (5, 227),
    (0, 258),
];

/// (extra bits, base distance) for distance codes 0..=29.
const DISTANCES: [(u8, u16); 30] = [
    (0, 1),
    (0, 2),
    (0, 3),
    (0, 4),
    (1, 5),
    (1, 7),
    (2, 9),
    (2, 13),
    (3, 17),
    (3, 25),
    (4, 33),
    (4, 49),
    (5, 65),
    (5, 97),
    (6, 129),
    (6, 193),
    (7, 257),
    (7, 385),
    (8, 513),
    (8, 769),
    (9, 1025),
    (9, 1537),
    (10, 2049),
    (10, 3073),
    (11, 4097),
    (11, 6145),
    (12, 8193),
    (12, 12289),
    (13, 16385),
    (13, 24577),
];

/// hayro's Huffman table: indexed by the next `max_len` bits (LSB first), each entry the code
/// length << 16 | the symbol; length 0 means no code.
struct Table {
    codes: Vec<u32>,
    max_len: u8,
}

impl Table {
    /// Entries filling the table for `lengths` writes (the work hayro does to build it).
    fn cost(lengths: &[u8]) -> u64 {
        let max_len = lengths.iter().copied().max().unwrap_or(0);
        if max_len == 0 {
            return 1;
        }
        let fills: u64 = lengths
            .iter()
            .filter(|&&len| len > 0)
            .map(|&len| 1u64 << (max_len - len))
            .sum();
        (1u64 << max_len) + fills
    }

    /// hayro's `generate_huffman_table`, as is.
    fn new(lengths: &[u8]) -> Table {
        let max_len = lengths.iter().copied().max().unwrap_or(0);
        if max_len == 0 {
            return Table {
                codes: vec![0; 1],
                max_len: 1,
            };
        }
        let size = 1usize << max_len;
        let mut codes = vec![0u32; size];
        let mut code = 0u32;
        for len in 1..=max_len {
            for (symbol, &length) in lengths.iter().enumerate() {
                if length != len {
                    continue;
                }
                let mut reversed = 0u32;
                let mut t = code;
                for _ in 0..len {
                    reversed = (reversed << 1) | (t & 1);
                    t >>= 1;
                }
                let mut i = reversed as usize;
                while i < size {
                    codes[i] = (u32::from(len) << 16) | symbol as u32;
                    i += 1 << len;
                }
                code += 1;
            }
            code <<= 1;
        }
        Table { codes, max_len }
    }
}

/// The fixed literal/length and distance tables (hayro's constants are the canonical codes;
/// its distance table has no entry for codes 30 and 31, whose length is 0 here too).
fn fixed_tables() -> &'static (Table, Table) {
    static TABLES: OnceLock<(Table, Table)> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut literal = [0u8; 288];
        literal[..144].fill(8);
        literal[144..256].fill(9);
        literal[256..280].fill(7);
        literal[280..].fill(8);
        (Table::new(&literal), Table::new(&[5u8; 30]))
    })
}

/// The fixed tables' entries (for comparing with hayro's constants).
#[cfg(test)]
pub(super) fn fixed_tables_for_tests() -> (&'static [u32], &'static [u32]) {
    let (literal, distance) = fixed_tables();
    (&literal.codes, &distance.codes)
}

#[derive(Clone, Copy)]
enum Block {
    /// Between blocks: the next thing to read is a block header.
    Header,
    /// Inside a stored block: bytes still to copy.
    Stored(usize),
    /// Inside a compressed block with the fixed tables.
    Fixed,
    /// Inside a compressed block with the tables in `Inflate::dynamic`.
    Dynamic,
    /// Decoding is over.
    Done,
}

/// The last [`WINDOW`] bytes of output, growing to that size as output comes.
struct Window {
    bytes: Vec<u8>,
    next: usize,
    total: u64,
}

impl Window {
    fn push(&mut self, byte: u8) {
        if self.bytes.len() < WINDOW {
            self.bytes.push(byte);
        } else {
            self.bytes[self.next] = byte;
            self.next = (self.next + 1) % WINDOW;
        }
        self.total += 1;
    }

    /// The byte `distance` back (1 = the last one); `distance` <= the bytes held.
    fn back(&self, distance: usize) -> u8 {
        if self.bytes.len() < WINDOW {
            self.bytes[self.bytes.len() - distance]
        } else {
            self.bytes[(self.next + WINDOW - distance) % WINDOW]
        }
    }
}

/// hayro's bit reader over the input (LSB first).
struct Bits<'a> {
    input: Input<'a>,
    code_buf: u32,
    code_size: u8,
}

impl Bits<'_> {
    fn get_bits(&mut self, bits: u8) -> Option<u32> {
        while self.code_size < bits {
            let byte = self.input.byte()?;
            self.code_buf |= u32::from(byte) << self.code_size;
            self.code_size += 8;
        }
        let result = self.code_buf & ((1 << bits) - 1);
        self.code_buf >>= bits;
        self.code_size -= bits;
        Some(result)
    }

    fn get_code(&mut self, table: &Table) -> Option<u16> {
        while self.code_size < table.max_len {
            match self.input.byte() {
                Some(byte) => {
                    self.code_buf |= u32::from(byte) << self.code_size;
                    self.code_size += 8;
                }
                None => break,
            }
        }
        let code = *table
            .codes
            .get((self.code_buf & ((1 << table.max_len) - 1)) as usize)?;
        let code_len = (code >> 16) as u8;
        if code_len < 1 || self.code_size < code_len {
            return None;
        }
        self.code_buf >>= code_len;
        self.code_size -= code_len;
        Some((code & 0xffff) as u16)
    }
}

/// The decoder. Counted work: every table it builds, through the meter.
pub(super) struct Inflate<'a> {
    bits: Bits<'a>,
    meter: &'a Meter,
    /// hayro's `eof`: set by the final-block bit or a failure; no block after the current.
    last_block: bool,
    block: Block,
    dynamic: Option<Box<(Table, Table)>>,
    window: Window,
    /// A copy in progress: bytes left, distance.
    copy: (usize, usize),
    /// The zlib reading, before its header has been checked.
    zlib_pending: bool,
}

impl<'a> Inflate<'a> {
    /// `zlib`: the reading after a 2-byte zlib header (nothing if the data does not start
    /// with one, as hayro's fallback then reads raw deflate from byte 0); otherwise raw
    /// deflate from byte 0.
    pub(super) fn new(input: Input<'a>, zlib: bool, meter: &'a Meter) -> Inflate<'a> {
        Inflate {
            bits: Bits {
                input,
                code_buf: 0,
                code_size: 0,
            },
            meter,
            last_block: false,
            block: Block::Header,
            dynamic: None,
            window: Window {
                bytes: Vec::new(),
                next: 0,
                total: 0,
            },
            copy: (0, 0),
            zlib_pending: zlib,
        }
    }

    /// Builds a table if the work budget allows.
    fn table(&self, lengths: &[u8]) -> Option<Table> {
        self.meter
            .work(Table::cost(lengths))
            .then(|| Table::new(lengths))
    }

    fn read_dynamic_tables(&mut self) -> Option<(Table, Table)> {
        let literal_codes = self.bits.get_bits(5)? as usize + 257;
        let distance_codes = self.bits.get_bits(5)? as usize + 1;
        let length_codes = self.bits.get_bits(4)? as usize + 4;
        let mut code_length_lengths = [0u8; 19];
        for &index in CODE_LENGTH_ORDER.iter().take(length_codes) {
            code_length_lengths[index] = self.bits.get_bits(3)? as u8;
        }
        let code_length_table = self.table(&code_length_lengths)?;
        let total = literal_codes + distance_codes;
        let mut lengths = vec![0u8; total];
        let mut i = 0;
        while i < total {
            let (value, repeat) = match self.bits.get_code(&code_length_table)? {
                code @ 0..=15 => (code as u8, 1),
                16 => {
                    let repeat = self.bits.get_bits(2)? as usize + 3;
                    (if i > 0 { lengths[i - 1] } else { 0 }, repeat)
                }
                17 => (0, self.bits.get_bits(3)? as usize + 3),
                18 => (0, self.bits.get_bits(7)? as usize + 11),
                _ => return None,
            };
            for _ in 0..repeat {
                if i < total {
                    lengths[i] = value;
                    i += 1;
                }
            }
        }
        let literal = self.table(&lengths[..literal_codes])?;
        let distance = self.table(&lengths[literal_codes..])?;
        Some((literal, distance))
    }

    /// Reads a block header and sets the block state (hayro's `read_block` up to the data).
    fn read_header(&mut self) {
        let Some(header) = self.bits.get_bits(3) else {
            self.block = Block::Done;
            return;
        };
        if header & 1 != 0 {
            self.last_block = true;
        }
        self.block = match header >> 1 {
            0 => {
                // The rest of the current byte is dropped; then the length and its
                // complement (which hayro does not check).
                self.bits.code_buf = 0;
                self.bits.code_size = 0;
                let mut field = [0u8; 4];
                for slot in &mut field {
                    match self.bits.input.byte() {
                        Some(byte) => *slot = byte,
                        None => {
                            self.block = Block::Done;
                            return;
                        }
                    }
                }
                match usize::from(u16::from_le_bytes([field[0], field[1]])) {
                    0 => Block::Header,
                    length => Block::Stored(length),
                }
            }
            1 => Block::Fixed,
            2 => match self.read_dynamic_tables() {
                Some(tables) => {
                    self.dynamic = Some(Box::new(tables));
                    Block::Dynamic
                }
                None => Block::Done,
            },
            _ => Block::Done,
        };
    }

    /// Decodes the next symbol of a compressed block: `Some(byte)` for a literal, `None` when
    /// it set up a copy, ended the block or ended decoding.
    fn symbol(&mut self) -> Option<u8> {
        let (literal, distance) = match self.block {
            Block::Fixed => {
                let tables = fixed_tables();
                (&tables.0, &tables.1)
            }
            _ => match self.dynamic.as_deref() {
                Some((literal, distance)) => (literal, distance),
                None => {
                    self.block = Block::Done;
                    return None;
                }
            },
        };
        let bits = &mut self.bits;
        let Some(code) = bits.get_code(literal) else {
            self.block = Block::Done;
            return None;
        };
        if code < 256 {
            return Some(code as u8);
        }
        if code == 256 {
            self.block = Block::Header;
            return None;
        }
        let (extra, base) = LENGTHS
            .get(usize::from(code - 257))
            .copied()
            .unwrap_or((0, 0));
        let mut length = usize::from(base);
        if extra > 0 {
            match bits.get_bits(extra) {
                Some(value) => length += value as usize,
                None => {
                    self.block = Block::Done;
                    return None;
                }
            }
        }
        let Some((extra, base)) = bits
            .get_code(distance)
            .and_then(|code| DISTANCES.get(usize::from(code)).copied())
        else {
            self.block = Block::Done;
            return None;
        };
        let mut distance = usize::from(base);
        if extra > 0 {
            match bits.get_bits(extra) {
                Some(value) => distance += value as usize,
                None => {
                    self.block = Block::Done;
                    return None;
                }
            }
        }
        // hayro copies only from output it has: a distance past its start copies nothing.
        if distance as u64 <= self.window.total {
            self.copy = (length, distance);
        }
        None
    }
}

impl Inflate<'_> {
    /// The zlib reading's header check, before the first byte out.
    fn start(&mut self) {
        if self.zlib_pending {
            self.zlib_pending = false;
            let head = [self.bits.input.byte(), self.bits.input.byte()];
            let is_zlib = matches!(head, [Some(a), Some(b)] if zlib_header(&[a, b]));
            if !is_zlib {
                self.block = Block::Done;
            }
        }
    }

    /// Between blocks: reads the next header, or ends. hayro reads another block while the
    /// final one has not been seen and bytes remain (bits left in the buffer do not count).
    fn next_block(&mut self) {
        if self.last_block || self.bits.input.peek().is_none() {
            self.block = Block::Done;
        } else {
            self.read_header();
        }
    }

    /// The next byte of a stored block, if any.
    fn stored_byte(&mut self, left: usize) -> Option<u8> {
        match self.bits.input.byte() {
            Some(byte) => {
                self.block = if left > 1 {
                    Block::Stored(left - 1)
                } else {
                    Block::Header
                };
                Some(byte)
            }
            None => {
                self.block = Block::Done;
                None
            }
        }
    }
}

impl Decode for Inflate<'_> {
    fn read(&mut self, out: &mut [u8]) -> usize {
        self.start();
        let mut n = 0;
        while n < out.len() {
            if self.copy.0 > 0 {
                let (left, distance) = self.copy;
                let take = left.min(out.len() - n);
                for slot in &mut out[n..n + take] {
                    let byte = self.window.back(distance);
                    self.window.push(byte);
                    *slot = byte;
                }
                n += take;
                self.copy.0 -= take;
                continue;
            }
            let byte = match self.block {
                Block::Done => break,
                Block::Header => {
                    self.next_block();
                    None
                }
                Block::Stored(left) => self.stored_byte(left),
                Block::Fixed | Block::Dynamic => self.symbol(),
            };
            if let Some(byte) = byte {
                self.window.push(byte);
                out[n] = byte;
                n += 1;
            }
        }
        n
    }

    /// Counting only: no window (a copy's size depends only on how much came before).
    fn skip(&mut self, max: u64) -> u64 {
        self.start();
        let mut n = 0u64;
        while n < max {
            if self.copy.0 > 0 {
                let take = (self.copy.0 as u64).min(max - n);
                self.copy.0 -= take as usize;
                self.window.total += take;
                n += take;
                continue;
            }
            let byte = match self.block {
                Block::Done => break,
                Block::Header => {
                    self.next_block();
                    None
                }
                Block::Stored(left) => self.stored_byte(left),
                Block::Fixed | Block::Dynamic => self.symbol(),
            };
            if byte.is_some() {
                self.window.total += 1;
                n += 1;
            }
        }
        n
    }
}
