//! The counting decoders against hayro's own (the oracle: the guard's promise is to count at
//! least what hayro allocates), on valid, corrupt and random data.

use hayro::hayro_syntax::object::{FromBytes, Stream};

use super::filters::{run, Step};
use super::*;

/// hayro's decoding of `data` under `filter` (a `/Filter` value), or `None` if it fails.
fn hayro_decoded(filter: &str, params: &str, data: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = format!(
        "<< /Filter {filter} {params} /Length {} >>\nstream\n",
        data.len()
    )
    .into_bytes();
    bytes.extend(data);
    bytes.extend(b"\nendstream\n");
    let stream = Stream::from_bytes(&bytes).expect("a stream object");
    stream.decoded().ok().map(|data| data.into_owned())
}

const NO_CAP: u64 = u64::MAX / 4;

fn count(data: &[u8], steps: &[Step]) -> u64 {
    let count = run(data, steps, NO_CAP);
    assert!(!count.over_cap && !count.over_work);
    count.bytes
}

/// xorshift, for reproducible noise.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
    /// Text-like bytes with runs, so that compressors find matches.
    fn text(&mut self, len: usize) -> Vec<u8> {
        let words: [&[u8]; 6] = [
            b"patient ",
            b"0 0 m ",
            b"BT /F1 12 Tf ",
            b"ET\n",
            b"q Q ",
            b"\0\0\0\0",
        ];
        let mut out = Vec::new();
        while out.len() < len {
            out.extend(words[(self.next() % 6) as usize]);
        }
        out.truncate(len);
        out
    }
}

fn zlib(data: &[u8], level: u8) -> Vec<u8> {
    miniz_oxide::deflate::compress_to_vec_zlib(data, level)
}

#[test]
fn flate_counts_exactly_what_a_valid_stream_holds() {
    let mut noise = Noise(7);
    for len in [0, 1, 100, 5_000, 70_000, 300_000] {
        for level in [0, 1, 6, 9] {
            let data = noise.text(len);
            let compressed = zlib(&data, level);
            assert_eq!(
                count(&compressed, &[Step::FlateFrom { zlib: true }]),
                data.len() as u64,
                "len {len} level {level}"
            );
            let hayro = hayro_decoded("/FlateDecode", "", &compressed).expect("decodes");
            assert_eq!(hayro, data);
            assert!(count(&compressed, &[Step::Flate]) >= data.len() as u64);
            let raw = miniz_oxide::deflate::compress_to_vec(&data, level);
            assert_eq!(
                count(&raw, &[Step::FlateFrom { zlib: false }]),
                data.len() as u64
            );
        }
    }
}

#[test]
fn flate_counts_at_least_what_hayro_decodes_from_corrupt_data() {
    let mut noise = Noise(11);
    for round in 0..400 {
        let len = 1 + (noise.next() % 20_000) as usize;
        let data = noise.text(len);
        let mut compressed = zlib(&data, (round % 10) as u8);
        // Flip a few bits, truncate, or replace with noise.
        match round % 4 {
            0 => {
                for _ in 0..1 + noise.next() % 4 {
                    let at = (noise.next() as usize) % compressed.len();
                    compressed[at] ^= 1 << (noise.next() % 8);
                }
            }
            1 => compressed.truncate((noise.next() as usize) % compressed.len()),
            2 => compressed = noise.bytes(len / 4 + 2),
            _ => {
                let last = compressed.len() - 1;
                let at = 2 + (noise.next() as usize) % (compressed.len() - 2).max(1);
                compressed[at.min(last)] = noise.next() as u8;
            }
        }
        let ours = count(&compressed, &[Step::Flate]);
        if let Some(hayro) = hayro_decoded("/FlateDecode", "", &compressed) {
            assert!(
                ours >= hayro.len() as u64,
                "round {round}: counted {ours}, hayro decoded {}",
                hayro.len()
            );
        }
    }
}

/// A raw deflate stream of `blocks` fixed-Huffman blocks, each a literal 0 then `copies`
/// copies of 258 bytes at distance 1 (13 bits each): 258 × `copies` + 1 zeros per block.
fn fixed_huffman_zeros(blocks: usize, copies: usize, last: bool) -> Vec<u8> {
    struct Bits(Vec<u8>, u32, u32);
    impl Bits {
        fn put(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.1 |= ((value >> i) & 1) << self.2;
                self.2 += 1;
                if self.2 == 8 {
                    self.0.push(self.1 as u8);
                    self.1 = 0;
                    self.2 = 0;
                }
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            for i in (0..len).rev() {
                self.put((code >> i) & 1, 1);
            }
        }
    }
    let mut bits = Bits(Vec::new(), 0, 0);
    for block in 0..blocks {
        bits.put(u32::from(last && block + 1 == blocks), 1);
        bits.put(1, 2); // fixed Huffman
        bits.code(0b0011_0000, 8); // literal 0
        for _ in 0..copies {
            bits.code(0b1100_0101, 8); // length code 285: 258
            bits.code(0, 5); // distance code 0: 1
        }
        bits.code(0, 7); // end of block (256)
    }
    if bits.2 > 0 {
        bits.0.push(bits.1 as u8);
    }
    bits.0
}

