//! TLS termination in the service itself, when `server.tls_cert_file` and
//! `server.tls_key_file` are set (PEM: the certificate chain, leaf first, and its private
//! key). Through rustls with the `ring` provider; HTTP/1.1 over TLS 1.2 and 1.3.
//!
//! Promises:
//! - a certificate and key that do not load, or do not belong together, stop the start with a
//!   clear error;
//! - the files are watched (their modification times, every [`RELOAD_CHECK`]): a renewed
//!   certificate is served to new connections without a restart; a renewal that does not
//!   load (a half-written file, a key that does not match) is logged and the certificate in
//!   service stays.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the certificate files are checked for a change.
pub const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The `ring` crypto provider. (rustls deprecates it in favour of its post-quantum default,
/// which needs aws-lc; the key exchanges here are X25519 and the NIST curves.)
#[allow(deprecated)]
pub(crate) fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate in service, and where it comes from.
#[derive(Debug)]
pub struct CertificateFiles {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<(Arc<CertifiedKey>, Option<(SystemTime, SystemTime)>)>,
}

impl ResolvesServerCert for CertificateFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0
                .clone(),
        )
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .with_context(|| format!("reading the certificate {}", cert_file.display()))?;
    anyhow::ensure!(
        !chain.is_empty(),
        "no certificate in {} (server.tls_cert_file must be PEM)",
        cert_file.display()
    );
    let key = PrivateKeyDer::from_pem_file(key_file)
        .with_context(|| format!("reading the private key {}", key_file.display()))?;
    CertifiedKey::from_der(chain, key, &provider()).with_context(|| {
        format!(
            "the key {} does not fit the certificate {}",
            key_file.display(),
            cert_file.display()
        )
    })
}

impl CertificateFiles {
    pub fn open(cert_file: &Path, key_file: &Path) -> anyhow::Result<CertificateFiles> {
        let stamps = modified(cert_file).zip(modified(key_file));
        let key = load(cert_file, key_file)?;
        Ok(CertificateFiles {
            cert_file: cert_file.to_path_buf(),
            key_file: key_file.to_path_buf(),
            current: RwLock::new((Arc::new(key), stamps)),
        })
    }

    /// Loads the files again if either changed since the last load. True when a new
    /// certificate is now in service.
    pub fn reload_if_changed(&self) -> bool {
        let stamps = modified(&self.cert_file).zip(modified(&self.key_file));
        let last = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .1;
        if stamps.is_none() || stamps == last {
            return false;
        }
        match load(&self.cert_file, &self.key_file) {
            Ok(key) => {
                *self
                    .current
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = (Arc::new(key), stamps);
                tracing::info!("loaded the renewed TLS certificate");
                true
            }
            Err(error) => {
                // Tried again at the next check: the files may be half-written.
                tracing::warn!(error = %format!("{error:#}"), "the changed TLS certificate does not load; keeping the one in service");
                false
            }
        }
    }
}

/// The TLS side of the listener: the acceptor and the certificate it serves.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    pub certificates: Arc<CertificateFiles>,
}

impl Tls {
    /// TLS as configured, or `None` for plain HTTP.
    pub fn from_config(config: &crate::config::ServerConfig) -> anyhow::Result<Option<Tls>> {
        Tls::from_files(
            config.tls_cert_file.as_deref(),
            config.tls_key_file.as_deref(),
        )
        .context("loading server.tls_cert_file and server.tls_key_file")
    }

    /// TLS with this certificate chain and key (PEM), or `None` when they are not set.
    pub fn from_files(
        cert_file: Option<&Path>,
        key_file: Option<&Path>,
    ) -> anyhow::Result<Option<Tls>> {
        let (Some(cert_file), Some(key_file)) = (cert_file, key_file) else {
            return Ok(None);
        };
        let certificates = Arc::new(CertificateFiles::open(cert_file, key_file)?);
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .context("the TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(certificates.clone());
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Tls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            certificates,
        }))
    }

    /// Checks the certificate files every [`RELOAD_CHECK`] until `stop`.
    pub fn spawn_reloader(&self, stop: CancellationToken) {
        let certificates = self.certificates.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(RELOAD_CHECK) => {}
                    () = stop.cancelled() => return,
                }
                let certificates = certificates.clone();
                let _ = tokio::task::spawn_blocking(move || certificates.reload_if_changed()).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `name` and its key, as PEM.
    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn serving(files: &CertificateFiles) -> Vec<u8> {
        files.current.read().unwrap().0.cert[0].to_vec()
    }

    #[test]
    fn a_renewed_certificate_is_served_and_a_broken_renewal_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        let (cert, key) = self_signed("first.example");
        std::fs::write(&cert_file, &cert).unwrap();
        std::fs::write(&key_file, &key).unwrap();
        let files = CertificateFiles::open(&cert_file, &key_file).unwrap();
        let first = serving(&files);
        assert!(!files.reload_if_changed(), "nothing changed");

        // A renewal: both files replaced.
        let (cert, key) = self_signed("second.example");
        std::fs::write(&cert_file, &cert).unwrap();
        std::fs::write(&key_file, &key).unwrap();
        assert!(files.reload_if_changed());
        let second = serving(&files);
        assert_ne!(first, second);

        // Half a renewal: a new certificate whose key is not there yet stays out.
        let (cert, _) = self_signed("third.example");
        std::fs::write(&cert_file, &cert).unwrap();
        assert!(!files.reload_if_changed());
        assert_eq!(serving(&files), second);
        std::fs::write(&cert_file, "not a certificate").unwrap();
        assert!(!files.reload_if_changed());
        assert_eq!(serving(&files), second);

        // At start, a key that does not fit is a clear error.
        let (_, other_key) = self_signed("other.example");
        std::fs::write(&cert_file, self_signed("x.example").0).unwrap();
        std::fs::write(&key_file, other_key).unwrap();
        let error = CertificateFiles::open(&cert_file, &key_file).unwrap_err();
        assert!(format!("{error:#}").contains("does not fit"), "{error:#}");
    }
}
