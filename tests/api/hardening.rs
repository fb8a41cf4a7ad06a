//! Hostile clients against the real server running as a child process: what they cost it is
//! measured on the process itself (its resident memory from /proc, and whether it still
//! answers), not only read off status codes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::helpers::*;

/// Writes `head` and then `body_bytes` bytes of `fill`, and reads the answer's status line
/// (or `None` when the server closed the connection without one).
fn send_partial(addr: &str, head: &str, body_bytes: usize, fill: u8) -> Option<String> {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![fill; 64 * 1024];
    let mut sent = 0;
    while sent < body_bytes {
        let n = chunk.len().min(body_bytes - sent);
        if stream.write_all(&chunk[..n]).is_err() {
            break; // the server answered and closed while we were still sending
        }
        sent += n;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines()
        .next()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
}

/// Sends a chunked JSON body of up to `total` bytes to `/search`; returns how much the
/// server let through before it stopped reading (answered and closed).
fn send_chunked(addr: &str, token: &str, total: usize) -> usize {
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let framed = [
        format!("{:x}\r\n", chunk.len()).into_bytes(),
        chunk,
        b"\r\n".to_vec(),
    ]
    .concat();
    let mut sent = 0;
    while sent < total {
        if stream.write_all(&framed).is_err() {
            break;
        }
        sent += 64 * 1024;
    }
    sent
}

/// Seconds until the server closes a connection that sent `prefix` and then nothing more
/// (`None`: still open after `wait`).
fn closed_after(addr: &str, prefix: &[u8], wait: Duration) -> Option<f64> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connects");
    stream.write_all(prefix).unwrap();
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(started.elapsed().as_secs_f64()),
            Ok(_) => continue, // an error answer before the close
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return None
            }
            Err(_) => return Some(started.elapsed().as_secs_f64()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_slow_clients_and_idle_connections_cost_the_server_nothing() {
    let mut server = ChildServer::start(&[
        ("CHARTVAULT__SERVER__HEADER_TIMEOUT_SECS", "2"),
        ("CHARTVAULT__SERVER__BODY_IDLE_TIMEOUT_SECS", "2"),
        ("CHARTVAULT__SERVER__MAX_CONNECTIONS", "4"),
    ]);
    let auditor = server.user("aud", "auditor");
    let records = server.user("rec", "records");
    let addr = server.addr();
    let (before, _) = server.rss_mib();
    server.reset_peak();

    // 1. A 300 MiB JSON body. Declared: refused with 413 before a byte of it is read.
    let head = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auditor}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        300u64 << 20
    );
    let status = send_partial(&addr, &head, 0, b' ').expect("an answer");
    assert!(status.contains(" 413 "), "{status}");
    // Undeclared (chunked): the server stops reading once the first MiB is past; the client
    // is cut off long before it has sent 300 MiB.
    let sent = send_chunked(&addr, &auditor, 300 << 20);
    assert!(sent < 64 << 20, "the server read {} MiB", sent >> 20);

    // 2. A multipart part whose headers never end: refused once they pass 16 KiB.
    let head = format!(
        "POST /api/v1/documents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {records}\r\n\
         Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n\
         --XyZ\r\nContent-Disposition: form-data; name=\"file\"\r\nX-Padding: ",
        200u64 << 20
    );
    let status = send_partial(&addr, &head, 4 << 20, b'a').expect("an answer");
    assert!(status.contains(" 413 "), "{status}");
    let (_, peak) = server.rss_mib();
    eprintln!("oversized bodies: the server's peak RSS {before:.1} -> {peak:.1} MiB");
    assert!(
        peak - before < 48.0,
        "the server's peak RSS rose from {before:.0} to {peak:.0} MiB"
    );

    // 3. Headers sent slowly, a body that stalls: the connection is closed after the
    //    configured 2 s, not held open.
    let slow = closed_after(
        &addr,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        Duration::from_secs(8),
    )
    .expect("a slow-headers connection is closed");
    eprintln!("slow headers closed after {slow:.1} s");
    assert!(slow < 6.0, "closed after {slow:.1} s");
    let stalled = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auditor}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"query\":"
    );
    let idle = closed_after(&addr, stalled.as_bytes(), Duration::from_secs(8))
        .expect("a stalled body is cut off");
    assert!(idle < 6.0, "cut off after {idle:.1} s");

    // 4. Four idle connections fill `max_connections`: a fifth client waits for a slot, and
    //    gets one once the header timeout closes them.
    let idle: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(&addr).expect("connects"))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let http = reqwest::Client::new();
    let waiting = http
        .get(server.url("/healthz"))
        .timeout(Duration::from_millis(800))
        .send()
        .await;
    assert!(waiting.is_err(), "a fifth connection is not served at once");
    let served = http
        .get(server.url("/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("served once a slot frees up");
    assert_eq!(served.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(8));
    drop(idle);

    // The server is alive and still answers everyone else.
    assert!(server.alive());
    let answer = http
        .post(server.url("/api/v1/search"))
        .bearer_auth(&auditor)
        .json(&serde_json::json!({ "query": "anything" }))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        403,
        "the auditor may not search, but is answered"
    );
}

