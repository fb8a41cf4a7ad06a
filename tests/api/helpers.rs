//! Shared test machinery: a real server on port 0 with a temp data_dir, users of every role,
//! HTTP helpers, fixtures from ../shared/fixtures, and scans the tests generate themselves.

use chartvault::store::prelude::*;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ab_glyph::{FontVec, PxScale};
use chartvault::config::Config;
use chartvault::domain::Role;
use chartvault::http::state::AppState;
use chartvault::startup::Application;
use image::{GrayImage, Luma};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

pub struct TestApp {
    pub base: String,
    /// The HL7 MLLP listener's address, when `hl7.listen` is set.
    pub hl7: Option<std::net::SocketAddr>,
    pub state: AppState,
    pub data_dir: PathBuf,
    pub records: String,
    pub clinician: String,
    pub legal: String,
    pub auditor: String,
    pub admin: String,
    pub http: reqwest::Client,
    /// The tests' own connections to the database file (see [`sql_pool`]).
    pub sql: sqlx::SqlitePool,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A new database on the test process's PostgreSQL cluster: its URL.
/// (`CHARTVAULT_TEST_DATABASE=postgres` runs every server of this suite on one of them.)
pub fn postgres_database() -> String {
    chartvault_storage::testsuite::postgres::shared()
        .expect("PostgreSQL: scripts/setup.sh installs it")
        .new_database()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Every test of this binary logs at TRACE, every crate included, into one file, so the
/// at-rest test can check that no PHI reaches the log at any level.
pub fn trace_log_path() -> &'static Path {
    static LOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let path =
            std::env::temp_dir().join(format!("chartvault-api-trace-{}.log", std::process::id()));
        let file = std::fs::File::create(&path).expect("trace log file");
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init();
        path
    })
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    trace_log_path();
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("data");
    let mut config = Config::for_data_dir(&data_dir);
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.index.commit_interval_ms = 200;
    // The server runs inside this test binary: its decoder processes are the decoder binary
    // the service finds beside itself when deployed (`spawn_app_on` runs the full binary's
    // decoder subcommand instead).
    config.decoder.program = Some(env!("CARGO_BIN_EXE_chartvault-decoder").into());
    if std::env::var("CHARTVAULT_TEST_DATABASE").as_deref() == Ok("postgres") {
        config.database.url = Some(postgres_database());
    }
    adjust(&mut config);
    let app = Application::build(config.clone())
        .await
        .expect("the app builds");
    let base = format!("http://{}", app.local_addr());
    let hl7 = app.hl7_addr();
    let state = app.state();
    let admin = app
        .first_admin_token
        .clone()
        .expect("a first start creates an admin");
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = app
            .run_until(async move { stopped.cancelled().await })
            .await;
    });
    let records = chartvault::cli::user_add(&config, "rec", Role::Records)
        .await
        .unwrap();
    let clinician = chartvault::cli::user_add(&config, "doc", Role::Clinician)
        .await
        .unwrap();
    let legal = chartvault::cli::user_add(&config, "law", Role::Legal)
        .await
        .unwrap();
    let auditor = chartvault::cli::user_add(&config, "aud", Role::Auditor)
        .await
        .unwrap();
    let sql = sql_of(&state.config).await;
    TestApp {
        base,
        hl7,
        state,
        data_dir,
        records,
        clinician,
        legal,
        auditor,
        admin,
        http: reqwest::Client::new(),
        sql,
        stop,
        _dir: dir,
    }
}

/// Starts the service on an existing data directory (a restored backup, say) with the KEK in
/// `kek_file`, reusing the users and tokens of `like` (the restored database holds them).
/// `dir` is kept alive as long as the app.
pub async fn spawn_app_on(
    dir: tempfile::TempDir,
    data_dir: &Path,
    kek_file: &Path,
    like: &TestApp,
) -> TestApp {
    let mut config = Config::for_data_dir(data_dir);
    config.keys.kek_file = kek_file.to_path_buf();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.index.commit_interval_ms = 200;
    // The server runs inside this test binary: its decoder processes are the real binary's.
    config.decoder.program = Some(env!("CARGO_BIN_EXE_chartvault").into());
    spawn_app_from(config, like, dir).await
}

