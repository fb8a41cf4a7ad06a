//! [`S3BlobStore`]: the blob store on S3-compatible object storage (AWS S3, MinIO, Ceph,
//! SeaweedFS), through the `object_store` crate. It stores what every blob store stores:
//! envelope-encrypted objects, never plaintext.
//!
//! How it keeps the [`BlobStore`] contract on an object store:
//! - **Atomic create:** a writer spools the (already encrypted) bytes to a temporary file and
//!   uploads them on commit, in one `PUT` or a multipart upload that S3 completes atomically;
//!   nothing is visible under the name before. A writer dropped without commit leaves only
//!   its temporary file, deleted with it.
//! - **Rename** is a server-side copy then a delete of the source: the target appears whole
//!   (a copy is atomic per object); a crash between the two leaves the source too, which the
//!   service's staging cleanup and `verify` treat as it treats a leftover staging blob.
//! - **Readers** fetch ranges of [`READ_AHEAD`] bytes as they read and seek.
//! - **List** filters by a plain string prefix, as the contract says (object stores list by
//!   whole path segments: the listing is of the prefix's folder, then filtered).
//!
//! The trait is synchronous (blob I/O runs on blocking threads); requests run on a small
//! runtime of the store's own, so a call never needs the caller's.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload, WriteMultipart};

use super::{BlobName, BlobReader, BlobStore, BlobWriter};
use crate::runtime::{run_on, OwnRuntime};
use crate::StorageError;

/// Bytes fetched per ranged read.
pub const READ_AHEAD: u64 = 1024 * 1024;
/// Blobs larger than this are uploaded in parts of this size.
const PART: usize = 8 * 1024 * 1024;

/// Where an S3 blob store lives.
#[derive(Debug, Clone, Default)]
pub struct S3Location {
    /// The bucket (it must exist).
    pub bucket: String,
    /// Names are stored under this prefix (`""` for the bucket's root).
    pub prefix: String,
    /// The endpoint of a non-AWS server (`http://127.0.0.1:8333`); `None` for AWS.
    pub endpoint: Option<String>,
    /// The region; `None` reads `AWS_REGION` (else `us-east-1`).
    pub region: Option<String>,
    /// The access key id; `None` reads `AWS_ACCESS_KEY_ID`.
    pub access_key_id: Option<String>,
    /// The secret access key; `None` reads `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Option<String>,
}

/// The blob store on S3-compatible object storage (see the module docs).
pub struct S3BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    runtime: Arc<OwnRuntime>,
}

impl S3BlobStore {
    /// Connects to the bucket (no request is made until the first operation).
    pub fn open(location: &S3Location) -> Result<S3BlobStore, StorageError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&location.bucket);
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &location.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &location.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &location.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| StorageError::io("the S3 bucket", io::Error::other(e)))?;
        Ok(S3BlobStore {
            store: Arc::new(store),
            prefix: location.prefix.trim_matches('/').to_string(),
            runtime: Arc::new(OwnRuntime::new("s3-blobs")?),
        })
    }

    fn path(&self, name: &str) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(name)
        } else {
            ObjectPath::from(format!("{}/{name}", self.prefix))
        }
    }

    /// Runs a request on the store's runtime and waits for it (from any thread).
    fn run<T: Send + 'static>(
        &self,
        request: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        run_on(self.handle(), request)
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime.handle()
    }
}

/// An object store error as a storage error (a missing object is [`StorageError::NotFound`]).
fn storage_error(name: &str, error: object_store::Error) -> StorageError {
    match error {
        object_store::Error::NotFound { .. } => StorageError::NotFound(name.to_string()),
        other => StorageError::io(name, io::Error::other(other)),
    }
}

impl BlobStore for S3BlobStore {
    fn create(&self, name: &BlobName) -> Result<Box<dyn BlobWriter>, StorageError> {
        let spool = tempfile::tempfile().map_err(|e| StorageError::io(name, e))?;
        Ok(Box::new(S3Writer {
            name: name.as_str().to_string(),
            path: self.path(name.as_str()),
            spool,
            size: 0,
            store: self.store.clone(),
            runtime: self.runtime.clone(),
        }))
    }

