//! Multipart bodies read within bounds, checked as the bytes arrive and before anything is
//! buffered: the headers of each part (and whatever lies between parts) at most
//! [`PART_HEADERS_BYTES`], each field at most what its route allows it.
//!
//! The multipart parser (multer) reads ahead whatever the connection has ready, and buffers
//! a part's headers until it has all of them, without a limit of its own: a client could
//! make it hold a whole upload's worth of "headers". So the body reaches the parser through a
//! meter. While it looks for a part's headers, the parser is handed at most
//! [`PART_HEADERS_BYTES`]; while it reads a field's data, at most [`LOOKAHEAD_BYTES`] more
//! than it has handed out as that field's data. Past that the meter holds the next piece back
//! and marks itself starved; a parser that then cannot go on is over its bound, and
//! [`BoundedMultipart::next_field`] answers 413. A field's own size is counted by
//! [`read_chunk`] against what its route allows. So the parser never holds more than
//! `LOOKAHEAD_BYTES + PART_HEADERS_BYTES` that the route has not taken.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;

use axum::body::Body;
use axum::extract::multipart::{Field, Multipart, MultipartRejection};
use axum::extract::{FromRequest, Request};
use bytes::Bytes;
use futures::{stream, StreamExt};

use crate::error::{AppError, ErrorCode};

/// What the parser may be handed while it looks for one part's headers (the boundary, the
/// headers, and what it reads ahead of them).
pub(crate) const PART_HEADERS_BYTES: u64 = 32 * 1024;
/// How far the parser may read ahead of the field data it has handed out.
pub(crate) const LOOKAHEAD_BYTES: u64 = 32 * 1024;
/// The body reaches the parser in pieces of at most this size, so a budget is held to
/// within one piece.
const PIECE: usize = 8 * 1024;

/// The body on its way into the parser, and the budget it is measured against.
struct Metered {
    /// The request body; taken back by [`BoundedMultipart::drain`].
    body: Option<axum::body::BodyDataStream>,
    /// Pieces read from the body and not yet handed to the parser.
    held: VecDeque<Bytes>,
    /// Looking for headers: what the parser may still be handed. Reading a field: how much
    /// it may still read ahead of the data it handed out.
    remaining: u64,
    /// The parser asked for more than the bound allowed.
    starved: bool,
    /// What is being read: "headers", or a field's name.
    current: String,
    /// While a field is read: its data so far, and what its route allows.
    field_bytes: u64,
    field_limit: u64,
}

/// A handle on the meter, to tell a bound overrun from another error.
#[derive(Clone)]
pub(crate) struct Meter(Arc<Mutex<Metered>>);

impl Meter {
    fn lock(&self) -> MutexGuard<'_, Metered> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, what: &str, budget: u64, field_limit: u64) {
        let mut metered = self.lock();
        metered.current = what.to_string();
        metered.remaining = budget;
        metered.starved = false;
        metered.field_bytes = 0;
        metered.field_limit = field_limit;
    }

    /// Counts field data the parser handed out: it may read that much further ahead. Errs
    /// (413) once the field is larger than its route allows.
    fn handed_out(&self, bytes: u64) -> Result<(), AppError> {
        let mut metered = self.lock();
        metered.remaining = (metered.remaining + bytes).min(LOOKAHEAD_BYTES);
        metered.field_bytes += bytes;
        if metered.field_bytes > metered.field_limit {
            let what = metered.current.clone();
            return Err(AppError::new(
                ErrorCode::PayloadTooLarge,
                format!("the '{what}' part is larger than this route accepts"),
            ));
        }
        Ok(())
    }

    fn starved(&self) -> bool {
        self.lock().starved
    }

    /// The 413 of the bound the parser ran into.
    fn over(&self) -> AppError {
        let what = self.lock().current.clone();
        let message = if what == "headers" {
            format!(
                "a part's headers (or what lies between parts) are larger than {} KiB",
                PART_HEADERS_BYTES / 1024
            )
        } else {
            format!("the '{what}' part is larger than this route accepts")
        };
        AppError::new(ErrorCode::PayloadTooLarge, message)
    }

    /// The next piece for the parser: `Pending` (and starved) when the budget is spent.
    fn poll_piece(
        &self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Bytes, axum::Error>>> {
        let mut metered = self.lock();
        // Starved means: the parser's last request for bytes was refused by the bound (not
        // that the client has sent nothing more yet).
        metered.starved = false;
        if metered.held.is_empty() {
            let Some(body) = metered.body.as_mut() else {
                return Poll::Ready(None);
            };
            match body.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(mut chunk))) => {
                    while chunk.len() > PIECE {
                        let piece = chunk.split_to(PIECE);
                        metered.held.push_back(piece);
                    }
                    metered.held.push_back(chunk);
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
        let Some(piece) = metered.held.pop_front() else {
            return Poll::Ready(None);
        };
        let size = piece.len() as u64;
        if size > metered.remaining {
            // Held back: handed over under the next budget, or never.
            metered.held.push_front(piece);
            metered.starved = true;
            return Poll::Pending;
        }
        metered.remaining -= size;
        Poll::Ready(Some(Ok(piece)))
    }
}