/// Starts the service on `config` (an archive that exists: a restored or moved one),
/// reusing the users and tokens of `like`, whose archive it holds. `dir` is kept alive as
/// long as the app.
pub async fn spawn_app_from(config: Config, like: &TestApp, dir: tempfile::TempDir) -> TestApp {
    let app = Application::build(config).await.expect("the app builds");
    assert!(
        app.first_admin_token.is_none(),
        "an existing archive already has its admin"
    );
    let base = format!("http://{}", app.local_addr());
    let hl7 = app.hl7_addr();
    let state = app.state();
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = app
            .run_until(async move { stopped.cancelled().await })
            .await;
    });
    let sql = sql_of(&state.config).await;
    TestApp {
        base,
        hl7,
        data_dir: state.config.data_dir.clone(),
        state,
        records: like.records.clone(),
        clinician: like.clinician.clone(),
        legal: like.legal.clone(),
        auditor: like.auditor.clone(),
        admin: like.admin.clone(),
        http: reqwest::Client::new(),
        sql,
        stop,
        _dir: dir,
    }
}

/// The tests' own connections to the archive's SQLite file; on PostgreSQL an empty
/// database in memory (the tests that read the SQLite file itself are SQLite's own).
async fn sql_of(config: &Config) -> sqlx::SqlitePool {
    match config.database().unwrap() {
        chartvault::config::DatabaseLocation::Sqlite(path) => sql_pool(&path, false).await,
        chartvault::config::DatabaseLocation::Postgres(_) => {
            sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap()
        }
    }
}

/// A response's status and JSON body (`null` when the body is not JSON).
pub async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub fn metadata(mrn: &str, name: &str, document_type: &str) -> Value {
    json!({
        "patient": { "mrn": mrn, "name": name, "birth_date": "1950-02-01" },
        "document_type": document_type,
        "service_date": "1998-05-01",
    })
}

