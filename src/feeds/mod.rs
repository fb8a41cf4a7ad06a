//! Feeds from and to the hospital's other systems.
//!
//! - [`adt`]: the registration system's ADT messages create and update patients.
//! - [`mdm`]: the EHR is told of each document (MDM messages from the outbox).

pub mod adt;
pub mod mdm;