/// A multipart body whose parts are read within bounds (see the module docs).
pub(crate) struct BoundedMultipart {
    inner: Multipart,
    meter: Meter,
}

impl BoundedMultipart {
    /// Meters `request`'s body and parses it as multipart (the route's body limit applies as
    /// well: the request's extensions are kept).
    pub(crate) async fn from_request<S: Send + Sync>(
        request: Request,
        state: &S,
    ) -> Result<BoundedMultipart, MultipartRejection> {
        let (parts, body) = request.into_parts();
        let meter = Meter(Arc::new(Mutex::new(Metered {
            body: Some(body.into_data_stream()),
            held: VecDeque::new(),
            remaining: PART_HEADERS_BYTES,
            starved: false,
            current: "headers".to_string(),
            field_bytes: 0,
            field_limit: 0,
        })));
        let metered = {
            let meter = meter.clone();
            stream::poll_fn(move |cx| meter.poll_piece(cx))
        };
        let request = Request::from_parts(parts, Body::from_stream(metered));
        let inner = Multipart::from_request(request, state).await?;
        Ok(BoundedMultipart { inner, meter })
    }

    /// The meter, for [`read_chunk`].
    pub(crate) fn meter(&self) -> Meter {
        self.meter.clone()
    }

    /// The next part, its data then allowed `limit(name)` bytes. An error is the 413 of an
    /// overrun bound, or `malformed`.
    pub(crate) async fn next_field(
        &mut self,
        limit: impl Fn(Option<&str>) -> u64,
        malformed: impl Fn() -> AppError,
    ) -> Result<Option<Field<'_>>, AppError> {
        let meter = self.meter.clone();
        meter.set("headers", PART_HEADERS_BYTES, 0);
        let next = self.inner.next_field();
        let field = bounded(next, &meter).await;
        match field {
            Ok(Ok(Some(field))) => {
                let name = field.name().unwrap_or("unnamed").to_string();
                meter.set(&name, LOOKAHEAD_BYTES, limit(field.name()));
                Ok(Some(field))
            }
            Ok(Ok(None)) => Ok(None),
            Ok(Err(_)) => Err(malformed()),
            Err(over) => Err(over),
        }
    }

    /// Reads and discards what is left of the body, at most `max` bytes or for `time`, so a
    /// client still sending gets the error instead of a reset connection. (The body is taken
    /// back from the parser, which may have stopped at a bound.)
    pub(crate) async fn drain(&mut self, max: u64, time: std::time::Duration) {
        let taken = self.meter.lock().body.take();
        let Some(mut rest) = taken else {
            return;
        };
        let drain = async {
            let mut seen = 0u64;
            while let Some(Ok(chunk)) = rest.next().await {
                seen += chunk.len() as u64;
                if seen > max {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(time, drain).await;
    }
}

/// The next chunk of a field read from a [`BoundedMultipart`]: the 413 of its bound when the
/// field goes on past it, or `malformed`.
pub(crate) async fn read_chunk(
    field: &mut Field<'_>,
    meter: &Meter,
    malformed: impl Fn() -> AppError,
) -> Result<Option<Bytes>, AppError> {
    match bounded(field.chunk(), meter).await {
        Ok(Ok(Some(chunk))) => {
            meter.handed_out(chunk.len() as u64)?;
            Ok(Some(chunk))
        }
        Ok(Ok(None)) => Ok(None),
        Ok(Err(_)) => Err(malformed()),
        Err(over) => Err(over),
    }
}

/// Polls `future` (a step of the parser); once it waits for bytes the meter holds back, it
/// is over its bound: the 413 instead.
async fn bounded<T>(future: impl Future<Output = T>, meter: &Meter) -> Result<T, AppError> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| match future.as_mut().poll(cx) {
        Poll::Ready(value) => Poll::Ready(Ok(value)),
        Poll::Pending if meter.starved() => Poll::Ready(Err(meter.over())),
        Poll::Pending => Poll::Pending,
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Vec<u8>, chunk: usize) -> Request {
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(chunk)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Request::builder()
            .method("POST")
            .header("content-type", "multipart/form-data; boundary=BOUNDARY")
            .body(Body::from_stream(stream::iter(chunks)))
            .unwrap()
    }

    fn form(file: &[u8], header_padding: usize) -> Vec<u8> {
        [
            b"--BOUNDARY\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n{\"a\":1}\r\n"
                .to_vec(),
            format!(
                "--BOUNDARY\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(header_padding)
            )
            .into_bytes(),
            file.to_vec(),
            b"\r\n--BOUNDARY--\r\n".to_vec(),
        ]
        .concat()
    }

    async fn read_all(request: Request) -> Result<Vec<(String, usize)>, AppError> {
        let mut multipart = BoundedMultipart::from_request(request, &()).await.unwrap();
        let meter = multipart.meter();
        let mut fields = Vec::new();
        let limit = |name: Option<&str>| match name {
            Some("metadata") => 1024,
            // (Under axum's default body limit of 2 MB, which these requests get.)
            Some("file") => 1 << 20,
            _ => 0,
        };
        let malformed = || AppError::invalid("malformed");
        while let Some(mut field) = multipart.next_field(limit, malformed).await? {
            let name = field.name().unwrap_or("").to_string();
            let mut size = 0;
            while let Some(chunk) = read_chunk(&mut field, &meter, malformed).await? {
                size += chunk.len();
            }
            fields.push((name, size));
        }
        Ok(fields)
    }

    /// A body that arrives piece by piece, with pauses (the parser sees `Pending` between).
    fn trickled(body: Vec<u8>, chunk: usize) -> Request {
        let chunks: Vec<Bytes> = body.chunks(chunk).map(Bytes::copy_from_slice).collect();
        let stream = stream::iter(chunks).then(|chunk| async move {
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok::<_, std::io::Error>(chunk)
        });
        Request::builder()
            .method("POST")
            .header("content-type", "multipart/form-data; boundary=BOUNDARY")
            .body(Body::from_stream(stream))
            .unwrap()
    }

    #[tokio::test]
    async fn forms_that_arrive_slowly_are_read_whole() {
        let file = vec![7u8; 300_000];
        for chunk in [5000, 70_000] {
            let fields = read_all(trickled(form(&file, 10), chunk)).await.unwrap();
            assert_eq!(
                fields,
                vec![("metadata".to_string(), 7), ("file".to_string(), 300_000)],
                "chunks of {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn ordinary_forms_are_read_whole_in_any_chunking() {
        let file = vec![7u8; 300_000];
        for chunk in [1000, 8192, 65536, 1 << 20] {
            let fields = read_all(request(form(&file, 10), chunk)).await.unwrap();
            assert_eq!(
                fields,
                vec![("metadata".to_string(), 7), ("file".to_string(), 300_000)],
                "chunks of {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn headers_past_the_bound_are_refused_with_413() {
        let error = read_all(request(form(b"x", 100_000), 65536))
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::PayloadTooLarge);
        assert!(error.message.contains("headers"), "{}", error.message);
    }

    #[tokio::test]
    async fn a_field_past_its_bound_is_refused_with_413_naming_it() {
        let error = read_all(request(form(&vec![1u8; 3 << 19], 10), 65536))
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::PayloadTooLarge);
        assert!(error.message.contains("'file'"), "{}", error.message);
    }
}

/// Room for multipart boundaries, part headers and small fields on top of a file's limit.
pub(crate) const MULTIPART_OVERHEAD: u64 = 1024 * 1024;
