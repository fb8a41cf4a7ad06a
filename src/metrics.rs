//! The service's metrics, served at `GET /metrics` in the Prometheus (OpenMetrics) text format
//! to the addresses of `metrics.allow`.
//!
//! Events are counted where they happen (a page recognised, a search answered, an audit entry
//! appended); the state of the archive (the job queue, the index, the keyring) is read when
//! the metrics are scraped. Nothing here carries PHI: labels are states, reason classes and
//! key versions.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AckLabel {
    pub ack: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    pub version: String,
}

/// Every metric of one service.
pub struct Metrics {
    registry: Registry,
    pub pages_recognised: Counter,
    pub ocr_seconds: Histogram,
    pub cleanup_seconds: Histogram,
    pub document_failures: Family<ReasonLabel, Counter>,
    pub documents_indexed: Counter,
    pub search_seconds: Histogram,
    pub hl7_messages: Family<AckLabel, Counter>,
    pub mdm_messages: Family<AckLabel, Counter>,
    // Read at scrape time (see [`Snapshot`]).
    jobs: Family<StateLabel, Gauge>,
    oldest_pending_job_age: Gauge<f64, AtomicU64>,
    index_documents: Gauge,
    index_segments: Gauge,
    kek_versions: Family<VersionLabel, Gauge>,
    mdm_backlog: Gauge,
    mdm_oldest_pending_age: Gauge<f64, AtomicU64>,
}

/// What the archive looks like when the metrics are scraped.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub jobs_by_state: Vec<(String, i64)>,
    pub oldest_pending_job_age: Option<Duration>,
    pub index_documents: u64,
    pub index_segments: u64,
    /// Key-encryption key versions and how many wrapped keys each protects.
    pub kek_versions: Vec<(u32, i64)>,
    /// MDM notifications not answered by the receiver yet, and the age of the oldest.
    pub mdm_backlog: i64,
    pub mdm_oldest_pending_age: Option<Duration>,
}

/// The reason classes of failed documents (see `ingest::pages::Failure::class`).
pub const FAILURE_CLASSES: [&str; 6] = [
    "unreadable-scan",
    "page-timeout",
    "recognition",
    "rejected",
    "internal",
    "gave-up",
];

/// Job states always reported, at zero when no job is in them.
const JOB_STATES: [&str; 4] = ["pending", "running", "done", "failed"];

fn seconds_buckets(start: f64, count: u16) -> Histogram {
    Histogram::new(exponential_buckets(start, 2.0, count))
}

