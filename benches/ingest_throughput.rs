//! OCR ingest throughput through the HTTP API, against the `tesseract` command line on the
//! same pages and cores.
//!
//! Pages: the real scanned letter `8087_054.3B.tif`, the simulated scan
//! `letter300_scan_g4.tif` (from ../shared/fixtures when present) and generated 300-dpi
//! letter pages, at least 12 in all. The service is timed from the first upload until every
//! page is `indexed`; the baseline is `tesseract FILE stdout` with OMP_THREAD_LIMIT=1 run on
//! all cores at once through `xargs -P`. Prints pages/second for both and their ratio, and
//! where the service's CPU went: its OCR engine threads, the rest of its threads, and its
//! decoder processes (the share outside recognition).
//!
//! Run: `cargo bench --profile dev --bench ingest_throughput` (the profile the service runs
//! with; dependencies are optimised in it).

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use helpers::*;

const LETTER: &[&str] = &[
    "Riverside General Hospital - Department of Internal Medicine",
    "Discharge Summary",
    "Reason for admission: The patient presented to the emergency",
    "department with a three day history of productive cough, fever",
    "of 38.9 C, and shortness of breath on exertion. A chest x-ray",
    "showed a right lower lobe consolidation consistent with",
    "community-acquired pneumonia. Oxygen saturation was 91% on room",
    "air. White blood cell count was 14,200 per microliter.",
    "Hospital course: He was started on intravenous ceftriaxone 1 g",
    "daily and oral azithromycin 500 mg, later switched to oral",
    "amoxicillin-clavulanate 875/125 mg twice daily. His fever",
    "resolved on hospital day two and his oxygen requirement was",
    "weaned to room air by day four. Blood cultures remained negative",
    "after 48 hours. Renal function remained stable, with a serum",
    "creatinine of 1.1 mg/dL on discharge. Follow up in two weeks.",
    "Medications on discharge: metformin 500 mg twice daily with",
    "meals, lisinopril 10 mg daily, atorvastatin 20 mg at night.",
    "Diet: as tolerated. Activity: walking as tolerated, no driving",
    "for one week. Return if fever, chest pain or breathlessness.",
];

fn letter_page(seed: u64) -> image::GrayImage {
    let mut lines: Vec<String> = Vec::new();
    for block in 0..2 {
        for line in LETTER {
            lines.push(line.to_string());
        }
        lines.push(format!("Page marker {seed}-{block}"));
    }
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let page = scanned_page(&refs, 0.7, seed);
    // Place on a letter-size canvas (8.5 x 11 in at 300 dpi).
    let mut canvas = image::GrayImage::from_pixel(2550, 3300, image::Luma([255]));
    image::imageops::replace(&mut canvas, &page, 200, 100);
    canvas
}

/// CPU seconds this process has used: each of its OCR engine threads' (by thread id), all
/// its threads' (those that ended included), and its waited-for children's (the decoder
/// processes).
struct Cpu {
    engines: std::collections::HashMap<String, f64>,
    process: f64,
    children: f64,
}

impl Cpu {
    fn now() -> Cpu {
        // SAFETY: sysconf only reads a constant.
        let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        // The fields after the command name's closing parenthesis, from field 3 on.
        let fields = |stat: &str| -> Vec<f64> {
            let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
            rest.split_whitespace()
                .map(|f| f.parse::<f64>().unwrap_or(0.0))
                .collect()
        };
        let mut engines = std::collections::HashMap::new();
        for task in std::fs::read_dir("/proc/self/task").expect("procfs") {
            let path = task.expect("a task").path();
            let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            if name.starts_with("ocr-engine") {
                let stat = fields(&std::fs::read_to_string(path.join("stat")).unwrap_or_default());
                let tid = path.file_name().unwrap().to_string_lossy().into_owned();
                engines.insert(tid, (stat[11] + stat[12]) / tick); // utime, stime
            }
        }
        let stat = fields(&std::fs::read_to_string("/proc/self/stat").expect("procfs"));
        Cpu {
            engines,
            process: (stat[11] + stat[12]) / tick,
            children: (stat[13] + stat[14]) / tick, // cutime, cstime
        }
    }

