//! From decoded samples to the 8-bit preview: Modality LUT, VOI, MONOCHROME1 inversion,
//! colour to luma, downscaling. See [`super::dicom_preview`] for the contract.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
use dicom_object::DefaultDicomObject;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;
use image::GrayImage;

use super::{no_preview, DicomInfo};
use crate::ScanError;

/// The longer side of a preview is at most this many pixels (larger images are downscaled
/// by area averaging, keeping the aspect ratio).
pub const DICOM_PREVIEW_MAX_SIDE: u32 = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Photometric {
    Monochrome1,
    Monochrome2,
    Rgb,
    YbrFull,
}

/// The pixel layout of the first frame, checked to be one this module renders.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub rows: u32,
    pub cols: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits_stored: u16,
    /// Right shift that brings the stored bits down to bit 0 (native pixel data only).
    pub shift: u16,
    pub signed: bool,
    /// Colour planes one after the other (native pixel data with Planar Configuration 1).
    pub planar: bool,
    pub photometric: Photometric,
}

impl Layout {
    pub(super) fn check(obj: &DefaultDicomObject, info: &DicomInfo) -> Result<Layout, ScanError> {
        let encapsulated = TransferSyntaxRegistry
            .get(&info.transfer_syntax)
            .is_some_and(|ts| ts.is_encapsulated_pixel_data());
        let spp = info.samples_per_pixel.max(1);
        let bits_allocated = info.bits_allocated;
        let name = info.photometric.as_deref().unwrap_or("");
        let photometric = match (spp, name) {
            (1, "MONOCHROME1") => Photometric::Monochrome1,
            (1, "MONOCHROME2") => Photometric::Monochrome2,
            // Decoded colour JPEG / JPEG 2000 comes out as RGB whatever the attribute says.
            (3, _) if encapsulated => Photometric::Rgb,
            (3, "RGB") => Photometric::Rgb,
            (3, "YBR_FULL") => Photometric::YbrFull,
            _ => {
                return Err(no_preview(format!(
                    "its photometric interpretation {} with {spp} samples per pixel is not \
                     rendered",
                    if name.is_empty() { "(none)" } else { name }
                )))
            }
        };
        let supported_bits = match photometric {
            Photometric::Rgb | Photometric::YbrFull => bits_allocated == 8,
            _ if encapsulated => matches!(bits_allocated, 8 | 16),
            _ => matches!(bits_allocated, 8 | 16 | 32),
        };
        if !supported_bits {
            return Err(no_preview(format!(
                "its {bits_allocated} bits allocated per sample are not rendered"
            )));
        }
        let bits_stored = match info.bits_stored {
            0 => bits_allocated,
            b => b.min(bits_allocated),
        };
        // A High Bit outside the allocated bits (65535, say) is ignored.
        let high_bit: u16 = super::int(obj, tags::HIGH_BIT)
            .filter(|&bit: &u16| bit < bits_allocated)
            .unwrap_or(bits_stored - 1);
        let shift = if encapsulated {
            0
        } else {
            (high_bit + 1)
                .saturating_sub(bits_stored)
                .min(bits_allocated - bits_stored)
        };
        let signed = super::int::<u16>(obj, tags::PIXEL_REPRESENTATION) == Some(1);
        let planar = !encapsulated
            && spp == 3
            && super::int::<u16>(obj, tags::PLANAR_CONFIGURATION) == Some(1);
        Ok(Layout {
            rows: info.rows,
            cols: info.columns,
            samples_per_pixel: spp,
            bits_allocated,
            bits_stored,
            shift,
            signed,
            planar,
            photometric,
        })
    }

