//! Search latency of an encrypted index against the same index in plain files.
//!
//! Builds one index of generated chart pages twice, with identical content: in an
//! `EncryptedDirectory` over an `MmapDirectory` (cache: 64 MiB, the `index.cache_bytes`
//! default of the service's config) and in a plain `MmapDirectory`. Then runs one query set
//! against both, warm-up pass first, interleaving the two directories so they share the
//! machine's noise, and prints p50 / p99 / mean per directory and per query, the
//! encrypted/plain ratios, and each index's build time and size on disk.
//!
//! Run: `cargo bench -p chartvault-index --bench search_latency --profile dev` (or
//! `--release`). Environment: `CV_BENCH_PAGES` (default 100000), `CV_BENCH_ROUNDS` (rounds of
//! the whole query set after warm-up, default 400; without `--bench`, as under
//! `cargo test --all-targets`, the defaults are 2000 pages and 3 rounds),
//! `CV_BENCH_CACHE_BYTES` (default 64 MiB), `CV_BENCH_DIR` (keep the built indexes there and
//! reuse them on the next run).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chartvault_index::{
    EncryptedDirectory, IndexWriterService, PageRecord, SearchIndex, SearchRequest,
};
use chartvault_storage::{DataKey, KeyId};
use chrono::NaiveDate;
use tantivy::directory::MmapDirectory;
use uuid::Uuid;

/// `index.cache_bytes` in the service's default config (`src/config.rs`).
const DEFAULT_CACHE_BYTES: usize = 64 * 1024 * 1024;
const PATIENTS: u64 = 300;
const BATCH_PAGES: usize = 25_000;
/// Every this many pages carries a rare marker word.
const MARKER_EVERY: u64 = 5_000;
const HITS_PER_PAGE: usize = 20;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// xorshift64*: deterministic, so both indexes get the same pages.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[rustfmt::skip]
const COMMON_WORDS: &[&str] = &[
    "the", "and", "of", "patient", "with", "to", "in", "is", "was", "for", "no", "on", "mg",
    "daily", "history", "normal", "left", "right", "pain", "noted", "without", "denies",
    "blood", "pressure", "plan", "follow", "up", "exam", "assessment", "reports", "chest",
    "heart", "rate", "negative", "positive", "medication", "medications", "continue",
    "discharge", "admission", "labs", "stable", "acute", "chronic", "mild", "moderate",
    "severe", "bilateral", "clear", "soft", "tender", "nontender", "abdomen", "lungs",
    "extremities", "edema", "diabetes", "hypertension", "metformin", "insulin", "lisinopril",
    "atorvastatin", "aspirin", "metoprolol", "amlodipine", "furosemide", "warfarin", "heparin",
    "glucose", "hemoglobin", "a1c", "creatinine", "sodium", "potassium", "wbc", "platelets",
    "cbc", "bmp", "ekg", "echo", "ct", "mri", "xray", "ultrasound", "biopsy", "fracture",
    "infection", "pneumonia", "sepsis", "copd", "asthma", "chf", "cad", "afib", "stroke",
    "seizure", "headache", "nausea", "vomiting", "diarrhea", "constipation", "fever", "chills",
    "cough", "dyspnea", "shortness", "breath", "fatigue", "weakness", "dizziness", "syncope",
    "palpitations", "rash", "wound", "ulcer", "cellulitis", "abscess", "surgery", "procedure",
    "anesthesia", "incision", "sutures", "dressing", "antibiotics", "vancomycin",
    "ceftriaxone", "cefazolin", "piperacillin", "tazobactam", "levofloxacin", "azithromycin",
    "prednisone", "methylprednisolone", "albuterol", "ipratropium", "oxygen", "nebulizer",
    "saturation", "temperature", "respiratory", "pulse", "weight", "height", "bmi", "allergies",
    "nkda", "penicillin", "sulfa", "family", "social", "tobacco", "alcohol", "smoker", "former",
    "never", "married", "lives", "alone", "home", "nursing", "facility", "rehab", "physical",
    "therapy", "occupational", "consult", "cardiology", "nephrology", "endocrinology",
    "oncology", "neurology", "psychiatry", "orthopedics", "gastroenterology", "pulmonology",
    "dermatology", "urology", "gynecology", "obstetrics", "pediatrics", "renal", "hepatic",
    "kidney", "liver", "thyroid", "tsh", "lipid", "cholesterol", "triglycerides", "ldl", "hdl",
    "anemia", "iron", "ferritin", "b12", "folate", "vitamin", "calcium", "magnesium",
    "phosphorus", "urinalysis", "culture", "sensitivity", "gram", "stain", "mrsa", "vre",
    "cdiff", "covid", "influenza", "vaccine", "immunization", "tetanus", "hepatitis", "hiv",
    "screening", "colonoscopy", "mammogram", "pap", "smear", "psa", "dexa", "osteoporosis",
    "arthritis", "gout", "lupus", "depression", "anxiety", "insomnia", "dementia", "delirium",
    "confusion", "alert", "oriented", "cooperative", "appears", "comfortable", "distress",
    "obese", "thin", "cachectic", "ambulating", "walker", "wheelchair", "bedbound", "fall",
    "risk", "precautions", "code", "status", "full", "dnr", "dni", "hospice", "palliative",
    "goals", "care", "discussed", "understanding", "agrees", "questions", "answered",
    "return", "emergency", "department", "clinic", "weeks", "months", "days",
];

