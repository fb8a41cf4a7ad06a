//! Round-trip, seek and tamper tests of the object format.

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use proptest::prelude::*;

use super::*;

const AAD: &[u8] = b"document 7f0c/original/page 0";

fn key() -> DataKey {
    DataKey::from_bytes([0x42; 32])
}

fn key_id() -> KeyId {
    KeyId::from_bytes([0x17; 16])
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 251) as u8).collect()
}

const SEALED: usize = SEALED_CHUNK_LEN;

const BOUNDARY_LENGTHS: &[usize] = &[
    0,
    1,
    15,
    16,
    17,
    CHUNK_SIZE - 1,
    CHUNK_SIZE,
    CHUNK_SIZE + 1,
    2 * CHUNK_SIZE - 1,
    2 * CHUNK_SIZE,
    2 * CHUNK_SIZE + 1,
    3 * CHUNK_SIZE + 7,
];

/// Reads until end or error, in small steps, returning what was handed out and the outcome.
fn drain(reader: &mut impl Read) -> (Vec<u8>, std::io::Result<()>) {
    let mut out = Vec::new();
    let mut buffer = [0u8; 1000];
    loop {
        match reader.read(&mut buffer) {
            Ok(0) => return (out, Ok(())),
            Ok(count) => out.extend_from_slice(&buffer[..count]),
            Err(error) => return (out, Err(error)),
        }
    }
}

/// Asserts that `object` fails to decrypt with `key` / `aad`, through every entry point,
/// and that a reader hands out no byte from chunk `first_bad_chunk` on.
fn assert_rejected(object: &[u8], key: &DataKey, aad: &[u8], first_bad_chunk: usize) {
    assert!(
        open(key, aad, object).is_err(),
        "open accepted a bad object"
    );
    let Ok(mut reader) = DecryptReader::new(object, key, aad) else {
        return;
    };
    let mut everything = Vec::new();
    assert!(
        reader.read_to_end(&mut everything).is_err(),
        "read_to_end accepted a bad object"
    );
    let mut reader = DecryptReader::new(object, key, aad).expect("header parsed above");
    let (handed_out, outcome) = drain(&mut reader);
    assert!(
        outcome.is_err(),
        "reader reached end of file on a bad object"
    );
    assert!(
        handed_out.len() <= first_bad_chunk * CHUNK_SIZE,
        "reader handed out {} bytes, beyond the first bad chunk {first_bad_chunk}",
        handed_out.len()
    );
    assert!(
        reader.read(&mut [0u8; 16]).is_err(),
        "a failed reader stays failed"
    );
}

fn assert_decrypt_error(result: Result<Vec<u8>, StorageError>) {
    assert!(
        matches!(result, Err(StorageError::Decrypt)),
        "expected Decrypt"
    );
}

#[test]
fn round_trips_at_every_chunk_boundary() {
    for &len in BOUNDARY_LENGTHS {
        let plaintext = pattern(len);
        let object = seal(&key_id(), &key(), AAD, &plaintext);
        assert_eq!(object.len() as u64, ciphertext_len(len as u64), "len {len}");
        assert_eq!(
            plaintext_len(object.len() as u64).expect("valid"),
            len as u64
        );
        assert_eq!(&object[..8], MAGIC);
        assert!(
            open(&key(), AAD, &object).expect("open") == plaintext,
            "len {len}"
        );

        let mut reader = DecryptReader::new(&object[..], &key(), AAD).expect("header");
        let (read, outcome) = drain(&mut reader);
        outcome.expect("streaming read");
        assert!(read == plaintext, "streamed len {len}");
    }
}

#[test]
fn empty_plaintext_is_one_empty_last_chunk() {
    let object = seal(&key_id(), &key(), AAD, b"");
    assert_eq!(object.len(), HEADER_LEN + TAG_LEN);
}

#[test]
fn full_final_chunk_has_no_empty_chunk_after_it() {
    let object = seal(&key_id(), &key(), AAD, &pattern(2 * CHUNK_SIZE));
    assert_eq!(object.len(), HEADER_LEN + 2 * SEALED);
}

