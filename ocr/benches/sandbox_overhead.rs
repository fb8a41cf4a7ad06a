//! What decoding in a child process costs beside decoding in-process, and how much memory
//! the child needs.
//!
//! Run: `cargo test -p chartvault-ocr --bench sandbox_overhead --release` (or without
//! `--release`: the dev profile builds this crate and its dependencies at opt-level 2). Add
//! `ceilings` to also search the smallest memory ceiling each kind of page decodes under
//! (a minute or two: it decodes 100-megapixel pages repeatedly).
//!
//! Prints:
//! - the per-request overhead: a preflight of a small file through the sandbox minus the
//!   same preflight in-process (process start, greeting, request, a few reads, answer);
//! - the per-page overhead of 300-dpi letter pages (2550×3300 gray, 8.4 MB each): a 10-page
//!   G4 TIFF decoded through the sandbox minus in-process, less one request's overhead;
//! - with `ceilings`: the smallest ceiling under which each input still decodes.

use std::io::{Cursor, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chartvault_ocr::{
    preflight, serve_child, Limits, PageReader, Sandbox, ScanError, ScanFormat, TiffPagesWriter,
};

const CHILD: &str = "--decoder-child";
const MIB: u64 = 1 << 20;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(CHILD) {
        std::process::exit(serve_child());
    }
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures");
    let read = |name: &str| {
        std::fs::read(fixtures.join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
    };
    let sandbox = sandbox(1024 * MIB);
    let limits = Limits::default();

    // Per request: a one-page TIFF's preflight.
    let small = read("phototest.tif");
    let local = measure(30, || {
        preflight(Cursor::new(&small), &limits).expect("preflight");
    });
    let sandboxed = measure(30, || {
        sandbox
            .preflight(Cursor::new(&small), &limits)
            .expect("preflight");
    });
    let request = sandboxed.minus(local);
    println!(
        "per request (preflight of phototest.tif): in-process {local}, sandboxed {sandboxed}: \
         {request} per request"
    );

    // Per page: ten 300-dpi letter pages.
    let letter = decode_all(&read("letter300_scan_g4.tif"), ScanFormat::Tiff, &limits)
        .remove(0)
        .image;
    assert_eq!(letter.dimensions(), (2550, 3300));
    let mut writer = TiffPagesWriter::new().expect("TIFF writer");
    for _ in 0..10 {
        writer.add(&letter, Some((300.0, 300.0))).expect("page");
    }
    let ten = writer.finish();
    let local = measure(5, || {
        decode_all(&ten, ScanFormat::Tiff, &limits);
    });
    let sandboxed = measure(5, || {
        decode_in_sandbox(&sandbox, &ten, ScanFormat::Tiff, &limits, 10).expect("decodes");
    });
    let per_page = sandboxed.minus(local).minus(request).per(10);
    println!(
        "per page (10 letter pages, 2550x3300 G4 TIFF): in-process {local}, sandboxed \
         {sandboxed}: {per_page} per page ({:.2} % of a 1.2 s OCR in CPU)",
        per_page.cpu.as_secs_f64() / 1.2 * 100.0
    );

    // The same pages uncompressed: decoding is a copy, what remains is the transfer (the
    // file's 8.4 MB a page into the child, as many pixels back).
    let mut raw = Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut raw).expect("TIFF encoder");
    for _ in 0..10 {
        encoder
            .write_image::<tiff::encoder::colortype::Gray8>(2550, 3300, letter.as_raw())
            .expect("page");
    }
    let raw = raw.into_inner();
    let local = measure(5, || {
        decode_all(&raw, ScanFormat::Tiff, &limits);
    });
    let sandboxed = measure(5, || {
        decode_in_sandbox(&sandbox, &raw, ScanFormat::Tiff, &limits, 10).expect("decodes");
    });
    println!(
        "per page (the same, uncompressed: decoding is a copy): in-process {local}, sandboxed \
         {sandboxed}: {} per page",
        sandboxed.minus(local).minus(request).per(10)
    );

    // A gray (not bilevel) letter page as a PNG: one request, one page.
    let clean = read("letter300_clean.png");
    let local = measure(10, || {
        decode_all(&clean, ScanFormat::Png, &limits);
    });
    let sandboxed = measure(10, || {
        decode_in_sandbox(&sandbox, &clean, ScanFormat::Png, &limits, 1).expect("decodes");
    });
    println!(
        "one gray letter page (letter300_clean.png): in-process {local}, sandboxed \
         {sandboxed}: {} more",
        sandboxed.minus(local)
    );

    // posix_spawn does not copy the parent's page tables, as fork would (`pre_exec` forces
    // fork): the cost of a request must not grow with the server's resident memory.
    let mut ballast = vec![1u8; 1 << 30];
    ballast.iter_mut().step_by(4096).for_each(|byte| *byte = 2);
    let sandboxed = measure(30, || {
        sandbox
            .preflight(Cursor::new(&small), &limits)
            .expect("preflight");
    });
    println!("per request with 1 GiB resident in the parent: sandboxed {sandboxed}");
    drop(ballast);

    if args.iter().any(|arg| arg == "ceilings") {
        ceilings(&read, &limits);
    }
}