/// Fixed phrases inserted at random, so phrase queries match real adjacent words.
const PHRASES: &[&str] = &[
    "chest pain",
    "shortness of breath",
    "blood pressure",
    "type 2 diabetes mellitus",
    "congestive heart failure",
    "no acute distress",
];

const MARKERS: &[&str] = &["zebrafish", "quokka", "narwhal", "axolotl"];

const DOCUMENT_TYPES: &[&str] = &[
    "progress-note",
    "discharge-summary",
    "lab-report",
    "radiology-report",
    "operative-note",
];

/// The vocabulary, most frequent first: clinical words, then generated pseudo-words (drug
/// names, surnames, OCR noise) for a long tail.
fn vocabulary() -> Vec<String> {
    #[rustfmt::skip]
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ra", "ten", "vor", "za", "bel", "cin", "dro", "fen", "gar", "hol",
        "jun", "kel", "lum", "nor", "pra", "quin", "sol", "tri", "ul", "vex", "wen", "xor",
        "yal", "zem", "ast", "bri", "cor",
    ];
    let mut words: Vec<String> = COMMON_WORDS.iter().map(|word| word.to_string()).collect();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut seen: std::collections::HashSet<String> = words.iter().cloned().collect();
    while words.len() < 30_000 {
        let syllables = 2 + rng.below(3);
        let word: String = (0..syllables)
            .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
            .collect();
        if seen.insert(word.clone()) {
            words.push(word);
        }
    }
    words
}

/// Samples word ranks with probability ∝ 1 / (rank + 1)^1.05.
struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    fn new(len: usize) -> Self {
        let mut total = 0.0;
        let cumulative = (0..len)
            .map(|rank| {
                total += 1.0 / ((rank + 1) as f64).powf(1.05);
                total
            })
            .collect();
        Zipf { cumulative }
    }

    fn sample(&self, rng: &mut Rng) -> usize {
        let total = *self.cumulative.last().expect("non-empty vocabulary");
        let target = rng.unit() * total;
        self.cumulative
            .partition_point(|value| *value < target)
            .min(self.cumulative.len() - 1)
    }
}

/// The page generator: same seed, same pages.
struct Corpus {
    words: Vec<String>,
    zipf: Zipf,
    rng: Rng,
    next_page: u64,
    document: Uuid,
    document_pages_left: u32,
    page_in_document: u32,
    patient: Uuid,
    document_type: &'static str,
    service_date: NaiveDate,
}

