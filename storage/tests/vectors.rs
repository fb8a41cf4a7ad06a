//! Committed test vectors that freeze the object format, one set per format version (age
//! style).
//!
//! README: `tests/vectors/*.cvault` are objects in format version 1 and
//! `tests/vectors/v2/*.cvault` objects in format version 2, made with the fixed key, key id,
//! nonce prefix, salt (version 2) and aad below; the plaintext of an object of length `n` is
//! `pattern(n)` (byte `i` is `i % 251`). Every `ok_*` vector must decrypt to its plaintext;
//! every `fail_*` vector must fail to decrypt with the standard key and aad. The vectors are
//! rebuilt from their recipes in `vectors(version)` and must match the committed bytes
//! exactly, so the format cannot drift silently.
//!
//! The version-1 vectors stand for objects stored before version 2 existed: they are never
//! regenerated (nothing writes version 1 any more but the test-vector constructor here). To
//! write the vectors of a new format version after a deliberate format change (a new
//! version, never an edit of an existing one), add its directory and recipes, then run
//! `cargo test -p chartvault-storage --test vectors -- --ignored write_vectors`, which writes
//! only the vectors of [`FormatVersion::CURRENT`].

use std::io::{Read, Write};
use std::path::PathBuf;

use chartvault_storage::{
    open, read_header, read_key_id, DataKey, DecryptReader, EncryptWriter, FormatVersion, KeyId,
    ObjectHeader, StorageError, CHUNK_SIZE,
};

const KEY: [u8; 32] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const KEY_ID: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const NONCE_PREFIX: [u8; 7] = [0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6];
/// The version-2 salt. Its byte 7 is 0x00 on purpose: relabelled as version 1
/// (`fail_version_2_as_1`), the first 32 bytes then parse as a valid version-1 header, so
/// that vector must be stopped by authentication, not merely by the reserved-byte check.
const SALT: [u8; 32] = [
    0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0x00, 0xd8, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf,
    0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef,
];
const AAD: &[u8] = b"document 00000000-0000-4000-8000-000000000001/original/page 0";
const OTHER_AAD: &[u8] = b"document 00000000-0000-4000-8000-000000000002/original/page 0";
const SEALED_CHUNK: usize = CHUNK_SIZE + 16;
/// The HKDF `info` of version 2, as the module docs give it.
const OBJECT_KEY_INFO_V2: &[u8] = b"chartvault object v2";

const VERSIONS: [FormatVersion; 2] = [FormatVersion::V1, FormatVersion::V2];

/// `ok_*` vectors (of every version): name and plaintext length.
const OK_VECTORS: &[(&str, usize)] = &[
    ("ok_empty", 0),
    ("ok_short", 13),
    ("ok_one_full_chunk", CHUNK_SIZE),
    ("ok_three_chunks", 2 * CHUNK_SIZE + 1000),
];

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 251) as u8).collect()
}

fn vector_dir(version: FormatVersion) -> PathBuf {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    match version {
        FormatVersion::V1 => base,
        other => base.join(format!("v{other}")),
    }
}

fn header(version: FormatVersion) -> ObjectHeader {
    match version {
        FormatVersion::V1 => ObjectHeader::test_vector_v1(KeyId::from_bytes(KEY_ID), NONCE_PREFIX),
        FormatVersion::V2 => {
            ObjectHeader::test_vector_v2(KeyId::from_bytes(KEY_ID), SALT, NONCE_PREFIX)
        }
        other => panic!("no test vectors for format version {other}"),
    }
}

fn encrypt(version: FormatVersion, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut writer = EncryptWriter::with_test_vector_header(
        Vec::new(),
        header(version),
        &DataKey::from_bytes(KEY),
        aad,
    )
    .expect("writing to a Vec cannot fail");
    writer
        .write_all(plaintext)
        .expect("writing to a Vec cannot fail");
    writer.finish().expect("writing to a Vec cannot fail")
}

fn chunk(version: FormatVersion, object: &[u8], index: usize) -> &[u8] {
    let start = version.header_len() + index * SEALED_CHUNK;
    &object[start..(start + SEALED_CHUNK).min(object.len())]
}

