//! The outbound MDM feed's transport: one sender sends the outbox (see `store::hl7`) to
//! `hl7.mdm.endpoint` over MLLP, in order, each message after the previous one's ACK.
//!
//! Promises:
//! - order: the oldest notification not answered is the only one in flight; the next is
//!   sent after its ACK;
//! - nothing lost: a receiver that cannot be reached, or answers nothing within
//!   `hl7.mdm.ack_timeout_secs`, gets the same message (the same MSH-10) again after a wait
//!   that doubles from one second to `hl7.mdm.retry_max_secs`; the outbox is in the
//!   database, so a restart resumes where the sender was;
//! - nothing twice after an ACK: an answer is recorded before the next message goes out.
//!   `AA`/`CA` mark the notification sent; `AE`/`AR` (the receiver will not take it) mark it
//!   refused, log and record the receiver's error code (ERR-3; never its words, which may
//!   name the patient), and the feed moves on;
//! - the log names message types and control ids, never content.

use std::time::Duration;

use anyhow::Context;
use hl7_parser::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{component_text, field_text, next_frame, END, START};
use crate::app::Archive;
use crate::feeds::mdm;
use crate::store::prelude::*;

trait Connection: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Connection for T {}

/// Starts the sender when `hl7.mdm.endpoint` is set (and turns the outbox on).
pub fn spawn(state: Archive) -> anyhow::Result<()> {
    let Some(endpoint) = state.config.hl7.mdm.endpoint.clone() else {
        return Ok(());
    };
    let tls = match &state.config.hl7.mdm.tls_ca_file {
        Some(ca) => Some(connector(ca)?),
        None => None,
    };
    state.db.enable_outbox();
    tracing::info!(tls = tls.is_some(), "HL7 MDM sender started");
    tokio::spawn(async move {
        let mut sender = Sender {
            state,
            endpoint,
            tls,
            connection: None,
            backoff: Duration::ZERO,
        };
        sender.run().await;
    });
    Ok(())
}

fn connector(ca: &std::path::Path) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading hl7.mdm.tls_ca_file {}", ca.display()))?
    {
        roots
            .add(cert.context("hl7.mdm.tls_ca_file is not a PEM certificate bundle")?)
            .context("hl7.mdm.tls_ca_file holds a certificate that cannot be a root")?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        crate::http::tls::provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(
        config,
    )))
}

struct Sender {
    state: Archive,
    endpoint: String,
    tls: Option<tokio_rustls::TlsConnector>,
    connection: Option<Box<dyn Connection>>,
    backoff: Duration,
}

/// What the receiver said.
#[derive(Debug, PartialEq, Eq)]
struct Ack {
    code: String,
    control_id: String,
    /// ERR-3.1 (HL7 table 0357), when given.
    error_code: Option<String>,
}