fn patient_id(number: u64) -> Uuid {
    Uuid::from_u128(0x00c0_ffee_0000_0000_0000_0000_0000_0000 + u128::from(number))
}

impl Corpus {
    fn new() -> Self {
        let words = vocabulary();
        let zipf = Zipf::new(words.len());
        Corpus {
            words,
            zipf,
            rng: Rng(0x0123_4567_89ab_cdef),
            next_page: 0,
            document: Uuid::nil(),
            document_pages_left: 0,
            page_in_document: 0,
            patient: Uuid::nil(),
            document_type: DOCUMENT_TYPES[0],
            service_date: NaiveDate::MIN,
        }
    }

    fn page(&mut self) -> PageRecord {
        if self.document_pages_left == 0 {
            let rng = &mut self.rng;
            self.document = Uuid::from_u64_pair(rng.next(), rng.next());
            self.document_pages_left = 1 + rng.below(20) as u32;
            self.page_in_document = 0;
            self.patient = patient_id(rng.below(PATIENTS));
            self.document_type = DOCUMENT_TYPES[rng.below(DOCUMENT_TYPES.len() as u64) as usize];
            let day = rng.below(10 * 365) as i64;
            self.service_date =
                NaiveDate::from_ymd_opt(2015, 1, 1).expect("date") + chrono::Duration::days(day);
        }
        self.document_pages_left -= 1;
        self.page_in_document += 1;
        let page_number = self.next_page;
        self.next_page += 1;

        let word_count = 200 + self.rng.below(201) as usize;
        let mut text = String::with_capacity(word_count * 8);
        let mut written = 0;
        while written < word_count {
            if self.rng.below(40) == 0 {
                let phrase = PHRASES[self.rng.below(PHRASES.len() as u64) as usize];
                text.push_str(phrase);
                written += phrase.split(' ').count();
            } else {
                text.push_str(&self.words[self.zipf.sample(&mut self.rng)]);
                written += 1;
            }
            text.push(' ');
        }
        if page_number % MARKER_EVERY == 17 {
            text.push_str(MARKERS[(page_number / MARKER_EVERY) as usize % MARKERS.len()]);
        }
        PageRecord {
            document_id: self.document,
            page: self.page_in_document,
            patient_id: self.patient,
            patient_name: format!("Patient {}", self.patient.as_u128() % 1000),
            document_type: self.document_type.to_string(),
            category: "general".to_string(),
            service_date: Some(self.service_date),
            text,
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Encrypted,
    Plain,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Encrypted => "encrypted",
            Kind::Plain => "plain",
        }
    }
}

struct Keys {
    key: DataKey,
    key_id: KeyId,
    cache_bytes: usize,
}

fn open(kind: Kind, dir: &Path, keys: &Keys) -> (SearchIndex, Option<EncryptedDirectory>) {
    let mmap = MmapDirectory::open(dir).expect("mmap directory");
    match kind {
        Kind::Plain => (
            SearchIndex::open_in_directory(mmap).expect("plain index"),
            None,
        ),
        Kind::Encrypted => {
            let directory =
                EncryptedDirectory::new(mmap, keys.key.clone(), keys.key_id, keys.cache_bytes);
            (
                SearchIndex::open_in_directory(directory.clone()).expect("encrypted index"),
                Some(directory),
            )
        }
    }
}

/// Builds the index (a commit per `BATCH_PAGES` pages) and returns the time it took,
/// page generation excluded.
fn build(kind: Kind, dir: &Path, keys: &Keys, pages: usize) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (index, _) = open(kind, dir, keys);
    // max_batch 1: each `index_pages` call (one batch) is committed at once, as one commit.
    let writer = IndexWriterService::start(&index, Duration::from_secs(3600), 1).expect("writer");
    let mut corpus = Corpus::new();
    let mut elapsed = Duration::ZERO;
    let mut done = 0;
    while done < pages {
        let batch: Vec<PageRecord> = (0..BATCH_PAGES.min(pages - done))
            .map(|_| corpus.page())
            .collect();
        done += batch.len();
        let started = Instant::now();
        runtime
            .block_on(writer.index_pages(batch))
            .expect("batch indexes");
        elapsed += started.elapsed();
    }
    let started = Instant::now();
    runtime
        .block_on(writer.shutdown())
        .expect("writer shuts down");
    elapsed + started.elapsed()
}

