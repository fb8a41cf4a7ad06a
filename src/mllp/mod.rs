//! The HL7 v2 front end: an MLLP listener (`hl7.listen`) that reads ADT messages, has
//! [`crate::feeds::adt`] apply them, and answers each with an `ACK`; and the MDM [`sender`]
//! that tells the EHR of each document.
//!
//! Promises:
//! - every message gets an `ACK` once its change is durable: `AA`; `AE` with the reason
//!   (ERR-8) when it could not be applied; `AR` for a message type not handled, a facility
//!   not allowed, or a message that does not parse;
//! - a malformed, oversized or silent connection costs only itself: the listener keeps
//!   serving every other connection (a message over `hl7.max_message_bytes` is refused and
//!   its connection closed; a connection idle for `hl7.idle_timeout_secs` is closed);
//! - the log names message types, control ids and answers, never a message's content.
//!
//! MLLP framing: `0x0B` message `0x1C 0x0D`; over TLS when `hl7.tls_cert_file` and
//! `hl7.tls_key_file` are set (then a plain connection gets no answer).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use hl7_parser::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::app::Archive;
use crate::feeds::adt::{self, AdtMessage, Answer, Identifier, Visit};

pub mod sender;

const START: u8 = 0x0B;
const END: [u8; 2] = [0x1C, 0x0D];

