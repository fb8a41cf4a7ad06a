//! The decoder sandbox, end to end: this binary is both the test runner and the decoder
//! child it starts (`current_exe()` with a marker argument), since an integration test has
//! no app binary to re-execute. Without a marker, `main` runs the cases below in order and
//! exits non-zero if one fails.

mod common;

use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chartvault_ocr::{
    preflight, serve_child, DecodedPage, Limits, PageReader, Sandbox, ScanError, ScanFormat,
};

/// The decoder child.
const CHILD: &str = "--decoder-child";
/// A child that aborts before it does anything.
const CHILD_ABORTS: &str = "--decoder-child-aborts";
/// A child that hangs before it does anything.
const CHILD_HANGS: &str = "--decoder-child-hangs";
/// A child that prints something else than the protocol and exits.
const CHILD_CHATTERS: &str = "--decoder-child-chatters";

const MIB: u64 = 1 << 20;

fn main() -> ExitCode {
    let mode = std::env::args().nth(1);
    match mode.as_deref() {
        Some(CHILD) => std::process::exit(serve_child()),
        Some(CHILD_ABORTS) => std::process::abort(),
        Some(CHILD_HANGS) => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
        Some(CHILD_CHATTERS) => {
            print!("HTTP/1.1 200 OK\r\n\r\n");
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    // Arguments cargo passes on to every test binary: a name filter, libtest flags (ignored).
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with('-'))
        .collect();
    let cases: &[(&str, fn())] = &[
        (
            "a_page_over_the_memory_ceiling_fails_alone_and_the_parent_stays_flat",
            a_page_over_the_memory_ceiling_fails_alone_and_the_parent_stays_flat,
        ),
        (
            "every_fixture_format_decodes_as_in_process",
            every_fixture_format_decodes_as_in_process,
        ),
        (
            "errors_from_the_child_keep_their_variant_and_message",
            errors_from_the_child_keep_their_variant_and_message,
        ),
        (
            "a_child_killed_during_a_request_is_decoder_stopped",
            a_child_killed_during_a_request_is_decoder_stopped,
        ),
        (
            "a_child_that_cannot_start_is_a_transient_io_error",
            a_child_that_cannot_start_is_a_transient_io_error,
        ),
        (
            "a_failing_parent_reader_is_an_io_error",
            a_failing_parent_reader_is_an_io_error,
        ),
        (
            "breaking_from_the_sink_kills_the_child_at_once",
            breaking_from_the_sink_kills_the_child_at_once,
        ),
        (
            "a_silent_child_is_killed_after_the_idle_timeout",
            a_silent_child_is_killed_after_the_idle_timeout,
        ),
        (
            "check_accepts_a_decoder_and_refuses_anything_else",
            check_accepts_a_decoder_and_refuses_anything_else,
        ),
    ];
    let mut failed = Vec::new();
    let started = Instant::now();
    for (name, case) in cases {
        if !filters.is_empty() && !filters.iter().any(|filter| name.contains(filter.as_str())) {
            continue;
        }
        let case_started = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            case();
            let left = children();
            assert!(left.is_empty(), "child processes left behind: {left:?}");
        }));
        let seconds = case_started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({seconds:.2} s)"),
            Err(_) => {
                println!("test {name} ... FAILED ({seconds:.2} s)");
                failed.push(*name);
            }
        }
    }
    println!(
        "sandbox: {} failed, {:.1} s",
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for name in failed {
            println!("failed: {name}");
        }
        ExitCode::FAILURE
    }
}

fn sandbox(memory_ceiling: u64) -> Sandbox {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    Sandbox::new(exe, [CHILD], memory_ceiling).with_idle_timeout(Duration::from_secs(60))
}

/// Every page of a file, decoded in-process.
fn pages_in_process(bytes: &[u8], format: ScanFormat, limits: &Limits) -> Vec<DecodedPage> {
    let mut reader = PageReader::open(Cursor::new(bytes), format, limits).expect("file opens");
    (0..reader.page_count())
        .map(|index| reader.decode(index).expect("page decodes"))
        .collect()
}