#[test]
fn flate_follows_hayro_where_zlib_stops() {
    let bomb = fixed_huffman_zeros(4, 1000, true);
    let bomb_len = 4 * (258 * 1000 + 1);
    assert_eq!(count(&bomb, &[Step::Flate]), bomb_len as u64);
    assert_eq!(
        hayro_decoded("/FlateDecode", "", &bomb).unwrap().len(),
        bomb_len
    );
    assert_eq!(miniz_count(&bomb), bomb_len);

    // A stored block whose length complement is wrong: zlib and miniz_oxide stop early, hayro
    // ignores the complement and inflates what follows.
    let mut bad_nlen = vec![0b000, 3, 0, 0, 0, b'a', b'b', b'c'];
    bad_nlen.extend(&bomb);
    let hayro = hayro_decoded("/FlateDecode", "", &bad_nlen).unwrap();
    assert_eq!(hayro.len(), 3 + bomb_len);
    assert_eq!(count(&bad_nlen, &[Step::Flate]), hayro.len() as u64);
    assert!(miniz_count(&bad_nlen) < bomb_len / 10);

    // A zlib header with the preset-dictionary flag: zlib stops (no dictionary), hayro reads
    // the data as raw deflate from byte 0, where 0x78 starts a stored block.
    // Stored block of length 0x00BB: the two header bytes are its first field bytes.
    let mut stored = vec![0x78, 0xBB, 0x00, 0x44, 0xFF];
    stored.extend(std::iter::repeat_n(b'x', 0xBB));
    stored.extend(&bomb);
    assert_eq!(u16::from_be_bytes([0x78, 0xBB]) % 31, 0);
    let hayro = hayro_decoded("/FlateDecode", "", &stored).unwrap();
    assert_eq!(hayro.len(), 0xBB + bomb_len);
    assert_eq!(count(&stored, &[Step::Flate]), hayro.len() as u64);
    assert!(miniz_count(&stored) < bomb_len / 10);

    // A valid zlib header whose zlib reading dies at once (block type 3), while the raw
    // reading from byte 0 is a valid stored block of 0x069C bytes and then the bomb: hayro's
    // strict raw decoder takes it.
    let mut both = vec![0x78, 0x9C, 0x06, 0x63, 0xF9];
    both.extend(std::iter::repeat_n(b'y', 0x069C));
    both.extend(&bomb);
    let hayro = hayro_decoded("/FlateDecode", "", &both).unwrap();
    assert_eq!(count(&both, &[Step::Flate]), hayro.len() as u64);
    assert!(hayro.len() > bomb_len);
    assert!(miniz_count(&both) < bomb_len / 10);
}

/// What the counter before this one (miniz_oxide, zlib if the header looked like one, else
/// raw) counted.
fn miniz_count(data: &[u8]) -> usize {
    let zlib = data.len() >= 2
        && data[0] & 0x0f == 8
        && (u16::from(data[0]) << 8 | u16::from(data[1])) % 31 == 0;
    let result = if zlib {
        miniz_oxide::inflate::decompress_to_vec_zlib(data)
    } else {
        miniz_oxide::inflate::decompress_to_vec(data)
    };
    match result {
        Ok(data) => data.len(),
        Err(error) => error.output.len(),
    }
}