    /// (engine threads, the rest of the process, children) used since `before`.
    fn since(&self, before: &Cpu) -> (f64, f64, f64) {
        let engines: f64 = self
            .engines
            .iter()
            .map(|(tid, after)| after - before.engines.get(tid).copied().unwrap_or(0.0))
            .sum();
        (
            engines,
            self.process - before.process - engines,
            self.children - before.children,
        )
    }
}

fn main() {
    std::env::set_var("OMP_THREAD_LIMIT", "1");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let work = tempfile::tempdir().unwrap();
    // Dense: letters of ~40 lines, the real scanned letter and the simulated scan among them.
    let mut dense: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
    for name in ["8087_054.3B.tif", "letter300_scan_g4.tif"] {
        if let Some(bytes) = fixture(name) {
            dense.push((fixtures_dir().join(name), bytes));
        }
    }
    for seed in 0..(12 - dense.len()) as u64 {
        let path = work.path().join(format!("letter{seed}.png"));
        let bytes = png_of(&letter_page(seed));
        std::fs::write(&path, &bytes).unwrap();
        dense.push((path, bytes));
    }
    // Sparse: progress notes of 9 lines on a letter-size page, as most chart pages are.
    let sparse: Vec<(std::path::PathBuf, Vec<u8>)> = (0..12u64)
        .map(|seed| {
            let path = work.path().join(format!("note{seed}.png"));
            let bytes = png_of(&helpers::letter_page(100 + seed));
            std::fs::write(&path, &bytes).unwrap();
            (path, bytes)
        })
        .collect();
    measure("dense letters", &dense).await;
    measure("sparse notes", &sparse).await;
}

/// Ingests `files` through the service, then through the command line; prints both and
/// where the service's CPU went.
async fn measure(kind: &str, files: &[(std::path::PathBuf, Vec<u8>)]) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let pages = files.len();
    println!("\ningest throughput, {kind}: {pages} letter-size pages at 300 dpi, {cores} cores");

    // The service: upload everything, wait until every page is indexed.
    let app = spawn_app().await;
    let cpu_before = Cpu::now();
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut ids = Vec::new();
    for (_, bytes) in files {
        ids.push(
            app.upload(bytes.clone(), &metadata("00123", "Bench Patient", "letter"))
                .await,
        );
    }
    let accepted = started.elapsed();
    for id in &ids {
        app.wait_indexed(id).await;
    }
    // Until the last page was indexed, as the service recorded it: the polling only waits.
    let mut last = started_at;
    for id in &ids {
        last = last.max(app.indexed_at(id).await);
    }
    let service = (last - started_at)
        .to_std()
        .expect("indexed after the upload");
    let (engines, others, children) = Cpu::now().since(&cpu_before);
    let service_rate = pages as f64 / service.as_secs_f64();
    println!(
        "chartvault:        {:>6.2} s  {:>5.3} pages/s  (all {pages} uploads acknowledged after {:.2} s)",
        service.as_secs_f64(),
        service_rate,
        accepted.as_secs_f64()
    );
    let outside = others + children;
    println!(
        "CPU: OCR engines {engines:.2} s, the rest of the process {others:.2} s (this bench's \
         client included), decoder processes {children:.2} s: {:.1} % outside the engines; \
         engines busy {:.0} % of {cores} cores' wall time",
        100.0 * outside / (engines + outside),
        100.0 * engines / (cores as f64 * service.as_secs_f64()),
    );
    drop(app);

    // The baseline: one single-threaded tesseract process per page, all cores busy.
    let list: String = files
        .iter()
        .map(|(p, _)| format!("{}\n", p.display()))
        .collect();
    let started = Instant::now();
    let mut xargs = Command::new("xargs")
        .args([
            "-P",
            &cores.to_string(),
            "-I{}",
            "tesseract",
            "{}",
            "stdout",
            "--psm",
            "3",
        ])
        .env("OMP_THREAD_LIMIT", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("xargs and tesseract (scripts/setup.sh installs tesseract-ocr)");
    xargs
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    assert!(xargs.wait().unwrap().success(), "tesseract failed");
    let cli = started.elapsed();
    let cli_rate = pages as f64 / cli.as_secs_f64();
    println!(
        "tesseract CLI:     {:>6.2} s  {:>5.3} pages/s  (xargs -P {cores}, OMP_THREAD_LIMIT=1)",
        cli.as_secs_f64(),
        cli_rate
    );
    println!(
        "ratio (chartvault / tesseract CLI): {:.2}",
        service_rate / cli_rate
    );
}
