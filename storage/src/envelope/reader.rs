//! [`DecryptReader`]: authenticated, streaming and seekable reads of an object.

use std::io::{self, Read, Seek, SeekFrom};

use zeroize::Zeroizing;

use super::{
    read_header, ChunkCipher, ObjectHeader, ObjectKey, CHUNK_SIZE, SEALED_CHUNK_LEN, TAG_LEN,
};
use crate::keys::{DataKey, KeyId};
use crate::StorageError;

/// Decrypts an object of any format version read from `inner` (format in
/// [`crate::envelope`]).
///
/// Each chunk is read whole, its tag verified, and only then are its bytes handed out. The
/// reader needs no length up front: it reads one byte past each chunk to learn whether the
/// chunk must be the last. With `R: Seek` it also implements [`Seek`]: a seek moves `inner`
/// to the chunk holding the target and the next read decrypts that chunk only. The object is
/// taken to run from where the header started to the end of `inner`.
///
/// The object's key is derived once, when the reader is made; a caller that reads one object
/// through many readers derives it once itself ([`ObjectKey`], [`Self::from_object_key`]).
/// Nothing is verified until the first read, so a wrong key or identity shows up there.
pub struct DecryptReader<R> {
    inner: R,
    chunks: ChunkCipher,
    /// `SEALED_CHUNK_LEN + 1` bytes, zeroised on drop; holds the plaintext of `loaded`.
    buffer: Zeroizing<Vec<u8>>,
    /// The byte read past the previous chunk: the first byte of the next one.
    lookahead: Option<u8>,
    loaded: Option<LoadedChunk>,
    /// Index of the chunk at `inner`'s position.
    next_index: u64,
    /// Plaintext position of the next byte `read` returns.
    position: u64,
    /// Bytes of `inner` consumed since the start of the header (so the header's length when
    /// positioned at the first chunk).
    inner_offset: u64,
    layout: Option<Layout>,
    failure: Option<Failure>,
}

#[derive(Clone, Copy)]
struct LoadedChunk {
    plaintext_start: u64,
    len: usize,
    last: bool,
}

impl LoadedChunk {
    fn plaintext_end(&self) -> u64 {
        self.plaintext_start + self.len as u64
    }
}

/// Where the object sits in a seekable `inner`, learned on the first seek.
#[derive(Clone, Copy)]
struct Layout {
    object_start: u64,
    plaintext_len: u64,
}

#[derive(Clone, Copy)]
enum Failure {
    Decrypt,
    Io,
}

fn decrypt_error() -> io::Error {
    StorageError::Decrypt.into()
}

impl<R: Read> DecryptReader<R> {
    /// Reads and checks the header of any version ([`StorageError::Format`] if it is not a
    /// chartvault object this crate reads), derives the object's key from its data key `key`
    /// and prepares to decrypt with it and the object's identity `aad`.
    pub fn new(mut inner: R, key: &DataKey, aad: &[u8]) -> Result<Self, StorageError> {
        let header = read_header(&mut inner)?;
        Ok(DecryptReader::from_header(inner, header, key, aad))
    }

    /// Continues after [`read_header`](super::read_header): `inner` must be positioned just
    /// past the header that produced `header`. Derives the object's key from `key`.
    pub fn from_header(inner: R, header: ObjectHeader, key: &DataKey, aad: &[u8]) -> Self {
        DecryptReader::with_chunk_cipher(
            inner,
            ChunkCipher::new(ObjectKey::derive(key, &header), aad),
        )
    }

    /// Like [`Self::from_header`] with the object's key already derived (it carries the
    /// header): `inner` must be positioned just past that header. Costs no derivation, only
    /// a copy of the key schedule, so it suits reading one object through many short-lived
    /// readers.
    pub fn from_object_key(inner: R, object_key: &ObjectKey, aad: &[u8]) -> Self {
        DecryptReader::with_chunk_cipher(inner, ChunkCipher::new(object_key.clone(), aad))
    }

    fn with_chunk_cipher(inner: R, chunks: ChunkCipher) -> Self {
        let header_len = chunks.header().len() as u64;
        DecryptReader {
            inner,
            chunks,
            buffer: Zeroizing::new(vec![0u8; SEALED_CHUNK_LEN + 1]),
            lookahead: None,
            loaded: None,
            next_index: 0,
            position: 0,
            inner_offset: header_len,
            layout: None,
            failure: None,
        }
    }

    /// The key id named in the header.
    pub fn key_id(&self) -> KeyId {
        self.header().key_id()
    }

    /// The object's header (its version, key id and length).
    pub fn header(&self) -> &ObjectHeader {
        self.chunks.header()
    }

    fn check_usable(&self) -> io::Result<()> {
        match self.failure {
            None => Ok(()),
            Some(Failure::Decrypt) => Err(decrypt_error()),
            Some(Failure::Io) => Err(io::Error::other(
                "DecryptReader is unusable after an earlier I/O error",
            )),
        }
    }

    fn fail_decrypt(&mut self) -> io::Error {
        self.failure = Some(Failure::Decrypt);
        self.loaded = None;
        decrypt_error()
    }

