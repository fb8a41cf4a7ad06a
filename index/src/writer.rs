//! The index's single writer.
//!
//! Owns: the one tantivy `IndexWriter` (and so the index's write lock), on a dedicated OS
//! thread fed through a channel; [`PageRecord`], the unit of indexing.
//!
//! Promises:
//! - Group commit: the writer commits as soon as it has nothing more queued, so a page is
//!   searchable as soon as one commit allows; what arrives while a commit runs waits for the
//!   next one, together. Under a steady stream, the operations are committed at the latest
//!   `commit_every` after the first uncommitted one, or as soon as `max_batch` pages are
//!   pending. (A fixed wait before every commit saved commits, but made the last page of
//!   every upload wait for it: up to half a second on a page read in 0.4 s.)
//! - [`IndexWriterService::index_pages`] and [`IndexWriterService::delete_document`]
//!   resolve only after the commit holding their change *and* the reader reload, so a
//!   search started afterwards sees the change.
//! - Idempotence: a page is keyed by (document id, page); indexing it again replaces it
//!   (delete by key, then add, in the same commit), so it is found exactly once however
//!   often a crashed ingest step is re-run.
//! - A failed commit is rolled back whole and every caller waiting on it gets an error; no
//!   caller is told "done" for a change that is not durable.
//! - Deleting pages ([`IndexWriterService::delete_document`]) hides them at once, but their
//!   terms, postings and stored ids stay in segment files until a merge rewrites those
//!   segments. Shredding ([`IndexWriterService::purge_document`]) forces that merge, of just
//!   the segments that held the document, and deletes the obsolete files before it resolves:
//!   afterwards no segment of the index (term dictionaries included) holds anything of the
//!   document, and no obsolete file is left in the directory (an [`EncryptedDirectory`]
//!   drops its cached chunks of every deleted file).
//!
//! [`EncryptedDirectory`]: crate::EncryptedDirectory

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use tantivy::indexer::IndexWriterOptions;
use tantivy::{IndexWriter, TantivyDocument, Term};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::error::IndexError;
use crate::publish::Publisher;
use crate::schema::{date_value, doc_page_key, doc_page_term, uuid_string, Fields};
use crate::search::SearchIndex;

/// Memory the writer may buffer before flushing a segment.
const WRITER_MEMORY_BYTES: usize = 50_000_000;

/// How many merges a purge tries before giving up. A merge only fails when a background
/// merge of the merge policy replaced one of its segments first; the purge then looks again
/// at which segments hold the document and merges those.
const PURGE_MERGE_ATTEMPTS: usize = 8;

/// One OCRed page to index.
#[derive(Clone)]
pub struct PageRecord {
    /// The document the page belongs to.
    pub document_id: Uuid,
    /// Pages are numbered from 1; page 0 is a batch document's cover sheet, when kept.
    pub page: u32,
    /// Internal opaque patient id, never an MRN.
    pub patient_id: Uuid,
    /// The patient's name: indexed for patient-name search, never stored.
    pub patient_name: String,
    /// E.g. `discharge-summary`.
    pub document_type: String,
    /// `general`, or a sensitive category.
    pub category: String,
    /// The document's service date, when known.
    pub service_date: Option<NaiveDate>,
    /// Indexed, never stored.
    pub text: String,
}

impl fmt::Debug for PageRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The page text is PHI: never in debug output or logs.
        f.debug_struct("PageRecord")
            .field("document_id", &self.document_id)
            .field("page", &self.page)
            .field("patient_id", &self.patient_id)
            .field("document_type", &self.document_type)
            .field("category", &self.category)
            .field("service_date", &self.service_date)
            .field("text_bytes", &self.text.len())
            .finish()
    }
}

type Reply = oneshot::Sender<Result<(), IndexError>>;

enum Command {
    Index { pages: Vec<PageRecord>, done: Reply },
    DeleteDocument { document_id: Uuid, done: Reply },
    PurgeDocument { document_id: Uuid, done: Reply },
    Shutdown { done: Reply },
}

/// Handle on the writer thread. Cheap to clone; the thread stops after
/// [`IndexWriterService::shutdown`] or when every handle is dropped (committing what is
/// pending either way).
#[derive(Clone)]
pub struct IndexWriterService {
    inner: Arc<ServiceInner>,
}

