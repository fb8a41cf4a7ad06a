//! A stream's filter chain as hayro-syntax 0.9 reads it from the stream dictionary, turned
//! into the capped decoding steps of the `filters` module.

use std::ops::Deref;

use hayro::hayro_syntax::object::dict::keys::{
    ASCII85_DECODE, ASCII85_DECODE_ABBREVIATION, ASCII_HEX_DECODE, ASCII_HEX_DECODE_ABBREVIATION,
    BITS_PER_COMPONENT, CCITTFAX_DECODE, CCITTFAX_DECODE_ABBREVIATION, COLORS, COLUMNS, CRYPT,
    DCT_DECODE, DCT_DECODE_ABBREVIATION, DECODE_PARMS, DP, EARLY_CHANGE, F, FILTER, FLATE_DECODE,
    FLATE_DECODE_ABBREVIATION, HEIGHT, IMAGE, JBIG2_DECODE, JPX_DECODE, LZW_DECODE,
    LZW_DECODE_ABBREVIATION, PREDICTOR, RUN_LENGTH_DECODE, RUN_LENGTH_DECODE_ABBREVIATION, SUBTYPE,
    WIDTH,
};
use hayro::hayro_syntax::object::{Array, Dict, Name, Object};
use hayro::hayro_syntax::Filter;

use super::filters::Step;
use super::{IMAGE_BYTES_PER_PIXEL, STREAM_CAP};
use crate::Limits;

/// What decoding a stream costs, as far as the guard can bound it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    /// The steps hayro takes before it reaches an image filter (or the end of the chain).
    pub steps: Vec<Step>,
    /// Cap on each step's output.
    pub cap: u64,
}

/// Why a stream's chain cannot be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// A predictor's row (`/Columns` × `/Colors` × `/BitsPerComponent`) over the cap: hayro
    /// allocates a row before it looks at the data.
    PredictorRow,
}

/// hayro's `Filter::from_name` (crate-private there).
fn filter_from_name(name: &[u8]) -> Option<Filter> {
    Some(match name {
        ASCII_HEX_DECODE | ASCII_HEX_DECODE_ABBREVIATION => Filter::AsciiHexDecode,
        ASCII85_DECODE | ASCII85_DECODE_ABBREVIATION => Filter::Ascii85Decode,
        LZW_DECODE | LZW_DECODE_ABBREVIATION => Filter::LzwDecode,
        FLATE_DECODE | FLATE_DECODE_ABBREVIATION => Filter::FlateDecode,
        RUN_LENGTH_DECODE | RUN_LENGTH_DECODE_ABBREVIATION => Filter::RunLengthDecode,
        CCITTFAX_DECODE | CCITTFAX_DECODE_ABBREVIATION => Filter::CcittFaxDecode,
        JBIG2_DECODE => Filter::Jbig2Decode,
        DCT_DECODE | DCT_DECODE_ABBREVIATION => Filter::DctDecode,
        JPX_DECODE => Filter::JpxDecode,
        CRYPT => Filter::Crypt,
        _ => return None,
    })
}