/// Binds `hl7.listen` (when set) and serves it until the archive shuts down. Returns the
/// bound address.
pub async fn spawn(state: Archive) -> anyhow::Result<Option<SocketAddr>> {
    let Some(listen) = state.config.hl7.listen else {
        return Ok(None);
    };
    let tls = crate::http::tls::Tls::from_files(
        state.config.hl7.tls_cert_file.as_deref(),
        state.config.hl7.tls_key_file.as_deref(),
    )
    .context("loading hl7.tls_cert_file and hl7.tls_key_file")?;
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding hl7.listen {listen}"))?;
    let addr = listener.local_addr()?;
    if let Some(tls) = &tls {
        tls.spawn_reloader(state.shutdown.clone());
    }
    tracing::info!(%addr, tls = tls.is_some(), "HL7 MLLP listener started");
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = state.shutdown.cancelled() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let state = state.clone();
                    let acceptor = tls.as_ref().map(|tls| tls.acceptor.clone());
                    tokio::spawn(async move {
                        let _ = stream.set_nodelay(true);
                        let served = match acceptor {
                            None => serve_connection(&state, stream).await,
                            Some(acceptor) => {
                                let idle = Duration::from_secs(state.config.hl7.idle_timeout_secs);
                                match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                                    Ok(Ok(stream)) => serve_connection(&state, stream).await,
                                    Ok(Err(error)) => Err(error.into()),
                                    Err(_) => Err(anyhow::anyhow!("TLS handshake timed out")),
                                }
                            }
                        };
                        if let Err(error) = served {
                            tracing::debug!(error = %error, "HL7 connection ended");
                        }
                    });
                }
                Err(error) => {
                    tracing::warn!(error = %error, "accepting an HL7 connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(Some(addr))
}

async fn serve_connection<S>(state: &Archive, mut stream: S) -> anyhow::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let max = state.config.hl7.max_message_bytes;
    let idle = Duration::from_secs(state.config.hl7.idle_timeout_secs);
    let mut buffer: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Every complete frame in the buffer is answered, in order.
        while let Some((frame, consumed)) = next_frame(&buffer) {
            let ack = answer(state, &frame).await;
            buffer.drain(..consumed);
            let mut framed = Vec::with_capacity(ack.len() + 3);
            framed.push(START);
            framed.extend_from_slice(ack.as_bytes());
            framed.extend_from_slice(&END);
            stream.write_all(&framed).await?;
        }
        if buffer.len() > max + 3 {
            let ack = build_ack(
                None,
                "AR",
                "the message is larger than hl7.max_message_bytes",
            );
            let mut framed = vec![START];
            framed.extend_from_slice(ack.as_bytes());
            framed.extend_from_slice(&END);
            let _ = stream.write_all(&framed).await;
            anyhow::bail!("a message over the size limit: connection closed");
        }
        let read = tokio::time::timeout(idle, stream.read(&mut chunk))
            .await
            .context("idle connection closed")??;
        if read == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// The first complete frame in `buffer` (its content) and how many bytes it took, bytes
/// before a start byte included.
fn next_frame(buffer: &[u8]) -> Option<(Vec<u8>, usize)> {
    let start = buffer.iter().position(|&b| b == START)?;
    let end = buffer[start..]
        .windows(2)
        .position(|w| w == END)
        .map(|i| start + i)?;
    Some((buffer[start + 1..end].to_vec(), end + 2))
}

/// The ACK for one framed message.
async fn answer(state: &Archive, frame: &[u8]) -> String {
    let text = String::from_utf8_lossy(frame);
    let text = text.trim_matches(|c| c == '\r' || c == '\n');
    let message = match Message::parse_with_lenient_newlines(text, true) {
        Ok(message) => message,
        Err(_) => {
            tracing::warn!("an HL7 message that does not parse: rejected");
            state.metrics.hl7_answered("AR");
            return build_ack(None, "AR", "the message does not parse as HL7 v2");
        }
    };
    let header = Header::of(&message);
    let adt = read_adt(&message, &header);
    let (code, text) = match adt::apply(state, &adt).await {
        Ok(Answer::Accept) => ("AA", String::new()),
        Ok(Answer::Error(reason)) => ("AE", reason),
        Ok(Answer::Reject(reason)) => ("AR", reason),
        Err(error) => {
            tracing::error!(error = %error.message, "an HL7 message could not be applied");
            (
                "AE",
                "the archive could not apply the message; send it again".into(),
            )
        }
    };
    state.metrics.hl7_answered(code);
    tracing::info!(
        message_type = %format!("{}^{}", adt.message_code, adt.event),
        control_id = %header.control_id,
        ack = code,
        "HL7 message answered"
    );
    build_ack(Some(&header), code, &text)
}

/// What an acknowledgement repeats of the message's header.
struct Header {
    sending_application: String,
    sending_facility: String,
    receiving_application: String,
    receiving_facility: String,
    event: String,
    control_id: String,
    processing_id: String,
    version: String,
}

fn field_text(message: &Message<'_>, segment: &str, field: usize) -> String {
    message
        .segment(segment)
        .and_then(|s| s.field(field))
        .map(|f| f.display(&message.separators).to_string())
        .unwrap_or_default()
}

fn component_text(message: &Message<'_>, segment: &str, field: usize, component: usize) -> String {
    message
        .segment(segment)
        .and_then(|s| s.field(field))
        .and_then(|f| f.component(component))
        .map(|c| c.display(&message.separators).to_string())
        .unwrap_or_default()
}

impl Header {
    fn of(message: &Message<'_>) -> Header {
        Header {
            sending_application: component_text(message, "MSH", 3, 1),
            sending_facility: component_text(message, "MSH", 4, 1),
            receiving_application: component_text(message, "MSH", 5, 1),
            receiving_facility: component_text(message, "MSH", 6, 1),
            event: component_text(message, "MSH", 9, 2),
            control_id: field_text(message, "MSH", 10),
            processing_id: component_text(message, "MSH", 11, 1),
            version: component_text(message, "MSH", 12, 1),
        }
    }
}

fn read_adt(message: &Message<'_>, header: &Header) -> AdtMessage {
    let separators = &message.separators;
    let pid = message.segment("PID");
    let identifiers = identifiers_of(pid.and_then(|pid| pid.field(3)), separators);
    let prior_identifiers = identifiers_of(
        message.segment("MRG").and_then(|mrg| mrg.field(1)),
        separators,
    );
    let name = pid.and_then(|pid| pid.field(5)).and_then(|field| {
        let first = field.repeat(1)?;
        let part = |n: usize| {
            first
                .component(n)
                .map(|c| c.display(separators).to_string())
                .unwrap_or_default()
        };
        // Given, further given, family: the order the archive shows names in.
        let words: Vec<String> = [part(2), part(3), part(1)]
            .into_iter()
            .filter(|w| !w.trim().is_empty())
            .collect();
        (!words.is_empty()).then(|| words.join(" "))
    });
    let birth_date = {
        let raw = component_text(message, "PID", 7, 1);
        raw.get(..8)
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y%m%d").ok())
    };
    let visit = {
        let number = component_text(message, "PV1", 19, 1);
        let class = component_text(message, "PV1", 2, 1);
        let time = |field: usize| hl7_time(&component_text(message, "PV1", field, 1));
        (!number.trim().is_empty()).then(|| Visit {
            number,
            patient_class: (!class.trim().is_empty()).then(|| class.trim().to_string()),
            admitted_at: time(44),
            discharged_at: time(45),
        })
    };
    AdtMessage {
        visit,
        sending_facility: header.sending_facility.clone(),
        control_id: header.control_id.clone(),
        message_code: component_text(message, "MSH", 9, 1),
        event: header.event.clone(),
        identifiers,
        prior_identifiers,
        name,
        birth_date,
    }
}

/// An HL7 date/time (`YYYYMMDD[HHMM[SS[.S...]]][+/-ZZZZ]`) to the minute or second, as
/// written (the zone is not applied: visit times are the hospital's local times).
fn hl7_time(raw: &str) -> Option<chrono::NaiveDateTime> {
    let digits: String = raw
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let date = NaiveDate::parse_from_str(digits.get(..8)?, "%Y%m%d").ok()?;
    let part = |range: std::ops::Range<usize>| -> u32 {
        digits.get(range).and_then(|d| d.parse().ok()).unwrap_or(0)
    };
    date.and_hms_opt(part(8..10), part(10..12), part(12..14))
}

/// A CX field's repetitions: ID number (CX.1), assigning authority (CX.4, its namespace)
/// and identifier type (CX.5).
fn identifiers_of(
    field: Option<&hl7_parser::message::Field<'_>>,
    separators: &hl7_parser::message::Separators,
) -> Vec<Identifier> {
    let Some(field) = field else {
        return Vec::new();
    };
    field
        .repeats()
        .map(|repeat| {
            let text = |n: usize| {
                repeat
                    .component(n)
                    .map(|c| {
                        // CX.4 is an HD: its first subcomponent is the namespace.
                        c.subcomponent(1)
                            .map(|s| s.display(separators).to_string())
                            .unwrap_or_else(|| c.display(separators).to_string())
                    })
                    .filter(|t| !t.is_empty())
            };
            Identifier {
                id: text(1).unwrap_or_default(),
                authority: text(4),
                type_code: text(5),
            }
        })
        .collect()
}

/// Text for a field of the ACK: the separators taken out.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if "|^~\\&\r\n".contains(c) { ' ' } else { c })
        .collect()
}