    fn pixels(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    pub(super) fn frame_bytes(&self) -> usize {
        self.pixels() * usize::from(self.samples_per_pixel) * usize::from(self.bits_allocated / 8)
    }
}

/// The grey level shown for a modality value (after rescale).
#[derive(Debug, Clone)]
enum Voi {
    /// PS3.3 C.11.2.1.2.1 (`LINEAR`).
    Linear { center: f64, width: f64 },
    /// PS3.3 C.11.2.1.3.2 (`LINEAR_EXACT`).
    LinearExact { center: f64, width: f64 },
    /// PS3.3 C.11.2.1.3.1 (`SIGMOID`).
    Sigmoid { center: f64, width: f64 },
    /// A VOI LUT Sequence item.
    Table {
        first: f64,
        data: Vec<u16>,
        max: f64,
    },
    /// No VOI in the file: the frame's own range.
    MinMax { low: f64, high: f64 },
}

impl Voi {
    /// 0.0 (black) ..= 1.0 (white), before any MONOCHROME1 inversion.
    fn apply(&self, x: f64) -> f64 {
        match *self {
            Voi::Linear { center, width } => {
                let low = center - 0.5 - (width - 1.0) / 2.0;
                let high = center - 0.5 + (width - 1.0) / 2.0;
                if x <= low {
                    0.0
                } else if x > high {
                    1.0
                } else {
                    (x - (center - 0.5)) / (width - 1.0) + 0.5
                }
            }
            Voi::LinearExact { center, width } => {
                if x <= center - width / 2.0 {
                    0.0
                } else if x > center + width / 2.0 {
                    1.0
                } else {
                    (x - center) / width + 0.5
                }
            }
            Voi::Sigmoid { center, width } => 1.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
            Voi::Table {
                first,
                ref data,
                max,
            } => {
                let index = (x.round() - first).clamp(0.0, (data.len() - 1) as f64) as usize;
                f64::from(data[index]) / max
            }
            Voi::MinMax { low, high } => {
                if high > low {
                    (x - low) / (high - low)
                } else {
                    0.0
                }
            }
        }
    }
}

fn float(obj: &DefaultDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)?
        .to_multi_float64()
        .ok()?
        .first()
        .copied()
        .filter(|v| v.is_finite())
}

/// The window or VOI LUT the file asks for, if any usable one.
fn file_voi(obj: &DefaultDicomObject, signed: bool) -> Option<Voi> {
    if let (Some(center), Some(width)) = (
        float(obj, tags::WINDOW_CENTER),
        float(obj, tags::WINDOW_WIDTH),
    ) {
        let function = super::text(obj, tags::VOILUT_FUNCTION);
        match function.as_deref() {
            Some("LINEAR_EXACT") if width > 0.0 => return Some(Voi::LinearExact { center, width }),
            Some("SIGMOID") if width > 0.0 => return Some(Voi::Sigmoid { center, width }),
            Some("LINEAR") | None if width >= 1.0 => return Some(Voi::Linear { center, width }),
            _ => {}
        }
    }
    let item = obj.get(tags::VOILUT_SEQUENCE)?.items()?.first()?;
    let descriptor: Vec<i64> = item.get(tags::LUT_DESCRIPTOR)?.to_multi_int().ok()?;
    let data: Vec<u16> = item.get(tags::LUT_DATA)?.to_multi_int().ok()?;
    let (&entries, &first, &bits) = (descriptor.first()?, descriptor.get(1)?, descriptor.get(2)?);
    let entries = if entries == 0 { 65_536 } else { entries };
    if data.is_empty() || data.len() as i64 != entries {
        return None;
    }
    // The first mapped value is US or SS as the pixels are.
    let first = if signed && first >= 32_768 {
        first - 65_536
    } else {
        first
    };
    let max = if (8..=16).contains(&bits) {
        f64::from((1u32 << bits) - 1)
    } else {
        f64::from(*data.iter().max()?)
    };
    (max > 0.0).then_some(Voi::Table {
        first: first as f64,
        data,
        max,
    })
}

/// Renders the first frame of `data` (as decoded by dicom-pixeldata) at full size.
pub(super) fn render_frame(
    data: &[u8],
    obj: &DefaultDicomObject,
    layout: &Layout,
) -> Result<GrayImage, ScanError> {
    if data.len() < layout.frame_bytes() {
        return Err(no_preview(format!(
            "its decoded first frame has {} bytes where {}x{} pixels need {}",
            data.len(),
            layout.cols,
            layout.rows,
            layout.frame_bytes()
        )));
    }
    let pixels = match layout.photometric {
        Photometric::Rgb | Photometric::YbrFull => luma(data, layout),
        Photometric::Monochrome1 | Photometric::Monochrome2 => monochrome(data, obj, layout),
    };
    GrayImage::from_raw(layout.cols, layout.rows, pixels)
        .ok_or_else(|| no_preview("its image size is inconsistent"))
}

