//! The inbound ADT feed's pace: 1,000 HL7 v2 ADT messages (registrations and updates of 500
//! patients) over one MLLP connection, each sent after the previous ACK, as a registration
//! system sends them. "Applied" = committed in the store before the ACK. Goal: ≥ 100
//! messages/s.
//!
//! `cargo bench --profile dev --bench hl7_feed`

#[allow(dead_code)]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use std::time::Instant;

use helpers::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MESSAGES: usize = 1000;

fn message(n: usize) -> String {
    let patient = n / 2;
    let (event, family) = if n % 2 == 0 {
        ("A04", "FEED")
    } else {
        ("A08", "FEEDUPDATED")
    };
    format!(
        "MSH|^~\\&|REGISTRATION|NORTH|CHARTVAULT|ARCHIVE|20261207120000||ADT^{event}^ADT_A01|BENCH-{n}|P|2.5\r\
         EVN||20261207120000\r\
         PID|||B-{patient:05}^^^HOSP^MR||{family}^PATIENT{patient}||19800214\r\
         PV1||O|||||||||||||||||V-{patient:05}|||||||||||||||||||||||||202612071200\r"
    )
}

fn main() {
    std::env::set_var("OMP_THREAD_LIMIT", "1");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let app = spawn_app_with(|config| {
        config.hl7.listen = Some("127.0.0.1:0".parse().unwrap());
        config.patients.default_issuer = Some("HOSP".into());
    })
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.hl7.unwrap())
        .await
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut buffer = vec![0u8; 4096];
    let started = Instant::now();
    for n in 0..MESSAGES {
        let mut frame = vec![0x0b];
        frame.extend_from_slice(message(n).as_bytes());
        frame.extend_from_slice(&[0x1c, 0x0d]);
        stream.write_all(&frame).await.unwrap();
        let mut ack = Vec::new();
        while !ack.ends_with(&[0x1c, 0x0d]) {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the listener closed the connection");
            ack.extend_from_slice(&buffer[..read]);
        }
        let ack = String::from_utf8_lossy(&ack);
        assert!(ack.contains("\rMSA|AA|"), "message {n}: {ack}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = MESSAGES as f64 / elapsed;
    // Applied: the last patient has their new name and their visit.
    use chartvault::store::prelude::*;
    let last = chartvault::domain::Mrn::parse(&format!("B-{:05}", MESSAGES / 2 - 1)).unwrap();
    let patient = app.state.db.patient_by_mrn(&last).await.unwrap().unwrap();
    assert!(patient.name.contains("FEEDUPDATED"));
    assert_eq!(
        app.state.db.encounters_of(patient.id).await.unwrap().len(),
        1
    );
    println!(
        "hl7 feed: {MESSAGES} ADT messages (500 registrations, 500 updates, each with its \
         visit), one connection, each after the previous ACK"
    );
    println!(
        "chartvault: {elapsed:>6.2} s  {rate:>7.1} messages/s  (goal >= 100: ratio {:.2})",
        rate / 100.0
    );
}