/// Every vector of `version`, rebuilt from its recipe.
fn vectors(version: FormatVersion) -> Vec<(String, Vec<u8>)> {
    let header_len = version.header_len();
    let mut vectors: Vec<(String, Vec<u8>)> = OK_VECTORS
        .iter()
        .map(|&(name, len)| (name.to_string(), encrypt(version, &pattern(len), AAD)))
        .collect();
    let short = encrypt(version, &pattern(13), AAD);
    let three = encrypt(version, &pattern(2 * CHUNK_SIZE + 1000), AAD);

    let truncated_at_boundary = three[..header_len + SEALED_CHUNK].to_vec();
    let truncated_mid_chunk = short[..short.len() - 5].to_vec();
    let header_only = short[..header_len].to_vec();
    let mut swapped_chunks = three[..header_len].to_vec();
    swapped_chunks.extend_from_slice(chunk(version, &three, 1));
    swapped_chunks.extend_from_slice(chunk(version, &three, 0));
    swapped_chunks.extend_from_slice(chunk(version, &three, 2));
    let mut flipped_tag = short.clone();
    *flipped_tag.last_mut().expect("object is not empty") ^= 0x01;
    let mut flipped_body = short.clone();
    flipped_body[header_len] ^= 0x80;
    let wrong_aad = encrypt(version, &pattern(13), OTHER_AAD);
    let mut extra_chunk = short.clone();
    extra_chunk.extend_from_slice(chunk(version, &short, 0));
    let mut key_id_changed = short.clone();
    key_id_changed[8] ^= 0xff;
    let mut bad_magic = short.clone();
    bad_magic[0] = b'X';

    vectors.extend([
        (
            "fail_truncated_at_chunk_boundary".to_string(),
            truncated_at_boundary,
        ),
        ("fail_truncated_mid_chunk".to_string(), truncated_mid_chunk),
        ("fail_header_only".to_string(), header_only),
        ("fail_swapped_chunks".to_string(), swapped_chunks),
        ("fail_flipped_tag".to_string(), flipped_tag),
        ("fail_flipped_body".to_string(), flipped_body),
        ("fail_wrong_aad".to_string(), wrong_aad),
        ("fail_extra_chunk".to_string(), extra_chunk),
        ("fail_key_id_changed".to_string(), key_id_changed),
        ("fail_bad_magic".to_string(), bad_magic),
    ]);
    if version == FormatVersion::V2 {
        vectors.extend(version_2_header_vectors(&short, &three));
    }
    vectors
}

/// The `fail_*` vectors only version 2 has: edits of its own header fields, and objects of
/// one version relabelled as the other.
fn version_2_header_vectors(short: &[u8], three: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut salt_changed = short.to_vec();
    salt_changed[24 + 31] ^= 0x01;
    let mut nonce_prefix_changed = short.to_vec();
    nonce_prefix_changed[56] ^= 0x01;
    let mut reserved_byte_set = short.to_vec();
    reserved_byte_set[63] = 0x01;
    // 40 bytes: a whole version-1 header's worth, but not a version-2 header.
    let truncated_in_header = short[..40].to_vec();
    let mut version_2_as_1 = three.to_vec();
    version_2_as_1[7] = 1;
    let mut version_1_as_2 = encrypt(FormatVersion::V1, &pattern(2 * CHUNK_SIZE + 1000), AAD);
    version_1_as_2[7] = 2;
    vec![
        ("fail_salt_changed".to_string(), salt_changed),
        (
            "fail_nonce_prefix_changed".to_string(),
            nonce_prefix_changed,
        ),
        ("fail_reserved_byte_set".to_string(), reserved_byte_set),
        ("fail_truncated_in_header".to_string(), truncated_in_header),
        ("fail_version_2_as_1".to_string(), version_2_as_1),
        ("fail_version_1_as_2".to_string(), version_1_as_2),
    ]
}

