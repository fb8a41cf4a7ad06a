//! DICOM Part 10 attachments (x-rays and any other modality): metadata to index and a
//! preview, with dicom-rs.
//!
//! - [`is_dicom`]: the 128-byte preamble followed by `DICM`.
//! - [`dicom_info`]: the attributes to index ([`DicomInfo`]), reading the data set up to (not
//!   including) the pixel data.
//! - [`dicom_preview`]: the first frame as an 8-bit grayscale image as a radiologist would see
//!   it (see [`dicom_preview`] for the exact pipeline).
//! - [`dicom_read`]: both from one parse, the preview as an inner `Result` so that a file whose
//!   image cannot be decoded is still indexed ("stored, no preview").
//!
//! The input bytes are only read, never changed: the caller keeps the original byte-exact.
//!
//! Hostile input. Every function first walks the file structure (`walk` module) without
//! reading any value, checking every element, item and fragment length against the bytes
//! that contain it, and bounding the element count (500 000) and the nesting depth (32); a
//! deflated data set is inflated for that walk up to 256 MiB. Only then does dicom-rs parse
//! it. So memory is bounded by a small multiple of the file size, whatever
//! the headers claim. Rows × Columns and Number of Frames are checked against [`Limits`]
//! ([`Limits::max_dimension`], [`Limits::max_pixels_per_page`] for one frame and
//! [`Limits::max_pages`] for the number of frames) before any pixel is decoded, and the
//! header of a JPEG or JPEG 2000 stream must agree with Rows, Columns and Samples per Pixel
//! before its decoder runs. dicom-rs and the codecs are called under `catch_unwind`: a panic
//! in them becomes an error.
//!
//! Errors ([`ScanError::Dicom`], [`ScanError::DicomNoPreview`]) describe structure only
//! (tags, lengths, sizes, transfer syntax); no attribute value ever appears in one.

mod codestream;
mod json;
mod render;
mod walk;

#[cfg(test)]
mod tests;

use std::panic::{catch_unwind, AssertUnwindSafe};

use dicom_core::header::HasLength;
use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use image::GrayImage;

use crate::{Limits, ScanError};

pub use json::first_text as dicom_json_text;
pub use render::DICOM_PREVIEW_MAX_SIDE;

/// MIME type of DICOM Part 10 files.
pub const DICOM_MIME: &str = "application/dicom";

/// Whether `first_bytes` start like a DICOM Part 10 file: a 128-byte preamble (any content)
/// followed by `DICM`. Needs at least the first 132 bytes.
pub fn is_dicom(first_bytes: &[u8]) -> bool {
    first_bytes.len() >= 132 && &first_bytes[128..132] == b"DICM"
}