impl Sender {
    async fn run(&mut self) {
        let outbox = self.state.db.outbox_signal();
        loop {
            if self.state.shutdown.is_cancelled() {
                return;
            }
            let event = match self.state.db.next_outbox_event().await {
                Ok(event) => event,
                Err(error) => {
                    tracing::error!(error = %error, "reading the MDM outbox failed");
                    self.pause(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let Some(event) = event else {
                // Woken by a new notification, or every second all the same.
                tokio::select! {
                    () = outbox.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = self.state.shutdown.cancelled() => return,
                }
                continue;
            };
            let message = match mdm::message_for(&self.state, &event).await {
                Ok(Some(message)) => message,
                Ok(None) => {
                    let _ = self
                        .state
                        .db
                        .outbox_answered(event.seq, "", false, Some("the document is not known"))
                        .await;
                    continue;
                }
                Err(error) => {
                    tracing::error!(error = %format!("{error:#}"), "building an MDM message failed");
                    self.pause(Duration::from_secs(5)).await;
                    continue;
                }
            };
            match self.exchange(&message.text, &event.control_id).await {
                Ok(ack) => {
                    self.backoff = Duration::ZERO;
                    let accepted = matches!(ack.code.as_str(), "AA" | "CA");
                    self.state.metrics.mdm_answered(&ack.code);
                    if accepted {
                        tracing::info!(message_type = %message.message_type, control_id = %event.control_id, ack = %ack.code, "MDM message sent");
                    } else {
                        tracing::error!(message_type = %message.message_type, control_id = %event.control_id, ack = %ack.code, error_code = ?ack.error_code, "the receiver refused an MDM message; moving on");
                    }
                    if let Err(error) = self
                        .state
                        .db
                        .outbox_answered(
                            event.seq,
                            &ack.code,
                            accepted,
                            ack.error_code
                                .map(|code| format!("ERR-3 {code}"))
                                .as_deref(),
                        )
                        .await
                    {
                        // Sent again after a restart: the receiver sees the same MSH-10.
                        tracing::error!(error = %error, "recording an MDM answer failed");
                        self.pause(Duration::from_secs(5)).await;
                    }
                }
                Err(error) => {
                    self.connection = None;
                    let reason = format!("{error:#}");
                    tracing::warn!(control_id = %event.control_id, attempts = event.attempts + 1, error = %reason, "an MDM message got no answer; it will be sent again");
                    let _ = self
                        .state
                        .db
                        .outbox_attempt_failed(event.seq, &reason)
                        .await;
                    let max = Duration::from_secs(self.state.config.hl7.mdm.retry_max_secs);
                    self.backoff = (self.backoff * 2).clamp(Duration::from_secs(1), max);
                    self.pause(self.backoff).await;
                }
            }
        }
    }

    async fn pause(&self, wait: Duration) {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.state.shutdown.cancelled() => {}
        }
    }

    /// Sends one message on the open connection (opening one if needed) and reads its ACK.
    async fn exchange(&mut self, text: &str, control_id: &str) -> anyhow::Result<Ack> {
        let timeout = Duration::from_secs(self.state.config.hl7.mdm.ack_timeout_secs);
        if self.connection.is_none() {
            self.connection = Some(
                tokio::time::timeout(timeout, self.connect())
                    .await
                    .context("connecting timed out")??,
            );
        }
        let connection = self.connection.as_mut().expect("opened above");
        let mut framed = Vec::with_capacity(text.len() + 3);
        framed.push(START);
        framed.extend_from_slice(text.as_bytes());
        framed.extend_from_slice(&END);
        connection.write_all(&framed).await.context("sending")?;
        connection.flush().await?;
        let mut buffer = Vec::new();
        let mut chunk = vec![0u8; 8192];
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some((frame, used)) = next_frame(&buffer) {
                buffer.drain(..used);
                let ack = read_ack(&frame)?;
                // An answer to an earlier message (a resend's first ACK): not ours.
                if ack.control_id == control_id {
                    return Ok(ack);
                }
            }
            anyhow::ensure!(buffer.len() <= 1024 * 1024, "the answer is too large");
            let read = tokio::time::timeout_at(deadline, connection.read(&mut chunk))
                .await
                .context("no ACK in time")??;
            anyhow::ensure!(read > 0, "the receiver closed the connection");
            buffer.extend_from_slice(&chunk[..read]);
        }
    }

    async fn connect(&self) -> anyhow::Result<Box<dyn Connection>> {
        let stream = TcpStream::connect(&self.endpoint)
            .await
            .context("connecting to hl7.mdm.endpoint")?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => Ok(Box::new(stream)),
            Some(connector) => {
                let host = self
                    .endpoint
                    .rsplit_once(':')
                    .map_or(self.endpoint.as_str(), |(host, _)| host)
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let name = rustls::pki_types::ServerName::try_from(host)
                    .context("hl7.mdm.endpoint's host is not a TLS server name")?;
                Ok(Box::new(connector.connect(name, stream).await?))
            }
        }
    }
}

/// MSA-1, MSA-2 and the error code (ERR-3's identifier, HL7 table 0357) of an
/// acknowledgement. The receiver's free text (ERR-8, MSA-3) is not read: another system's
/// words may name the patient.
fn read_ack(frame: &[u8]) -> anyhow::Result<Ack> {
    let text = String::from_utf8_lossy(frame);
    let text = text.trim_matches(|c| c == '\r' || c == '\n');
    let message = Message::parse_with_lenient_newlines(text, true)
        .map_err(|_| anyhow::anyhow!("the answer is not an HL7 message"))?;
    let code = component_text(&message, "MSA", 1, 1);
    anyhow::ensure!(!code.is_empty(), "the answer has no MSA-1");
    let error_code = component_text(&message, "ERR", 3, 1);
    let error_code = (!error_code.is_empty()
        && error_code.len() <= 16
        && error_code.chars().all(|c| c.is_ascii_alphanumeric()))
    .then_some(error_code);
    Ok(Ack {
        code,
        control_id: field_text(&message, "MSA", 2),
        error_code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_is_read_for_its_code_control_id_and_error_code_not_its_words() {
        let ack = read_ack(
            b"MSH|^~\\&|EHR|H|CV|CV|20261207||ACK^T02^ACK|9|P|2.5\rMSA|AE|c0ffee\rERR|||207|E||||no such patient\r",
        )
        .unwrap();
        assert_eq!(
            ack,
            Ack {
                code: "AE".into(),
                control_id: "c0ffee".into(),
                error_code: Some("207".into()),
            }
        );
        assert!(read_ack(b"not hl7").is_err());
    }
}