/// `MSH` + `MSA` (+ `ERR` with the reason for AE/AR).
fn build_ack(header: Option<&Header>, code: &str, text: &str) -> String {
    let now = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let control_id = uuid::Uuid::new_v4().simple().to_string();
    let empty = Header {
        sending_application: String::new(),
        sending_facility: String::new(),
        receiving_application: String::new(),
        receiving_facility: String::new(),
        event: String::new(),
        control_id: String::new(),
        processing_id: String::new(),
        version: String::new(),
    };
    let h = header.unwrap_or(&empty);
    let or = |value: &str, default: &str| {
        if value.is_empty() {
            default.to_string()
        } else {
            clean(value)
        }
    };
    let mut ack = format!(
        "MSH|^~\\&|{}|{}|{}|{}|{now}||ACK^{}^ACK|{control_id}|{}|{}\rMSA|{code}|{}",
        or(&h.receiving_application, "CHARTVAULT"),
        or(&h.receiving_facility, "CHARTVAULT"),
        clean(&h.sending_application),
        clean(&h.sending_facility),
        clean(&h.event),
        or(&h.processing_id, "P"),
        or(&h.version, "2.5"),
        clean(&h.control_id),
    );
    if code != "AA" {
        // ERR-3 (HL7 table 0357): 200 unsupported message type, 207 application error.
        let error = if code == "AR" {
            "200^Unsupported message type^HL70357"
        } else {
            "207^Application internal error^HL70357"
        };
        ack.push_str(&format!("\rERR|||{error}|E||||{}", clean(text)));
    }
    ack.push('\r');
    ack
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_whole_and_in_order() {
        let mut buffer = b"noise\x0bMSH|first\x1c\x0d\x0bMSH|sec".to_vec();
        let (frame, used) = next_frame(&buffer).unwrap();
        assert_eq!(frame, b"MSH|first");
        buffer.drain(..used);
        assert_eq!(next_frame(&buffer), None, "the second is not complete yet");
        buffer.extend_from_slice(b"ond\x1c\x0d");
        assert_eq!(next_frame(&buffer).unwrap().0, b"MSH|second");
    }

    #[test]
    fn an_adt_message_is_read_with_its_identifiers_name_and_birth_date() {
        let text = "MSH|^~\\&|REG|NORTH^1.2.3^ISO|CV|CV|20261207||ADT^A04^ADT_A01|MSG-1|P|2.5\r\
                    EVN|A04|20261207\r\
                    PID|1||555^^^SSA^SS~H-1001^^^HOSP&1.2.3&ISO^MR||O\\S\\BRIEN^MAEVE^ANN||19800214|F\r\
                    PV1|1|I|||||||||||||||||V-77^^^HOSP^VN|||||||||||||||||||||||||202612010830";
        let message = Message::parse(text).unwrap();
        let header = Header::of(&message);
        assert_eq!(
            (
                header.sending_facility.as_str(),
                header.control_id.as_str(),
                header.event.as_str()
            ),
            ("NORTH", "MSG-1", "A04")
        );
        let adt = read_adt(&message, &header);
        assert_eq!(adt.message_code, "ADT");
        assert_eq!(adt.identifiers.len(), 2);
        assert_eq!(adt.identifiers[1].id, "H-1001");
        assert_eq!(adt.identifiers[1].authority.as_deref(), Some("HOSP"));
        assert_eq!(adt.identifiers[1].type_code.as_deref(), Some("MR"));
        assert_eq!(adt.name.as_deref(), Some("MAEVE ANN O^BRIEN"));
        assert_eq!(adt.birth_date, NaiveDate::from_ymd_opt(1980, 2, 14));
        let visit = adt.visit.expect("PV1-19 names a visit");
        assert_eq!(visit.number, "V-77");
        assert_eq!(visit.patient_class.as_deref(), Some("I"));
        assert_eq!(
            visit.admitted_at,
            NaiveDate::from_ymd_opt(2026, 12, 1).and_then(|d| d.and_hms_opt(8, 30, 0))
        );
        assert_eq!(visit.discharged_at, None);
        assert_eq!(
            hl7_time("20261201083015.123-0500"),
            NaiveDate::from_ymd_opt(2026, 12, 1).and_then(|d| d.and_hms_opt(8, 30, 15))
        );
        assert_eq!(hl7_time("2026"), None);
        let ack = build_ack(Some(&header), "AE", "PID-5 | missing");
        assert!(ack.starts_with("MSH|^~\\&|CV|CV|REG|NORTH|"), "{ack}");
        assert!(ack.contains("|ACK^A04^ACK|"));
        assert!(ack.contains("\rMSA|AE|MSG-1\r"));
        assert!(ack.contains("ERR|||207^Application internal error^HL70357|E||||PID-5   missing\r"));
    }
}
