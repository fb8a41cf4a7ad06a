//! [`KeyFile`]: a [`KeyProvider`] backed by a text key file or an environment variable.
//!
//! Format (UTF-8 text):
//!
//! ```text
//! # comment lines start with '#'; blank lines are ignored
//! v1 <base64 (standard alphabet, padded) of 32 key bytes>
//! v2 <base64 of 32 key bytes>
//! ```
//!
//! One line per KEK version (`v` followed by a decimal version ≥ 1); the highest version is
//! current and wraps new keys, the others stay available to unwrap older keyring rows.
//!
//! Promises:
//! - [`KeyFile::load_or_create`] creates a missing file with mode `0600` (exclusive create,
//!   fsync of the file and of its directory) holding a random version 1, and refuses to load a
//!   file that grants any permission to group or others, naming the path and the fix.
//! - Key bytes and the file's text are held in zeroising buffers and never appear in errors,
//!   logs or `Debug` output; parse errors name the line number only.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use zeroize::Zeroizing;

use crate::keys::{random_array, DataKey, Kek, KeyId, KeyProvider, WrappedKey, KEY_LEN};
use crate::StorageError;

/// Takes the exclusive lock that serialises changes of the key file at `path`: an advisory
/// lock (`flock`) on `<path>.lock`, created `0600` beside it, released when the returned file
/// is dropped. (Not on the key file itself: removing a version replaces it by a rename.)
fn lock_for_change(path: &Path) -> Result<File, StorageError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let io_error =
        |source| StorageError::io(format!("key file lock {}", lock_path.display()), source);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(io_error)?;
    file.lock().map_err(io_error)?;
    Ok(file)
}

const FILE_PREAMBLE: &str = "\
# chartvault key-encryption keys (KEKs). Secret: keep this file mode 0600 and outside the
# data directory, and back it up separately from the data.
# Format: one line per version, `v<N> <base64 of 32 bytes>`; the highest version is current.
";

/// KEKs loaded from a key file or an environment variable. `Debug` shows versions only.
pub struct KeyFile {
    keks: BTreeMap<u32, Kek>,
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("versions", &self.keks.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyFile {
    /// Loads the key file at `path`, or creates it (mode 0600) with a random version 1 if it
    /// does not exist.
    pub fn load_or_create(path: impl AsRef<Path>) -> Result<KeyFile, StorageError> {
        let path = path.as_ref();
        match create_new_key_file(path) {
            Ok(()) => {}
            Err(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(other) => return Err(other),
        }
        KeyFile::load(path)
    }

    /// Loads an existing key file; fails if it is missing or readable by group or others.
    pub fn load(path: impl AsRef<Path>) -> Result<KeyFile, StorageError> {
        let path = path.as_ref();
        let text = read_private_file(path)?;
        KeyFile::parse_lines(&text)
            .map_err(|reason| StorageError::Key(format!("key file {}: {reason}", path.display())))
    }

    /// Appends a new random KEK version to the key file at `path` and returns its number;
    /// it becomes current for every `KeyFile` loaded afterwards. Changes of one key file are
    /// serialised by an exclusive lock on `<path>.lock` (across processes too), so two
    /// rotations at once add two versions, never the same one twice.
    pub fn add_version(path: impl AsRef<Path>) -> Result<u32, StorageError> {
        let path = path.as_ref();
        let _lock = lock_for_change(path)?;
        let existing = KeyFile::load(path)?;
        let version = existing.current().version().checked_add(1).ok_or_else(|| {
            StorageError::Key(format!("key file {}: no KEK version left", path.display()))
        })?;
        let text = read_private_file(path)?;
        let separator = if text.is_empty() || text.ends_with('\n') {
            ""
        } else {
            "\n"
        };
        let line = Zeroizing::new(format!(
            "{separator}{}\n",
            key_line(version, &random_array::<KEY_LEN>()).as_str()
        ));
        let io_error = |source| StorageError::io(format!("key file {}", path.display()), source);
        let mut file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io_error)?;
        file.write_all(line.as_bytes()).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
        Ok(version)
    }

    /// Removes KEK `version` from the key file at `path` (retiring it after every keyring
    /// row was re-wrapped). The current (highest) version cannot be removed. The file is
    /// rewritten whole (temp file `0600`, fsync, rename, directory fsync), so a crash leaves
    /// either the old or the new file. Serialised with every other change of the file (see
    /// [`KeyFile::add_version`]).
    pub fn remove_version(path: impl AsRef<Path>, version: u32) -> Result<(), StorageError> {
        let path = path.as_ref();
        let _lock = lock_for_change(path)?;
        let existing = KeyFile::load(path)?;
        if existing.get(version).is_none() {
            return Err(StorageError::Key(format!(
                "key file {}: no KEK version {version}",
                path.display()
            )));
        }
        if existing.current().version() == version {
            return Err(StorageError::Key(format!(
                "key file {}: version {version} is current and cannot be retired",
                path.display()
            )));
        }
        let mut text = Zeroizing::new(FILE_PREAMBLE.to_string());
        for kek in existing.keks.values().filter(|k| k.version() != version) {
            text.push_str(key_line(kek.version(), kek.expose_secret()).as_str());
            text.push('\n');
        }
        let io_error = |source| StorageError::io(format!("key file {}", path.display()), source);
        let temp = path.with_extension("key-rewrite");
        let _ = fs::remove_file(&temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_error)?;
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&temp, path));
        if let Err(source) = written {
            let _ = fs::remove_file(&temp);
            return Err(io_error(source));
        }
        let parent = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(parent)
            .and_then(|directory| directory.sync_all())
            .map_err(|source| StorageError::io(format!("directory {}", parent.display()), source))
    }