/// What a DICOM file says about itself: the attributes to index, and the image geometry.
///
/// Text values are as dicom-rs decodes them (Specific Character Set applied), with leading
/// and trailing spaces and NULs removed; an absent or empty attribute is `None`. A
/// multi-valued attribute keeps DICOM's `\` between its values.
///
/// Serialisable (it comes back from the decoder process, see the `sandbox` module); on the
/// way in, `transfer_syntax_name` is looked up again in dicom-rs' registry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DicomInfo {
    /// SOP Instance UID (0008,0018), or, when the data set lacks it, Media Storage SOP
    /// Instance UID from the file meta group. Always present: a file with neither is rejected,
    /// since the instance could not be told apart from another (duplicate detection).
    pub sop_instance_uid: String,
    /// SOP Class UID (0008,0016), or Media Storage SOP Class UID from the meta group.
    pub sop_class_uid: Option<String>,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: Option<String>,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: Option<String>,
    /// Patient ID (0010,0020).
    pub patient_id: Option<String>,
    /// Patient's Name (0010,0010) in DICOM PN form: `Family^Given^Middle^Prefix^Suffix`,
    /// possibly followed by `=ideographic=phonetic` groups, as stored except that trailing
    /// empty components and groups are dropped (`Doe^Jane^^^` → `Doe^Jane`; DICOM treats them
    /// as insignificant). For exact matching; [`DicomInfo::patient_name_readable`] gives
    /// "Prefix Given Middle Family Suffix".
    pub patient_name: Option<String>,
    /// Study Date (0008,0020) as `YYYY-MM-DD`; `None` when absent or not a valid date (DICOM
    /// `YYYYMMDD`, and the old ACR-NEMA `YYYY.MM.DD`, are accepted).
    pub study_date: Option<String>,
    /// Modality (0008,0060), e.g. `CR`, `DX`.
    pub modality: Option<String>,
    /// Body Part Examined (0018,0015), e.g. `CHEST`.
    pub body_part_examined: Option<String>,
    /// View Position (0018,5101), e.g. `PA`, `AP`, `LL`.
    pub view_position: Option<String>,
    /// Accession Number (0008,0050).
    pub accession_number: Option<String>,
    /// Study Description (0008,1030).
    pub study_description: Option<String>,
    /// Series Description (0008,103E).
    pub series_description: Option<String>,
    /// Whether the data set has Pixel Data (7FE0,0010) at its top level.
    pub has_pixel_data: bool,
    /// Rows (0028,0010); 0 when absent.
    pub rows: u32,
    /// Columns (0028,0011); 0 when absent.
    pub columns: u32,
    /// Number of Frames (0028,0008); 1 for an image without it, 0 without pixel data.
    pub frames: u32,
    /// Samples per Pixel (0028,0002); 0 when absent.
    pub samples_per_pixel: u16,
    /// Bits Allocated (0028,0100); 0 when absent.
    pub bits_allocated: u16,
    /// Bits Stored (0028,0101); 0 when absent.
    pub bits_stored: u16,
    /// Photometric Interpretation (0028,0004), e.g. `MONOCHROME1`.
    pub photometric: Option<String>,
    /// Transfer syntax UID from the file meta group.
    pub transfer_syntax: String,
    /// Its name in dicom-rs' registry, e.g. "JPEG 2000 Image Compression".
    #[serde(deserialize_with = "registry_name")]
    pub transfer_syntax_name: RegistryName,
    /// The data set as DICOM JSON (PS3.18 F.2: keys `GGGGEEEE`), without Pixel Data and
    /// binary values over 4 KiB, with the transfer syntax it is stored
    /// in as Available Transfer Syntax UID (0008,3002): what DICOMweb answers for
    /// `/metadata` and searches.
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// `&'static str` under another name: serde's derive borrows a field spelled `&str` from
/// its input even with `deserialize_with`, which would tie `DicomInfo` to `'static` input.
type RegistryName = &'static str;

/// What `transfer_syntax_name` holds for a transfer syntax the registry does not know.
const UNKNOWN_TRANSFER_SYNTAX: &str = "unknown transfer syntax";

/// A transfer syntax name as the registry's own `&'static str` (any other name reads as
/// [`UNKNOWN_TRANSFER_SYNTAX`]: nothing is leaked for a name that arrives from outside).
fn registry_name<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<&'static str, D::Error> {
    let name = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    Ok(TransferSyntaxRegistry
        .iter()
        .map(|ts| ts.name())
        .find(|known| *known == name)
        .unwrap_or(UNKNOWN_TRANSFER_SYNTAX))
}

impl DicomInfo {
    /// Patient's Name as a person writes it: the alphabetic group's components in the order
    /// prefix, given, middle, family, suffix, separated by single spaces. `None` when absent.
    pub fn patient_name_readable(&self) -> Option<String> {
        let raw = self.patient_name.as_deref()?;
        let alphabetic = raw.split('=').next().unwrap_or("");
        let parts: Vec<&str> = alphabetic.split('^').map(str::trim).collect();
        let get = |i: usize| parts.get(i).copied().unwrap_or("");
        let ordered = [get(3), get(1), get(2), get(0), get(4)];
        let name = ordered
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        (!name.is_empty()).then_some(name)
    }