#[test]
fn over_subscribed_huffman_tables_hit_the_work_cap() {
    // Dynamic blocks whose literal code gives 256 symbols one bit each and one symbol 15 bits
    // (over-subscribed; zlib refuses it, hayro builds it): a table of 2^15 entries filled
    // 256 × 2^14 times, for a block of ~50 bytes that ends at once (its last one-bit code is
    // the end of block).
    struct Bits(Vec<u8>, u32, u32);
    impl Bits {
        fn put(&mut self, value: u32, count: u32) {
            for i in 0..count {
                self.1 |= ((value >> i) & 1) << self.2;
                self.2 += 1;
                if self.2 == 8 {
                    self.0.push(self.1 as u8);
                    self.1 = 0;
                    self.2 = 0;
                }
            }
        }
    }
    let blocks = 100;
    let mut bits = Bits(Vec::new(), 0, 0);
    for _ in 0..blocks {
        bits.put(0, 1);
        bits.put(2, 2); // dynamic
        bits.put(31, 5); // 288 literal codes
        bits.put(0, 5); // 1 distance code
        bits.put(15, 4); // 19 code-length codes
                         // Code-length code: symbol 1 → "0", symbols 0 and 15 → "10" and "11".
        for symbol in [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ] {
            let length = match symbol {
                1 => 1,
                0 | 15 => 2,
                _ => 0,
            };
            bits.put(length, 3);
        }
        bits.put(1, 1); // literal 0: length 15 ("11")
        bits.put(1, 1);
        for _ in 1..=256 {
            bits.put(0, 1); // literals 1..=256: length 1 ("0")
        }
        for _ in 257..288 {
            bits.put(1, 1); // the rest: length 0 ("10")
            bits.put(0, 1);
        }
        bits.put(0, 1); // the distance code: length 1
        bits.put(1, 1); // a one-bit code that the table maps to 256: end of block
    }
    let data = bits.0;
    let per_block = (1u64 << 15) + 256 * (1 << 14) + 1;
    let count = filters::run_with(&data, &[Step::FlateFrom { zlib: false }], NO_CAP, 1 << 26);
    assert!(count.over_work, "{count:?}");
    let count = filters::run_with(&data, &[Step::FlateFrom { zlib: false }], NO_CAP, u64::MAX);
    assert!(!count.over_work);
    assert!(
        count.work >= blocks * per_block,
        "{} entries for {blocks} blocks",
        count.work
    );
}

/// An LZW encoder (MSB first, 9–12 bit codes, a clear code when the table is full).
fn lzw_encode(data: &[u8], early_change: bool) -> Vec<u8> {
    use std::collections::HashMap;
    let mut out = Vec::new();
    let (mut acc, mut n) = (0u64, 0u32);
    let mut put = |code: u32, width: u32, out: &mut Vec<u8>| {
        acc = acc << width | u64::from(code);
        n += width;
        while n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
        }
    };
    let width = |next: u32| match next + u32::from(early_change) {
        s if s >= 2048 => 12,
        s if s >= 1024 => 11,
        s if s >= 512 => 10,
        _ => 9,
    };
    let mut table: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut next = 258u32;
    put(256, 9, &mut out);
    let mut current: Vec<u8> = Vec::new();
    // The decoder's table size lags the encoder's by one (it adds an entry per code after
    // the first).
    let mut decoder_size = 258u32;
    let mut first = true;
    for &byte in data {
        let mut candidate = current.clone();
        candidate.push(byte);
        if candidate.len() == 1 || table.contains_key(&candidate) {
            current = candidate;
            continue;
        }
        let code = if current.len() == 1 {
            u32::from(current[0])
        } else {
            table[&current]
        };
        put(code, width(decoder_size), &mut out);
        if !first {
            decoder_size += 1;
        }
        first = false;
        if next < 4095 {
            table.insert(candidate, next);
            next += 1;
        } else {
            put(256, width(decoder_size), &mut out);
            table.clear();
            next = 258;
            decoder_size = 258;
            first = true;
        }
        current = vec![byte];
    }
    if !current.is_empty() {
        let code = if current.len() == 1 {
            u32::from(current[0])
        } else {
            table[&current]
        };
        put(code, width(decoder_size), &mut out);
        if !first {
            decoder_size += 1;
        }
    }
    put(257, width(decoder_size), &mut out);
    if n > 0 {
        out.push((acc << (8 - n)) as u8);
    }
    out
}

#[test]
fn lzw_counts_what_hayro_decodes() {
    let mut noise = Noise(3);
    for (len, early_change) in [
        (0, true),
        (10, true),
        (5_000, true),
        (200_000, true),
        (200_000, false),
    ] {
        let data = noise.text(len);
        let encoded = lzw_encode(&data, early_change);
        let params = if early_change {
            ""
        } else {
            "/DecodeParms << /EarlyChange 0 >>"
        };
        let hayro = hayro_decoded("/LZWDecode", params, &encoded).expect("decodes");
        assert_eq!(hayro, data, "len {len}");
        assert_eq!(
            count(&encoded, &[Step::Lzw { early_change }]),
            data.len() as u64
        );
    }
    // Noise: whatever hayro makes of it before it gives up or ends, counted at least.
    for round in 0..300 {
        let data = noise.bytes(1 + round * 7);
        if let Some(hayro) = hayro_decoded("/LZWDecode", "", &data) {
            assert_eq!(
                count(&data, &[Step::Lzw { early_change: true }]),
                hayro.len() as u64
            );
        }
    }
}