    fn fail_io(&mut self, error: io::Error) -> io::Error {
        self.failure = Some(Failure::Io);
        self.loaded = None;
        error
    }

    /// Reads, authenticates and decrypts chunk `next_index` into `buffer`.
    fn load_next_chunk(&mut self) -> io::Result<()> {
        self.loaded = None;
        let Ok(index) = u32::try_from(self.next_index) else {
            return Err(self.fail_decrypt());
        };
        let mut filled = 0;
        if let Some(byte) = self.lookahead.take() {
            self.buffer[0] = byte;
            filled = 1;
        }
        while filled < self.buffer.len() {
            match self.inner.read(&mut self.buffer[filled..]) {
                Ok(0) => break,
                Ok(count) => {
                    filled += count;
                    self.inner_offset += count as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(self.fail_io(error)),
            }
        }
        // A byte beyond a full sealed chunk means this chunk cannot be the last one.
        let last = filled <= SEALED_CHUNK_LEN;
        let sealed_len = if last {
            filled
        } else {
            self.lookahead = Some(self.buffer[SEALED_CHUNK_LEN]);
            SEALED_CHUNK_LEN
        };
        let Some(len) = sealed_len.checked_sub(TAG_LEN) else {
            return Err(self.fail_decrypt());
        };
        if len == 0 && index > 0 {
            // An empty final chunk only encodes the empty plaintext.
            return Err(self.fail_decrypt());
        }
        let (chunk, rest) = self.buffer.split_at_mut(len);
        if self
            .chunks
            .open(index, last, chunk, &rest[..TAG_LEN])
            .is_err()
        {
            return Err(self.fail_decrypt());
        }
        self.loaded = Some(LoadedChunk {
            plaintext_start: self.next_index * CHUNK_SIZE as u64,
            len,
            last,
        });
        self.next_index += 1;
        Ok(())
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.check_usable()?;
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(chunk) = self.loaded {
                if self.position >= chunk.plaintext_start && self.position < chunk.plaintext_end() {
                    let offset = usize::try_from(self.position - chunk.plaintext_start)
                        .expect("an offset inside a chunk fits in usize");
                    let count = out.len().min(chunk.len - offset);
                    out[..count].copy_from_slice(&self.buffer[offset..offset + count]);
                    self.position += count as u64;
                    return Ok(count);
                }
                if chunk.last && self.position >= chunk.plaintext_end() {
                    return Ok(0);
                }
            }
            self.load_next_chunk()?;
        }
    }
}

impl<R: Read + Seek> DecryptReader<R> {
    fn layout(&mut self) -> io::Result<Layout> {
        if let Some(layout) = self.layout {
            return Ok(layout);
        }
        let measured = (|| {
            let current = self.inner.stream_position()?;
            let end = self.inner.seek(SeekFrom::End(0))?;
            self.inner.seek(SeekFrom::Start(current))?;
            Ok::<_, io::Error>((current, end))
        })();
        let (current, end) = measured.map_err(|error| self.fail_io(error))?;
        let Some(object_start) = current.checked_sub(self.inner_offset) else {
            return Err(self.fail_io(io::Error::other(
                "inner reader is positioned before the object header",
            )));
        };
        let Some(ciphertext_len) = end.checked_sub(object_start) else {
            return Err(self.fail_decrypt());
        };
        let Ok(plaintext_len) = self.header().plaintext_len(ciphertext_len) else {
            return Err(self.fail_decrypt());
        };
        let layout = Layout {
            object_start,
            plaintext_len,
        };
        self.layout = Some(layout);
        Ok(layout)
    }
}

impl<R: Read + Seek> Seek for DecryptReader<R> {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        self.check_usable()?;
        let target = match target {
            SeekFrom::Start(offset) => Some(offset),
            SeekFrom::Current(delta) => self.position.checked_add_signed(delta),
            SeekFrom::End(delta) => self.layout()?.plaintext_len.checked_add_signed(delta),
        }
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        if let Some(chunk) = self.loaded {
            let inside = target >= chunk.plaintext_start && target < chunk.plaintext_end();
            let past_verified_end = chunk.last && target >= chunk.plaintext_end();
            if inside || past_verified_end {
                self.position = target;
                return Ok(target);
            }
        }
        let layout = self.layout()?;
        // At or past the end, position on the final chunk: the next read authenticates it as
        // last before reporting end of file.
        let final_index = layout.plaintext_len.saturating_sub(1) / CHUNK_SIZE as u64;
        let index = (target / CHUNK_SIZE as u64).min(final_index);
        let chunk_offset = self.header().len() as u64 + index * SEALED_CHUNK_LEN as u64;
        if let Err(error) = self
            .inner
            .seek(SeekFrom::Start(layout.object_start + chunk_offset))
        {
            return Err(self.fail_io(error));
        }
        self.inner_offset = chunk_offset;
        self.lookahead = None;
        self.loaded = None;
        self.next_index = index;
        self.position = target;
        Ok(target)
    }
}
