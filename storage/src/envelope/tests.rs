//! Round-trip, seek and tamper tests of the object format, for every format version: version
//! 2 as writers write it, version 1 through the test-vector header (as objects stored before
//! version 2 were written).

use std::io::{Cursor, Read, Seek, SeekFrom, Write};

use proptest::prelude::*;

use super::*;
use crate::keys::random_array;

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

/// Every version the readers accept.
const VERSIONS: [FormatVersion; 2] = [FormatVersion::V1, FormatVersion::V2];

/// A fresh header of `version` for `key_id()`, random where the format makes it random.
fn header_of(version: FormatVersion) -> ObjectHeader {
    match version {
        FormatVersion::V1 => ObjectHeader::test_vector_v1(key_id(), random_array()),
        FormatVersion::V2 => ObjectHeader::generate(key_id()),
    }
}

/// Like [`seal`], in `version` (version 2 through `seal` itself).
fn seal_as(version: FormatVersion, plaintext: &[u8]) -> Vec<u8> {
    if version == FormatVersion::CURRENT {
        return seal(&key_id(), &key(), AAD, plaintext);
    }
    let mut writer =
        EncryptWriter::with_test_vector_header(Vec::new(), header_of(version), &key(), AAD)
            .expect("header");
    writer.write_all(plaintext).expect("write");
    writer.finish().expect("finish")
}

/// Chunk `index` of `object` as stored (ciphertext and tag).
fn sealed_chunk(object: &[u8], index: usize) -> Vec<u8> {
    let start = read_header(&mut &object[..]).expect("header").len() + index * SEALED;
    object[start..(start + SEALED).min(object.len())].to_vec()
}

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
    for version in VERSIONS {
        for &len in BOUNDARY_LENGTHS {
            let plaintext = pattern(len);
            let object = seal_as(version, &plaintext);
            assert_eq!(
                object.len() as u64,
                version.ciphertext_len(len as u64),
                "v{version} len {len}"
            );
            let header = read_header(&mut &object[..]).expect("header");
            assert_eq!(header.version(), version);
            assert_eq!(
                header.plaintext_len(object.len() as u64).expect("valid"),
                len as u64
            );
            assert_eq!(object[..8], version.magic());
            assert!(
                open(&key(), AAD, &object).expect("open") == plaintext,
                "v{version} len {len}"
            );

            let mut reader = DecryptReader::new(&object[..], &key(), AAD).expect("header");
            assert_eq!(reader.header().version(), version);
            let (read, outcome) = drain(&mut reader);
            outcome.expect("streaming read");
            assert!(read == plaintext, "v{version} streamed len {len}");
        }
    }
}

#[test]
fn writers_write_the_current_version() {
    assert_eq!(FormatVersion::CURRENT, FormatVersion::V2);
    let sealed = seal(&key_id(), &key(), AAD, b"text");
    let mut streamed = Vec::new();
    let mut writer = EncryptWriter::new(&mut streamed, &key_id(), &key(), AAD).expect("new");
    writer.write_all(b"text").expect("write");
    writer.finish().expect("finish");
    for object in [sealed, streamed] {
        assert_eq!(object[..8], *b"CVAULT\0\x02");
        assert_eq!(
            read_header(&mut &object[..]).expect("header").version(),
            FormatVersion::CURRENT
        );
    }
}

#[test]
fn empty_plaintext_is_one_empty_last_chunk() {
    for version in VERSIONS {
        let object = seal_as(version, b"");
        assert_eq!(object.len(), version.header_len() + TAG_LEN);
    }
}

#[test]
fn full_final_chunk_has_no_empty_chunk_after_it() {
    for version in VERSIONS {
        let object = seal_as(version, &pattern(2 * CHUNK_SIZE));
        assert_eq!(object.len(), version.header_len() + 2 * SEALED);
    }
}