#[test]
fn run_length_and_ascii_filters_count_what_hayro_decodes() {
    let mut noise = Noise(5);
    for round in 0..300 {
        let len = 1 + round * 13;
        let binary = noise.bytes(len);
        if let Some(hayro) = hayro_decoded("/RunLengthDecode", "", &binary) {
            assert!(count(&binary, &[Step::RunLength]) >= hayro.len() as u64);
        }
        let hex: Vec<u8> = (0..len)
            .map(|_| b"0123456789abcdefABCDEF \n>"[(noise.next() % 25) as usize])
            .collect();
        if let Some(hayro) = hayro_decoded("/ASCIIHexDecode", "", &hex) {
            assert_eq!(
                count(&hex, &[Step::AsciiHex]),
                hayro.len() as u64,
                "{hex:?}"
            );
        }
        let a85: Vec<u8> = (0..len)
            .map(|_| match noise.next() % 100 {
                0 => b'z',
                1 => b' ',
                2 if round % 3 == 0 => b'~',
                _ => b'!' + (noise.next() % 85) as u8,
            })
            .collect();
        if let Some(hayro) = hayro_decoded("/ASCII85Decode", "", &a85) {
            assert_eq!(count(&a85, &[Step::Ascii85]), hayro.len() as u64, "{a85:?}");
        }
    }
    // A run-length bomb: 64 bytes out per 2 in.
    let mut bomb = [129u8, 7].repeat(1000);
    bomb.push(128);
    assert_eq!(count(&bomb, &[Step::RunLength]), 128_000);
    assert_eq!(hayro_decoded("/RL", "", &bomb).unwrap().len(), 128_000);
}

#[test]
fn chains_count_every_step_in_order() {
    let mut noise = Noise(9);
    let data = noise.text(100_000);
    let compressed = zlib(&data, 6);
    let mut hex = Vec::new();
    for byte in &compressed {
        hex.extend(format!("{byte:02x}").as_bytes());
    }
    hex.push(b'>');
    let hayro = hayro_decoded("[/AHx /Fl]", "", &hex).unwrap();
    assert_eq!(hayro, data);
    let counted = count(&hex, &[Step::AsciiHex, Step::Flate]);
    // Both steps' outputs: the compressed bytes and the text.
    assert!(
        counted >= (compressed.len() + data.len()) as u64,
        "{counted}"
    );
    // Flate twice.
    let twice = zlib(&compressed, 9);
    assert_eq!(
        hayro_decoded("[/FlateDecode /FlateDecode]", "", &twice).unwrap(),
        data
    );
    assert!(count(&twice, &[Step::Flate, Step::Flate]) >= (compressed.len() + data.len()) as u64);
}

#[test]
fn a_step_over_its_cap_stops_the_count() {
    let bomb = fixed_huffman_zeros(1, 10_000, true);
    let started = std::time::Instant::now();
    let count = run(&bomb, &[Step::Flate], 1 << 20);
    assert!(count.over_cap);
    assert!(count.bytes < (1 << 20) + (256 << 10), "{count:?}");
    assert!(started.elapsed().as_secs() < 5);
}

#[test]
fn fixed_tables_are_hayros() {
    // The first entries of hayro's FIXED_LIT_CODE_TAB and its whole FIXED_DIST_CODE_TAB.
    let literal: [u32; 12] = [
        0x70100, 0x80050, 0x80010, 0x80118, 0x70110, 0x80070, 0x80030, 0x900c0, 0x70108, 0x80060,
        0x80020, 0x900a0,
    ];
    let distance: [u32; 32] = [
        0x50000, 0x50010, 0x50008, 0x50018, 0x50004, 0x50014, 0x5000c, 0x5001c, 0x50002, 0x50012,
        0x5000a, 0x5001a, 0x50006, 0x50016, 0x5000e, 0x00000, 0x50001, 0x50011, 0x50009, 0x50019,
        0x50005, 0x50015, 0x5000d, 0x5001d, 0x50003, 0x50013, 0x5000b, 0x5001b, 0x50007, 0x50017,
        0x5000f, 0x00000,
    ];
    let (ours_literal, ours_distance) = inflate::fixed_tables_for_tests();
    assert_eq!(&ours_literal[..12], &literal);
    assert_eq!(ours_literal.len(), 512);
    assert_eq!(ours_distance, &distance);
}