    /// Reads KEKs from the environment variable `var_name`: either the key file format, or a
    /// bare base64 key meaning version 1.
    pub fn from_env(var_name: &str) -> Result<KeyFile, StorageError> {
        let value = Zeroizing::new(std::env::var(var_name).map_err(|error| {
            StorageError::Key(format!(
                "environment variable {var_name} does not hold a key: {error}"
            ))
        })?);
        KeyFile::from_env_value(&value).map_err(|error| match error {
            StorageError::Key(reason) => {
                StorageError::Key(format!("environment variable {var_name}: {reason}"))
            }
            other => other,
        })
    }

    /// Parses the value of a key environment variable (see [`KeyFile::from_env`]) without
    /// touching the process environment.
    pub fn from_env_value(value: &str) -> Result<KeyFile, StorageError> {
        let trimmed = value.trim();
        // A bare key is one base64 token; the key-file format always has a space in a line.
        if trimmed.contains(char::is_whitespace) {
            return KeyFile::parse_lines(trimmed).map_err(StorageError::Key);
        }
        let key = decode_key(trimmed).map_err(StorageError::Key)?;
        KeyFile::from_keks(vec![Kek::from_bytes(1, *key)])
    }

    /// A provider over KEKs already in memory (tests, or keys fetched from elsewhere).
    pub fn from_keks(keks: Vec<Kek>) -> Result<KeyFile, StorageError> {
        let mut by_version = BTreeMap::new();
        for kek in keks {
            let version = kek.version();
            if version == 0 {
                return Err(StorageError::Key("KEK version 0 is reserved".to_string()));
            }
            if by_version.insert(version, kek).is_some() {
                return Err(StorageError::Key(format!(
                    "KEK version {version} given twice"
                )));
            }
        }
        if by_version.is_empty() {
            return Err(StorageError::Key("no KEK given".to_string()));
        }
        Ok(KeyFile { keks: by_version })
    }

    /// The versions held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.keks.keys().copied().collect()
    }

    fn parse_lines(text: &str) -> Result<KeyFile, String> {
        let mut keks = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (version, encoded) = line
                .strip_prefix('v')
                .and_then(|rest| rest.split_once(char::is_whitespace))
                .ok_or_else(|| format!("line {line_number}: expected `v<N> <base64 key>`"))?;
            let version: u32 = version
                .parse()
                .map_err(|_| format!("line {line_number}: version is not a number"))?;
            let key = decode_key(encoded.trim())
                .map_err(|reason| format!("line {line_number}: {reason}"))?;
            keks.push(Kek::from_bytes(version, *key));
        }
        KeyFile::from_keks(keks).map_err(|error| match error {
            StorageError::Key(reason) => reason,
            other => other.to_string(),
        })
    }
}

impl KeyFile {
    /// The KEK that wraps new data keys (the highest version).
    pub fn current(&self) -> &Kek {
        self.keks
            .values()
            .next_back()
            .expect("a KeyFile holds at least one KEK (checked in from_keks)")
    }

    /// The KEK with this version, if held.
    pub fn get(&self, version: u32) -> Option<&Kek> {
        self.keks.get(&version)
    }
}

impl KeyProvider for KeyFile {
    fn current_version(&self) -> u32 {
        self.current().version()
    }

    fn versions(&self) -> Vec<u32> {
        KeyFile::versions(self)
    }

    fn wrap_key(&self, id: &KeyId, key: &DataKey) -> Result<WrappedKey, StorageError> {
        Ok(self.current().wrap(id, key))
    }

    fn unwrap_key(&self, id: &KeyId, wrapped: &WrappedKey) -> Result<DataKey, StorageError> {
        let kek = self.get(wrapped.kek_version).ok_or_else(|| {
            StorageError::Key(format!(
                "KEK version {} is not available from the key provider",
                wrapped.kek_version
            ))
        })?;
        kek.unwrap(id, wrapped)
    }
}