#[test]
fn version_1_header_lays_out_magic_key_id_prefix_and_reserved_byte() {
    let mut object = Vec::new();
    let header = ObjectHeader::test_vector_v1(key_id(), [1, 2, 3, 4, 5, 6, 7]);
    let writer =
        EncryptWriter::with_test_vector_header(&mut object, header, &key(), AAD).expect("header");
    writer.finish().expect("finish");
    assert_eq!(FormatVersion::V1.header_len(), 32);
    assert_eq!(header.len(), 32);
    assert_eq!(&object[0..8], b"CVAULT\0\x01");
    assert_eq!(&object[8..24], key_id().as_bytes());
    assert_eq!(&object[24..31], &[1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(object[31], 0);
    assert_eq!(object.len(), 32 + TAG_LEN);
    assert_eq!(read_header(&mut &object[..]).expect("header"), header);
    assert_eq!(read_key_id(&mut &object[..]).expect("key id"), key_id());
}

#[test]
fn version_2_header_lays_out_magic_key_id_salt_prefix_and_reserved_byte() {
    let salt: [u8; SALT_LEN] = std::array::from_fn(|index| 0x80 + index as u8);
    let header = ObjectHeader::test_vector_v2(key_id(), salt, [1, 2, 3, 4, 5, 6, 7]);
    let mut object = Vec::new();
    let writer =
        EncryptWriter::with_test_vector_header(&mut object, header, &key(), AAD).expect("header");
    writer.finish().expect("finish");
    assert_eq!(FormatVersion::V2.header_len(), 64);
    assert_eq!(MAX_HEADER_LEN, 64);
    assert_eq!(header.len(), 64);
    assert_eq!(&object[0..8], b"CVAULT\0\x02");
    assert_eq!(&object[8..24], key_id().as_bytes());
    assert_eq!(&object[24..56], &salt);
    assert_eq!(&object[56..63], &[1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(object[63], 0);
    assert_eq!(object.len(), 64 + TAG_LEN);
    assert_eq!(read_header(&mut &object[..]).expect("header"), header);
    assert_eq!(read_key_id(&mut &object[..]).expect("key id"), key_id());
}

#[test]
fn read_header_stops_at_the_first_chunk_of_either_version() {
    for version in VERSIONS {
        let object = seal_as(version, b"page text");
        let mut rest = &object[..];
        let header = read_header(&mut rest).expect("header");
        assert_eq!(header.len(), version.header_len());
        assert_eq!(rest.len(), object.len() - version.header_len());
    }
}

#[test]
fn each_object_gets_a_fresh_salt_and_nonce_prefix() {
    let first = seal(&key_id(), &key(), AAD, b"same");
    let second = seal(&key_id(), &key(), AAD, b"same");
    assert_ne!(first[24..56], second[24..56], "salt");
    assert_ne!(first[56..63], second[56..63], "nonce prefix");
    assert_ne!(first, second);
}

#[test]
fn version_2_chunks_are_not_encrypted_under_the_data_key_itself() {
    // Decrypt a version-2 chunk with the data key as the AES key, as version 1 would: it must
    // not authenticate, so the object key really is derived.
    let object = seal(&key_id(), &key(), AAD, b"page text");
    let header = read_header(&mut &object[..]).expect("header");
    let mut associated_data = object[..header.len()].to_vec();
    associated_data.extend_from_slice(AAD);
    let mut nonce = [0u8; 12];
    nonce[..NONCE_PREFIX_LEN].copy_from_slice(&object[56..63]);
    nonce[11] = 1;
    let body = &object[header.len()..];
    let (ciphertext, tag) = body.split_at(body.len() - TAG_LEN);
    let mut chunk = ciphertext.to_vec();
    let with_data_key = key().cipher().decrypt_inout_detached(
        &Nonce::from(nonce),
        &associated_data,
        chunk.as_mut_slice().into(),
        &Tag::try_from(tag).expect("16-byte tag"),
    );
    assert!(with_data_key.is_err());
    // The same data key with another salt gives another object key.
    let salt_a = ObjectHeader::test_vector_v2(key_id(), [1; SALT_LEN], [0; NONCE_PREFIX_LEN]);
    let salt_b = ObjectHeader::test_vector_v2(key_id(), [2; SALT_LEN], [0; NONCE_PREFIX_LEN]);
    let mut chunk_a = b"same plaintext".to_vec();
    let mut chunk_b = chunk_a.clone();
    ChunkCipher::new(ObjectKey::derive(&key(), &salt_a), AAD).seal(0, true, &mut chunk_a);
    ChunkCipher::new(ObjectKey::derive(&key(), &salt_b), AAD).seal(0, true, &mut chunk_b);
    assert_ne!(chunk_a, chunk_b);
}

#[test]
fn reader_continues_after_read_header() {
    for version in VERSIONS {
        let object = seal_as(version, &pattern(70_000));
        let mut cursor = Cursor::new(&object);
        let header = read_header(&mut cursor).expect("header");
        assert_eq!(header.key_id(), key_id());
        let mut reader = DecryptReader::from_header(cursor, header, &key(), AAD);
        assert_eq!(reader.key_id(), key_id());
        let mut plaintext = Vec::new();
        reader.read_to_end(&mut plaintext).expect("read");
        assert!(plaintext == pattern(70_000));
    }
}

#[test]
fn one_object_key_serves_many_readers_and_seeks() {
    for version in VERSIONS {
        let plaintext = pattern(3 * CHUNK_SIZE + 7);
        let object = seal_as(version, &plaintext);
        let header = read_header(&mut &object[..]).expect("header");
        let object_key = ObjectKey::derive(&key(), &header);
        assert_eq!(object_key.header(), &header);
        for start in [0, CHUNK_SIZE - 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 6] {
            let mut cursor = Cursor::new(&object);
            cursor
                .seek(SeekFrom::Start(header.len() as u64))
                .expect("seek");
            let mut reader = DecryptReader::from_object_key(cursor, &object_key, AAD);
            reader.seek(SeekFrom::Start(start as u64)).expect("seek");
            let mut buffer = [0u8; 5];
            let count = reader.read(&mut buffer).expect("read");
            assert!(count > 0);
            assert_eq!(buffer[..count], plaintext[start..start + count]);
            assert_eq!(
                reader.seek(SeekFrom::End(0)).expect("seek"),
                plaintext.len() as u64
            );
        }
        // The key of one object opens no other, even under the same data key.
        let other = seal_as(version, &plaintext);
        let mut cursor = Cursor::new(&other);
        cursor
            .seek(SeekFrom::Start(header.len() as u64))
            .expect("seek");
        let mut reader = DecryptReader::from_object_key(cursor, &object_key, AAD);
        assert!(reader.read(&mut [0u8; 8]).is_err(), "v{version}");
    }
}

#[test]
fn object_key_debug_shows_no_key_material() {
    let header = ObjectHeader::test_vector_v2(key_id(), [0xab; SALT_LEN], [0xcd; 7]);
    let debug = format!("{:?}", ObjectKey::derive(&key(), &header));
    assert!(debug.contains("V2"), "{debug}");
    assert!(!debug.contains("42") && !debug.contains("66"), "{debug}");
}

#[test]
fn object_at_an_offset_in_a_larger_stream_seeks_correctly() {
    for version in VERSIONS {
        let plaintext = pattern(2 * CHUNK_SIZE + 300);
        let mut stream = b"unrelated prefix bytes".to_vec();
        let prefix_len = stream.len() as u64;
        stream.extend_from_slice(&seal_as(version, &plaintext));
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
        reader
            .seek(SeekFrom::Start(CHUNK_SIZE as u64 - 2))
            .expect("seek");
        reader
            .read_exact(&mut buffer)
            .expect("read across a boundary");
        assert_eq!(buffer[..], plaintext[CHUNK_SIZE - 2..CHUNK_SIZE + 48]);
    }
}

#[test]
fn seek_past_the_end_reads_nothing_after_authenticating_the_last_chunk() {
    for version in VERSIONS {
        for &len in BOUNDARY_LENGTHS {
            let object = seal_as(version, &pattern(len));
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
}

#[test]
fn seek_past_the_end_of_a_truncated_object_fails() {
    for version in VERSIONS {
        let header_len = version.header_len();
        let object = seal_as(version, &pattern(3 * CHUNK_SIZE));
        // Cut at a chunk boundary: the length is plausible but the final chunk is not last.
        let truncated = &object[..header_len + 2 * SEALED];
        let mut reader = DecryptReader::new(Cursor::new(truncated), &key(), AAD).expect("header");
        reader
            .seek(SeekFrom::End(0))
            .expect("seek computes a length");
        assert!(reader.read(&mut [0u8; 8]).is_err());
        // Cut mid-tag: no valid object has that length.
        let truncated = &object[..header_len + SEALED + 5];
        let mut reader = DecryptReader::new(Cursor::new(truncated), &key(), AAD).expect("header");
        assert!(reader.seek(SeekFrom::End(0)).is_err());
    }
}

#[test]
fn plaintext_len_rejects_impossible_lengths() {
    for version in VERSIONS {
        let header_len = version.header_len();
        assert!(matches!(
            version.plaintext_len(0),
            Err(StorageError::Format(_))
        ));
        assert!(matches!(
            version.plaintext_len(header_len as u64 - 1),
            Err(StorageError::Format(_))
        ));
        for body in [0, 1, TAG_LEN - 1, SEALED + 3, SEALED + TAG_LEN] {
            assert!(
                matches!(
                    version.plaintext_len((header_len + body) as u64),
                    Err(StorageError::Decrypt)
                ),
                "v{version} body {body}"
            );
        }
        assert_eq!(
            version
                .plaintext_len((header_len + TAG_LEN) as u64)
                .expect("empty"),
            0
        );
        assert_eq!(
            version
                .plaintext_len((header_len + SEALED + TAG_LEN + 1) as u64)
                .expect("one byte more"),
            CHUNK_SIZE as u64 + 1
        );
    }
    // The same length means different plaintext lengths in the two versions.
    let len = (FormatVersion::V2.header_len() + TAG_LEN + 100) as u64;
    assert_eq!(FormatVersion::V2.plaintext_len(len).expect("v2"), 100);
    assert_eq!(FormatVersion::V1.plaintext_len(len).expect("v1"), 132);
}

#[test]
fn objects_of_every_version_are_recognised_and_nothing_else_is() {
    for version in VERSIONS {
        let object = seal_as(version, b"x");
        assert!(is_object(&object));
        assert_eq!(FormatVersion::of_object(&object), Some(version));
        assert!(object.starts_with(MAGIC_PREFIX));
        assert_eq!(FormatVersion::of_object(&version.magic()), Some(version));
    }
    for bytes in [
        &b""[..],
        b"CVAULT\0",
        b"CVAULT\0\x00 and more",
        b"CVAULT\0\x03 and more",
        b"cvault\0\x02 and more",
        b"Jane Roe",
    ] {
        assert!(!is_object(bytes), "{bytes:?}");
    }
}

#[test]
fn flipped_bits_anywhere_are_rejected() {
    for version in VERSIONS {
        let header_len = version.header_len();
        let plaintext = pattern(2 * CHUNK_SIZE + 100);
        let object = seal_as(version, &plaintext);
        let mut positions: Vec<usize> = (0..header_len).collect();
        for chunk in 0..3 {
            let start = header_len + chunk * SEALED;
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
            positions.push(header_len + (state as usize) % (object.len() - header_len));
        }
        for position in positions {
            let bit = position % 8;
            let mut tampered = object.clone();
            tampered[position] ^= 1 << bit;
            let first_bad_chunk = if position < header_len {
                0
            } else {
                (position - header_len) / SEALED
            };
            assert_rejected(&tampered, &key(), AAD, first_bad_chunk);
        }
    }
}

#[test]
fn truncated_objects_are_rejected() {
    for version in VERSIONS {
        let header_len = version.header_len();
        let object = seal_as(version, &pattern(2 * CHUNK_SIZE + 100));
        let mut cuts = vec![0, 1, 8, 31, 32, header_len - 1, header_len, header_len + 1];
        for chunk in 1..=2 {
            let boundary = header_len + chunk * SEALED;
            cuts.extend([boundary - 1, boundary, boundary + 1, boundary + TAG_LEN]);
            cuts.push(boundary - SEALED / 2);
        }
        cuts.push(object.len() - 1);
        for cut in cuts {
            let truncated = &object[..cut];
            let first_bad_chunk = cut.saturating_sub(header_len) / SEALED;
            assert_rejected(truncated, &key(), AAD, first_bad_chunk);
            if cut < header_len {
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
}

#[test]
fn header_only_object_is_rejected() {
    for version in VERSIONS {
        let object = seal_as(version, b"some page text");
        let header_only = &object[..version.header_len()];
        assert_decrypt_error(open(&key(), AAD, header_only));
        assert_rejected(header_only, &key(), AAD, 0);
    }
}

#[test]
fn swapped_chunks_are_rejected() {
    for version in VERSIONS {
        let object = seal_as(version, &pattern(3 * CHUNK_SIZE));
        let header = &object[..version.header_len()];
        let chunk = |index: usize| sealed_chunk(&object, index);
        let mut swapped = header.to_vec();
        swapped.extend(chunk(1));
        swapped.extend(chunk(0));
        swapped.extend(chunk(2));
        assert_decrypt_error(open(&key(), AAD, &swapped));
        assert_rejected(&swapped, &key(), AAD, 0);

        // Swapping the final chunk with a middle one breaks both index and last flag.
        let mut swapped = header.to_vec();
        swapped.extend(chunk(0));
        swapped.extend(chunk(2));
        swapped.extend(chunk(1));
        assert_rejected(&swapped, &key(), AAD, 1);

        // A duplicated chunk in place of another.
        let mut duplicated = header.to_vec();
        duplicated.extend(chunk(0));
        duplicated.extend(chunk(0));
        duplicated.extend(chunk(2));
        assert_rejected(&duplicated, &key(), AAD, 1);
    }
}

#[test]
fn chunks_moved_between_objects_under_one_data_key_are_rejected() {
    // What version 2 adds: two objects under one (service) key have different object keys,
    // so even a chunk at the same index and position does not authenticate in the other.
    let first = seal(&key_id(), &key(), AAD, &pattern(2 * CHUNK_SIZE));
    let second = seal(&key_id(), &key(), AAD, &pattern(2 * CHUNK_SIZE));
    let mut spliced = first[..MAX_HEADER_LEN].to_vec();
    spliced.extend(sealed_chunk(&second, 0));
    spliced.extend(sealed_chunk(&first, 1));
    assert_rejected(&spliced, &key(), AAD, 0);
}

#[test]
fn appended_bytes_are_rejected() {
    for version in VERSIONS {
        let header_len = version.header_len();
        for len in [5, CHUNK_SIZE, CHUNK_SIZE + 5] {
            let object = seal_as(version, &pattern(len));
            let last_chunk_index = (object.len() - header_len - 1) / SEALED;
            let last_chunk = sealed_chunk(&object, last_chunk_index);

            let mut with_byte = object.clone();
            with_byte.push(0);
            assert_rejected(&with_byte, &key(), AAD, last_chunk_index);

            let mut with_copy = object.clone();
            with_copy.extend_from_slice(&last_chunk);
            assert_rejected(&with_copy, &key(), AAD, last_chunk_index);

            let mut with_other = object.clone();
            with_other.extend_from_slice(&seal_as(version, b"x")[header_len..]);
            assert_rejected(&with_other, &key(), AAD, last_chunk_index);
        }
    }
}

#[test]
fn extra_chunk_sealed_with_the_right_key_is_rejected() {
    // Someone with the key re-seals the object's last chunk as non-last and appends a new
    // last chunk: the old final chunk no longer authenticates at its position.
    for version in VERSIONS {
        let object = seal_as(version, &pattern(CHUNK_SIZE));
        let header = read_header(&mut &object[..]).expect("header");
        let chunks = ChunkCipher::new(ObjectKey::derive(&key(), &header), AAD);
        let mut extra = b"appended".to_vec();
        let tag = chunks.seal(1, true, &mut extra);
        let mut extended = object.clone();
        extended.extend_from_slice(&extra);
        extended.extend_from_slice(&tag);
        assert_rejected(&extended, &key(), AAD, 0);
    }
}

#[test]
fn empty_final_chunk_after_a_full_chunk_is_rejected() {
    // The writer never produces this encoding; accepting it would give one plaintext two
    // encodings and break plaintext_len.
    for version in VERSIONS {
        let plaintext = pattern(CHUNK_SIZE);
        let header = header_of(version);
        let chunks = ChunkCipher::new(ObjectKey::derive(&key(), &header), AAD);
        let mut object = chunks.header_bytes().to_vec();
        let mut first = plaintext.clone();
        let tag = chunks.seal(0, false, &mut first);
        object.extend_from_slice(&first);
        object.extend_from_slice(&tag);
        let tag = chunks.seal(1, true, &mut []);
        object.extend_from_slice(&tag);
        assert_rejected(&object, &key(), AAD, 1);
    }
}

#[test]
fn changed_key_id_salt_or_nonce_prefix_in_the_header_is_rejected() {
    for version in VERSIONS {
        let object = seal_as(version, &pattern(1000));
        let mut relabelled = object.clone();
        relabelled[8..24].copy_from_slice(KeyId::generate().as_bytes());
        assert_decrypt_error(open(&key(), AAD, &relabelled));
        assert_rejected(&relabelled, &key(), AAD, 0);
        // Salt (version 2) and nonce prefix: every byte between key id and reserved byte.
        for position in 24..version.header_len() - 1 {
            let mut altered = object.clone();
            altered[position] ^= 0x80;
            assert_decrypt_error(open(&key(), AAD, &altered));
        }
    }
}

#[test]
fn bad_magic_version_and_reserved_byte_are_format_errors() {
    for version in VERSIONS {
        let object = seal_as(version, b"text");
        let reserved = version.header_len() - 1;
        for (position, value) in [(0, b'X'), (6, 1), (7, 0), (7, 3), (7, 0xff), (reserved, 1)] {
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
}

#[test]
fn version_2_object_relabelled_as_version_1_is_rejected() {
    // With byte 7 of the salt zero, the first 32 bytes parse as a valid version-1 header
    // (salt bytes as nonce prefix and reserved byte): authentication must stop it.
    let mut salt: [u8; SALT_LEN] = random_array();
    salt[7] = 0;
    let header = ObjectHeader::test_vector_v2(key_id(), salt, random_array());
    let mut writer =
        EncryptWriter::with_test_vector_header(Vec::new(), header, &key(), AAD).expect("header");
    writer.write_all(&pattern(CHUNK_SIZE + 3)).expect("write");
    let object = writer.finish().expect("finish");
    let mut relabelled = object.clone();
    relabelled[7] = 1;
    let parsed = read_header(&mut &relabelled[..]).expect("parses as version 1");
    assert_eq!(parsed.version(), FormatVersion::V1);
    assert_decrypt_error(open(&key(), AAD, &relabelled));
    assert_rejected(&relabelled, &key(), AAD, 0);
    // With a nonzero byte there, the reserved-byte check stops it first.
    salt[7] = 1;
    let header = ObjectHeader::test_vector_v2(key_id(), salt, random_array());
    let mut relabelled = EncryptWriter::with_test_vector_header(Vec::new(), header, &key(), AAD)
        .expect("header")
        .finish()
        .expect("finish");
    relabelled[7] = 1;
    assert!(matches!(
        open(&key(), AAD, &relabelled),
        Err(StorageError::Format(_))
    ));
}

#[test]
fn version_1_object_relabelled_as_version_2_is_rejected() {
    for len in [0, 40, CHUNK_SIZE + 3] {
        let object = seal_as(FormatVersion::V1, &pattern(len));
        let mut relabelled = object.clone();
        relabelled[7] = 2;
        assert!(open(&key(), AAD, &relabelled).is_err(), "len {len}");
        assert_rejected(&relabelled, &key(), AAD, 0);
    }
    // A version-1 object whose byte 63 happens to be zero parses as version 2, and fails
    // to authenticate.
    let object = loop {
        let object = seal_as(FormatVersion::V1, &pattern(100));
        if object[63] == 0 {
            break object;
        }
    };
    let mut relabelled = object;
    relabelled[7] = 2;
    assert_eq!(
        read_header(&mut &relabelled[..]).expect("parses").version(),
        FormatVersion::V2
    );
    assert_decrypt_error(open(&key(), AAD, &relabelled));
}

#[test]
fn object_moved_to_another_identity_is_rejected() {
    for version in VERSIONS {
        let object = seal_as(version, &pattern(CHUNK_SIZE + 10));
        for other in [
            &b"document 7f0c/original/page 1"[..],
            b"",
            b"document 7f0c/original/page 0\0",
        ] {
            assert_decrypt_error(open(&key(), other, &object));
            assert_rejected(&object, &key(), other, 0);
        }
    }
}

#[test]
fn wrong_key_is_rejected() {
    for version in VERSIONS {
        let object = seal_as(version, &pattern(CHUNK_SIZE + 10));
        let wrong = DataKey::generate();
        assert_decrypt_error(open(&wrong, AAD, &object));
        assert_rejected(&object, &wrong, AAD, 0);
    }
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
    let mut writer = EncryptWriter::new(
        FailAfter(FormatVersion::CURRENT.header_len() + 10),
        &key_id(),
        &key(),
        AAD,
    )
    .expect("header");
    assert!(writer.write_all(&pattern(CHUNK_SIZE + 1)).is_err());
    assert!(writer.write(b"more").is_err());
    assert!(writer.finish().is_err());
}

/// Writes `plaintext` as an object of `version` in pieces whose sizes cycle through `splits`.
fn encrypt_in_pieces(version: FormatVersion, plaintext: &[u8], splits: &[usize]) -> Vec<u8> {
    let mut writer =
        EncryptWriter::with_test_vector_header(Vec::new(), header_of(version), &key(), AAD)
            .expect("new");
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

fn any_version() -> impl Strategy<Value = FormatVersion> {
    prop_oneof![Just(FormatVersion::V1), Just(FormatVersion::V2)]
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
        version in any_version(),
        len in any_length(),
        splits in prop::collection::vec(1usize..=2 * CHUNK_SIZE + 3, 1..8),
        read_size in 1usize..=CHUNK_SIZE + 20,
    ) {
        let plaintext = pattern(len);
        let object = encrypt_in_pieces(version, &plaintext, &splits);
        // Write splits never change the layout: only the random header fields differ.
        prop_assert_eq!(object.len() as u64, version.ciphertext_len(len as u64));
        prop_assert_eq!(version.plaintext_len(object.len() as u64).expect("valid"), len as u64);

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
        version in any_version(),
        len in any_length(),
        seeks in prop::collection::vec((0u8..3, any::<u32>(), 0usize..3_000), 1..24),
    ) {
        let plaintext = pattern(len);
        let object = seal_as(version, &plaintext);
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