struct ServiceInner {
    commands: mpsc::Sender<Command>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for IndexWriterService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IndexWriterService").finish_non_exhaustive()
    }
}

impl IndexWriterService {
    /// Takes the index's write lock and starts the writer thread. Fails if another writer
    /// holds the lock.
    pub fn start(
        index: &SearchIndex,
        commit_every: Duration,
        max_batch: usize,
    ) -> Result<Self, IndexError> {
        Self::start_publishing(index, commit_every, max_batch, None)
    }

    /// [`Self::start`], and with a `publisher`, every commit (a purge's merges, and the
    /// merges finished at shutdown, too) is published before anyone is told it is done: a
    /// caller told "done" knows its pages are in the published commit.
    pub fn start_publishing(
        index: &SearchIndex,
        commit_every: Duration,
        max_batch: usize,
        publisher: Option<Publisher>,
    ) -> Result<Self, IndexError> {
        let options = IndexWriterOptions::builder()
            .num_worker_threads(1)
            .num_merge_threads(1)
            .memory_budget_per_thread(WRITER_MEMORY_BYTES)
            .build();
        let writer: IndexWriter = index.index().writer_with_options(options)?;
        let (commands, receiver) = mpsc::channel();
        let batcher = Batcher {
            index: index.clone(),
            fields: *index.fields(),
            writer,
            waiting: Vec::new(),
            pending_pages: 0,
            publisher,
        };
        let thread = std::thread::Builder::new()
            .name("cv-index-writer".to_string())
            .spawn(move || batcher.run(receiver, commit_every, max_batch.max(1)))?;
        Ok(IndexWriterService {
            inner: Arc::new(ServiceInner {
                commands,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Indexes (or re-indexes) pages; resolves once they are committed and searchable.
    pub async fn index_pages(&self, pages: Vec<PageRecord>) -> Result<(), IndexError> {
        if pages.is_empty() {
            return Ok(());
        }
        self.request(|done| Command::Index { pages, done }).await
    }

    /// Removes every page of a document; resolves once that is committed and searchable.
    pub async fn delete_document(&self, document_id: Uuid) -> Result<(), IndexError> {
        self.request(|done| Command::DeleteDocument { document_id, done })
            .await
    }

    /// Shreds a document from the index: deletes every page of it, commits, then merges
    /// exactly the segments that held its pages (rewriting them without the deleted pages),
    /// waits for that merge, deletes the now unused segment files and reloads the reader.
    /// Resolves only then: afterwards no remaining segment holds a term, posting or stored
    /// value of the document, and no file of a segment that did is left in the directory.
    ///
    /// Costs a rewrite of the segments holding the document (not of the whole index), and
    /// the writer does nothing else meanwhile; use it to shred, [`Self::delete_document`]
    /// to merely hide. Other pending changes are committed with it.
    pub async fn purge_document(&self, document_id: Uuid) -> Result<(), IndexError> {
        self.request(|done| Command::PurgeDocument { document_id, done })
            .await
    }

    /// Commits what is pending, waits for merges, and stops the writer thread (releasing the
    /// write lock). Other handles get [`IndexError::WriterGone`] afterwards.
    pub async fn shutdown(self) -> Result<(), IndexError> {
        let result = self.request(|done| Command::Shutdown { done }).await;
        let thread = match self.inner.thread.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(thread) = thread {
            // The thread replies to Shutdown as its last act, so this join is immediate.
            thread.join().map_err(|_| IndexError::WriterGone)?;
        }
        result
    }

    async fn request(&self, command: impl FnOnce(Reply) -> Command) -> Result<(), IndexError> {
        let (done, reply) = oneshot::channel();
        self.inner
            .commands
            .send(command(done))
            .map_err(|_| IndexError::WriterGone)?;
        reply.await.map_err(|_| IndexError::WriterGone)?
    }
}

/// The writer thread's state: the writer and who waits for the next commit.
struct Batcher {
    index: SearchIndex,
    fields: Fields,
    writer: IndexWriter,
    waiting: Vec<Reply>,
    pending_pages: usize,
    publisher: Option<Publisher>,
}

impl Batcher {
    fn run(mut self, commands: mpsc::Receiver<Command>, commit_every: Duration, max_batch: usize) {
        let mut deadline: Option<Instant> = None;
        loop {
            let command = match deadline {
                None => match commands.recv() {
                    Ok(command) => Some(command),
                    Err(mpsc::RecvError) => break,
                },
                // Something waits for a commit: take what is already queued, and commit
                // when nothing is (or the deadline has passed).
                Some(deadline) if Instant::now() < deadline => match commands.try_recv() {
                    Ok(command) => Some(command),
                    Err(mpsc::TryRecvError::Empty) => None,
                    Err(mpsc::TryRecvError::Disconnected) => break,
                },
                Some(_) => None,
            };
            let Some(command) = command else {
                self.commit();
                deadline = None;
                continue;
            };
            match command {
                Command::Index { pages, done } => {
                    let count = pages.len();
                    match self.add_pages(pages) {
                        Ok(()) => {
                            self.waiting.push(done);
                            self.pending_pages += count;
                        }
                        Err(error) => {
                            let _ = done.send(Err(error));
                            // Everyone else waiting was told; nothing more to report.
                            let _ = self.fail_batch();
                        }
                    }
                }
                Command::DeleteDocument { document_id, done } => {
                    let term =
                        Term::from_field_text(self.fields.document_id, &uuid_string(document_id));
                    self.writer.delete_term(term);
                    self.waiting.push(done);
                }
                Command::PurgeDocument { document_id, done } => {
                    let result = self.purge(document_id);
                    if let Err(error) = &result {
                        tracing::error!(%error, "search index purge failed");
                    }
                    let _ = done.send(result);
                    // The purge committed (or rolled back) everything that was pending.
                    deadline = None;
                    continue;
                }
                Command::Shutdown { done } => {
                    self.commit();
                    let result = self.finish();
                    let _ = done.send(result);
                    return;
                }
            }
            if self.pending_pages >= max_batch {
                self.commit();
                deadline = None;
            } else if deadline.is_none() && !self.waiting.is_empty() {
                deadline = Some(Instant::now() + commit_every);
            }
        }
        // Every handle is gone: make what was accepted durable before stopping.
        self.commit();
        if let Err(error) = self.finish() {
            tracing::warn!(%error, "search index merges failed while stopping the writer");
        }
    }

    /// Waits for the merges, and publishes what they committed.
    fn finish(self) -> Result<(), IndexError> {
        let Batcher {
            writer,
            mut publisher,
            ..
        } = self;
        writer.wait_merging_threads()?;
        match publisher.as_mut() {
            Some(publisher) => publisher.publish(),
            None => Ok(()),
        }
    }

    /// Publishes the latest commit, when the index is published.
    fn publish(&mut self) -> Result<(), IndexError> {
        match self.publisher.as_mut() {
            Some(publisher) => publisher.publish().map_err(|error| {
                tracing::error!(%error, "a search index commit could not be published");
                IndexError::CommitFailed(format!("the commit could not be published: {error}"))
            }),
            None => Ok(()),
        }
    }

    fn add_pages(&mut self, pages: Vec<PageRecord>) -> Result<(), IndexError> {
        for page in pages {
            // Same key, same commit: the delete covers earlier copies (committed or not),
            // never the document added right after it.
            self.writer
                .delete_term(doc_page_term(&self.fields, page.document_id, page.page));
            self.writer.add_document(self.document(page))?;
        }
        Ok(())
    }

    fn document(&self, page: PageRecord) -> TantivyDocument {
        let fields = &self.fields;
        let mut document = TantivyDocument::default();
        document.add_text(fields.text, &page.text);
        document.add_text(fields.document_id, uuid_string(page.document_id));
        document.add_u64(fields.page, u64::from(page.page));
        document.add_text(fields.patient_id, uuid_string(page.patient_id));
        document.add_text(fields.patient_name, &page.patient_name);
        document.add_text(fields.document_type, &page.document_type);
        document.add_text(fields.category, &page.category);
        if let Some(date) = page.service_date {
            document.add_date(fields.service_date, date_value(date));
        }
        document.add_text(fields.doc_page, doc_page_key(page.document_id, page.page));
        document
    }

    /// Commits and reloads the reader, then answers everyone waiting (if anyone is).
    fn commit(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        // The outcome has been sent to everyone waiting.
        let _ = self.commit_and_answer();
    }

    /// Commits (even when nobody waits) and reloads the reader, answers everyone waiting, and
    /// returns the outcome they were sent.
    fn commit_and_answer(&mut self) -> Result<(), IndexError> {
        let started = Instant::now();
        if let Err(error) = self.writer.commit() {
            tracing::error!(%error, "search index commit failed; batch rolled back");
            return Err(self.fail_batch());
        }
        let reloaded = self.index.reload();
        let waiting = std::mem::take(&mut self.waiting);
        tracing::debug!(
            operations = waiting.len(),
            pages = self.pending_pages,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index committed"
        );
        self.pending_pages = 0;
        match reloaded.and_then(|()| self.publish()) {
            Ok(()) => {
                for done in waiting {
                    let _ = done.send(Ok(()));
                }
                Ok(())
            }
            Err(error) => {
                // Committed but not yet visible (or not published): callers retry
                // (re-indexing is idempotent).
                tracing::error!(%error, "search index reload or publish failed after commit");
                let message = error.to_string();
                let failure = || IndexError::CommitFailed(message.clone());
                for done in waiting {
                    let _ = done.send(Err(failure()));
                }
                Err(failure())
            }
        }
    }

    /// Deletes and commits a document's pages, then merges away every segment still holding
    /// them (see [`IndexWriterService::purge_document`]).
    fn purge(&mut self, document_id: Uuid) -> Result<(), IndexError> {
        let started = Instant::now();
        let term = Term::from_field_text(self.fields.document_id, &uuid_string(document_id));
        self.writer.delete_term(term.clone());
        self.commit_and_answer()?;
        let mut merges = 0;
        loop {
            // The reader was just reloaded: it shows the committed segments. A deleted page
            // hides from searches but its terms, including its document id, stay in the
            // segment's term dictionaries until a merge drops them, so the id term finds
            // exactly the segments to rewrite.
            let holding = self.index.segments_holding(&term)?;
            if holding.is_empty() {
                break;
            }
            if merges == PURGE_MERGE_ATTEMPTS {
                return Err(IndexError::CommitFailed(
                    "segments holding a purged document could not be merged".to_string(),
                ));
            }
            merges += 1;
            if let Err(error) = self.writer.merge(&holding).wait() {
                // A background merge replaced one of these segments first (tantivy does not
                // stop two merges of one segment); look again at the segments now committed.
                tracing::warn!(%error, "search index purge merge failed; retrying");
                std::thread::sleep(Duration::from_millis(20 * merges as u64));
            }
            self.index.reload()?;
        }
        let collected = self.writer.garbage_collect_files().wait()?;
        self.index.reload()?;
        self.publish()?;
        if !collected.failed_to_delete_files.is_empty() {
            return Err(IndexError::CommitFailed(format!(
                "{} obsolete index files could not be deleted",
                collected.failed_to_delete_files.len()
            )));
        }
        tracing::info!(
            merges,
            deleted_files = collected.deleted_files.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "search index purged a document"
        );
        Ok(())
    }

    /// Drops every uncommitted change, tells everyone waiting that it failed, and returns
    /// that error.
    fn fail_batch(&mut self) -> IndexError {
        let message = match self.writer.rollback() {
            Ok(_) => "the batch was rolled back".to_string(),
            Err(error) => format!("the batch could not be rolled back: {error}"),
        };
        for done in self.waiting.drain(..) {
            let _ = done.send(Err(IndexError::CommitFailed(message.clone())));
        }
        self.pending_pages = 0;
        IndexError::CommitFailed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_record_debug_output_omits_the_text() {
        let record = PageRecord {
            document_id: Uuid::nil(),
            page: 1,
            patient_id: Uuid::nil(),
            patient_name: String::new(),
            document_type: "discharge-summary".to_string(),
            category: "general".to_string(),
            service_date: None,
            text: "Jane Doe takes metformin".to_string(),
        };
        let debug = format!("{record:?}");
        assert!(!debug.contains("metformin"), "{debug}");
        assert!(debug.contains("text_bytes"));
    }
}
