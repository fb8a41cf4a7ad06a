//! Committed test vectors that freeze the object format (age style).
//!
//! README: `tests/vectors/*.cvault` are objects in format version 1, made with the fixed key,
//! key id, nonce prefix and aad below; the plaintext of an object of length `n` is
//! `pattern(n)` (byte `i` is `i % 251`). Every `ok_*` vector must decrypt to its plaintext;
//! every `fail_*` vector must fail to decrypt with the standard key and aad. The vectors are
//! rebuilt from their recipes in `all_vectors()` and must match the committed bytes exactly,
//! so the format cannot drift silently. To regenerate after a deliberate format change (a
//! new format version, never an edit of version 1):
//! `cargo test -p chartvault-storage --test vectors -- --ignored write_vectors`.

use std::io::{Read, Write};
use std::path::PathBuf;

use chartvault_storage::{
    open, read_key_id, DataKey, DecryptReader, EncryptWriter, KeyId, StorageError, CHUNK_SIZE,
    HEADER_LEN,
};

const KEY: [u8; 32] = [
    0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
];
const KEY_ID: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const NONCE_PREFIX: [u8; 7] = [0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6];
const AAD: &[u8] = b"document 00000000-0000-4000-8000-000000000001/original/page 0";
const OTHER_AAD: &[u8] = b"document 00000000-0000-4000-8000-000000000002/original/page 0";
const SEALED_CHUNK: usize = CHUNK_SIZE + 16;

/// `ok_*` vectors: name and plaintext length.
const OK_VECTORS: &[(&str, usize)] = &[
    ("ok_empty", 0),
    ("ok_short", 13),
    ("ok_one_full_chunk", CHUNK_SIZE),
    ("ok_three_chunks", 2 * CHUNK_SIZE + 1000),
];

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 251) as u8).collect()
}

fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn encrypt(plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut writer = EncryptWriter::new_with_nonce_prefix(
        Vec::new(),
        &KeyId::from_bytes(KEY_ID),
        &DataKey::from_bytes(KEY),
        aad,
        NONCE_PREFIX,
    )
    .expect("writing to a Vec cannot fail");
    writer
        .write_all(plaintext)
        .expect("writing to a Vec cannot fail");
    writer.finish().expect("writing to a Vec cannot fail")
}

fn chunk(object: &[u8], index: usize) -> &[u8] {
    let start = HEADER_LEN + index * SEALED_CHUNK;
    &object[start..(start + SEALED_CHUNK).min(object.len())]
}

/// Every vector, rebuilt from its recipe.
fn all_vectors() -> Vec<(String, Vec<u8>)> {
    let mut vectors: Vec<(String, Vec<u8>)> = OK_VECTORS
        .iter()
        .map(|&(name, len)| (name.to_string(), encrypt(&pattern(len), AAD)))
        .collect();
    let short = encrypt(&pattern(13), AAD);
    let three = encrypt(&pattern(2 * CHUNK_SIZE + 1000), AAD);

    let truncated_at_boundary = three[..HEADER_LEN + SEALED_CHUNK].to_vec();
    let truncated_mid_chunk = short[..short.len() - 5].to_vec();
    let header_only = short[..HEADER_LEN].to_vec();
    let mut swapped_chunks = three[..HEADER_LEN].to_vec();
    swapped_chunks.extend_from_slice(chunk(&three, 1));
    swapped_chunks.extend_from_slice(chunk(&three, 0));
    swapped_chunks.extend_from_slice(chunk(&three, 2));
    let mut flipped_tag = short.clone();
    *flipped_tag.last_mut().expect("object is not empty") ^= 0x01;
    let mut flipped_body = short.clone();
    flipped_body[HEADER_LEN] ^= 0x80;
    let wrong_aad = encrypt(&pattern(13), OTHER_AAD);
    let mut extra_chunk = short.clone();
    extra_chunk.extend_from_slice(chunk(&short, 0));
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
    vectors
}