/// Every page of a file, decoded through `sandbox`.
fn pages_in_sandbox(
    sandbox: &Sandbox,
    bytes: &[u8],
    format: ScanFormat,
    limits: &Limits,
    page_count: usize,
) -> Vec<DecodedPage> {
    let indices: Vec<usize> = (0..page_count).collect();
    let mut pages = Vec::new();
    sandbox
        .decode_pages(
            Cursor::new(bytes),
            format,
            limits,
            page_count,
            &indices,
            |index, page| {
                assert_eq!(index, pages.len(), "pages arrive in order");
                pages.push(page.expect("page decodes in the sandbox"));
                ControlFlow::Continue(())
            },
        )
        .expect("file decodes in the sandbox");
    pages
}

fn assert_same_page(name: &str, index: usize, sandboxed: &DecodedPage, local: &DecodedPage) {
    let what = format!("{name} page {}", index + 1);
    assert_eq!(
        sandboxed.image.dimensions(),
        local.image.dimensions(),
        "{what}: size"
    );
    assert!(sandboxed.image == local.image, "{what}: pixels differ");
    assert_eq!(sandboxed.dpi, local.dpi, "{what}: dpi");
    assert_eq!(sandboxed.text_layer, local.text_layer, "{what}: text layer");
    assert_eq!(
        sandboxed.no_image, local.no_image,
        "{what}: no-image reason"
    );
}

fn every_fixture_format_decodes_as_in_process() {
    let Some(dir) = common::fixtures() else {
        return;
    };
    let mut files: Vec<(String, Vec<u8>)> = [
        "phototest.tif",
        "multipage_g4_3p.tif",
        "linn.png",
        "scan5_g4.pdf",
        "c02-22.pdf",
        "lichtenstein.pdf",
        "dicom/RG1_J2KI.dcm",
        "dicom/RG3_J2KR.dcm",
    ]
    .into_iter()
    .map(|name| {
        let bytes = std::fs::read(dir.join(name)).expect("fixture is readable");
        (name.to_owned(), bytes)
    })
    .collect();
    files.push(("generated JPEG".into(), jpeg_of_phototest(&files[0].1)));
    files.push(("generated born-digital PDF".into(), born_digital_pdf()));
    let limits = Limits::default();
    let sandbox = sandbox(1024 * MIB);
    let mut pages_compared = 0;
    for (name, bytes) in &files {
        let local = preflight(Cursor::new(bytes), &limits).expect("preflight passes");
        let sandboxed = sandbox
            .preflight(Cursor::new(bytes), &limits)
            .expect("preflight passes in the sandbox");
        assert_eq!(sandboxed, local, "{name}: preflight");
        let local_pages = pages_in_process(bytes, local.format, &limits);
        let sandboxed_pages =
            pages_in_sandbox(&sandbox, bytes, local.format, &limits, local.pages.len());
        assert_eq!(sandboxed_pages.len(), local_pages.len(), "{name}: pages");
        for (index, (sandboxed, local)) in sandboxed_pages.iter().zip(&local_pages).enumerate() {
            assert_same_page(name, index, sandboxed, local);
        }
        if name.contains("born-digital") {
            assert!(local_pages[0].text_layer.is_some(), "{name}: text layer");
        }
        pages_compared += local_pages.len();
    }
    println!(
        "  {} files, {pages_compared} pages identical; largest child peak RSS {} MiB",
        files.len(),
        children_peak_rss() / MIB
    );
}

/// phototest decoded and written as a baseline JPEG (the fixtures hold no JPEG file).
fn jpeg_of_phototest(tiff: &[u8]) -> Vec<u8> {
    let page = &pages_in_process(tiff, ScanFormat::Tiff, &Limits::default())[0];
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&page.image)
        .expect("JPEG encodes");
    jpeg
}

/// A one-page PDF with Helvetica text: a born-digital page with a text layer.
fn born_digital_pdf() -> Vec<u8> {
    common::classic_pdf::<String>(
        &[
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
             /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
                .into(),
            {
                let content = "BT /F1 24 Tf 72 700 Td (Discharge summary) Tj \
                               0 -40 Td (Metformin 500 mg) Tj ET";
                format!(
                    "<< /Length {} >>\nstream\n{content}\nendstream",
                    content.len()
                )
            },
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
                .into(),
        ],
        "",
    )
}

