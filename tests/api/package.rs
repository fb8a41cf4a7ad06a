//! The Debian package: built from this build's binaries by `scripts/package-deb.sh`, its
//! contents, control data and maintainer scripts checked, then unpacked into a temporary root
//! whose installed binary is run with the installed (production) settings: it refuses to
//! start before `init`, `init` creates the archive once, and the service then serves.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn run(command: &mut Command) -> std::process::Output {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn text(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The installed binary with the installed settings, its paths moved under `root`.
fn installed(root: &Path) -> Command {
    let mut command = Command::new(root.join("usr/bin/chartvault"));
    command
        .arg("--config")
        .arg(root.join("etc/chartvault/config.toml"))
        .env("CHARTVAULT__DATA_DIR", root.join("var/lib/chartvault/data"))
        .env(
            "CHARTVAULT__KEYS__KEK_FILE",
            root.join("etc/chartvault/chartvault.key"),
        )
        .env(
            "CHARTVAULT__AUDIT__SIGNING_KEY_FILE",
            root.join("etc/chartvault/audit-signing.key"),
        )
        .env(
            "CHARTVAULT__AUDIT__CHECKPOINT_FILE",
            root.join("var/lib/chartvault/audit-checkpoints"),
        )
        .env("CHARTVAULT__SERVER__LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_debian_package_installs_a_production_service_that_only_init_creates() {
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_chartvault"))
        .parent()
        .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package-deb.sh");
    let built = run(Command::new("bash")
        .arg(&script)
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(dir.path())
        .args(["--compression", "none"]));
    let package = PathBuf::from(text(&built).trim());
    assert!(package.is_file(), "{package:?}");

    // Contents: the binaries, the unit, the production settings, the guide.
    let contents = text(&run(Command::new("dpkg-deb").arg("-c").arg(&package)));
    for path in [
        "./usr/bin/chartvault",
        "./usr/bin/chartvault-decoder",
        "./lib/systemd/system/chartvault.service",
        "./etc/chartvault/config.toml",
        "./usr/share/doc/chartvault/operations.md",
        "./usr/share/doc/chartvault/copyright",
    ] {
        assert!(
            contents.lines().any(|line| line.ends_with(path)),
            "{path} missing from:\n{contents}"
        );
    }
    assert!(
        contents.lines().all(|line| line.contains("root/root")),
        "files belong to root:\n{contents}"
    );
    let control = text(&run(Command::new("dpkg-deb").arg("-f").arg(&package)));
    for field in [
        "Package: chartvault",
        "libtesseract5",
        "tesseract-ocr-osd",
        "adduser",
    ] {
        assert!(control.contains(field), "{field} not in:\n{control}");
    }

    // Maintainer scripts: valid shell, the service user and modes, the conffile.
    let control_dir = dir.path().join("control");
    run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(&package)
        .arg(&control_dir));
    for script in ["postinst", "prerm", "postrm"] {
        run(Command::new("sh").arg("-n").arg(control_dir.join(script)));
    }
    let postinst = std::fs::read_to_string(control_dir.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system"));
    assert!(postinst.contains("chmod 0640 /etc/chartvault/config.toml"));
    assert_eq!(
        std::fs::read_to_string(control_dir.join("conffiles")).unwrap(),
        "/etc/chartvault/config.toml\n"
    );
    if which("lintian") {
        let lint = Command::new("lintian")
            .args(["--no-tag-display-limit", "--fail-on", "error"])
            .arg(&package)
            .output()
            .unwrap();
        assert!(
            lint.status.success(),
            "{}",
            String::from_utf8_lossy(&lint.stdout)
        );
    }

    // Unpacked into a temporary root.
    let root = dir.path().join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&package).arg(&root));
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/chartvault.service")).unwrap();
    for line in [
        "User=chartvault",
        "ExecStart=/usr/bin/chartvault --config /etc/chartvault/config.toml serve",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitCORE=0",
        "PrivateTmp=yes",
        "StateDirectory=chartvault",
        "ConfigurationDirectory=chartvault",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} not in the unit");
    }
    let settings = std::fs::read_to_string(root.join("etc/chartvault/config.toml")).unwrap();
    assert!(settings.contains("mode = \"production\""));

    // Production refuses what dev would quietly create: no archive yet...
    let refused = installed(&root).arg("serve").output().unwrap();
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("chartvault init"), "{message}");
    assert!(
        !root.join("etc/chartvault/chartvault.key").exists(),
        "no key was created"
    );
    // ...and a relative path.
    let relative = installed(&root)
        .env("CHARTVAULT__DATA_DIR", "data")
        .arg("serve")
        .output()
        .unwrap();
    assert!(!relative.status.success());
    assert!(
        String::from_utf8_lossy(&relative.stderr).contains("must be an absolute path"),
        "{}",
        String::from_utf8_lossy(&relative.stderr)
    );

    // init: the archive, its keys and the first admin, once.
    let init = run(installed(&root).arg("init"));
    let token = text(&init).trim().to_string();
    assert!(
        token.starts_with("cv_"),
        "the admin token on stdout: {token}"
    );
    use std::os::unix::fs::PermissionsExt;
    for key in [
        "etc/chartvault/chartvault.key",
        "etc/chartvault/audit-signing.key",
    ] {
        let mode = std::fs::metadata(root.join(key))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }
    let again = installed(&root).arg("init").output().unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("initialised already"));

    // The installed service serves the archive init made, with init's token.
    let mut server = installed(&root)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = server.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let base = loop {
        let line = lines
            .next()
            .expect("the server prints its address")
            .unwrap();
        assert!(
            !line.contains("admin token"),
            "production start creates no admin"
        );
        if let Some(addr) = line.strip_prefix("listening on ") {
            break addr.trim().to_string();
        }
        assert!(Instant::now() < deadline);
    };
    let keys = reqwest::Client::new()
        .get(format!("{base}/api/v1/admin/keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(keys.status(), 200);
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