    /// The searchable words of the study, to index beside charts, in this order: modality,
    /// the modality's plain-English name (e.g. `CR` → "computed radiography x-ray"), body
    /// part examined, view position, study description, series description, accession number,
    /// study date (`YYYY-MM-DD`). `^` and `\` become spaces and runs of whitespace one space.
    ///
    /// Patient identity (name, ID) and the UIDs are left out: they are exact-match fields
    /// the caller indexes on their own, not words.
    pub fn index_text(&self) -> String {
        let fields = [
            self.modality.as_deref(),
            self.modality.as_deref().and_then(modality_words),
            self.body_part_examined.as_deref(),
            self.view_position.as_deref(),
            self.study_description.as_deref(),
            self.series_description.as_deref(),
            self.accession_number.as_deref(),
            self.study_date.as_deref(),
        ];
        let mut out = String::new();
        for field in fields.into_iter().flatten() {
            for word in field.split(|c: char| c.is_whitespace() || c == '^' || c == '\\') {
                if word.is_empty() {
                    continue;
                }
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
        out
    }
}

impl DicomInfo {
    /// Everything the archive indexes for the file: [`DicomInfo::index_text`], then a line of
    /// the identifiers it can be found by (patient ID and readable name, study, series and
    /// SOP instance UIDs). This text is stored encrypted like OCR text.
    pub fn searchable_text(&self) -> String {
        let mut out = self.index_text();
        let name = self.patient_name_readable();
        let identifiers = [
            self.patient_id.as_deref(),
            name.as_deref(),
            self.study_instance_uid.as_deref(),
            self.series_instance_uid.as_deref(),
            Some(self.sop_instance_uid.as_str()),
        ];
        out.push('\n');
        let line: Vec<&str> = identifiers.into_iter().flatten().collect();
        out.push_str(&line.join(" "));
        out.push('\n');
        out
    }
}

/// Plain words for the common modalities, so that "x-ray" or "ultrasound" finds a study.
fn modality_words(modality: &str) -> Option<&'static str> {
    Some(match modality.trim() {
        "CR" => "computed radiography x-ray",
        "DX" => "digital radiography x-ray",
        "RG" => "radiographic imaging x-ray",
        "MG" => "mammography x-ray",
        "IO" => "intra-oral radiography x-ray",
        "PX" => "panoramic x-ray",
        "XA" => "x-ray angiography",
        "RF" => "radio fluoroscopy x-ray",
        "CT" => "computed tomography",
        "MR" => "magnetic resonance",
        "US" => "ultrasound",
        "NM" => "nuclear medicine",
        "PT" => "positron emission tomography",
        "ES" => "endoscopy",
        "XC" => "external camera photography",
        "OP" => "ophthalmic photography",
        "ECG" => "electrocardiography",
        "SR" => "structured report",
        "DOC" => "document",
        _ => return None,
    })
}

/// Reads the attributes of [`DicomInfo`], parsing the data set up to the pixel data (which is
/// neither read nor copied). Bounded as the module doc says.
///
/// Errors: [`ScanError::Empty`]; [`ScanError::Dicom`] when the file is not DICOM Part 10, is
/// truncated or malformed (including absurd lengths), uses an unknown transfer syntax, has no
/// SOP Instance UID, or its image is over `limits`.
pub fn dicom_info(bytes: &[u8], limits: &Limits) -> Result<DicomInfo, ScanError> {
    let bytes = &*walk::with_group_length(bytes);
    let structure = walk::check(bytes)?;
    let obj = open(bytes, true)?;
    info_from(&obj, &structure, limits)
}

/// Renders the preview of the first frame: 8-bit grayscale, 0 = black as displayed.
///
/// Pipeline, for monochrome images:
/// 1. the stored value (Bits Stored, High Bit, Pixel Representation for the sign);
/// 2. Modality LUT: Rescale Slope / Intercept (identity when absent; a Modality LUT Sequence
///    is not applied);
/// 3. VOI: the first Window Center / Window Width pair, with the VOI LUT Function (`LINEAR`
///    as in PS3.3 C.11.2.1.2.1 by default, `LINEAR_EXACT`, `SIGMOID`); without a window, the
///    first VOI LUT Sequence item; without either (or with a width < 1), the frame's own
///    minimum to maximum mapped linearly to 0..255;
/// 4. MONOCHROME1 is inverted (minimum shown white), so bone is white as a radiologist
///    expects. Presentation LUT Shape is not consulted (for MONOCHROME1 images it says
///    INVERSE, which is this same inversion).
///
/// RGB (and decoded colour JPEG/JPEG 2000) and native YBR_FULL images of 8 bits become their
/// luma. The image is then downscaled (area averaging) so its longer side is at most
/// [`DICOM_PREVIEW_MAX_SIDE`] pixels, keeping the aspect ratio.
///
/// Transfer syntaxes decoded: the native ones (implicit/explicit VR little endian, explicit
/// big endian, deflated), JPEG baseline, extended and lossless, JPEG 2000 (lossless and
/// lossy, part 2, high-throughput) and RLE Lossless. Others (JPEG-LS, JPEG XL, MPEG/HEVC
/// video, ...) give [`ScanError::DicomNoPreview`] naming the transfer syntax.
///
/// Errors: those of [`dicom_info`], then [`ScanError::DicomNoPreview`] for everything that
/// prevents a preview of a file that was otherwise read.
pub fn dicom_preview(bytes: &[u8], limits: &Limits) -> Result<GrayImage, ScanError> {
    dicom_read(bytes, limits)?.1
}

/// [`dicom_info`] and [`dicom_preview`] from a single parse: `Err` when the file cannot be
/// indexed at all, `Ok((info, Err(_)))` when it can be indexed but not previewed.
#[allow(clippy::type_complexity)]
pub fn dicom_read(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(DicomInfo, Result<GrayImage, ScanError>), ScanError> {
    let bytes = &*walk::with_group_length(bytes);
    let structure = walk::check(bytes)?;
    let obj = open(bytes, false)?;
    let info = info_from(&obj, &structure, limits)?;
    let preview = preview_from(&obj, &info);
    Ok((info, preview))
}

pub(super) fn malformed(detail: &str) -> ScanError {
    ScanError::Dicom {
        detail: format!("is malformed: {detail}"),
    }
}

pub(super) fn truncated(inside: &str) -> ScanError {
    ScanError::Dicom {
        detail: format!("is truncated: it ends inside {inside}"),
    }
}

fn no_preview(detail: impl Into<String>) -> ScanError {
    ScanError::DicomNoPreview {
        detail: detail.into(),
    }
}

/// Runs dicom-rs or codec code, turning a panic into `None`.
fn guarded<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f)).ok()
}