fn committed(name: &str) -> Vec<u8> {
    let path = vector_dir().join(format!("{name}.cvault"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

#[test]
fn ok_vectors_decrypt_to_their_plaintext() {
    let key = DataKey::from_bytes(KEY);
    for &(name, len) in OK_VECTORS {
        let object = committed(name);
        assert_eq!(
            read_key_id(&mut &object[..]).expect("header"),
            KeyId::from_bytes(KEY_ID),
            "{name}"
        );
        let plaintext = open(&key, AAD, &object).unwrap_or_else(|error| panic!("{name}: {error}"));
        assert!(
            plaintext == pattern(len),
            "{name} decrypts to its plaintext"
        );
    }
}

#[test]
fn fail_vectors_fail_and_yield_nothing() {
    let key = DataKey::from_bytes(KEY);
    let mut fail_vectors = 0;
    for entry in std::fs::read_dir(vector_dir()).expect("vector directory") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        if !name.starts_with("fail_") {
            continue;
        }
        fail_vectors += 1;
        let object = committed(name);
        let error = open(&key, AAD, &object).expect_err(name);
        assert!(
            matches!(error, StorageError::Decrypt | StorageError::Format(_)),
            "{name}: {error}"
        );
        if let Ok(mut reader) = DecryptReader::new(&object[..], &key, AAD) {
            let mut handed_out = Vec::new();
            assert!(reader.read_to_end(&mut handed_out).is_err(), "{name}");
            // Only chunks before the damage may have been handed out, and only as they were.
            assert!(handed_out.len() % CHUNK_SIZE == 0, "{name}");
            assert!(handed_out == pattern(handed_out.len()), "{name}");
        }
    }
    assert_eq!(fail_vectors, 10, "every fail_* vector is committed");
}

#[test]
fn vectors_are_reproduced_bit_for_bit() {
    for (name, bytes) in all_vectors() {
        assert!(
            committed(&name) == bytes,
            "{name}: the object format changed; see the README at the top of this file"
        );
    }
}

/// Decrypts the ok vectors straight from the documented layout with `aes-gcm` itself,
/// without the crate's reader: the module docs and the code must describe the same format.
#[test]
fn ok_vectors_follow_the_documented_layout() {
    use aes_gcm::aead::{AeadInOut, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce, Tag};

    let cipher = Aes256Gcm::new(&KEY.into());
    for &(name, len) in OK_VECTORS {
        let object = committed(name);
        let header = &object[..32];
        assert_eq!(&header[..8], b"CVAULT\0\x01", "{name}: magic");
        assert_eq!(&header[8..24], &KEY_ID, "{name}: key id");
        assert_eq!(&header[24..31], &NONCE_PREFIX, "{name}: nonce prefix");
        assert_eq!(header[31], 0, "{name}: reserved byte");
        let mut associated_data = header.to_vec();
        associated_data.extend_from_slice(AAD);

        let body = &object[32..];
        let chunk_count = body.len().div_ceil(SEALED_CHUNK).max(1);
        let mut plaintext = Vec::new();
        for index in 0..chunk_count {
            let sealed = &body[index * SEALED_CHUNK..((index + 1) * SEALED_CHUNK).min(body.len())];
            let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
            let last = index + 1 == chunk_count;
            let mut nonce = [0u8; 12];
            nonce[..7].copy_from_slice(&header[24..31]);
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
                .unwrap_or_else(|_| panic!("{name}: chunk {index} does not authenticate"));
            plaintext.extend_from_slice(&chunk);
        }
        assert!(plaintext == pattern(len), "{name}: documented layout");
    }
}

#[test]
#[ignore = "writes tests/vectors; run only after a deliberate format change"]
fn write_vectors() {
    for (name, bytes) in all_vectors() {
        std::fs::write(vector_dir().join(format!("{name}.cvault")), bytes).expect("write vector");
    }
}