fn a_page_over_the_memory_ceiling_fails_alone_and_the_parent_stays_flat() {
    // 144 million white pixels in a PNG of a few hundred KiB: within generous limits, so the
    // format guards let it through, and the decoder allocates 144 MB for it.
    let (width, height) = (12_000, 12_000);
    let bomb = white_png(width, height);
    let limits = Limits {
        max_pixels_per_page: 200_000_000,
        max_pages: 10,
        max_dimension: 20_000,
    };
    let sandbox = sandbox(64 * MIB);
    reset_peak_rss();
    let peak_before = status_kib("VmHWM");

    let preflight = sandbox
        .preflight(Cursor::new(&bomb), &limits)
        .expect("headers fit in the ceiling");
    assert_eq!(
        (preflight.pages[0].width, preflight.pages[0].height),
        (width, height)
    );
    let mut results = Vec::new();
    sandbox
        .decode_pages(
            Cursor::new(&bomb),
            ScanFormat::Png,
            &limits,
            1,
            &[0],
            |index, page| {
                results.push((index, page));
                ControlFlow::Continue(())
            },
        )
        .expect("the file opens: only its page fails");
    let [(0, Err(error))] = results.as_slice() else {
        panic!("one failed page expected");
    };
    assert!(
        matches!(error, ScanError::DecoderStopped { page: Some(1), .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with("page 1 could not be decoded: ")
            && message.contains("memory limit of 64 MiB")
            && message.contains("crashed"),
        "{message}"
    );
    println!("  {message}");

    let growth_mib = status_kib("VmHWM").saturating_sub(peak_before) / 1024;
    assert!(
        growth_mib < 32,
        "the parent's peak RSS grew by {growth_mib} MiB"
    );

    // The same sandbox serves the next file.
    if let Some(bytes) = common::fixture_bytes("phototest.tif") {
        let pages = pages_in_sandbox(&sandbox, &bytes, ScanFormat::Tiff, &Limits::default(), 1);
        assert_eq!(pages[0].image.dimensions(), (640, 480));
    }
}

/// A white 8-bit grayscale PNG, compressed row by row (never whole in memory).
fn white_png(width: u32, height: u32) -> Vec<u8> {
    let mut idat = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut row = vec![255u8; width as usize + 1];
    row[0] = 0; // filter type None
    for _ in 0..height {
        idat.write_all(&row).expect("writing to memory");
    }
    let idat = idat.finish().expect("writing to memory");
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8 bits, grayscale, deflate, adaptive filter, no interlace
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

fn errors_from_the_child_keep_their_variant_and_message() {
    let sandbox = sandbox(256 * MIB);
    let limits = Limits::default();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("unknown format", b"Patient: not a scan at all".repeat(10)),
        ("encrypted PDF", encrypted_pdf()),
    ];
    let Some(tiff) = common::fixture_bytes("phototest.tif") else {
        return;
    };
    // phototest's directory follows its 8-byte header; its strips come after.
    cases.push(("TIFF cut inside its directory", tiff[..30].to_vec()));
    for (what, bytes) in &cases {
        let local = preflight(Cursor::new(bytes), &limits).expect_err("preflight fails");
        let sandboxed = sandbox
            .preflight(Cursor::new(bytes), &limits)
            .expect_err("preflight fails in the sandbox");
        assert_same_error(what, &sandboxed, &local);
    }
    let unknown = sandbox.decode_pages(
        Cursor::new(b"Patient: not a scan".repeat(10)),
        ScanFormat::Tiff,
        &limits,
        1,
        &[0],
        |_, _| panic!("no page of an unknown file"),
    );
    assert!(
        matches!(unknown, Err(ScanError::UnknownFormat)),
        "{unknown:?}"
    );

    // Cut inside its pixel data: the directory is intact, the page fails alike.
    let cut = &tiff[..tiff.len() - 100];
    let local_error = PageReader::open(Cursor::new(cut), ScanFormat::Tiff, &limits)
        .expect("the directory is intact")
        .decode(0)
        .expect_err("the page is cut");
    let mut results = Vec::new();
    sandbox
        .decode_pages(
            Cursor::new(cut),
            ScanFormat::Tiff,
            &limits,
            1,
            &[0],
            |index, page| {
                results.push((index, page));
                ControlFlow::Continue(())
            },
        )
        .expect("the file opens");
    let [(0, Err(sandboxed_error))] = results.as_slice() else {
        panic!("page 1 fails in the sandbox too");
    };
    assert_same_error("TIFF cut inside its pixels", sandboxed_error, &local_error);

    let Some(tiff) = common::fixture_bytes("multipage_g4_3p.tif") else {
        return;
    };
    // Asking for a page the file does not have, and a page count that changed.
    let mut results = Vec::new();
    sandbox
        .decode_pages(
            Cursor::new(&tiff),
            ScanFormat::Tiff,
            &limits,
            3,
            &[5],
            |i, page| {
                results.push((i, page));
                ControlFlow::Continue(())
            },
        )
        .expect("the file opens");
    assert!(matches!(
        results.as_slice(),
        [(
            5,
            Err(ScanError::PageOutOfRange {
                requested: 6,
                pages: 3
            })
        )]
    ));
    let changed = sandbox.decode_pages(
        Cursor::new(&tiff),
        ScanFormat::Tiff,
        &limits,
        4,
        &[0],
        |_, _| panic!("no page when the count changed"),
    );
    match changed {
        Err(error @ ScanError::Malformed { .. }) => assert_eq!(
            error.to_string(),
            "the TIFF file is malformed: the file now has 3 pages, 4 were accepted"
        ),
        other => panic!("{other:?}"),
    }
}

fn assert_same_error(what: &str, sandboxed: &ScanError, local: &ScanError) {
    assert_eq!(
        std::mem::discriminant(sandboxed),
        std::mem::discriminant(local),
        "{what}: {sandboxed:?} vs {local:?}"
    );
    assert_eq!(sandboxed.to_string(), local.to_string(), "{what}");
    println!("  {what}: {sandboxed}");
}

fn encrypted_pdf() -> Vec<u8> {
    common::classic_pdf::<String>(
        &[
            "<< /Type /Catalog /Pages 2 0 R >>".into(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>".into(),
        ],
        "/Encrypt << /Filter /Standard /V 2 /R 3 /Length 128 /P -4 \
         /O <00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF> \
         /U <00112233445566778899AABBCCDDEEFF00112233445566778899AABBCCDDEEFF> >> \
         /ID [<0123456789ABCDEF0123456789ABCDEF> <0123456789ABCDEF0123456789ABCDEF>]",
    )
}

fn a_child_killed_during_a_request_is_decoder_stopped() {
    let Some(tiff) = common::fixture_bytes("multipage_g4_3p.tif") else {
        return;
    };
    let sandbox = sandbox(256 * MIB);
    // The child is killed when it first asks for bytes: after its greeting, mid-request.
    let reader = OnFirstRead::new(Cursor::new(tiff.clone()), || signal_children(libc::SIGKILL));
    let error = sandbox
        .preflight(reader, &Limits::default())
        .expect_err("the child is dead");
    match &error {
        ScanError::DecoderStopped { page: None, detail } => {
            assert!(detail.contains("signal 9"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    println!("  {error}");

    // Killed while a page is decoding: that page fails, the earlier ones arrived.
    let mut results = Vec::new();
    sandbox
        .decode_pages(
            Cursor::new(&tiff),
            ScanFormat::Tiff,
            &Limits::default(),
            3,
            &[0, 1, 2],
            |index, page| {
                if index == 0 {
                    signal_children(libc::SIGKILL);
                }
                results.push((index, page));
                ControlFlow::Continue(())
            },
        )
        .expect("the file opened");
    assert_eq!(results.len(), 2);
    assert!(results[0].1.is_ok());
    assert!(
        matches!(
            &results[1],
            (1, Err(ScanError::DecoderStopped { page: Some(2), .. }))
        ),
        "{:?}",
        results[1].1
    );
    // The sandbox still works.
    let pages = pages_in_sandbox(&sandbox, &tiff, ScanFormat::Tiff, &Limits::default(), 3);
    assert_eq!(pages.len(), 3);
}

fn a_child_that_cannot_start_is_a_transient_io_error() {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let tiny = b"%PDF-1.7\n".to_vec();
    for (what, sandbox) in [
        ("aborts", Sandbox::new(&exe, [CHILD_ABORTS], 256 * MIB)),
        ("chatters", Sandbox::new(&exe, [CHILD_CHATTERS], 256 * MIB)),
        (
            "hangs",
            Sandbox::new(&exe, [CHILD_HANGS], 256 * MIB)
                .with_idle_timeout(Duration::from_millis(300)),
        ),
        (
            "is missing",
            Sandbox::new("/nonexistent/chartvault", [CHILD], 256 * MIB),
        ),
    ] {
        let started = Instant::now();
        let error = sandbox
            .preflight(Cursor::new(&tiny), &Limits::default())
            .expect_err("no decoder");
        let ScanError::Io(io) = &error else {
            panic!("a child that {what}: {error:?}");
        };
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        println!("  a child that {what}: {io}");
    }
}

fn a_failing_parent_reader_is_an_io_error() {
    // Pages much larger than the child's read-ahead: page 2 needs bytes page 1 did not.
    let tiff = uncompressed_gray_tiff(3, 1500, 1000);
    let sandbox = sandbox(256 * MIB);
    let limits = Limits::default();
    let failing = |after: u64| FailingReader {
        inner: Cursor::new(tiff.clone()),
        read: Arc::new(AtomicU64::new(0)),
        fail_after: after,
    };
    let is_ours = |error: &ScanError| match error {
        ScanError::Io(io) => io.to_string() == "the blob store went away",
        _ => false,
    };

    let error = sandbox
        .preflight(failing(0), &limits)
        .expect_err("nothing can be read");
    assert!(is_ours(&error), "{error:?}");
    let error = sandbox
        .decode_pages(failing(0), ScanFormat::Tiff, &limits, 3, &[0], |_, _| {
            panic!("no page")
        })
        .expect_err("the file cannot be opened");
    assert!(is_ours(&error), "{error:?}");

    // How far page 1 reads, then a reader that fails just after.
    let counting = failing(u64::MAX);
    let read = counting.read.clone();
    let mut after_first_page = 0;
    sandbox
        .decode_pages(
            counting,
            ScanFormat::Tiff,
            &limits,
            3,
            &[0, 1],
            |index, _| {
                if index == 0 {
                    after_first_page = read.load(Ordering::SeqCst);
                }
                ControlFlow::Continue(())
            },
        )
        .expect("the file decodes");
    assert!(after_first_page < tiff.len() as u64);
    let mut results = Vec::new();
    sandbox
        .decode_pages(
            failing(after_first_page),
            ScanFormat::Tiff,
            &limits,
            3,
            &[0, 1],
            |index, page| {
                results.push((index, page));
                ControlFlow::Continue(())
            },
        )
        .expect("the file opened");
    assert_eq!(results.len(), 2);
    assert!(results[0].1.is_ok());
    assert!(
        matches!(&results[1], (1, Err(error)) if is_ours(error)),
        "{:?}",
        results[1].1
    );
}

/// A TIFF of `pages` uncompressed 8-bit gray pages (directories after their pixels).
fn uncompressed_gray_tiff(pages: usize, width: u32, height: u32) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    let mut encoder = tiff::encoder::TiffEncoder::new(&mut out).expect("writing to memory");
    for page in 0..pages {
        let pixels: Vec<u8> = (0..width as usize * height as usize)
            .map(|i| ((i + page) % 251) as u8)
            .collect();
        encoder
            .write_image::<tiff::encoder::colortype::Gray8>(width, height, &pixels)
            .expect("writing to memory");
    }
    out.into_inner()
}

fn breaking_from_the_sink_kills_the_child_at_once() {
    let Some(tiff) = common::fixture_bytes("multipage_g4_3p.tif") else {
        return;
    };
    // No idle timeout: if the parent waited for the child instead of killing it, this would
    // hang, since the child is stopped (SIGSTOP) before the sink breaks.
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let sandbox = Sandbox::new(exe, [CHILD], 256 * MIB);
    let mut delivered = 0;
    let started = Instant::now();
    sandbox
        .decode_pages(
            Cursor::new(&tiff),
            ScanFormat::Tiff,
            &Limits::default(),
            3,
            &[0, 1, 2],
            |_, page| {
                page.expect("page 1 decodes");
                delivered += 1;
                signal_children(libc::SIGSTOP);
                ControlFlow::Break(())
            },
        )
        .expect("a break is not an error");
    assert_eq!(delivered, 1);
    assert!(started.elapsed() < Duration::from_secs(10));
}

fn a_silent_child_is_killed_after_the_idle_timeout() {
    let Some(tiff) = common::fixture_bytes("phototest.tif") else {
        return;
    };
    let sandbox = sandbox(256 * MIB).with_idle_timeout(Duration::from_millis(300));
    // The child stops (SIGSTOP) when it first asks for bytes, and never answers.
    let reader = OnFirstRead::new(Cursor::new(tiff), || signal_children(libc::SIGSTOP));
    let started = Instant::now();
    let error = sandbox
        .preflight(reader, &Limits::default())
        .expect_err("the child is silent");
    let elapsed = started.elapsed();
    match &error {
        ScanError::DecoderStopped { page: None, detail } => {
            assert!(detail.contains("no progress for 0.3 s"), "{detail}")
        }
        other => panic!("{other:?}"),
    }
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    println!("  {error}");
}

fn check_accepts_a_decoder_and_refuses_anything_else() {
    sandbox(256 * MIB)
        .check()
        .expect("the test binary is a decoder");
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let error = Sandbox::new(&exe, [CHILD_CHATTERS], 256 * MIB)
        .check()
        .expect_err("not a decoder");
    assert!(matches!(error, ScanError::Io(_)), "{error:?}");
    // A ceiling too small for an ordinary page.
    let error = Sandbox::new(&exe, [CHILD], 4 * MIB)
        .check()
        .expect_err("a letter page needs more than 4 MiB");
    assert!(
        matches!(&error, ScanError::DecoderStopped { page: Some(1), .. }),
        "{error:?}"
    );
    println!("  a ceiling of 4 MiB: {error}");
}

/// A reader that runs `action` when it is first read.
struct OnFirstRead<R, F: FnMut()> {
    inner: R,
    action: Option<F>,
}

impl<R, F: FnMut()> OnFirstRead<R, F> {
    fn new(inner: R, action: F) -> Self {
        OnFirstRead {
            inner,
            action: Some(action),
        }
    }
}

impl<R: Read, F: FnMut()> Read for OnFirstRead<R, F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(mut action) = self.action.take() {
            action();
        }
        self.inner.read(buf)
    }
}

impl<R: Seek, F: FnMut()> Seek for OnFirstRead<R, F> {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        self.inner.seek(target)
    }
}

/// A reader that fails (as a decrypting reader whose blob store went away) once it has
/// returned `fail_after` bytes.
struct FailingReader {
    inner: Cursor<Vec<u8>>,
    read: Arc<AtomicU64>,
    fail_after: u64,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let read = self.read.load(Ordering::SeqCst);
        if read >= self.fail_after {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the blob store went away",
            ));
        }
        let allowed = (self.fail_after - read).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..allowed])?;
        self.read.fetch_add(n as u64, Ordering::SeqCst);
        Ok(n)
    }
}

impl Seek for FailingReader {
    fn seek(&mut self, target: SeekFrom) -> io::Result<u64> {
        self.inner.seek(target)
    }
}

/// This process's child processes (pid, state), zombies included.
fn children() -> Vec<(i32, char)> {
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        let Some(after_comm) = stat.rfind(')').map(|end| &stat[end + 2..]) else {
            continue;
        };
        let mut fields = after_comm.split(' ');
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid = fields.next().and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(me) {
            found.push((pid, state));
        }
    }
    found
}

fn signal_children(signal: libc::c_int) {
    for (pid, _) in children() {
        // SAFETY: kill(2) on a child of ours, not yet reaped (it is listed in /proc).
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

/// A field of /proc/self/status in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"))
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The largest peak RSS of any reaped child so far, in bytes.
fn children_peak_rss() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    usage.ru_maxrss as u64 * 1024
}