impl Metrics {
    /// `audit_append_seconds` is the store's own histogram of audit appends.
    pub fn new(audit_append_seconds: Histogram) -> Metrics {
        let mut registry = Registry::with_prefix("chartvault");
        let pages_recognised = Counter::default();
        registry.register(
            "pages_recognised",
            "Pages read by the OCR engines (blank pages and pages with a text layer are not)",
            pages_recognised.clone(),
        );
        let ocr_seconds = seconds_buckets(0.05, 10);
        registry.register(
            "ocr_page_seconds",
            "Time an engine spent recognising one page",
            ocr_seconds.clone(),
        );
        let cleanup_seconds = seconds_buckets(0.002, 12);
        registry.register(
            "cleanup_page_seconds",
            "Time spent cleaning up one page (resolution, blank check, skew, orientation)",
            cleanup_seconds.clone(),
        );
        let document_failures = Family::<ReasonLabel, Counter>::default();
        // Every class is reported from the start, at zero: a rate over a series that appears
        // only with its first failure misses that failure.
        for reason in FAILURE_CLASSES {
            let _ = document_failures.get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            });
        }
        registry.register(
            "document_failures",
            "Documents whose processing failed, by reason class",
            document_failures.clone(),
        );
        let documents_indexed = Counter::default();
        registry.register(
            "documents_indexed",
            "Documents processed and searchable",
            documents_indexed.clone(),
        );
        let search_seconds = seconds_buckets(0.001, 12);
        registry.register(
            "search_seconds",
            "Time to answer a search, scope and audit included",
            search_seconds.clone(),
        );
        registry.register(
            "audit_append_seconds",
            "Time to append one entry to the audit chain (committed)",
            audit_append_seconds,
        );
        let hl7_messages = Family::<AckLabel, Counter>::default();
        for ack in ["AA", "AE", "AR"] {
            let _ = hl7_messages.get_or_create(&AckLabel {
                ack: ack.to_string(),
            });
        }
        registry.register(
            "hl7_messages",
            "HL7 messages received on the MLLP listener, by acknowledgement code",
            hl7_messages.clone(),
        );
        let mdm_messages = Family::<AckLabel, Counter>::default();
        registry.register(
            "mdm_messages",
            "MDM notifications answered by the receiver (hl7.mdm.endpoint), by acknowledgement code",
            mdm_messages.clone(),
        );
        let mdm_backlog = Gauge::default();
        registry.register(
            "mdm_backlog",
            "MDM notifications waiting for the receiver's acknowledgement",
            mdm_backlog.clone(),
        );
        let mdm_oldest_pending_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "mdm_oldest_pending_age_seconds",
            "How long the oldest unanswered MDM notification has waited (0 when none waits)",
            mdm_oldest_pending_age.clone(),
        );
        let jobs = Family::<StateLabel, Gauge>::default();
        registry.register("jobs", "Documents' processing jobs by state", jobs.clone());
        let oldest_pending_job_age = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "oldest_pending_job_age_seconds",
            "How long the oldest pending job has waited (0 when none waits)",
            oldest_pending_job_age.clone(),
        );
        let index_documents = Gauge::default();
        registry.register(
            "index_documents",
            "Pages in the search index (committed)",
            index_documents.clone(),
        );
        let index_segments = Gauge::default();
        registry.register(
            "index_segments",
            "Segments of the search index",
            index_segments.clone(),
        );
        let kek_versions = Family::<VersionLabel, Gauge>::default();
        registry.register(
            "kek_version_keys",
            "Data keys wrapped under each key-encryption key version in use",
            kek_versions.clone(),
        );
        Metrics {
            registry,
            pages_recognised,
            ocr_seconds,
            cleanup_seconds,
            document_failures,
            documents_indexed,
            search_seconds,
            hl7_messages,
            mdm_messages,
            jobs,
            oldest_pending_job_age,
            index_documents,
            index_segments,
            kek_versions,
            mdm_backlog,
            mdm_oldest_pending_age,
        }
    }

    /// Counts a failed document under its reason class (one of [`FAILURE_CLASSES`]).
    pub fn document_failed(&self, reason: &'static str) {
        debug_assert!(FAILURE_CLASSES.contains(&reason), "{reason}");
        self.document_failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// Counts an HL7 message under its acknowledgement code (`AA`, `AE`, `AR`).
    pub fn hl7_answered(&self, ack: &str) {
        self.hl7_messages
            .get_or_create(&AckLabel {
                ack: ack.to_string(),
            })
            .inc();
    }

    /// Counts an MDM message the receiver answered, under its code (`AA`, `AE`, ...).
    pub fn mdm_answered(&self, ack: &str) {
        self.mdm_messages
            .get_or_create(&AckLabel {
                ack: ack.to_string(),
            })
            .inc();
    }

    /// The metrics as text, the archive's state taken from `snapshot`.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        for state in JOB_STATES {
            let count = snapshot
                .jobs_by_state
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n);
            self.jobs
                .get_or_create(&StateLabel {
                    state: state.to_string(),
                })
                .set(count);
        }
        self.oldest_pending_job_age.set(
            snapshot
                .oldest_pending_job_age
                .map_or(0.0, |age| age.as_secs_f64()),
        );
        self.index_documents
            .set(i64::try_from(snapshot.index_documents).unwrap_or(i64::MAX));
        self.index_segments
            .set(i64::try_from(snapshot.index_segments).unwrap_or(i64::MAX));
        self.kek_versions.clear();
        for (version, keys) in &snapshot.kek_versions {
            self.kek_versions
                .get_or_create(&VersionLabel {
                    version: version.to_string(),
                })
                .set(*keys);
        }
        self.mdm_backlog.set(snapshot.mdm_backlog);
        self.mdm_oldest_pending_age.set(
            snapshot
                .mdm_oldest_pending_age
                .map_or(0.0, |age| age.as_secs_f64()),
        );
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// A histogram for the time of audit appends (the store observes it).
pub fn audit_append_histogram() -> Histogram {
    seconds_buckets(0.0005, 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_family_with_the_scraped_state() {
        let metrics = Metrics::new(audit_append_histogram());
        metrics.pages_recognised.inc();
        metrics.ocr_seconds.observe(0.8);
        metrics.document_failed("unreadable-scan");
        let text = metrics.encode(&Snapshot {
            jobs_by_state: vec![("pending".into(), 3)],
            oldest_pending_job_age: Some(Duration::from_secs(12)),
            index_documents: 7,
            index_segments: 2,
            kek_versions: vec![(1, 4), (2, 9)],
            mdm_backlog: 5,
            mdm_oldest_pending_age: Some(Duration::from_secs(90)),
        });
        for line in [
            "chartvault_mdm_backlog 5",
            "chartvault_mdm_oldest_pending_age_seconds 90.0",
            "chartvault_pages_recognised_total 1",
            "chartvault_jobs{state=\"pending\"} 3",
            "chartvault_jobs{state=\"failed\"} 0",
            "chartvault_oldest_pending_job_age_seconds 12.0",
            "chartvault_index_documents 7",
            "chartvault_kek_version_keys{version=\"2\"} 9",
            "chartvault_document_failures_total{reason=\"unreadable-scan\"} 1",
            "chartvault_ocr_page_seconds_count 1",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from:\n{text}"
            );
        }
        assert!(text.ends_with("# EOF\n"));
        // A key version no longer in use is no longer reported.
        let text = metrics.encode(&Snapshot {
            kek_versions: vec![(2, 13)],
            ..Snapshot::default()
        });
        assert!(!text.contains("version=\"1\""));
        assert!(text.contains("chartvault_kek_version_keys{version=\"2\"} 13"));
    }
}