fn ceilings(read: &dyn Fn(&str) -> Vec<u8>, limits: &Limits) {
    let startup = smallest_ceiling(|sandbox| sandbox.check().is_ok());
    println!("smallest ceiling for Sandbox::check (a blank letter page as a PNG): {startup} MiB");
    let inputs: Vec<(&str, Vec<u8>, ScanFormat)> = vec![
        (
            "letter G4 TIFF page",
            read("letter300_scan_g4.tif"),
            ScanFormat::Tiff,
        ),
        ("linn.png (2550x3300)", read("linn.png"), ScanFormat::Png),
        (
            "multipage.pdf (6 pages, one 9000x9000 RGB image)",
            read("multipage.pdf"),
            ScanFormat::Pdf,
        ),
        (
            "RG1_J2KI.dcm (JPEG 2000 x-ray)",
            read("dicom/RG1_J2KI.dcm"),
            ScanFormat::Dicom,
        ),
        (
            "10000x10000 8-bit gray PNG (the 100 MP limit)",
            white_png(10_000, 10_000, 0, 8),
            ScanFormat::Png,
        ),
        (
            "10000x10000 16-bit RGBA PNG (the widest pixels)",
            white_png(10_000, 10_000, 6, 16),
            ScanFormat::Png,
        ),
    ];
    for (name, bytes, format) in inputs {
        let pages = preflight(Cursor::new(&bytes), limits)
            .expect("preflight")
            .pages
            .len();
        let started = Instant::now();
        let ceiling = smallest_ceiling(|sandbox| {
            decode_in_sandbox(sandbox, &bytes, format, limits, pages).is_ok()
        });
        println!(
            "smallest ceiling for {name}: {ceiling} MiB (searched in {:.0} s)",
            started.elapsed().as_secs_f64()
        );
    }
}

/// The smallest ceiling (to 8 MiB) between 8 MiB and 4 GiB under which `works`.
fn smallest_ceiling(works: impl Fn(&Sandbox) -> bool) -> u64 {
    let (mut low, mut high) = (8u64, 4096u64);
    if !works(&sandbox(high * MIB)) {
        return u64::MAX;
    }
    while high - low > 8 {
        let middle = (low + high) / 2;
        if works(&sandbox(middle * MIB)) {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

fn sandbox(ceiling: u64) -> Sandbox {
    let exe = std::env::current_exe().expect("the bench knows its path");
    Sandbox::new(exe, [CHILD], ceiling).with_idle_timeout(Duration::from_secs(120))
}

fn decode_all(
    bytes: &[u8],
    format: ScanFormat,
    limits: &Limits,
) -> Vec<chartvault_ocr::DecodedPage> {
    let mut reader = PageReader::open(Cursor::new(bytes), format, limits).expect("opens");
    (0..reader.page_count())
        .map(|index| reader.decode(index).expect("decodes"))
        .collect()
}

fn decode_in_sandbox(
    sandbox: &Sandbox,
    bytes: &[u8],
    format: ScanFormat,
    limits: &Limits,
    pages: usize,
) -> Result<(), ScanError> {
    let indices: Vec<usize> = (0..pages).collect();
    let mut failure = None;
    sandbox.decode_pages(
        Cursor::new(bytes),
        format,
        limits,
        pages,
        &indices,
        |_, page| match page {
            Ok(_) => ControlFlow::Continue(()),
            Err(error) => {
                failure = Some(error);
                ControlFlow::Break(())
            }
        },
    )?;
    failure.map_or(Ok(()), Err)
}

/// Wall time (median of the runs) and CPU time (mean, this process and its reaped
/// children, user and system).
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    cpu: Duration,
}

impl Cost {
    fn minus(self, other: Cost) -> Cost {
        Cost {
            wall: self.wall.saturating_sub(other.wall),
            cpu: self.cpu.saturating_sub(other.cpu),
        }
    }

    fn per(self, count: u32) -> Cost {
        Cost {
            wall: self.wall / count,
            cpu: self.cpu / count,
        }
    }
}

impl std::fmt::Display for Cost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} ms wall / {:.2} ms CPU",
            self.wall.as_secs_f64() * 1000.0,
            self.cpu.as_secs_f64() * 1000.0
        )
    }
}

fn measure(runs: u32, mut run: impl FnMut()) -> Cost {
    run(); // warm-up: page cache, allocator
    let cpu_before = cpu_time();
    let mut walls: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            run();
            started.elapsed()
        })
        .collect();
    let cpu = (cpu_time() - cpu_before) / runs;
    walls.sort();
    Cost {
        wall: walls[walls.len() / 2],
        cpu,
    }
}

fn cpu_time() -> Duration {
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct it is given.
        let usage = unsafe {
            let mut usage = std::mem::zeroed::<libc::rusage>();
            libc::getrusage(who, &mut usage);
            usage
        };
        for time in [usage.ru_utime, usage.ru_stime] {
            total += Duration::from_secs(time.tv_sec as u64)
                + Duration::from_micros(time.tv_usec as u64);
        }
    }
    total
}

/// A white PNG of the given colour type (0 gray, 6 RGBA) and bit depth, compressed row by
/// row.
fn white_png(width: u32, height: u32, colour_type: u8, bits: u8) -> Vec<u8> {
    let channels = if colour_type == 6 { 4 } else { 1 };
    let row_bytes = width as usize * channels * usize::from(bits / 8);
    let mut idat = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut row = vec![255u8; row_bytes + 1];
    row[0] = 0;
    for _ in 0..height {
        idat.write_all(&row).expect("writing to memory");
    }
    let idat = idat.finish().expect("writing to memory");
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([bits, colour_type, 0, 0, 0]);
    let mut png = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    for (kind, data) in [(b"IHDR", &ihdr), (b"IDAT", &idat), (b"IEND", &Vec::new())] {
        png.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        png.extend(kind);
        png.extend(data.iter());
        png.extend(crc.sum().to_be_bytes());
    }
    png
}