impl TestApp {
    /// The same users, through another process serving the archive at `base`.
    #[allow(dead_code)] // not every test binary uses every helper
    pub fn through(&self, base: &str) -> TestApp {
        TestApp {
            base: base.to_string(),
            hl7: None,
            state: self.state.clone(),
            data_dir: self.data_dir.clone(),
            records: self.records.clone(),
            clinician: self.clinician.clone(),
            legal: self.legal.clone(),
            auditor: self.auditor.clone(),
            admin: self.admin.clone(),
            http: self.http.clone(),
            sql: self.sql.clone(),
            stop: CancellationToken::new(),
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Stops the server (its data directory stays until the `TestApp` is dropped).
    pub fn stop_server(&self) {
        self.stop.cancel();
    }

    /// The config the app was built with, for the operator tools (key file beside the
    /// data directory, as `spawn_app` places it).
    pub fn config(&self) -> Config {
        (*self.state.config).clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn upload_as(
        &self,
        token: &str,
        file: Vec<u8>,
        metadata: &Value,
    ) -> reqwest::Response {
        let form = reqwest::multipart::Form::new()
            .part(
                "metadata",
                reqwest::multipart::Part::text(metadata.to_string()),
            )
            .part(
                "file",
                reqwest::multipart::Part::bytes(file).file_name("scan.bin"),
            );
        self.http
            .post(self.url("/api/v1/documents"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload request")
    }

    /// Uploads as `records` and returns the new document id (asserting 202). The test
    /// clinician (`doc`) is put on the patient's care team, as a ward's admission would;
    /// tests of scoping use [`TestApp::upload_as`] and their own clinicians.
    pub async fn upload(&self, file: Vec<u8>, metadata: &Value) -> String {
        let response = self.upload_as(&self.records, file, metadata).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 202, "upload answered {body}");
        assert_eq!(body["status"], "accepted");
        let mrn = metadata["patient"]["mrn"].as_str().unwrap();
        self.add_care("doc", mrn).await;
        body["id"].as_str().unwrap().to_string()
    }

    /// Puts the patient on the clinician `user`'s care list (as `records`).
    pub async fn add_care(&self, user: &str, mrn: &str) -> Value {
        let response = self
            .post_json(
                &self.records,
                "/api/v1/care-relationships",
                &json!({ "user": user, "mrn": mrn }),
            )
            .await;
        assert_eq!(response.status(), 201, "care relationship");
        response.json().await.unwrap()
    }

    pub async fn get(&self, token: &str, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, token: &str, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .delete(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn search(&self, token: &str, body: Value) -> Value {
        let response = self.post_json(token, "/api/v1/search", &body).await;
        assert_eq!(response.status(), 200, "search {body}");
        response.json().await.unwrap()
    }

    /// Polls until the document is `indexed` (panics on `failed` or after the timeout).
    pub async fn wait_indexed(&self, id: &str) -> Value {
        wait_indexed(&self.http, &self.base, &self.records, id).await
    }

    /// When the service recorded the document as indexed (to the millisecond): what a
    /// benchmark times, rather than the moment its polling noticed.
    #[allow(dead_code)] // used by the benchmarks
    pub async fn indexed_at(&self, id: &str) -> chrono::DateTime<chrono::Utc> {
        let id: chartvault::domain::DocumentId = id.parse().unwrap();
        let doc = self.state.db.document(id).await.unwrap().unwrap();
        let at = doc.indexed_at.expect("the document is indexed");
        chrono::DateTime::parse_from_rfc3339(&at)
            .expect("an RFC 3339 time")
            .with_timezone(&chrono::Utc)
    }

    /// Polls the database (not the API: a sensitive or flagged document is hidden from the
    /// test's users) until the document is processed, `indexed` or in the QA queue.
    pub async fn wait_processed_in_db(&self, id: &str) {
        let id: chartvault::domain::DocumentId = id.parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let doc = self.state.db.document(id).await.unwrap().unwrap();
            match doc.status {
                chartvault::domain::DocumentStatus::Indexed
                | chartvault::domain::DocumentStatus::Qa => return,
                chartvault::domain::DocumentStatus::Failed => {
                    panic!("document failed: {:?}", doc.failure_reason)
                }
                _ => {}
            }
            assert!(Instant::now() < deadline, "not processed in time");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Uploads a batch (one file, no metadata) as `token`.
    pub async fn upload_batch_as(&self, token: &str, file: Vec<u8>) -> reqwest::Response {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(file).file_name("batch.bin"),
        );
        self.http
            .post(self.url("/api/v1/batches"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("batch upload request")
    }

    /// Polls (as `records`) until the batch is split; panics if it fails or takes too long.
    pub async fn wait_split(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let response = self
                .get(&self.records, &format!("/api/v1/batches/{id}"))
                .await;
            assert_eq!(response.status(), 200);
            let batch: Value = response.json().await.unwrap();
            match batch["status"].as_str() {
                Some("split") => return batch,
                Some("failed") => panic!("batch failed: {}", batch["failure_reason"]),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "batch not split in time: {batch}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Polls (as `records`) until the document has `status`; panics after two minutes.
    pub async fn wait_status(&self, id: &str, status: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (_, doc) = json_of(
                self.get(&self.records, &format!("/api/v1/documents/{id}"))
                    .await,
            )
            .await;
            if doc["status"] == status {
                return doc;
            }
            assert!(Instant::now() < deadline, "{doc}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls (as `records`) until the document is processed, `indexed` or in the QA queue;
    /// panics on `failed` or once `limit` has passed.
    pub async fn wait_processed_within(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let doc: Value = self
                .get(&self.records, &format!("/api/v1/documents/{id}"))
                .await
                .json()
                .await
                .unwrap();
            match doc["status"].as_str() {
                Some("indexed") | Some("qa") => return doc,
                Some("failed") => panic!("document failed: {}", doc["failure_reason"]),
                _ => {}
            }
            assert!(Instant::now() < deadline, "not processed in time: {doc}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

pub async fn wait_indexed(http: &reqwest::Client, base: &str, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let response = http
            .get(format!("{base}/api/v1/documents/{id}"))
            .bearer_auth(token)
            .send()
            .await;
        if let Ok(response) = response {
            if response.status() == 200 {
                let body: Value = response.json().await.unwrap();
                match body["status"].as_str() {
                    Some("indexed") => return body,
                    Some("failed") => panic!("document failed: {}", body["failure_reason"]),
                    _ => {}
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "document {id} was not indexed in time"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

// ---- fixtures ----

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// A file from ../shared/fixtures. Outside CI a missing fixture skips the test (None); with
/// CI=true it fails.
pub fn fixture(name: &str) -> Option<Vec<u8>> {
    let path = fixtures_dir().join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("fixture {} is missing in CI: {error}", path.display());
            }
            eprintln!("skipping: fixture {} is missing", path.display());
            None
        }
    }
}

pub fn fixture_text(name: &str) -> Option<String> {
    fixture(name).map(|b| String::from_utf8_lossy(&b).into_owned())
}

// ---- generated scans ----

fn font() -> FontVec {
    let candidates = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    ];
    for path in candidates {
        if let Ok(bytes) = std::fs::read(path) {
            return FontVec::try_from_vec(bytes).expect("a valid font");
        }
    }
    panic!("no DejaVu font: run scripts/setup.sh (fonts-dejavu-core)");
}

/// Renders lines of text as a scanned page at 300 dpi: 12 pt serif, a slight rotation and
/// Gaussian noise, like a real scanner's output.
pub fn scanned_page(lines: &[&str], rotate_degrees: f32, seed: u64) -> GrayImage {
    let (width, height) = (2100u32, 300 + 75 * lines.len() as u32);
    let mut page = GrayImage::from_pixel(width, height, Luma([255]));
    let font = font();
    let scale = PxScale::from(52.0);
    for (i, line) in lines.iter().enumerate() {
        imageproc::drawing::draw_text_mut(
            &mut page,
            Luma([0]),
            150,
            150 + 75 * i as i32,
            scale,
            &font,
            line,
        );
    }
    let rotated = imageproc::geometric_transformations::rotate_about_center(
        &page,
        rotate_degrees.to_radians(),
        imageproc::geometric_transformations::Interpolation::Bilinear,
        Luma([255]),
    );
    imageproc::noise::gaussian_noise(&rotated, 0.0, 12.0, seed)
}

/// A multi-page grayscale TIFF at 300 dpi.
pub fn tiff_of(pages: &[GrayImage]) -> Vec<u8> {
    use tiff::encoder::{colortype, Rational, TiffEncoder};
    use tiff::tags::ResolutionUnit;
    let mut out = Cursor::new(Vec::new());
    {
        let mut encoder = TiffEncoder::new(&mut out).expect("tiff encoder");
        for page in pages {
            let mut image = encoder
                .new_image::<colortype::Gray8>(page.width(), page.height())
                .expect("tiff page");
            image.resolution(ResolutionUnit::Inch, Rational { n: 300, d: 1 });
            image.write_data(page.as_raw()).expect("tiff data");
        }
    }
    out.into_inner()
}

/// One page compressed with CCITT Group 4: width, height and the strip.
pub struct G4Page {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// Compresses a page with CCITT Group 4: pixels darker than mid-gray become black.
pub fn g4_encode(page: &GrayImage) -> G4Page {
    use fax::{encoder::Encoder, Color, VecWriter};
    let (width, height) = page.dimensions();
    let mut g4 = Encoder::new(VecWriter::new());
    for row in page.rows() {
        let pels = row.map(|p| {
            if p.0[0] < 128 {
                Color::Black
            } else {
                Color::White
            }
        });
        g4.encode_line(pels, width as u16).expect("g4 line");
    }
    G4Page {
        width,
        height,
        data: g4.finish().expect("g4 end").finish(),
    }
}

/// A multi-page bilevel TIFF compressed with CCITT Group 4, at 300 dpi, as a document
/// scanner or fax sends it.
pub fn g4_tiff_of<'a>(pages: impl IntoIterator<Item = &'a GrayImage>) -> Vec<u8> {
    let encoded: Vec<G4Page> = pages.into_iter().map(g4_encode).collect();
    g4_tiff_of_encoded(&encoded)
}

/// A multi-page G4 TIFF of pages compressed already (a page may appear several times).
pub fn g4_tiff_of_encoded<'a>(pages: impl IntoIterator<Item = &'a G4Page>) -> Vec<u8> {
    use tiff::encoder::{Rational, TiffEncoder};
    use tiff::tags::Tag;
    let mut out = Cursor::new(Vec::new());
    {
        let mut encoder = TiffEncoder::new(&mut out).expect("tiff encoder");
        for page in pages {
            let mut dir = encoder.image_directory().expect("tiff directory");
            let offset = dir.write_data(page.data.as_slice()).expect("strip") as u32;
            dir.write_tag(Tag::ImageWidth, page.width).unwrap();
            dir.write_tag(Tag::ImageLength, page.height).unwrap();
            dir.write_tag(Tag::BitsPerSample, 1u16).unwrap();
            dir.write_tag(Tag::Compression, 4u16).unwrap();
            dir.write_tag(Tag::PhotometricInterpretation, 0u16).unwrap();
            dir.write_tag(Tag::StripOffsets, offset).unwrap();
            dir.write_tag(Tag::SamplesPerPixel, 1u16).unwrap();
            dir.write_tag(Tag::RowsPerStrip, page.height).unwrap();
            dir.write_tag(Tag::StripByteCounts, page.data.len() as u32)
                .unwrap();
            dir.write_tag(Tag::XResolution, Rational { n: 300, d: 1 })
                .unwrap();
            dir.write_tag(Tag::YResolution, Rational { n: 300, d: 1 })
                .unwrap();
            dir.write_tag(Tag::ResolutionUnit, 2u16).unwrap();
            dir.finish().expect("tiff directory written");
        }
    }
    out.into_inner()
}

/// A born-digital PDF: one Letter page per entry, each line of text in 14 pt Helvetica, with
/// a correct cross-reference table.
pub fn text_pdf_of(pages: &[&[&str]]) -> Vec<u8> {
    let contents: Vec<String> = pages
        .iter()
        .map(|lines| {
            let mut content = String::from("BT /F1 14 Tf 72 720 Td 18 TL");
            for line in *lines {
                let escaped = line
                    .replace('\\', "\\\\")
                    .replace('(', "\\(")
                    .replace(')', "\\)");
                content.push_str(&format!(" ({escaped}) Tj T*"));
            }
            content.push_str(" ET");
            content
        })
        .collect();
    pdf_of_contents(&contents)
}

/// A PDF of Letter pages with these content streams (Helvetica as `/F1`), with a correct
/// cross-reference table.
pub fn pdf_of_contents(contents: &[String]) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        Vec::new(), // the page tree, once the kids are known
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    ];
    let mut kids = Vec::new();
    for content in contents {
        let content_id = objects.len() + 1;
        objects.push(
            format!(
                "<< /Length {} >>\nstream\n{content}\nendstream",
                content.len()
            )
            .into_bytes(),
        );
        kids.push(objects.len() + 1);
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
            )
            .into_bytes(),
        );
    }
    let kids_list: Vec<String> = kids.iter().map(|k| format!("{k} 0 R")).collect();
    objects[1] = format!(
        "<< /Type /Pages /Kids [{}] /Count {} >>",
        kids_list.join(" "),
        kids.len()
    )
    .into_bytes();
    let mut out = b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (index, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", index + 1).as_bytes());
        out.extend(body);
        out.extend(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    out
}

pub fn png_of(page: &GrayImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    page.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A file of a running server's data directory, or `None` if it vanished since it was
/// listed (the index deletes merged segment files, the blob store its temp files).
pub fn read_live(path: &Path) -> Option<Vec<u8>> {
    match std::fs::read(path) {
        Ok(bytes) => Some(bytes),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
        Err(error) => panic!("reading {}: {error}", path.display()),
    }
}

/// Case-insensitive byte search.
pub fn contains_ignore_case(haystack: &[u8], needle: &str) -> bool {
    contains_bytes_ignore_case(haystack, needle.as_bytes())
}

/// Panics if any file under `dir` holds one of `words` in any encoding.
#[allow(dead_code)] // not every test binary uses every helper
pub fn assert_unreadable_under(dir: &Path, words: &[&str]) {
    for path in files_under(dir) {
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            for word in words {
                assert!(
                    !contains_in_any_encoding(&bytes, word),
                    "{word} readable in {}",
                    path.display()
                );
            }
        }
    }
}

/// Case-insensitive (ASCII) search for `needle` as UTF-8, UTF-16LE or UTF-16BE: how SQLite,
/// tantivy or a log could hold a string.
pub fn contains_in_any_encoding(haystack: &[u8], needle: &str) -> bool {
    let le: Vec<u8> = needle
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    let be: Vec<u8> = needle
        .encode_utf16()
        .flat_map(|u| u.to_be_bytes())
        .collect();
    contains_ignore_case(haystack, needle)
        || contains_bytes_ignore_case(haystack, &le)
        || contains_bytes_ignore_case(haystack, &be)
}

pub fn contains_bytes_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    let needle = needle.to_ascii_lowercase();
    haystack.windows(needle.len()).any(|w| {
        w.iter()
            .zip(&needle)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

// ---- for the benchmarks ----

/// Lines of a progress note, for the benchmarks' generated pages.
#[allow(dead_code)] // used by the benchmarks, which include this file
pub const NOTE_LINES: &[&str] = &[
    "Riverside General Hospital - Department of Internal Medicine",
    "Progress note, ward 4 east",
    "The patient was seen on the morning round with the resident.",
    "Vital signs stable overnight, afebrile, eating and drinking well.",
    "Blood glucose well controlled on metformin 500 mg twice daily.",
    "Plan: continue current medications and mobilise with physiotherapy.",
    "Review the renal function tomorrow morning before discharge.",
    "Family updated by telephone in the afternoon.",
];

/// A duplex scanner's blank back: white paper with a little speckle.
#[allow(dead_code)] // used by some tests and the benchmarks
pub fn blank_back(width: u32, height: u32, seed: u64) -> GrayImage {
    let mut state = seed;
    GrayImage::from_fn(width, height, |_, _| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        if (state >> 40).is_multiple_of(400) {
            Luma([20])
        } else {
            Luma([250])
        }
    })
}

/// A letter-size page at 300 dpi with a progress note and a page marker.
#[allow(dead_code)] // used by the benchmarks
pub fn letter_page(seed: u64) -> GrayImage {
    let mut lines: Vec<String> = NOTE_LINES.iter().map(|l| l.to_string()).collect();
    lines.push(format!("Page marker {seed}"));
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let page = scanned_page(&refs, 0.0, seed);
    let mut canvas = GrayImage::from_pixel(2550, 3300, Luma([255]));
    image::imageops::replace(&mut canvas, &page, 200, 150);
    canvas
}

/// This process's resident set size and its peak, in MiB, from /proc/self/status.
#[allow(dead_code)] // used by the benchmarks
pub fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(f64::NAN, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The real `chartvault serve` binary as a child process with its own data directory, for
/// tests that measure the server's own memory and liveness (`/proc/<pid>`), or kill it.
pub struct ChildServer {
    pub child: std::process::Child,
    pub base: String,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
    /// Where the server's standard error (its log) goes; discarded when `None`.
    log: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

impl ChildServer {
    /// A `chartvault` command on `data_dir`, the key file beside it.
    pub fn command(data_dir: &Path) -> std::process::Command {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_chartvault"));
        command
            .env("CHARTVAULT__KEYS__KEK_FILE", data_dir.with_extension("key"))
            .env("CHARTVAULT__INDEX__COMMIT_INTERVAL_MS", "200")
            .env("RUST_LOG", "warn")
            // A backtrace captured and printed with a logged error reads the binary's debug
            // information into memory: not what the memory measurements are about.
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE");
        command
    }

    /// Starts `serve` on port 0 in a new temp data directory, with extra environment
    /// (`CHARTVAULT__SECTION__KEY` settings).
    pub fn start(env: &[(&str, &str)]) -> ChildServer {
        ChildServer::start_in_temp_dir(env, None)
    }

    /// As [`ChildServer::start`], the server's log (standard error) written to `log`.
    pub fn start_logging(env: &[(&str, &str)], log: &Path) -> ChildServer {
        ChildServer::start_in_temp_dir(env, Some(log.to_path_buf()))
    }

    fn start_in_temp_dir(env: &[(&str, &str)], log: Option<PathBuf>) -> ChildServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let data_dir = dir.path().join("data");
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ChildServer::start_on(data_dir, env, log, Some(dir))
    }

    // The child is killed and waited for when the `ChildServer` is dropped.
    #[allow(clippy::zombie_processes)]
    fn start_on(
        data_dir: PathBuf,
        env: Vec<(String, String)>,
        log: Option<PathBuf>,
        dir: Option<tempfile::TempDir>,
    ) -> ChildServer {
        use std::io::BufRead;
        let mut command = ChildServer::command(&data_dir);
        for (key, value) in &env {
            command.env(key, value);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .stdout(std::process::Stdio::piped())
            .stderr(match &log {
                Some(path) => std::fs::File::create(path).expect("the log file").into(),
                None => std::process::Stdio::null(),
            })
            .spawn()
            .expect("the server starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = lines
                .next()
                .expect("the server prints its address")
                .expect("a line of output");
            if let Some(addr) = line.strip_prefix("listening on ") {
                // Keep draining stdout so the child never blocks on a full pipe.
                std::thread::spawn(move || for _ in lines {});
                return ChildServer {
                    child,
                    base: addr.trim().to_string(),
                    data_dir,
                    env,
                    log,
                    _dir: dir,
                };
            }
            assert!(Instant::now() < deadline, "the server did not start");
        }
    }

    /// Kills the server (SIGKILL) and starts it again on the same data directory.
    pub fn restart(mut self) -> ChildServer {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let data_dir = self.data_dir.clone();
        let env = std::mem::take(&mut self.env);
        let log = self.log.take();
        let dir = self._dir.take();
        ChildServer::start_on(data_dir, env, log, dir)
    }

    /// Creates a user through the command line and returns its token.
    pub fn user(&self, name: &str, role: &str) -> String {
        let output = ChildServer::command(&self.data_dir)
            .args(["user", "add", name, "--role", role, "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("user add runs");
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The server process's resident set size and its peak, in MiB.
    pub fn rss_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<f64>().ok())
                .map_or(f64::NAN, |kib| kib / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Resets the server's peak RSS mark to its current RSS.
    pub fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5")
            .expect("the peak RSS mark can be reset");
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `command` with `input` on its standard input; its output (stdout and stderr captured).
pub fn output_with_input(
    command: &mut std::process::Command,
    input: &[u8],
) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the command starts");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// Connections of the tests' own to a database file: the file as anyone who can read (or
/// write) it sees it, beside the service's store. `read_only` opens it immutable, for
/// snapshots that must not change.
pub async fn sql_pool(path: &Path, read_only: bool) -> sqlx::SqlitePool {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only)
        .immutable(read_only)
        .busy_timeout(std::time::Duration::from_secs(10));
    // No idle or lifetime limits, so no maintenance task: one left behind by a pool still
    // open when a test's runtime shuts down spins instead of sleeping.
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(2)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await
        .expect("opening the database file")
}

/// The settings another process needs to open the app's archive, as the environment
/// (`CHARTVAULT__SECTION__KEY`): its database, object storage, key file and audit signing.
pub fn archive_env(config: &Config) -> Vec<(String, std::ffi::OsString)> {
    let mut env: Vec<(&str, std::ffi::OsString)> = vec![
        ("KEYS__KEK_FILE", config.keys.kek_file.clone().into()),
        (
            "AUDIT__SIGNING_KEY_FILE",
            config.audit_signing_key_file().into(),
        ),
        (
            "AUDIT__CHECKPOINT_FILE",
            config.audit_checkpoint_file().into(),
        ),
    ];
    let settings = [
        ("DATABASE__URL", &config.database.url),
        ("STORAGE__URL", &config.storage.url),
        ("STORAGE__S3__ENDPOINT", &config.storage.s3.endpoint),
        ("STORAGE__S3__REGION", &config.storage.s3.region),
    ];
    for (name, value) in settings {
        if let Some(value) = value {
            env.push((name, value.into()));
        }
    }
    env.into_iter()
        .map(|(name, value)| (format!("CHARTVAULT__{name}"), value))
        .collect()
}

/// A `chartvault serve` process on the app's archive, with a data directory of its own (as
/// on another machine), no OCR engines and leases of 3 s; its log (standard error) in `log`.
pub struct ServeProcess {
    child: std::process::Child,
    /// Where it answers: `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    log: PathBuf,
}

#[allow(dead_code)] // not every test binary uses every helper
impl ServeProcess {
    /// Starts it and waits until it answers `/healthz`.
    pub async fn start(app: &TestApp, data_dir: &Path, log: &Path) -> ServeProcess {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chartvault"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .envs(archive_env(&app.config()))
            .env("CHARTVAULT__OCR__ENGINES_IN_SERVE", "false")
            .env("CHARTVAULT__OCR__LEASE_SECONDS", "3")
            .env("CHARTVAULT__INDEX__COMMIT_INTERVAL_MS", "200")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("chartvault serve starts");
        let mut process = ServeProcess {
            child,
            base: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(response) = reqwest::get(format!("{}/healthz", process.base)).await {
                if response.status().is_success() {
                    return process;
                }
            }
            if let Ok(Some(status)) = process.child.try_wait() {
                panic!("chartvault serve exited ({status}): {}", process.log());
            }
            assert!(Instant::now() < deadline, "chartvault serve did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `chartvault worker` process on the app's archive, its log (standard error) in `log`.
pub struct WorkerProcess {
    child: std::process::Child,
    log: PathBuf,
}

#[allow(dead_code)] // the benchmarks kill none
impl WorkerProcess {
    /// With `engines` OCR engines and leases of 3 s.
    pub fn start(app: &TestApp, database: &str, engines: usize, log: &Path) -> WorkerProcess {
        let config = app.config();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_chartvault"))
            .arg("worker")
            .arg("--data-dir")
            .arg(&config.data_dir)
            .envs(archive_env(&config))
            .env("CHARTVAULT__DATABASE__URL", database)
            .env("CHARTVAULT__OCR__THREADS", engines.to_string())
            .env("CHARTVAULT__OCR__LEASE_SECONDS", "3")
            .env("RUST_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("chartvault worker starts");
        WorkerProcess {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`: no shutdown, no clean-up, its claims left as they were.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
