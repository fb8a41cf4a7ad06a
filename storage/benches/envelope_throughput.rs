//! How fast objects are sealed and opened (AES-256-GCM in 64 KiB chunks, `envelope::seal`
//! and `envelope::open`), in MB/s, on 32 MiB: every page image, text and original passes
//! through it once on ingest, and every index read on search.
//!
//! Run: `cargo bench -p chartvault-storage --bench envelope_throughput --profile dev` (the
//! profile the service runs). Best of five.

use std::time::Instant;

use chartvault_storage::{envelope, DataKey, KeyId};

fn main() {
    let (key, key_id) = (DataKey::generate(), KeyId::generate());
    let plaintext: Vec<u8> = (0..32u32 << 20).map(|i| (i * 31 % 251) as u8).collect();
    let megabytes = plaintext.len() as f64 / 1e6;
    let (mut seal, mut open) = (0f64, 0f64);
    for _ in 0..5 {
        let started = Instant::now();
        let sealed = envelope::seal(&key_id, &key, b"bench", &plaintext);
        seal = seal.max(megabytes / started.elapsed().as_secs_f64());
        let started = Instant::now();
        let opened = envelope::open(&key, b"bench", &sealed).expect("opens");
        open = open.max(megabytes / started.elapsed().as_secs_f64());
        assert_eq!(opened, plaintext);
    }
    println!("envelope: seal {seal:.0} MB/s, open {open:.0} MB/s (32 MiB, best of 5)");
}
