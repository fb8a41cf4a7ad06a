//! The legal side of the archive: holds, destruction, retention and releases.
//!
//! - [`shred`]: crypto-shredding of a document and the one "may this be destroyed?" check.
//! - [`period`]: how long a document must be kept.
//! - [`retention`]: the retention run that destroys what has expired.
//! - [`release`]: releases of information: their checklist, scope, Bates-numbered
//!   productions, manifests and redaction proposals.

pub mod period;
pub mod release;
pub mod retention;
pub mod shred;
