//! Feeds from the hospital's other systems.
//!
//! - [`adt`]: the registration system's ADT messages create and update patients.

pub mod adt;
