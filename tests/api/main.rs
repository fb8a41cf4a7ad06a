//! End-to-end tests: the real server on port 0, real Tesseract, real SQLite, real files.

mod access;
mod accounting;
mod at_rest;
mod audit_chain;
mod auth;
mod backup;
mod bad_input;
mod batches;
mod cleanup;
mod corrections;
mod crash;
mod dicom;
mod duplicates;
mod fixtures;
mod generated;
mod helpers;
mod holds;
mod jwt;
mod pdf;
mod qa_checks;
mod releases;
mod retention;
mod rotation;
mod shred;
mod verify;
