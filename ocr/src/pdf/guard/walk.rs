//! The parsed-object walk: every stream hayro knows, with hayro's own reading of its
//! dictionary (references resolved, names unescaped, arrays of filters, abbreviations), run
//! through its filter chain with the capped decoders before anything renders.
//!
//! The walk reads every object of the cross-reference table, which is also what makes hayro
//! rebuild a broken table (it does so once, on the first object it cannot find where the
//! table says): objects of the rebuilt table are then walked in a second pass, so a stream
//! that only the rebuilt table reaches is checked too.

use std::collections::HashSet;

use hayro::hayro_syntax::object::dict::keys::F;
use hayro::hayro_syntax::object::{Object, Stream};
use hayro::hayro_syntax::Pdf;

use super::chain::{self, filters_and_params};
use super::filters;
use super::{expands_beyond, refused, total_beyond, total_cap, StreamTotal};
use crate::{Limits, ScanError};

/// Bytes of object syntax the walk may parse, per byte of the file (plus 256 MiB). A file is
/// parsed about twice (two passes); a cross-reference table pointing many entries at one big
/// object would make it parse that object again and again.
const PARSE_RATIO: u64 = 16;
/// What one object counts against that budget beyond its bytes (parsing has a fixed cost).
const OBJECT_COST: u64 = 64;

/// Checks every stream of `pdf` (`file_len`: the size of the file).
pub(super) fn check_objects(pdf: &Pdf, limits: &Limits, file_len: usize) -> Result<(), ScanError> {
    let mut total = StreamTotal::new(total_cap(file_len));
    let parse_budget = PARSE_RATIO
        .saturating_mul(file_len as u64)
        .saturating_add(256 << 20);
    let mut parsed = 0u64;
    // Streams already checked, by where their dictionary and data are (a rebuilt table may
    // give an object number other bytes).
    let mut checked: HashSet<(usize, usize, usize)> = HashSet::new();
    for _pass in 0..2 {
        for object in pdf.objects() {
            parsed = parsed
                .saturating_add(OBJECT_COST)
                .saturating_add(syntax_len(&object));
            if parsed > parse_budget {
                return Err(ScanError::Pdf {
                    page: None,
                    detail: format!(
                        "its cross-reference table makes the reader parse more than {} MiB",
                        parse_budget >> 20
                    ),
                });
            }
            let Object::Stream(stream) = object else {
                continue;
            };
            let data = stream.raw_data();
            let key = (
                stream.dict().data().as_ptr() as usize,
                data.as_ptr() as usize,
                data.len(),
            );
            if !checked.insert(key) {
                continue;
            }
            check_stream(&stream, &data, limits, &mut total)?;
        }
    }
    Ok(())
}

/// The size of an object's syntax (what parsing it reads), as far as hayro tells it.
fn syntax_len(object: &Object<'_>) -> u64 {
    let len = match object {
        Object::Dict(dict) => dict.data().len(),
        Object::Array(array) => array.data().len(),
        Object::String(string) => string.as_bytes().len(),
        Object::Stream(stream) => stream.dict().data().len(),
        _ => 0,
    };
    len as u64
}

fn check_stream(
    stream: &Stream<'_>,
    data: &[u8],
    limits: &Limits,
    total: &mut StreamTotal,
) -> Result<(), ScanError> {
    let dict = stream.dict();
    // hayro does not decode a stream whose data is in an external file.
    if matches!(
        dict.get::<Object<'_>>(F),
        Some(Object::String(_) | Object::Dict(_))
    ) {
        return Ok(());
    }
    // The chain as read here must be the chain hayro applies.
    let ours: Vec<_> = filters_and_params(dict)
        .into_iter()
        .map(|(filter, _)| filter)
        .collect();
    if ours.as_slice() != stream.filters().as_slice() {
        return Err(ScanError::Pdf {
            page: None,
            detail: "the filters of a stream could not be read".to_owned(),
        });
    }
    let plan = chain::plan(dict, limits).map_err(refused)?;
    if plan.steps.is_empty() {
        return Ok(());
    }
    let count = filters::run(data, &plan.steps, plan.cap);
    if count.over_cap || count.over_work {
        return Err(expands_beyond(plan.cap, count));
    }
    total.add(count.bytes).map_err(total_beyond)
}