/// Parses with dicom-object (the structure walk must have passed already).
fn open(bytes: &[u8], stop_before_pixel_data: bool) -> Result<DefaultDicomObject, ScanError> {
    let parsed = guarded(|| {
        let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Always);
        if stop_before_pixel_data {
            options = options.read_until(tags::PIXEL_DATA);
        }
        options.from_reader(bytes)
    });
    match parsed {
        // dicom-rs' messages may quote values, so none is passed on.
        Some(Ok(obj)) => Ok(obj),
        Some(Err(_)) => Err(malformed("its data set could not be parsed")),
        None => Err(malformed("its data set made the DICOM parser fail")),
    }
}

fn text(obj: &DefaultDicomObject, tag: Tag) -> Option<String> {
    let value = obj.get(tag)?.to_str().ok()?;
    let trimmed = value.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!trimmed.is_empty()).then(|| trimmed.to_owned())
}

/// An integer attribute (binary US/UL/SS or an IS string) that fits `T`.
fn int<T: TryFrom<i64>>(obj: &DefaultDicomObject, tag: Tag) -> Option<T> {
    T::try_from(obj.get(tag)?.to_int::<i64>().ok()?).ok()
}

/// Drops trailing empty components (`Doe^Jane^^^` → `Doe^Jane`) and trailing empty groups,
/// which DICOM treats as insignificant, so equal names compare equal.
fn normalize_person_name(raw: &str) -> Option<String> {
    let groups: Vec<&str> = raw
        .split('=')
        .map(|g| g.trim_end_matches(|c: char| c == '^' || c.is_whitespace()))
        .collect();
    let keep = groups.iter().rposition(|g| !g.is_empty())? + 1;
    Some(groups[..keep].join("="))
}

