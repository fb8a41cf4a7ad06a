//! [`verify_index_dir`]: an offline integrity check of an encrypted index directory.
//!
//! Owns the check that every file an [`EncryptedDirectory`] wrote is intact, without opening
//! tantivy (so a damaged index is examined file by file instead of failing on the first bad
//! read): each file must be a chartvault object under the index's key id whose every chunk
//! authenticates under the index's data key with the associated data `EncryptedDirectory`
//! uses, and every segment file the (decrypted) `meta.json` names must exist. The chunk format
//! is the storage crate's: files are read through its [`DecryptReader`], in whichever format
//! version their header names (version 2, or version 1 for files written before it).
//!
//! Promises: the report names files (tantivy's segment UUIDs and extensions) and what is
//! wrong with them, never their contents; plaintext read while checking is zeroised.
//!
//! [`EncryptedDirectory`]: crate::EncryptedDirectory

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use chartvault_storage::{
    read_header, DataKey, DecryptReader, FormatVersion, KeyId, ObjectHeader, StorageError,
    CHUNK_SIZE, MAX_HEADER_LEN,
};
use zeroize::Zeroizing;

use crate::encrypted_directory::associated_data;
use crate::error::IndexError;
use crate::live::{LiveIndexFiles, META_FILE};

/// tantivy's lock files: created by the inner directory, empty, and never encrypted.
const LOCK_FILES: [&str; 2] = [".tantivy-writer.lock", ".tantivy-meta.lock"];

/// What [`verify_index_dir`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexVerifyReport {
    /// Files examined (every file in the directory but tantivy's lock files).
    pub files_checked: usize,
    /// Total size of those files on disk (ciphertext, headers included).
    pub bytes_checked: u64,
    /// Everything wrong, in file-name order; empty for an intact index.
    pub problems: Vec<IndexFileProblem>,
}

impl IndexVerifyReport {
    /// Whether no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One damaged, foreign or missing file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFileProblem {
    /// The file's name relative to the index directory.
    pub file: String,
    /// What is wrong, e.g. "chunk 3 fails authentication" or "segment file missing".
    pub problem: String,
}

/// Checks every file of the encrypted index directory `path` (see the module docs), with the
/// index's data key `key` and key id `key_id`. `Err` only when the directory itself cannot be
/// listed; damaged files are reported in [`IndexVerifyReport::problems`].
///
/// Reads every byte of the index once; blocking.
pub fn verify_index_dir(
    path: &Path,
    key: &DataKey,
    key_id: KeyId,
) -> Result<IndexVerifyReport, IndexError> {
    let mut entries = std::fs::read_dir(path)?.collect::<Result<Vec<_>, io::Error>>()?;
    entries.sort_by_key(|entry| entry.file_name());

    let mut report = IndexVerifyReport::default();
    let mut present = BTreeSet::new();
    let mut meta = None;
    for entry in entries {
        let name = entry.file_name();
        let display_name = name.to_string_lossy().into_owned();
        present.insert(display_name.clone());
        if LOCK_FILES.contains(&display_name.as_str()) {
            continue;
        }
        report.files_checked += 1;
        let mut problem = |problem: &str| {
            report.problems.push(IndexFileProblem {
                file: display_name.clone(),
                problem: problem.to_string(),
            });
        };
        if !entry.file_type()?.is_file() {
            problem("not a regular file");
            continue;
        }
        let keep_plaintext = display_name == META_FILE;
        let checked = check_file(&entry.path(), Path::new(&name), key, key_id, keep_plaintext);
        report.bytes_checked += checked.file_len;
        match checked.outcome {
            Ok(plaintext) if keep_plaintext => meta = Some(plaintext),
            Ok(_) => {}
            Err(message) => problem(&message),
        }
    }

    match meta {
        Some(plaintext) => match LiveIndexFiles::from_meta_json(&plaintext) {
            Some(live) => {
                for file in live.segment_files().difference(&present) {
                    report.problems.push(IndexFileProblem {
                        file: file.clone(),
                        problem: "segment file missing".to_string(),
                    });
                }
            }
            None => report.problems.push(IndexFileProblem {
                file: META_FILE.to_string(),
                problem: "decrypts but is not index metadata".to_string(),
            }),
        },
        // A damaged meta.json is already reported; only its absence is new.
        None if !present.contains(META_FILE) => report.problems.push(IndexFileProblem {
            file: META_FILE.to_string(),
            problem: "missing: the directory holds no index".to_string(),
        }),
        None => {}
    }
    report
        .problems
        .sort_by(|a, b| a.file.cmp(&b.file).then_with(|| a.problem.cmp(&b.problem)));
    Ok(report)
}