fn key_line(version: u32, key: &[u8; KEY_LEN]) -> Zeroizing<String> {
    Zeroizing::new(format!("v{version} {}", BASE64.encode(key)))
}

fn decode_key(encoded: &str) -> Result<Zeroizing<[u8; KEY_LEN]>, String> {
    let bytes = Zeroizing::new(
        BASE64
            .decode(encoded)
            .map_err(|_| "key is not valid base64".to_string())?,
    );
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if bytes.len() != KEY_LEN {
        return Err(format!(
            "key must be {KEY_LEN} bytes, found {} bytes",
            bytes.len()
        ));
    }
    key.copy_from_slice(&bytes);
    Ok(key)
}

/// Creates `path` with a random version 1, mode 0600, and makes the new entry durable.
fn create_new_key_file(path: &Path) -> Result<(), StorageError> {
    let io_error = |source| StorageError::io(format!("key file {}", path.display()), source);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    let contents = Zeroizing::new(format!(
        "{FILE_PREAMBLE}{}\n",
        key_line(1, &random_array::<KEY_LEN>()).as_str()
    ));
    let written = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(source) = written {
        drop(file);
        // Leave no half-written key file behind: the next start would refuse or misread it.
        let _ = fs::remove_file(path);
        return Err(io_error(source));
    }
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| StorageError::io(format!("directory {}", parent.display()), source))
}