/// `YYYYMMDD` (or `YYYY.MM.DD`) to `YYYY-MM-DD`, if it is a real calendar date.
fn normalize_date(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(|c| *c != '.').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: u32 = digits[0..4].parse().ok()?;
    let month: u32 = digits[4..6].parse().ok()?;
    let day: u32 = digits[6..8].parse().ok()?;
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || day == 0 || day > days {
        return None;
    }
    Some(format!("{year:04}-{month:02}-{day:02}"))
}

fn info_from(
    obj: &DefaultDicomObject,
    structure: &walk::Structure,
    limits: &Limits,
) -> Result<DicomInfo, ScanError> {
    let meta = obj.meta();
    let trim_uid = |s: &str| {
        let t = s.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        (!t.is_empty()).then(|| t.to_owned())
    };
    let sop_instance_uid = text(obj, tags::SOP_INSTANCE_UID)
        .or_else(|| trim_uid(meta.media_storage_sop_instance_uid()))
        .ok_or_else(|| ScanError::Dicom {
            detail: "has no SOP Instance UID (0008,0018), nor one in its file meta group".into(),
        })?;
    let sop_class_uid =
        text(obj, tags::SOP_CLASS_UID).or_else(|| trim_uid(meta.media_storage_sop_class_uid()));

    let has_pixel_data = structure.has_pixel_data;
    let rows: u32 = int(obj, tags::ROWS).unwrap_or(0);
    let columns: u32 = int(obj, tags::COLUMNS).unwrap_or(0);
    let frames: u32 = if has_pixel_data {
        match obj.get(tags::NUMBER_OF_FRAMES) {
            None => 1,
            Some(_) => int(obj, tags::NUMBER_OF_FRAMES).ok_or_else(|| {
                malformed("its Number of Frames (0028,0008) is not a non-negative integer")
            })?,
        }
    } else {
        0
    };
    if has_pixel_data {
        check_limits(rows, columns, frames, limits)?;
    }

    let transfer_syntax = structure.transfer_syntax.clone();
    let transfer_syntax_name = TransferSyntaxRegistry
        .get(&transfer_syntax)
        .map(|ts| ts.name())
        .unwrap_or(UNKNOWN_TRANSFER_SYNTAX);

    let mut metadata = json::bounded(json::data_set_json(obj));
    if let Some(elements) = metadata.as_object_mut() {
        elements.insert(
            "00083002".into(),
            serde_json::json!({ "vr": "UI", "Value": [transfer_syntax.clone()] }),
        );
    }
    Ok(DicomInfo {
        sop_instance_uid,
        sop_class_uid,
        study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
        series_instance_uid: text(obj, tags::SERIES_INSTANCE_UID),
        patient_id: text(obj, tags::PATIENT_ID),
        patient_name: text(obj, tags::PATIENT_NAME).and_then(|pn| normalize_person_name(&pn)),
        study_date: text(obj, tags::STUDY_DATE).and_then(|d| normalize_date(&d)),
        modality: text(obj, tags::MODALITY),
        body_part_examined: text(obj, tags::BODY_PART_EXAMINED),
        view_position: text(obj, tags::VIEW_POSITION),
        accession_number: text(obj, tags::ACCESSION_NUMBER),
        study_description: text(obj, tags::STUDY_DESCRIPTION),
        series_description: text(obj, tags::SERIES_DESCRIPTION),
        has_pixel_data,
        rows,
        columns,
        frames,
        samples_per_pixel: int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(0),
        bits_allocated: int(obj, tags::BITS_ALLOCATED).unwrap_or(0),
        bits_stored: int(obj, tags::BITS_STORED).unwrap_or(0),
        photometric: text(obj, tags::PHOTOMETRIC_INTERPRETATION),
        transfer_syntax,
        transfer_syntax_name,
        metadata,
    })
}