fn committed(version: FormatVersion, name: &str) -> Vec<u8> {
    let path = vector_dir(version).join(format!("{name}.cvault"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn ok_vectors_decrypt_to_their_plaintext() {
    let key = DataKey::from_bytes(KEY);
    for version in VERSIONS {
        for &(name, len) in OK_VECTORS {
            let object = committed(version, name);
            let header = read_header(&mut &object[..]).expect("header");
            assert_eq!(header.version(), version, "v{version} {name}");
            assert_eq!(
                read_key_id(&mut &object[..]).expect("header"),
                KeyId::from_bytes(KEY_ID),
                "v{version} {name}"
            );
            let plaintext = open(&key, AAD, &object)
                .unwrap_or_else(|error| panic!("v{version} {name}: {error}"));
            assert!(
                plaintext == pattern(len),
                "v{version} {name} decrypts to its plaintext"
            );
        }
    }
}

#[test]
fn fail_vectors_fail_and_yield_nothing() {
    let key = DataKey::from_bytes(KEY);
    for (version, expected_count) in [(FormatVersion::V1, 10), (FormatVersion::V2, 16)] {
        let mut fail_vectors = 0;
        for entry in std::fs::read_dir(vector_dir(version)).expect("vector directory") {
            let path = entry.expect("entry").path();
            let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
                continue;
            };
            if !name.starts_with("fail_") {
                continue;
            }
            fail_vectors += 1;
            let object = committed(version, name);
            let error = open(&key, AAD, &object).expect_err(name);
            assert!(
                matches!(error, StorageError::Decrypt | StorageError::Format(_)),
                "v{version} {name}: {error}"
            );
            if let Ok(mut reader) = DecryptReader::new(&object[..], &key, AAD) {
                let mut handed_out = Vec::new();
                assert!(
                    reader.read_to_end(&mut handed_out).is_err(),
                    "v{version} {name}"
                );
                // Only chunks before the damage may have been handed out, and only as they
                // were.
                assert!(handed_out.len() % CHUNK_SIZE == 0, "v{version} {name}");
                assert!(handed_out == pattern(handed_out.len()), "v{version} {name}");
            }
        }
        assert_eq!(
            fail_vectors, expected_count,
            "every v{version} fail_* vector is committed"
        );
    }
}

#[test]
fn version_2_relabelled_as_version_1_fails_authentication_not_parsing() {
    // See SALT: the relabelled header is a well-formed version-1 header.
    let object = committed(FormatVersion::V2, "fail_version_2_as_1");
    let header = read_header(&mut &object[..]).expect("parses as version 1");
    assert_eq!(header.version(), FormatVersion::V1);
    assert!(matches!(
        open(&DataKey::from_bytes(KEY), AAD, &object),
        Err(StorageError::Decrypt)
    ));
}

#[test]
fn vectors_are_reproduced_bit_for_bit() {
    for version in VERSIONS {
        for (name, bytes) in vectors(version) {
            assert!(
                committed(version, &name) == bytes,
                "v{version} {name}: the object format changed; see the README at the top of \
                 this file"
            );
        }
    }
}

/// Decrypts the ok vectors straight from the documented layouts with `aes-gcm` and `hkdf`
/// themselves, without the crate's reader: the module docs and the code must describe the
/// same format.
#[test]
fn ok_vectors_follow_the_documented_layout() {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    for version in VERSIONS {
        for &(name, len) in OK_VECTORS {
            let object = committed(version, name);
            let (header_len, nonce_prefix, object_key) = match version {
                FormatVersion::V1 => {
                    let header = &object[..32];
                    assert_eq!(&header[..8], b"CVAULT\0\x01", "{name}: magic");
                    assert_eq!(&header[8..24], &KEY_ID, "{name}: key id");
                    assert_eq!(&header[24..31], &NONCE_PREFIX, "{name}: nonce prefix");
                    assert_eq!(header[31], 0, "{name}: reserved byte");
                    (32, &header[24..31], KEY)
                }
                FormatVersion::V2 => {
                    let header = &object[..64];
                    assert_eq!(&header[..8], b"CVAULT\0\x02", "{name}: magic");
                    assert_eq!(&header[8..24], &KEY_ID, "{name}: key id");
                    assert_eq!(&header[24..56], &SALT, "{name}: salt");
                    assert_eq!(&header[56..63], &NONCE_PREFIX, "{name}: nonce prefix");
                    assert_eq!(header[63], 0, "{name}: reserved byte");
                    let mut object_key = [0u8; 32];
                    hkdf::Hkdf::<sha2::Sha256>::new(Some(&header[24..56]), &KEY)
                        .expand(OBJECT_KEY_INFO_V2, &mut object_key)
                        .expect("32-byte output");
                    (64, &header[56..63], object_key)
                }
                other => panic!("no documented layout for version {other}"),
            };
            let cipher = Aes256Gcm::new(&object_key.into());
            let mut associated_data = object[..header_len].to_vec();
            associated_data.extend_from_slice(AAD);

            let body = &object[header_len..];
            let chunk_count = body.len().div_ceil(SEALED_CHUNK).max(1);
            let mut plaintext = Vec::new();
            for index in 0..chunk_count {
                let sealed =
                    &body[index * SEALED_CHUNK..((index + 1) * SEALED_CHUNK).min(body.len())];
                let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
                let last = index + 1 == chunk_count;
                let mut nonce = [0u8; 12];
                nonce[..7].copy_from_slice(nonce_prefix);
                nonce[7..11].copy_from_slice(&(index as u32).to_be_bytes());
                nonce[11] = u8::from(last);
                let mut chunk = ciphertext.to_vec();
                cipher
                    .decrypt_inout_detached(
                        &Nonce::from(nonce),
                        &associated_data,
                        chunk.as_mut_slice().into(),
                        &Tag::try_from(tag).expect("16-byte tag"),
                    )
                    .unwrap_or_else(|_| {
                        panic!("v{version} {name}: chunk {index} does not authenticate")
                    });
                plaintext.extend_from_slice(&chunk);
            }
            assert!(
                plaintext == pattern(len),
                "v{version} {name}: documented layout"
            );
        }
    }
}

#[test]
#[ignore = "writes tests/vectors/v2; run only after a deliberate format change"]
fn write_vectors() {
    let version = FormatVersion::CURRENT;
    std::fs::create_dir_all(vector_dir(version)).expect("vector directory");
    for (name, bytes) in vectors(version) {
        std::fs::write(vector_dir(version).join(format!("{name}.cvault")), bytes)
            .expect("write vector");
    }
}