#[test]
fn header_lays_out_magic_key_id_prefix_and_reserved_byte() {
    let mut object = Vec::new();
    let writer = EncryptWriter::new_with_nonce_prefix(
        &mut object,
        &key_id(),
        &key(),
        AAD,
        [1, 2, 3, 4, 5, 6, 7],
    )
    .expect("header");
    writer.finish().expect("finish");
    assert_eq!(HEADER_LEN, 32);
    assert_eq!(&object[0..8], b"CVAULT\0\x01");
    assert_eq!(&object[8..24], key_id().as_bytes());
    assert_eq!(&object[24..31], &[1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(object[31], 0);
    assert_eq!(read_key_id(&mut &object[..]).expect("key id"), key_id());
}

#[test]
fn each_object_gets_a_fresh_nonce_prefix() {
    let first = seal(&key_id(), &key(), AAD, b"same");
    let second = seal(&key_id(), &key(), AAD, b"same");
    assert_ne!(first[24..31], second[24..31]);
    assert_ne!(first, second);
}

#[test]
fn reader_continues_after_read_header() {
    let object = seal(&key_id(), &key(), AAD, &pattern(70_000));
    let mut cursor = Cursor::new(&object);
    let header = read_header(&mut cursor).expect("header");
    assert_eq!(header.key_id(), key_id());
    let mut reader = DecryptReader::from_header(cursor, header, &key(), AAD);
    assert_eq!(reader.key_id(), key_id());
    let mut plaintext = Vec::new();
    reader.read_to_end(&mut plaintext).expect("read");
    assert!(plaintext == pattern(70_000));
}

#[test]
fn object_at_an_offset_in_a_larger_stream_seeks_correctly() {
    let plaintext = pattern(2 * CHUNK_SIZE + 300);
    let mut stream = b"unrelated prefix bytes".to_vec();
    let prefix_len = stream.len() as u64;
    stream.extend_from_slice(&seal(&key_id(), &key(), AAD, &plaintext));
    let mut cursor = Cursor::new(stream);
    cursor.seek(SeekFrom::Start(prefix_len)).expect("seek");
    let mut reader = DecryptReader::new(cursor, &key(), AAD).expect("header");
    assert_eq!(
        reader.seek(SeekFrom::End(0)).expect("seek"),
        plaintext.len() as u64
    );
    let mut buffer = [0u8; 50];
    reader.seek(SeekFrom::End(-50)).expect("seek");
    reader.read_exact(&mut buffer).expect("read");
    assert_eq!(buffer[..], plaintext[plaintext.len() - 50..]);
}

#[test]
fn seek_past_the_end_reads_nothing_after_authenticating_the_last_chunk() {
    for &len in BOUNDARY_LENGTHS {
        let object = seal(&key_id(), &key(), AAD, &pattern(len));
        let mut reader = DecryptReader::new(Cursor::new(&object), &key(), AAD).expect("header");
        assert_eq!(reader.seek(SeekFrom::End(0)).expect("seek"), len as u64);
        assert_eq!(reader.read(&mut [0u8; 8]).expect("read at end"), 0);
        reader
            .seek(SeekFrom::Start(len as u64 + 12_345))
            .expect("seek");
        assert_eq!(reader.read(&mut [0u8; 8]).expect("read past end"), 0);
        assert!(reader
            .seek(SeekFrom::Current(-(len as i64) - 12_346))
            .is_err());
    }
}

#[test]
fn seek_past_the_end_of_a_truncated_object_fails() {
    let object = seal(&key_id(), &key(), AAD, &pattern(3 * CHUNK_SIZE));
    // Cut at a chunk boundary: the length is plausible but the final chunk is not last.
    let truncated = &object[..HEADER_LEN + 2 * SEALED];
    let mut reader = DecryptReader::new(Cursor::new(truncated), &key(), AAD).expect("header");
    reader
        .seek(SeekFrom::End(0))
        .expect("seek computes a length");
    assert!(reader.read(&mut [0u8; 8]).is_err());
    // Cut mid-tag: no valid object has that length.
    let truncated = &object[..HEADER_LEN + SEALED + 5];
    let mut reader = DecryptReader::new(Cursor::new(truncated), &key(), AAD).expect("header");
    assert!(reader.seek(SeekFrom::End(0)).is_err());
}

#[test]
fn plaintext_len_rejects_impossible_lengths() {
    assert!(matches!(plaintext_len(0), Err(StorageError::Format(_))));
    assert!(matches!(
        plaintext_len(HEADER_LEN as u64 - 1),
        Err(StorageError::Format(_))
    ));
    for body in [0, 1, TAG_LEN - 1, SEALED + 3, SEALED + TAG_LEN] {
        assert!(
            matches!(
                plaintext_len((HEADER_LEN + body) as u64),
                Err(StorageError::Decrypt)
            ),
            "body {body}"
        );
    }
    assert_eq!(
        plaintext_len((HEADER_LEN + TAG_LEN) as u64).expect("empty"),
        0
    );
    assert_eq!(
        plaintext_len((HEADER_LEN + SEALED + TAG_LEN + 1) as u64).expect("one byte more"),
        CHUNK_SIZE as u64 + 1
    );
}

#[test]
fn flipped_bits_anywhere_are_rejected() {
    let plaintext = pattern(2 * CHUNK_SIZE + 100);
    let object = seal(&key_id(), &key(), AAD, &plaintext);
    let mut positions: Vec<usize> = (0..HEADER_LEN).collect();
    for chunk in 0..3 {
        let start = HEADER_LEN + chunk * SEALED;
        let end = (start + SEALED).min(object.len());
        positions.extend([
            start,
            start + 1,
            (start + 777).min(end - 1),
            end - TAG_LEN - 1,
        ]);
        positions.extend(end - TAG_LEN..end);
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..64 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        positions.push(HEADER_LEN + (state as usize) % (object.len() - HEADER_LEN));
    }
    for position in positions {
        let bit = position % 8;
        let mut tampered = object.clone();
        tampered[position] ^= 1 << bit;
        let first_bad_chunk = position.saturating_sub(HEADER_LEN) / SEALED;
        let first_bad_chunk = if position < HEADER_LEN {
            0
        } else {
            first_bad_chunk
        };
        assert_rejected(&tampered, &key(), AAD, first_bad_chunk);
    }
}

#[test]
fn truncated_objects_are_rejected() {
    let object = seal(&key_id(), &key(), AAD, &pattern(2 * CHUNK_SIZE + 100));
    let mut cuts = vec![0, 1, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + 1];
    for chunk in 1..=2 {
        let boundary = HEADER_LEN + chunk * SEALED;
        cuts.extend([boundary - 1, boundary, boundary + 1, boundary + TAG_LEN]);
        cuts.push(boundary - SEALED / 2);
    }
    cuts.push(object.len() - 1);
    for cut in cuts {
        let truncated = &object[..cut];
        let first_bad_chunk = cut.saturating_sub(HEADER_LEN) / SEALED;
        assert_rejected(truncated, &key(), AAD, first_bad_chunk);
        if cut < HEADER_LEN {
            assert!(matches!(
                DecryptReader::new(truncated, &key(), AAD),
                Err(StorageError::Format(_))
            ));
            assert!(matches!(
                read_key_id(&mut &truncated[..]),
                Err(StorageError::Format(_))
            ));
        }
    }
}

#[test]
fn header_only_object_is_rejected() {
    let object = seal(&key_id(), &key(), AAD, b"some page text");
    assert_decrypt_error(open(&key(), AAD, &object[..HEADER_LEN]));
    assert_rejected(&object[..HEADER_LEN], &key(), AAD, 0);
}

#[test]
fn swapped_chunks_are_rejected() {
    let object = seal(&key_id(), &key(), AAD, &pattern(3 * CHUNK_SIZE));
    let chunk = |index: usize| {
        object[HEADER_LEN + index * SEALED..HEADER_LEN + (index + 1) * SEALED].to_vec()
    };
    let mut swapped = object[..HEADER_LEN].to_vec();
    swapped.extend(chunk(1));
    swapped.extend(chunk(0));
    swapped.extend(chunk(2));
    assert_decrypt_error(open(&key(), AAD, &swapped));
    assert_rejected(&swapped, &key(), AAD, 0);

    // Swapping the final chunk with a middle one breaks both index and last flag.
    let mut swapped = object[..HEADER_LEN].to_vec();
    swapped.extend(chunk(0));
    swapped.extend(chunk(2));
    swapped.extend(chunk(1));
    assert_rejected(&swapped, &key(), AAD, 1);

    // A duplicated chunk in place of another.
    let mut duplicated = object[..HEADER_LEN].to_vec();
    duplicated.extend(chunk(0));
    duplicated.extend(chunk(0));
    duplicated.extend(chunk(2));
    assert_rejected(&duplicated, &key(), AAD, 1);
}

#[test]
fn appended_bytes_are_rejected() {
    for len in [5, CHUNK_SIZE, CHUNK_SIZE + 5] {
        let object = seal(&key_id(), &key(), AAD, &pattern(len));
        let last_chunk_index = (object.len() - HEADER_LEN - 1) / SEALED;
        let last_chunk = object[HEADER_LEN + last_chunk_index * SEALED..].to_vec();

        let mut with_byte = object.clone();
        with_byte.push(0);
        assert_rejected(&with_byte, &key(), AAD, last_chunk_index);

        let mut with_copy = object.clone();
        with_copy.extend_from_slice(&last_chunk);
        assert_rejected(&with_copy, &key(), AAD, last_chunk_index);

        let mut with_other = object.clone();
        with_other.extend_from_slice(&seal(&key_id(), &key(), AAD, b"x")[HEADER_LEN..]);
        assert_rejected(&with_other, &key(), AAD, last_chunk_index);
    }
}

#[test]
fn extra_chunk_sealed_with_the_right_key_is_rejected() {
    // Someone with the key re-seals the object's last chunk as non-last and appends a new
    // last chunk: the old final chunk no longer authenticates at its position.
    let object = seal(&key_id(), &key(), AAD, &pattern(CHUNK_SIZE));
    let header = ObjectHeader::parse(
        object[..HEADER_LEN]
            .try_into()
            .expect("header is HEADER_LEN bytes"),
    )
    .expect("header");
    let chunks = ChunkCipher::new(&key(), &header, AAD);
    let mut extra = b"appended".to_vec();
    let tag = chunks.seal(1, true, &mut extra);
    let mut extended = object.clone();
    extended.extend_from_slice(&extra);
    extended.extend_from_slice(&tag);
    assert_rejected(&extended, &key(), AAD, 0);
}

#[test]
fn empty_final_chunk_after_a_full_chunk_is_rejected() {
    // The writer never produces this encoding; accepting it would give one plaintext two
    // encodings and break plaintext_len.
    let plaintext = pattern(CHUNK_SIZE);
    let header = ObjectHeader {
        key_id: key_id(),
        nonce_prefix: [9; NONCE_PREFIX_LEN],
    };
    let chunks = ChunkCipher::new(&key(), &header, AAD);
    let mut object = header.to_bytes().to_vec();
    let mut first = plaintext.clone();
    let tag = chunks.seal(0, false, &mut first);
    object.extend_from_slice(&first);
    object.extend_from_slice(&tag);
    let tag = chunks.seal(1, true, &mut []);
    object.extend_from_slice(&tag);
    assert_rejected(&object, &key(), AAD, 1);
}

#[test]
fn changed_key_id_in_the_header_is_rejected() {
    let object = seal(&key_id(), &key(), AAD, &pattern(1000));
    let mut relabelled = object.clone();
    relabelled[8..24].copy_from_slice(KeyId::generate().as_bytes());
    assert_decrypt_error(open(&key(), AAD, &relabelled));
    assert_rejected(&relabelled, &key(), AAD, 0);
}

#[test]
fn bad_magic_version_and_reserved_byte_are_format_errors() {
    let object = seal(&key_id(), &key(), AAD, b"text");
    for (position, value) in [(0, b'X'), (6, 1), (7, 2), (31, 1)] {
        let mut altered = object.clone();
        altered[position] = value;
        assert!(matches!(
            open(&key(), AAD, &altered),
            Err(StorageError::Format(_))
        ));
        assert!(matches!(
            read_key_id(&mut &altered[..]),
            Err(StorageError::Format(_))
        ));
    }
}

#[test]
fn object_moved_to_another_identity_is_rejected() {
    let object = seal(&key_id(), &key(), AAD, &pattern(CHUNK_SIZE + 10));
    for other in [
        &b"document 7f0c/original/page 1"[..],
        b"",
        b"document 7f0c/original/page 0\0",
    ] {
        assert_decrypt_error(open(&key(), other, &object));
        assert_rejected(&object, &key(), other, 0);
    }
}

#[test]
fn wrong_key_is_rejected() {
    let object = seal(&key_id(), &key(), AAD, &pattern(CHUNK_SIZE + 10));
    let wrong = DataKey::generate();
    assert_decrypt_error(open(&wrong, AAD, &object));
    assert_rejected(&object, &wrong, AAD, 0);
}

#[test]
fn unfinished_writer_leaves_an_undecryptable_object() {
    let mut object = Vec::new();
    {
        let mut writer = EncryptWriter::new(&mut object, &key_id(), &key(), AAD).expect("new");
        writer
            .write_all(&pattern(2 * CHUNK_SIZE + 1))
            .expect("write");
    }
    assert_rejected(&object, &key(), AAD, 2);
}

#[test]
fn decrypt_error_message_is_coarse() {
    let object = seal(&key_id(), &key(), AAD, b"text");
    let error = open(&DataKey::generate(), AAD, &object).expect_err("wrong key");
    assert_eq!(
        error.to_string(),
        "decryption failed: authentication failed"
    );
}

#[test]
fn writer_that_hit_an_io_error_refuses_further_use() {
    struct FailAfter(usize);
    impl Write for FailAfter {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            if self.0 < data.len() {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= data.len();
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer =
        EncryptWriter::new(FailAfter(HEADER_LEN + 10), &key_id(), &key(), AAD).expect("header");
    assert!(writer.write_all(&pattern(CHUNK_SIZE + 1)).is_err());
    assert!(writer.write(b"more").is_err());
    assert!(writer.finish().is_err());
}

/// Writes `plaintext` in pieces whose sizes cycle through `splits`.
fn encrypt_in_pieces(plaintext: &[u8], splits: &[usize]) -> Vec<u8> {
    let mut writer = EncryptWriter::new(Vec::new(), &key_id(), &key(), AAD).expect("new");
    let mut offset = 0;
    for &split in splits.iter().cycle() {
        if offset >= plaintext.len() {
            break;
        }
        let end = (offset + split).min(plaintext.len());
        writer.write_all(&plaintext[offset..end]).expect("write");
        offset = end;
    }
    writer.finish().expect("finish")
}

fn any_length() -> impl Strategy<Value = usize> {
    prop_oneof![
        0..=3 * CHUNK_SIZE + 100,
        (0usize..4, -3i64..=3)
            .prop_map(|(chunks, delta)| { ((chunks * CHUNK_SIZE) as i64 + delta).max(0) as usize }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_lengths_and_write_splits_round_trip(
        len in any_length(),
        splits in prop::collection::vec(1usize..=2 * CHUNK_SIZE + 3, 1..8),
        read_size in 1usize..=CHUNK_SIZE + 20,
    ) {
        let plaintext = pattern(len);
        let object = encrypt_in_pieces(&plaintext, &splits);
        // Write splits never change the bytes: only the nonce prefix differs per object.
        prop_assert_eq!(object.len() as u64, ciphertext_len(len as u64));
        prop_assert_eq!(plaintext_len(object.len() as u64).expect("valid"), len as u64);

        let mut reader = DecryptReader::new(&object[..], &key(), AAD).expect("header");
        let mut read = Vec::with_capacity(len);
        let mut buffer = vec![0u8; read_size];
        loop {
            let count = reader.read(&mut buffer).expect("read");
            if count == 0 {
                break;
            }
            read.extend_from_slice(&buffer[..count]);
        }
        prop_assert!(read == plaintext);
    }

    #[test]
    fn random_seeks_match_the_plaintext(
        len in any_length(),
        seeks in prop::collection::vec((0u8..3, any::<u32>(), 0usize..3_000), 1..24),
    ) {
        let plaintext = pattern(len);
        let object = seal(&key_id(), &key(), AAD, &plaintext);
        let mut reader = DecryptReader::new(Cursor::new(&object), &key(), AAD).expect("header");
        let mut position = 0u64;
        let span = len as u64 + 10;
        for (whence, raw, read_len) in seeks {
            let target = u64::from(raw) % span;
            let seek = match whence {
                0 => SeekFrom::Start(target),
                1 => SeekFrom::Current(target as i64 - position as i64),
                _ => SeekFrom::End(target as i64 - len as i64),
            };
            prop_assert_eq!(reader.seek(seek).expect("seek"), target);
            let mut buffer = vec![0u8; read_len];
            let mut filled = 0;
            while filled < read_len {
                let count = reader.read(&mut buffer[filled..]).expect("read");
                if count == 0 {
                    break;
                }
                filled += count;
            }
            let start = (target as usize).min(len);
            let end = (target as usize + read_len).min(len);
            prop_assert_eq!(&buffer[..filled], &plaintext[start..end]);
            position = target + filled as u64;
            prop_assert_eq!(reader.stream_position().expect("position"), position);
        }
    }
}