    fn open(&self, name: &BlobName) -> Result<Box<dyn BlobReader>, StorageError> {
        let store = self.store.clone();
        let path = self.path(name.as_str());
        let head = self.run(async move { store.head(&path).await });
        let meta = head.map_err(|e| storage_error(name.as_str(), e))?;
        Ok(Box::new(S3Reader {
            name: name.as_str().to_string(),
            path: meta.location,
            size: meta.size,
            position: 0,
            window_start: 0,
            window: Vec::new(),
            store: self.store.clone(),
            runtime: self.runtime.clone(),
        }))
    }

    fn delete(&self, name: &BlobName) -> Result<(), StorageError> {
        let store = self.store.clone();
        let path = self.path(name.as_str());
        match self.run(async move { store.delete(&path).await }) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(name.as_str(), e)),
        }
    }

    fn exists(&self, name: &BlobName) -> Result<bool, StorageError> {
        let store = self.store.clone();
        let path = self.path(name.as_str());
        match self.run(async move { store.head(&path).await }) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(name.as_str(), e)),
        }
    }

    fn rename(&self, from: &BlobName, to: &BlobName) -> Result<(), StorageError> {
        let store = self.store.clone();
        let (source, target) = (self.path(from.as_str()), self.path(to.as_str()));
        self.run(async move {
            store.copy(&source, &target).await?;
            store.delete(&source).await
        })
        .map_err(|e| storage_error(from.as_str(), e))
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobName>, StorageError> {
        if !prefix.is_empty() {
            // A prefix follows the naming rules as far as it goes (its last component may be
            // cut short).
            BlobName::new(prefix.trim_end_matches('/')).map_err(|_| StorageError::InvalidName {
                name: prefix.to_string(),
                reason: "a list prefix is the start of a blob name",
            })?;
        }
        let folder = match prefix.rfind('/') {
            Some(at) => &prefix[..at],
            None => "",
        };
        let store = self.store.clone();
        let listed = if self.prefix.is_empty() && folder.is_empty() {
            None
        } else {
            Some(self.path(folder))
        };
        let base = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        };
        let objects = self.run(async move {
            let mut names = Vec::new();
            let mut stream = store.list(listed.as_ref());
            while let Some(meta) = stream.next().await {
                names.push(meta?.location.to_string());
            }
            Ok::<_, object_store::Error>(names)
        });
        let mut names: Vec<BlobName> = objects
            .map_err(|e| storage_error(prefix, e))?
            .into_iter()
            .filter_map(|full| full.strip_prefix(&base).map(str::to_string))
            .filter(|name| name.starts_with(prefix))
            .filter_map(|name| BlobName::new(name).ok())
            .collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        Ok(names)
    }
}

/// A blob being written: its encrypted bytes spooled to a temporary file until commit.
struct S3Writer {
    name: String,
    path: ObjectPath,
    spool: std::fs::File,
    size: u64,
    store: Arc<dyn ObjectStore>,
    runtime: Arc<OwnRuntime>,
}

impl Write for S3Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.spool.write(buf)?;
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.spool.flush()
    }
}