/// hayro's `Stream::filters_and_params` (private there), through the dictionary's own
/// context: references resolve in the file's context and not in a context-free parse, as in
/// hayro. `/F` is read as a filter before `/Filter`, as hayro does.
pub(super) fn filters_and_params<'a>(dict: &Dict<'a>) -> Vec<(Filter, Dict<'a>)> {
    if let Some(filter) = dict
        .get::<Name<'_>>(F)
        .or_else(|| dict.get::<Name<'_>>(FILTER))
        .and_then(|name| filter_from_name(name.deref()))
    {
        let params = dict
            .get::<Dict<'_>>(DP)
            .or_else(|| dict.get::<Dict<'_>>(DECODE_PARMS))
            .unwrap_or_default();
        vec![(filter, params)]
    } else if let Some(filters) = dict
        .get::<Array<'_>>(F)
        .or_else(|| dict.get::<Array<'_>>(FILTER))
    {
        let mut params = dict
            .get::<Array<'_>>(DP)
            .or_else(|| dict.get::<Array<'_>>(DECODE_PARMS))
            .map(|array| array.iter::<Object<'_>>());
        let mut chain = Vec::new();
        for name in filters.iter::<Name<'_>>() {
            let params = params
                .as_mut()
                .and_then(|params| params.next())
                .and_then(|params| params.into_dict())
                .unwrap_or_default();
            if let Some(filter) = filter_from_name(name.deref()) {
                chain.push((filter, params));
            }
        }
        chain
    } else {
        Vec::new()
    }
}

/// The decoding steps and cap of a stream with dictionary `dict`.
pub(super) fn plan(dict: &Dict<'_>, limits: &Limits) -> Result<Plan, Refusal> {
    let mut steps = Vec::new();
    for (index, (filter, params)) in filters_and_params(dict).into_iter().enumerate() {
        let step = match filter {
            Filter::FlateDecode => Step::Flate,
            Filter::LzwDecode => Step::Lzw {
                early_change: params
                    .get::<u8>(EARLY_CHANGE)
                    .map(|e| e != 0)
                    .unwrap_or(true),
            },
            Filter::RunLengthDecode => Step::RunLength,
            Filter::AsciiHexDecode => Step::AsciiHex,
            Filter::Ascii85Decode => Step::Ascii85,
            // A leading crypt filter is skipped (encrypted files are refused anyway);
            // anywhere else hayro fails on it.
            Filter::Crypt if index == 0 => continue,
            // Image decoders: bounded by the image's declared size (`check_page`).
            Filter::Crypt
            | Filter::DctDecode
            | Filter::JpxDecode
            | Filter::Jbig2Decode
            | Filter::CcittFaxDecode => break,
        };
        if matches!(step, Step::Flate | Step::Lzw { .. }) {
            check_predictor(&params)?;
        }
        steps.push(step);
    }
    Ok(Plan {
        steps,
        cap: cap(dict, limits),
    })
}

/// hayro's predictor parameters: a predictor other than 1 allocates one row of
/// `/Columns` × `/Colors` × `/BitsPerComponent` bits (zeros) before it reads any data.
fn check_predictor(params: &Dict<'_>) -> Result<(), Refusal> {
    let predictor = params.get::<u8>(PREDICTOR).unwrap_or(1);
    if predictor == 1 {
        return Ok(());
    }
    let colors = u128::from(params.get::<u8>(COLORS).unwrap_or(1));
    let bits = u128::from(params.get::<u8>(BITS_PER_COMPONENT).unwrap_or(8));
    let columns = params.get::<usize>(COLUMNS).unwrap_or(1) as u128;
    let row = (columns * colors * bits).div_ceil(8);
    if row > u128::from(STREAM_CAP) {
        return Err(Refusal::PredictorRow);
    }
    Ok(())
}

/// Cap on each decoding step of a stream: an image by its declared pixels (at most the page
/// limit), anything else [`STREAM_CAP`].
fn cap(dict: &Dict<'_>, limits: &Limits) -> u64 {
    let is_image = dict
        .get::<Name<'_>>(SUBTYPE)
        .is_some_and(|subtype| subtype.deref() == IMAGE);
    if !is_image {
        return STREAM_CAP;
    }
    let declared = match (dict.get::<u32>(WIDTH), dict.get::<u32>(HEIGHT)) {
        (Some(width), Some(height)) => u64::from(width) * u64::from(height),
        _ => limits.max_pixels_per_page,
    };
    image_cap(declared.min(limits.max_pixels_per_page))
}

/// Cap on an image stream of `pixels` pixels.
pub(super) fn image_cap(pixels: u64) -> u64 {
    pixels
        .saturating_mul(IMAGE_BYTES_PER_PIXEL)
        .saturating_add(1 << 20)
}