fn luma(data: &[u8], layout: &Layout) -> Vec<u8> {
    let n = layout.pixels();
    (0..n)
        .map(|i| {
            let (a, b, c) = if layout.planar {
                (data[i], data[n + i], data[2 * n + i])
            } else {
                (data[3 * i], data[3 * i + 1], data[3 * i + 2])
            };
            match layout.photometric {
                Photometric::YbrFull => a,
                _ => {
                    ((299 * u32::from(a) + 587 * u32::from(b) + 114 * u32::from(c) + 500) / 1000)
                        as u8
                }
            }
        })
        .collect()
}

/// Stored values of the frame, masked and sign-extended.
fn stored_values<'a>(data: &'a [u8], layout: &'a Layout) -> impl Iterator<Item = i64> + 'a {
    let bytes = usize::from(layout.bits_allocated / 8);
    let bits = u32::from(layout.bits_stored);
    let mask: u64 = (1u64 << bits) - 1;
    let shift = u32::from(layout.shift);
    let signed = layout.signed;
    data.chunks_exact(bytes)
        .take(layout.pixels())
        .map(move |c| {
            let raw = match bytes {
                1 => u64::from(c[0]),
                2 => u64::from(u16::from_le_bytes([c[0], c[1]])),
                _ => u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            };
            let v = (raw >> shift) & mask;
            if signed && v >> (bits - 1) & 1 == 1 {
                v as i64 - (1i64 << bits)
            } else {
                v as i64
            }
        })
}

fn monochrome(data: &[u8], obj: &DefaultDicomObject, layout: &Layout) -> Vec<u8> {
    let slope = float(obj, tags::RESCALE_SLOPE)
        .filter(|s| *s != 0.0)
        .unwrap_or(1.0);
    let intercept = float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
    let modality = |v: i64| v as f64 * slope + intercept;
    let voi = file_voi(obj, layout.signed).unwrap_or_else(|| {
        let (mut low, mut high) = (i64::MAX, i64::MIN);
        for v in stored_values(data, layout) {
            low = low.min(v);
            high = high.max(v);
        }
        let (a, b) = (modality(low), modality(high));
        Voi::MinMax {
            low: a.min(b),
            high: a.max(b),
        }
    });
    let invert = layout.photometric == Photometric::Monochrome1;
    let display = |v: i64| -> u8 {
        let level = voi.apply(modality(v)).clamp(0.0, 1.0);
        let level = if invert { 1.0 - level } else { level };
        (level * 255.0).round() as u8
    };
    if layout.bits_stored <= 16 {
        // One lookup table over every possible stored value.
        let bits = u32::from(layout.bits_stored);
        let offset: i64 = if layout.signed { 1 << (bits - 1) } else { 0 };
        let table: Vec<u8> = (0..1i64 << bits).map(|i| display(i - offset)).collect();
        stored_values(data, layout)
            .map(|v| table[(v + offset) as usize])
            .collect()
    } else {
        stored_values(data, layout).map(display).collect()
    }
}

/// Downscales so that the longer side is at most [`DICOM_PREVIEW_MAX_SIDE`].
pub(super) fn downscale(image: GrayImage) -> GrayImage {
    let (w, h) = image.dimensions();
    let long = w.max(h);
    if long <= DICOM_PREVIEW_MAX_SIDE {
        return image;
    }
    let scale = f64::from(DICOM_PREVIEW_MAX_SIDE) / f64::from(long);
    let nw = ((f64::from(w) * scale).round() as u32).clamp(1, DICOM_PREVIEW_MAX_SIDE);
    let nh = ((f64::from(h) * scale).round() as u32).clamp(1, DICOM_PREVIEW_MAX_SIDE);
    image::imageops::thumbnail(&image, nw, nh)
}