/// The result of checking one file.
struct FileCheck {
    /// 0 if the file could not be opened.
    file_len: u64,
    /// The plaintext when asked for and the file is intact, else what is wrong.
    outcome: Result<Zeroizing<Vec<u8>>, String>,
}

/// Decrypts and authenticates every chunk of the file at `path`, named `relative` in the
/// index directory; keeps the plaintext only when `keep_plaintext`.
fn check_file(
    path: &Path,
    relative: &Path,
    key: &DataKey,
    key_id: KeyId,
    keep_plaintext: bool,
) -> FileCheck {
    let mut file_len = 0;
    let outcome = (|| {
        let mut file = File::open(path).map_err(|_| "cannot be opened".to_string())?;
        let len = file
            .metadata()
            .map_err(|_| "cannot be read".to_string())?
            .len();
        file_len = len;
        if len == 0 {
            return Err("empty: not an encrypted index file".to_string());
        }
        let header = read_file_header(&mut file, len)?;
        if header.key_id() != key_id {
            return Err("written under another key".to_string());
        }
        let plaintext_len = header
            .plaintext_len(len)
            .map_err(|_| "truncated: its length fits no encrypted file")?;
        file.seek(SeekFrom::Start(header.len() as u64))
            .map_err(|_| "cannot be read".to_string())?;
        let mut reader = DecryptReader::from_header(file, header, key, &associated_data(relative));
        let mut plaintext = Zeroizing::new(Vec::new());
        let mut buffer = Zeroizing::new(vec![0u8; CHUNK_SIZE]);
        let mut position: u64 = 0;
        loop {
            match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(count) => {
                    position += count as u64;
                    if keep_plaintext {
                        plaintext.extend_from_slice(&buffer[..count]);
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.kind() == io::ErrorKind::InvalidData => {
                    let chunk = position / CHUNK_SIZE as u64;
                    let last = plaintext_len.saturating_sub(1) / CHUNK_SIZE as u64;
                    return Err(if chunk == last && chunk > 0 {
                        format!(
                            "chunk {chunk} fails authentication (the last: tampered or truncated)"
                        )
                    } else {
                        format!("chunk {chunk} fails authentication")
                    });
                }
                Err(_) => return Err("cannot be read".to_string()),
            }
        }
        Ok(plaintext)
    })();
    FileCheck { file_len, outcome }
}

/// Reads and parses the header of `file` (`len` bytes long, not empty), of any format
/// version; the error says what is wrong.
fn read_file_header(file: &mut File, len: u64) -> Result<ObjectHeader, String> {
    // Enough bytes for the header of any version, or the whole file if it is shorter.
    let mut start = vec![0u8; len.min(MAX_HEADER_LEN as u64) as usize];
    file.read_exact(&mut start)
        .map_err(|_| "cannot be read".to_string())?;
    read_header(&mut start.as_slice()).map_err(|error| match error {
        StorageError::Format(_) => {
            // The header length of the version the magic names, or the shortest of any
            // version when there is no magic to go by.
            let header_len = FormatVersion::of_object(&start)
                .unwrap_or(FormatVersion::V1)
                .header_len();
            if len < header_len as u64 {
                "not an encrypted index file (shorter than a header)".to_string()
            } else {
                "not an encrypted index file".to_string()
            }
        }
        _ => "cannot be read".to_string(),
    })
}