fn dir_stats(dir: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut segments = 0;
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let entry = entry.expect("entry");
        bytes += entry.metadata().expect("metadata").len();
        if entry.file_name().to_string_lossy().ends_with(".idx") {
            segments += 1;
        }
    }
    (bytes, segments)
}

/// The patients of the corpus's first five documents (so the filter matches at any size).
fn some_patients() -> Vec<Uuid> {
    let mut corpus = Corpus::new();
    let mut patients = Vec::new();
    while patients.len() < 5 {
        let patient = corpus.page().patient_id;
        if !patients.contains(&patient) {
            patients.push(patient);
        }
    }
    patients
}

fn queries() -> Vec<(&'static str, SearchRequest)> {
    let request = |query: &str| SearchRequest {
        query: query.to_string(),
        limit: HITS_PER_PAGE,
        ..SearchRequest::default()
    };
    let date = |year, month, day| NaiveDate::from_ymd_opt(year, month, day).expect("date");
    vec![
        ("rare term", request("zebrafish")),
        ("common term", request("patient")),
        ("two-term AND", request("metformin hypertension")),
        ("phrase", request("\"shortness of breath\"")),
        ("prefix metf*", request("metf*")),
        (
            "patient filter",
            SearchRequest {
                patient_ids: Some(some_patients()),
                ..request("insulin")
            },
        ),
        (
            "date range",
            SearchRequest {
                from: Some(date(2019, 1, 1)),
                to: Some(date(2019, 12, 31)),
                ..request("pneumonia")
            },
        ),
    ]
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

struct Summary {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

fn summarize(samples: &[Duration]) -> Summary {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let total: Duration = sorted.iter().sum();
    Summary {
        p50: percentile(&sorted, 0.50),
        p99: percentile(&sorted, 0.99),
        mean: total / sorted.len() as u32,
    }
}

fn micros(duration: Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e6)
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --all-targets`) run a small
    // smoke test of the same code instead of the full measurement.
    let full = std::env::args().any(|arg| arg == "--bench");
    let pages = env_number("CV_BENCH_PAGES", if full { 100_000 } else { 2_000 });
    let rounds = env_number("CV_BENCH_ROUNDS", if full { 400 } else { 3 });
    let keys = Keys {
        key: DataKey::from_bytes([0x42; 32]),
        key_id: KeyId::from_bytes([0x24; 16]),
        cache_bytes: env_number("CV_BENCH_CACHE_BYTES", DEFAULT_CACHE_BYTES),
    };
    let temp = tempfile::tempdir().expect("temp dir");
    let root: PathBuf = std::env::var_os("CV_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| temp.path().to_path_buf());
    let kinds = [Kind::Encrypted, Kind::Plain];

    let mut build_times = Vec::new();
    for kind in kinds {
        let dir = root.join(format!("{}-{pages}", kind.name()));
        if dir.join("meta.json").exists() {
            println!("reusing the {} index in {}", kind.name(), dir.display());
            build_times.push(None);
            continue;
        }
        std::fs::create_dir_all(&dir).expect("index dir");
        println!("building the {} index of {pages} pages…", kind.name());
        build_times.push(Some(build(kind, &dir, &keys, pages)));
    }

    let opened: Vec<(SearchIndex, Option<EncryptedDirectory>)> = kinds
        .iter()
        .map(|kind| open(*kind, &root.join(format!("{}-{pages}", kind.name())), &keys))
        .collect();
    let queries = queries();
    for (index, _) in &opened {
        assert_eq!(index.page_count().expect("count") as usize, pages);
    }

    // Warm-up, checking both indexes give the same answers.
    for (name, request) in &queries {
        let answers: Vec<_> = opened
            .iter()
            .map(|(index, _)| {
                let results = index.search(request).expect("search");
                let hits: Vec<(Uuid, u32)> = results
                    .hits
                    .iter()
                    .map(|hit| (hit.document_id, hit.page))
                    .collect();
                (results.total, hits)
            })
            .collect();
        assert_eq!(answers[0], answers[1], "{name}: indexes disagree");
        assert!(answers[0].0 > 0, "{name} matches nothing");
        println!("{name:>15}: {:>6} matching pages", answers[0].0);
        for _ in 0..5 {
            for (index, _) in &opened {
                index.search(request).expect("search");
            }
        }
    }

    // samples[kind][query]
    let mut samples = vec![vec![Vec::with_capacity(rounds); queries.len()]; kinds.len()];
    let measuring = Instant::now();
    for round in 0..rounds {
        for (query, (_, request)) in queries.iter().enumerate() {
            for step in 0..kinds.len() {
                // Alternate which directory goes first.
                let kind = (step + round + query) % kinds.len();
                let started = Instant::now();
                let results = opened[kind].0.search(request).expect("search");
                samples[kind][query].push(started.elapsed());
                std::hint::black_box(results);
            }
        }
    }
    let measuring = measuring.elapsed();

    println!();
    println!(
        "{pages} pages; {rounds} rounds x {} queries = {} searches per directory, \
         interleaved ({:.1} s); cache {} MiB",
        queries.len(),
        rounds * queries.len(),
        measuring.as_secs_f64(),
        keys.cache_bytes / (1024 * 1024)
    );
    println!();
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "directory", "p50 µs", "p99 µs", "mean µs", "build s", "disk MiB", "segments"
    );
    let overall: Vec<Summary> = samples
        .iter()
        .map(|per_query| summarize(&per_query.concat()))
        .collect();
    for (position, kind) in kinds.iter().enumerate() {
        let dir = root.join(format!("{}-{pages}", kind.name()));
        let (bytes, segments) = dir_stats(&dir);
        let summary = &overall[position];
        println!(
            "{:<12} {:>10} {:>10} {:>10} {:>10} {:>10.1} {:>9}",
            kind.name(),
            micros(summary.p50),
            micros(summary.p99),
            micros(summary.mean),
            build_times[position]
                .map(|time| format!("{:.1}", time.as_secs_f64()))
                .unwrap_or_else(|| "reused".to_string()),
            bytes as f64 / (1024.0 * 1024.0),
            segments
        );
    }
    let ratio = |encrypted: Duration, plain: Duration| {
        encrypted.as_secs_f64() / plain.as_secs_f64().max(1e-9)
    };
    println!(
        "ratio encrypted/plain: p50 {:.2}x, p99 {:.2}x, mean {:.2}x",
        ratio(overall[0].p50, overall[1].p50),
        ratio(overall[0].p99, overall[1].p99),
        ratio(overall[0].mean, overall[1].mean)
    );
    println!();
    println!(
        "{:<15} {:>12} {:>12} {:>7} {:>12} {:>12} {:>7}",
        "query", "enc p50 µs", "plain p50 µs", "ratio", "enc p99 µs", "plain p99 µs", "ratio"
    );
    for (query, (name, _)) in queries.iter().enumerate() {
        let encrypted = summarize(&samples[0][query]);
        let plain = summarize(&samples[1][query]);
        println!(
            "{:<15} {:>12} {:>12} {:>6.2}x {:>12} {:>12} {:>6.2}x",
            name,
            micros(encrypted.p50),
            micros(plain.p50),
            ratio(encrypted.p50, plain.p50),
            micros(encrypted.p99),
            micros(plain.p99),
            ratio(encrypted.p99, plain.p99)
        );
    }
    if let Some(directory) = &opened[0].1 {
        println!();
        println!(
            "encrypted cache after the run: {} chunks, {:.1} MiB",
            directory.cached_chunks(),
            directory.cached_bytes() as f64 / (1024.0 * 1024.0)
        );
    }
}