/// A PDF whose one content stream inflates to `inflated` bytes, its filter named through an
/// indirect object (which a search of the raw bytes for `/FlateDecode` does not see).
fn bomb_pdf(inflated: usize) -> Vec<u8> {
    use flate2::write::ZlibEncoder;
    let mut encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![b' '; 1 << 20];
    for _ in 0..inflated / zeros.len() {
        encoder.write_all(&zeros).unwrap();
    }
    let stream = encoder.finish().unwrap();
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
    ];
    let mut content =
        format!("<< /Length {} /Filter 5 0 R >>\nstream\n", stream.len()).into_bytes();
    content.extend_from_slice(&stream);
    content.extend_from_slice(b"\nendstream");
    objects.push(content);
    objects.push(b"/FlateDecode".to_vec());
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut offsets = Vec::new();
    for (index, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", index + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes(),
    );
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

/// A solid white RGB PNG of `side`×`side` pixels: a few hundred KiB that decode to
/// `3 × side²` bytes.
fn white_rgb_png(side: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(side, side, image::Rgb([255, 255, 255]));
    let mut out = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG encodes");
    out.into_inner()
}

async fn upload_to(
    server: &ChildServer,
    token: &str,
    file: Vec<u8>,
    mrn: &str,
) -> (u16, serde_json::Value) {
    let form = reqwest::multipart::Form::new()
        .part(
            "metadata",
            reqwest::multipart::Part::text(metadata(mrn, "Hostile Input", "letter").to_string()),
        )
        .part("file", reqwest::multipart::Part::bytes(file));
    let response = reqwest::Client::new()
        .post(server.url("/api/v1/documents"))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("the upload is answered");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn document_of(server: &ChildServer, token: &str, id: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(server.url(&format!("/api/v1/documents/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_status(
    server: &ChildServer,
    token: &str,
    id: &str,
    status: &str,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let doc = document_of(server, token, id).await;
        if doc["status"] == status {
            return doc;
        }
        assert!(Instant::now() < deadline, "{doc}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Decoders run in child processes under a memory ceiling: a bomb that escapes the format's
/// own checks, or a page that needs more memory than the ceiling, fails its file or page
/// with a reason while the server's memory stays flat; and a document whose processing kept
/// stopping the service is failed with a reason instead of being run again at every start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_files_fail_their_page_not_the_server_and_cannot_crash_it_in_a_loop() {
    let mut server = ChildServer::start(&[("CHARTVAULT__DECODER__MEMORY_BYTES", "201326592")]);
    let records = server.user("rec", "records");
    // A first document, processed as usual: the engines and worker threads are warm.
    let (status, accepted) = upload_to(
        &server,
        &records,
        png_of(&scanned_page(&["Crash loop", "Marker word dunlin"], 0.0, 5)),
        "HX-3",
    )
    .await;
    assert_eq!(status, 202, "{accepted}");
    let looping = accepted["id"].as_str().unwrap().to_string();
    wait_status(&server, &records, &looping, "indexed").await;
    let (before, _) = server.rss_mib();
    server.reset_peak();

    // 1. A PDF whose content stream inflates to 1 GiB: refused at upload, nothing stored.
    let (status, body) = upload_to(&server, &records, bomb_pdf(1 << 30), "HX-1").await;
    assert_eq!(status, 422, "{body}");
    // 2. A 9000×9000 RGB page (243 MB decoded) under a 192 MiB ceiling: accepted (its headers
    //    are within the limits), then its page fails with a reason.
    let (status, accepted) = upload_to(&server, &records, white_rgb_png(9000), "HX-2").await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_string();
    let doc = wait_status(&server, &records, &id, "failed").await;
    let reason = doc["failure_reason"].as_str().unwrap();
    assert!(reason.contains("memory limit"), "{reason}");
    let (_, peak) = server.rss_mib();
    eprintln!("hostile files: the server's peak RSS {before:.1} -> {peak:.1} MiB");
    assert!(
        peak - before < 64.0,
        "the server's peak RSS rose from {before:.0} to {peak:.0} MiB"
    );
    assert!(server.alive());

    // 3. A document whose processing stopped the service three times (its job claimed each
    //    time and never finished) is failed at the next start, not run a fourth time.
    let _ = server.child.kill();
    let _ = server.child.wait();
    {
        use sqlx::ConnectOptions;
        let mut db = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(server.data_dir.join("chartvault.db"))
            .connect()
            .await
            .unwrap();
        sqlx::query("UPDATE jobs SET state = 'running', attempts = 3 WHERE document_id = $1")
            .bind(&looping)
            .execute(&mut db)
            .await
            .unwrap();
        sqlx::query("UPDATE documents SET status = 'processing' WHERE id = $1")
            .bind(&looping)
            .execute(&mut db)
            .await
            .unwrap();
    }
    let mut server = server.restart();
    let doc = wait_status(&server, &records, &looping, "failed").await;
    let reason = doc["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("stopped without a result 3 times"),
        "{reason}"
    );
    assert!(server.alive());
    // Once the cause is dealt with, a person retries it.
    let retried = reqwest::Client::new()
        .post(server.url(&format!("/api/v1/documents/{looping}/retry")))
        .bearer_auth(&records)
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 202);
    wait_status(&server, &records, &looping, "indexed").await;
}