fn check_limits(rows: u32, columns: u32, frames: u32, limits: &Limits) -> Result<(), ScanError> {
    if rows > limits.max_dimension || columns > limits.max_dimension {
        return Err(ScanError::Dicom {
            detail: format!(
                "has an image of {columns}x{rows} pixels, over the limit of {} pixels per side",
                limits.max_dimension
            ),
        });
    }
    if u64::from(rows) * u64::from(columns) > limits.max_pixels_per_page {
        return Err(ScanError::Dicom {
            detail: format!(
                "has an image of {columns}x{rows} pixels, over the limit of {} pixels per frame",
                limits.max_pixels_per_page
            ),
        });
    }
    if frames > limits.max_pages {
        return Err(ScanError::Dicom {
            detail: format!(
                "has {frames} frames, over the limit of {}",
                limits.max_pages
            ),
        });
    }
    Ok(())
}

fn preview_from(obj: &DefaultDicomObject, info: &DicomInfo) -> Result<GrayImage, ScanError> {
    if !info.has_pixel_data {
        return Err(no_preview("it has no pixel data (7FE0,0010)"));
    }
    let ts_desc = format!(
        "transfer syntax {} ({})",
        info.transfer_syntax, info.transfer_syntax_name
    );
    let ts = TransferSyntaxRegistry
        .get(&info.transfer_syntax)
        .ok_or_else(|| no_preview(format!("{ts_desc} is unknown")))?;
    if !ts.can_decode_all() {
        return Err(no_preview(format!(
            "its pixel data uses {ts_desc}, which this server cannot decode"
        )));
    }
    if info.rows == 0 || info.columns == 0 {
        return Err(no_preview("its image has no Rows or Columns"));
    }
    if info.frames == 0 {
        return Err(no_preview("its Number of Frames is 0"));
    }
    let layout = render::Layout::check(obj, info)?;

    let pixel_data = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| no_preview("it has no pixel data (7FE0,0010)"))?;
    if ts.is_encapsulated_pixel_data() {
        let fragments = pixel_data.value().fragments().unwrap_or(&[]);
        let first = fragments.first().ok_or_else(|| {
            no_preview(format!(
                "its encapsulated pixel data ({ts_desc}) has no fragment"
            ))
        })?;
        codestream::check(&info.transfer_syntax, first, &layout)
            .map_err(|detail| no_preview(format!("its {ts_desc} pixel data {detail}")))?;
    } else {
        let Some(len) = pixel_data.header().length().get() else {
            return Err(no_preview(format!(
                "its pixel data is encapsulated but {ts_desc} is a native one"
            )));
        };
        let needed = layout.frame_bytes();
        if (len as usize) < needed {
            return Err(no_preview(format!(
                "its native pixel data has {len} bytes where the first frame of {}x{} pixels \
                 needs {needed}",
                info.columns, info.rows
            )));
        }
    }

    let decoded = match guarded(|| obj.decode_pixel_data_frame(0)) {
        Some(Ok(decoded)) => decoded,
        // dicom-pixeldata's messages are about the pixel data only, but are not passed on
        // either, to keep one rule: no third-party text in our errors.
        Some(Err(_)) => {
            return Err(no_preview(format!(
                "its {ts_desc} pixel data could not be decoded (corrupt or unsupported stream)"
            )))
        }
        None => {
            return Err(no_preview(format!(
                "its {ts_desc} pixel data made the decoder fail"
            )))
        }
    };
    let image = render::render_frame(decoded.data(), obj, &layout)?;
    Ok(render::downscale(image))
}