impl BlobWriter for S3Writer {
    fn commit(self: Box<Self>) -> Result<(), StorageError> {
        let S3Writer {
            name,
            path,
            mut spool,
            size,
            store,
            runtime,
        } = *self;
        spool
            .seek(SeekFrom::Start(0))
            .map_err(|e| StorageError::io(&name, e))?;
        if size <= PART as u64 {
            let mut bytes = Vec::with_capacity(size as usize);
            spool
                .read_to_end(&mut bytes)
                .map_err(|e| StorageError::io(&name, e))?;
            return run_on(runtime.handle(), async move {
                store.put(&path, PutPayload::from(bytes)).await.map(|_| ())
            })
            .map_err(|e| storage_error(&name, e));
        }
        // Larger blobs in parts, read from the spool in the upload's own task (the store's
        // runtime is its own: a short blocking read there holds up no one else's work).
        run_on(runtime.handle(), async move {
            let mut upload =
                WriteMultipart::new_with_chunk_size(store.put_multipart(&path).await?, PART);
            let mut buffer = vec![0u8; PART];
            loop {
                let read = spool
                    .read(&mut buffer)
                    .map_err(|e| object_store::Error::Generic {
                        store: "spool",
                        source: Box::new(e),
                    })?;
                if read == 0 {
                    break;
                }
                upload.wait_for_capacity(2).await?;
                upload.write(&buffer[..read]);
            }
            upload.finish().await.map(|_| ())
        })
        .map_err(|e| storage_error(&name, e))
    }
}

/// A committed blob being read, a window of it at a time.
struct S3Reader {
    name: String,
    path: ObjectPath,
    size: u64,
    position: u64,
    window_start: u64,
    window: Vec<u8>,
    store: Arc<dyn ObjectStore>,
    runtime: Arc<OwnRuntime>,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let window_end = self.window_start + self.window.len() as u64;
        if self.position < self.window_start || self.position >= window_end {
            let end = (self.position + READ_AHEAD).min(self.size);
            let (store, path, start) = (self.store.clone(), self.path.clone(), self.position);
            let bytes = run_on(self.runtime.handle(), async move {
                store.get_range(&path, start..end).await
            })
            .map_err(|e| io::Error::other(storage_error(&self.name, e)))?;
            self.window_start = start;
            self.window = bytes.to_vec();
            if self.window.is_empty() {
                return Ok(0);
            }
        }
        let offset = (self.position - self.window_start) as usize;
        let available = &self.window[offset..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for S3Reader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::End(delta) => self.size.checked_add_signed(delta),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the blob",
            )
        })?;
        self.position = target;
        Ok(target)
    }
}

impl BlobReader for S3Reader {}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Seek as _, SeekFrom, Write as _};

    use super::*;
    use crate::testsuite::seaweed::{weed, Seaweed};

    #[test]
    fn s3_blob_store_keeps_the_contract_on_a_real_s3_server() {
        let Some(weed) = weed() else {
            return;
        };
        let server = Seaweed::start(&weed, "chartvault-blobs");
        let location = |prefix: &str| S3Location {
            bucket: "chartvault-blobs".into(),
            prefix: prefix.into(),
            endpoint: Some(format!("http://127.0.0.1:{}", server.s3_port)),
            region: Some("us-east-1".into()),
            access_key_id: Some("chartvault".into()),
            secret_access_key: Some("chartvault".into()),
        };
        let store = S3BlobStore::open(&location("archive-1")).unwrap();
        crate::testsuite::run_blob_store_conformance(&store);

        // A blob of several parts (a multipart upload) reads back whole and from anywhere.
        let big: Vec<u8> = (0..(PART * 2 + 12345)).map(|i| (i % 251) as u8).collect();
        let name = BlobName::new("originals/aa/big").unwrap();
        let mut writer = store.create(&name).unwrap();
        for chunk in big.chunks(1 << 20) {
            writer.write_all(chunk).unwrap();
        }
        writer.commit().unwrap();
        let mut back = Vec::new();
        store.open(&name).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == big, "a multipart blob comes back byte for byte");
        let mut reader = store.open(&name).unwrap();
        reader.seek(SeekFrom::Start(PART as u64 + 7)).unwrap();
        let mut piece = [0u8; 4096];
        reader.read_exact(&mut piece).unwrap();
        assert_eq!(&piece[..], &big[PART + 7..PART + 7 + 4096]);

        // Another prefix of the same bucket is another store.
        let other = S3BlobStore::open(&location("archive-2")).unwrap();
        assert!(other.list("").unwrap().is_empty());
        assert!(!other.exists(&name).unwrap());
    }
}