/// Reads a key file after checking, on the opened file, that only its owner may access it.
fn read_private_file(path: &Path) -> Result<Zeroizing<String>, StorageError> {
    let io_error = |source| StorageError::io(format!("key file {}", path.display()), source);
    let mut file = File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() {
        return Err(StorageError::Key(format!(
            "key file {} is not a regular file",
            path.display()
        )));
    }
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StorageError::Key(format!(
            "key file {} is accessible by group or others (mode {mode:04o}); \
             refusing to use it. Fix with: chmod 600 {}",
            path.display(),
            path.display()
        )));
    }
    let mut text = Zeroizing::new(String::new());
    file.read_to_string(&mut text).map_err(io_error)?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn key_file_keeps_the_key_provider_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        KeyFile::load_or_create(&path).expect("create");
        KeyFile::add_version(&path).expect("a second version");
        crate::testsuite::run_key_provider_conformance(&KeyFile::load(&path).expect("load"));
    }

    #[test]
    fn missing_key_file_is_created_with_mode_0600_and_version_1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let keys = KeyFile::load_or_create(&path).expect("create");
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(keys.current().version(), 1);
        assert_eq!(keys.versions(), vec![1]);
        let text = fs::read_to_string(&path).expect("read");
        assert!(text.starts_with('#'));
        assert_eq!(
            text.lines().filter(|line| line.starts_with("v1 ")).count(),
            1
        );
    }

    #[test]
    fn concurrent_rotations_add_distinct_versions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        KeyFile::load_or_create(&path).expect("create");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || KeyFile::add_version(&path).expect("add a version"))
            })
            .collect();
        let mut added: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        added.sort_unstable();
        assert_eq!(added, (2..=9).collect::<Vec<u32>>());
        let keys = KeyFile::load(&path).expect("the key file still loads");
        assert_eq!(keys.versions(), (1..=9).collect::<Vec<u32>>());
    }

    #[test]
    fn reloading_the_key_file_gives_the_same_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let first = KeyFile::load_or_create(&path).expect("create");
        let id = KeyId::generate();
        let key = DataKey::generate();
        let wrapped = first.wrap_key(&id, &key).expect("wrap");
        let second = KeyFile::load_or_create(&path).expect("reload");
        let unwrapped = second.unwrap_key(&id, &wrapped).expect("unwrap");
        assert_eq!(unwrapped.expose_secret(), key.expose_secret());
    }

    #[test]
    fn world_readable_key_file_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        KeyFile::load_or_create(&path).expect("create");
        for mode in [0o644, 0o640, 0o604, 0o620] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let message = KeyFile::load_or_create(&path)
                .expect_err("a key file open to others must be refused")
                .to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("chmod 600"), "{message}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        KeyFile::load(&path).expect("0600 is accepted");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
        KeyFile::load(&path).expect("0400 is accepted");
    }

    #[test]
    fn add_version_makes_the_new_version_current_and_old_keys_still_unwrap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let before = KeyFile::load_or_create(&path).expect("create");
        let id = KeyId::generate();
        let key = DataKey::generate();
        let old_wrapped = before.wrap_key(&id, &key).expect("wrap");

        assert_eq!(KeyFile::add_version(&path).expect("add"), 2);
        assert_eq!(KeyFile::add_version(&path).expect("add"), 3);
        assert_eq!(mode_of(&path), 0o600);

        let after = KeyFile::load(&path).expect("load");
        assert_eq!(after.current().version(), 3);
        assert_eq!(after.versions(), vec![1, 2, 3]);
        let unwrapped = after
            .unwrap_key(&id, &old_wrapped)
            .expect("old row unwraps");
        assert_eq!(unwrapped.expose_secret(), key.expose_secret());

        let rewrapped = after.rewrap_key(&id, &old_wrapped).expect("rewrap");
        assert_eq!(rewrapped.kek_version, 3);
        let unwrapped = after.unwrap_key(&id, &rewrapped).expect("new row unwraps");
        assert_eq!(unwrapped.expose_secret(), key.expose_secret());
    }

    #[test]
    fn add_version_on_a_missing_file_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(KeyFile::add_version(dir.path().join("absent")).is_err());
    }

    #[test]
    fn highest_version_is_current_whatever_the_line_order() {
        let a = BASE64.encode([1u8; KEY_LEN]);
        let b = BASE64.encode([2u8; KEY_LEN]);
        let keys = KeyFile::from_env_value(&format!("# c\nv7 {a}\n\nv2 {b}\n")).expect("parse");
        assert_eq!(keys.current().version(), 7);
        assert!(keys.get(2).is_some());
        assert!(keys.get(3).is_none());
    }

    #[test]
    fn bare_base64_key_in_the_environment_is_version_1() {
        let encoded = BASE64.encode([5u8; KEY_LEN]);
        let keys = KeyFile::from_env_value(&format!("  {encoded}\n")).expect("parse");
        assert_eq!(keys.versions(), vec![1]);
        assert_eq!(keys.current().expose_secret(), &[5u8; KEY_LEN]);
    }

    #[test]
    fn missing_environment_variable_is_a_key_error_naming_the_variable() {
        let error =
            KeyFile::from_env("CHARTVAULT_STORAGE_TEST_UNSET_VARIABLE_1f3a").expect_err("unset");
        assert!(matches!(error, StorageError::Key(_)));
        assert!(error
            .to_string()
            .contains("CHARTVAULT_STORAGE_TEST_UNSET_VARIABLE_1f3a"));
    }

    #[test]
    fn malformed_key_text_is_refused_without_echoing_it() {
        let short = BASE64.encode([3u8; 16]);
        let cases = [
            String::new(),
            "# only comments\n".to_string(),
            "v1 not-base64!!\n".to_string(),
            format!("v1 {short}\n"),
            format!("vx {}\n", BASE64.encode([3u8; KEY_LEN])),
            format!("v0 {}\n", BASE64.encode([3u8; KEY_LEN])),
            format!(
                "v1 {}\nv1 {}\n",
                BASE64.encode([3u8; KEY_LEN]),
                BASE64.encode([4u8; KEY_LEN])
            ),
            "v1\n".to_string(),
        ];
        for text in cases {
            let error = KeyFile::from_env_value(&text).expect_err("must be refused");
            assert!(matches!(error, StorageError::Key(_)), "{text:?}: {error}");
            assert!(!error.to_string().contains(&short));
        }
    }

    #[test]
    fn debug_lists_versions_only() {
        let keys = KeyFile::from_keks(vec![Kek::from_bytes(1, [0xee; KEY_LEN])]).expect("keys");
        assert_eq!(format!("{keys:?}"), "KeyFile { versions: [1] }");
    }

    #[test]
    fn remove_version_retires_an_old_kek_and_keeps_the_file_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chartvault.key");
        KeyFile::load_or_create(&path).expect("create");
        assert_eq!(KeyFile::add_version(&path).expect("v2"), 2);
        let before = KeyFile::load(&path).expect("load");
        let id = KeyId::generate();
        let key = DataKey::generate();
        let old = before.get(1).expect("v1").wrap(&id, &key);
        let rewrapped = before.rewrap_key(&id, &old).expect("rewrap");
        assert_eq!(rewrapped.kek_version, 2);

        assert!(KeyFile::remove_version(&path, 2).is_err(), "current stays");
        assert!(
            KeyFile::remove_version(&path, 9).is_err(),
            "unknown version"
        );
        KeyFile::remove_version(&path, 1).expect("retire v1");
        assert_eq!(mode_of(&path), 0o600);
        let after = KeyFile::load(&path).expect("load");
        assert_eq!(after.versions(), vec![2]);
        assert!(after.unwrap_key(&id, &old).is_err(), "v1 is gone");
        let unwrapped = after.unwrap_key(&id, &rewrapped).expect("v2 unwraps");
        assert_eq!(unwrapped.expose_secret(), key.expose_secret());
        assert!(!dir.path().join("chartvault.key-rewrite").exists());
    }
}
