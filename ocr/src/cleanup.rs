//! Page clean-up before OCR, in Rust: resolution normalisation, blank-page detection, skew
//! estimation and rotation. Orientation (0/90/180/270) is Tesseract's OSD, in the pool.
//!
//! Promises:
//! - every function works on 8-bit grayscale "ink dark, paper light" pages and allocates at
//!   most one page-sized buffer;
//! - [`estimate_skew`] answers `None` rather than a guess when the page has no text lines to
//!   measure (photographs, blank pages, a few words);
//! - rotation fills what comes into view with white paper, and keeps the page size.

use image::{imageops, GrayImage, Luma};

/// A pixel darker than this counts as ink.
const INK_THRESHOLD: u8 = 128;

/// How the pages are cleaned up before OCR.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupConfig {
    /// Pages scanned at a higher resolution are downsampled to this before OCR and storage
    /// (Tesseract is most accurate, and fastest, around 300 dpi).
    pub target_dpi: u32,
    /// Detect orientation with Tesseract OSD and turn pages upright.
    pub orientation: bool,
    /// Below this OSD confidence a rotation is only applied if OCR of the turned page is
    /// better than OCR of the page as scanned.
    pub min_orientation_confidence: f32,
    /// Measure skew and rotate the page straight.
    pub deskew: bool,
    /// A page whose ink covers less than this fraction of its area (margins and isolated
    /// specks excluded) is blank: flagged, stored, not OCRed.
    pub blank_max_ink: f32,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            target_dpi: 300,
            orientation: true,
            min_orientation_confidence: 5.0,
            deskew: true,
            blank_max_ink: 0.001,
        }
    }
}

/// Downsamples a page scanned above `target_dpi` (by more than 10%) to `target_dpi`, by area
/// averaging. Returns the page and its resolution after the change.
pub fn normalise_resolution(image: GrayImage, dpi: f32, target_dpi: u32) -> (GrayImage, f32) {
    let target = target_dpi as f32;
    if target_dpi == 0 || dpi <= target * 1.1 {
        return (image, dpi);
    }
    let scale = target / dpi;
    let width = ((image.width() as f32 * scale).round() as u32).max(1);
    let height = ((image.height() as f32 * scale).round() as u32).max(1);
    (imageops::thumbnail(&image, width, height), target)
}

/// The fraction of the page (without a margin of 6% on every side, where scanner edges,
/// shadows and punch holes are) covered by ink, counted in cells of about 0.7 mm: a cell is
/// ink when at least a tenth of its pixels are dark (a pen stroke crossing it), so isolated
/// specks of scanner noise count for nothing.
pub fn ink_coverage(image: &GrayImage, dpi: f32) -> f32 {
    let cells = InkCells::at(dpi);
    let (width, height) = image.dimensions();
    let (margin_x, margin_y) = (width * 6 / 100, height * 6 / 100);
    let (x0, x1) = (margin_x, width.saturating_sub(margin_x));
    let (y0, y1) = (margin_y, height.saturating_sub(margin_y));
    if x1 <= x0 + cells.side || y1 <= y0 + cells.side {
        return 0.0;
    }
    let (columns, rows) = (((x1 - x0) / cells.side) as usize, (y1 - y0) / cells.side);
    let mut ink_cells = 0usize;
    cells.scan(image, (x0, y0), (columns, rows), |_, ink| {
        ink_cells += ink.iter().filter(|&&is_ink| is_ink).count();
    });
    ink_cells as f32 / (columns * rows as usize) as f32
}

/// The part of the page that holds ink, as `(left, top, width, height)` in pixels, with a
/// margin of a sixth of an inch around it; `None` for a page without ink. Ink is counted in
/// cells as for [`ink_coverage`] (a cell needs a tenth of its pixels dark), so dust and
/// isolated specks do not stretch the box; the page's own margins count here, since text
/// can reach into them.
///
/// Recognition reads only this part: Tesseract's page-wide steps (thresholding, connected
/// components, layout) cost in proportion to the area they are given, and most chart pages
/// are a few lines at the top of a letter-size sheet.
pub fn ink_bounds(image: &GrayImage, dpi: f32) -> Option<(u32, u32, u32, u32)> {
    let cells = InkCells::at(dpi);
    let (width, height) = image.dimensions();
    let (columns, rows) = ((width / cells.side) as usize, height / cells.side);
    // In cells: the first and last row and column with an ink cell.
    let (mut left, mut right) = (usize::MAX, 0usize);
    let (mut top, mut bottom) = (None, 0u32);
    cells.scan(image, (0, 0), (columns, rows), |row, ink| {
        let first = ink.iter().position(|&is_ink| is_ink);
        let last = ink.iter().rposition(|&is_ink| is_ink);
        if let (Some(first), Some(last)) = (first, last) {
            left = left.min(first);
            right = right.max(last);
            top.get_or_insert(row);
            bottom = row;
        }
    });
    let top = top?;
    let (side, margin) = (cells.side, (dpi / 6.0).round() as u32);
    let x0 = (left as u32 * side).saturating_sub(margin);
    let y0 = (top * side).saturating_sub(margin);
    let x1 = ((right as u32 + 1) * side + margin).min(width);
    let y1 = ((bottom + 1) * side + margin).min(height);
    Some((x0, y0, x1 - x0, y1 - y0))
}

/// Ink counted in square cells of about 0.7 mm: a cell is ink when at least a tenth of its
/// pixels are dark (a pen stroke crossing it), so isolated specks count for nothing.
struct InkCells {
    /// The cell's side in pixels.
    side: u32,
    /// The dark pixels that make a cell ink.
    min_dark: u16,
}

impl InkCells {
    fn at(dpi: f32) -> InkCells {
        let side = ((dpi / 37.5).round() as u32).clamp(4, 16);
        InkCells {
            side,
            min_dark: u16::try_from((side * side / 10).max(3)).unwrap_or(u16::MAX),
        }
    }

    /// Walks `rows` rows of `columns` cells from `(x0, y0)` (in pixels), handing each row's
    /// index and whether each of its cells is ink to `row_done`.
    fn scan(
        &self,
        image: &GrayImage,
        (x0, y0): (u32, u32),
        (columns, rows): (usize, u32),
        mut row_done: impl FnMut(u32, &[bool]),
    ) {
        let (width, side) = (image.width() as usize, self.side);
        let raw = image.as_raw();
        let mut counts = vec![0u16; columns];
        let mut ink = vec![false; columns];
        for row in 0..rows {
            counts.iter_mut().for_each(|count| *count = 0);
            for y in (y0 + row * side)..(y0 + (row + 1) * side) {
                let start = y as usize * width + x0 as usize;
                let line = &raw[start..][..columns * side as usize];
                for (column, pixels) in line.chunks_exact(side as usize).enumerate() {
                    counts[column] += pixels.iter().filter(|&&p| p < INK_THRESHOLD).count() as u16;
                }
            }
            for (is_ink, &count) in ink.iter_mut().zip(&counts) {
                *is_ink = count >= self.min_dark;
            }
            row_done(row, &ink);
        }
    }
}

/// The page's skew in degrees, clockwise positive (text lines running down to the right),
/// within ±10°; `None` when the page has no text lines to measure it by.
///
/// The method is the projection profile: dark points of a reduced page are projected onto
/// the vertical axis at each candidate angle, and the angle whose profile has the most
/// energy (sharpest lines and gaps) wins: a coarse sweep at a quarter of the resolution,
/// then a fine one around the best at half.
pub fn estimate_skew(image: &GrayImage) -> Option<f32> {
    let coarse = dark_points(image, 4);
    if coarse.len() < 500 {
        return None;
    }
    let angles: Vec<f32> = (-40..=40).map(|step| step as f32 * 0.25).collect();
    let scores: Vec<f64> = angles
        .iter()
        .map(|&angle| profile_energy(&coarse, angle))
        .collect();
    let (best_index, best) = scores
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let mut sorted = scores.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    // Without text lines every angle scores about the same.
    if median <= 0.0 || best / median < 1.15 {
        return None;
    }
    let coarse_angle = angles[best_index];
    let fine = dark_points(image, 2);
    let best_fine = (-15..=15)
        .map(|step| coarse_angle + step as f32 * 0.02)
        .map(|angle| (angle, profile_energy(&fine, angle)))
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(best_fine.0)
}

/// Centres of the `reduction`×`reduction` cells holding at least `reduction` dark pixels, in
/// reduced coordinates, at most about 400,000 of them (evenly thinned).
fn dark_points(image: &GrayImage, reduction: u32) -> Vec<(f32, f32)> {
    let (width, height) = image.dimensions();
    let (columns, rows) = (width / reduction, height / reduction);
    let raw = image.as_raw();
    let mut points = Vec::new();
    let mut counts = vec![0u32; columns as usize];
    for row in 0..rows {
        counts.iter_mut().for_each(|count| *count = 0);
        for y in row * reduction..(row + 1) * reduction {
            let line = &raw[(y * width) as usize..][..(columns * reduction) as usize];
            for (column, pixels) in line.chunks_exact(reduction as usize).enumerate() {
                counts[column] += pixels.iter().filter(|&&p| p < INK_THRESHOLD).count() as u32;
            }
        }
        for (column, &count) in counts.iter().enumerate() {
            if count >= reduction {
                points.push((column as f32, row as f32));
            }
        }
    }
    const MAX_POINTS: usize = 400_000;
    if points.len() > MAX_POINTS {
        let stride = points.len().div_ceil(MAX_POINTS);
        points = points.into_iter().step_by(stride).collect();
    }
    points
}

/// Σ count² over the rows of the points projected at `degrees`.
fn profile_energy(points: &[(f32, f32)], degrees: f32) -> f64 {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let (max_x, max_y) = points
        .iter()
        .fold((0f32, 0f32), |(mx, my), &(x, y)| (mx.max(x), my.max(y)));
    let offset = max_x * sin.abs() + 1.0;
    let bins = (max_y + 2.0 * offset + 2.0) as usize;
    let mut profile = vec![0u32; bins];
    for &(x, y) in points {
        let projected = y * cos - x * sin + offset;
        if let Some(bin) = profile.get_mut(projected.max(0.0) as usize) {
            *bin += 1;
        }
    }
    profile.iter().map(|&c| f64::from(c) * f64::from(c)).sum()
}

/// The page rotated clockwise by `degrees` about its centre (bilinear), same size, with white
/// paper where nothing was.
///
/// Each output row walks its source coordinates incrementally in 16.16 fixed point, and
/// interpolates with 8-bit weights: a 300-dpi letter page turns in a few tens of
/// milliseconds, within one grey level of the exact bilinear result.
pub fn rotate(image: &GrayImage, degrees: f32) -> GrayImage {
    const ONE: i64 = 1 << 16;
    let (width, height) = image.dimensions();
    let mut out = GrayImage::from_pixel(width, height, Luma([255]));
    if width == 0 || height == 0 {
        return out;
    }
    let (sin, cos) = f64::from(degrees).to_radians().sin_cos();
    let (cx, cy) = (
        (f64::from(width) - 1.0) / 2.0,
        (f64::from(height) - 1.0) / 2.0,
    );
    let src = image.as_raw();
    let stride = width as usize;
    let fixed = |value: f64| (value * ONE as f64).round() as i64;
    let (step_x, step_y) = (fixed(cos), fixed(-sin));
    let (max_x, max_y) = (i64::from(width - 1) * ONE, i64::from(height - 1) * ONE);
    for (y, row) in out.chunks_exact_mut(stride).enumerate() {
        let dy = y as f64 - cy;
        // The inverse rotation finds where each pixel comes from; along a row it moves by
        // (cos, -sin) per pixel.
        let mut sx = fixed(cx - cx * cos + dy * sin);
        let mut sy = fixed(cy + cx * sin + dy * cos);
        for pixel in row.iter_mut() {
            if (0..=max_x).contains(&sx) && (0..=max_y).contains(&sy) {
                let (x0, y0) = ((sx >> 16) as usize, (sy >> 16) as usize);
                let x1 = (x0 + 1).min(stride - 1);
                let y1 = (y0 + 1).min(height as usize - 1);
                let fx = ((sx >> 8) & 0xFF) as u32;
                let fy = ((sy >> 8) & 0xFF) as u32;
                let at = |x: usize, y: usize| u32::from(src[y * stride + x]);
                let top = at(x0, y0) * (256 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (256 - fx) + at(x1, y1) * fx;
                *pixel = ((top * (256 - fy) + bottom * fy + (1 << 15)) >> 16) as u8;
            }
            sx += step_x;
            sy += step_y;
        }
    }
    out
}

/// The page at half the resolution in each direction, black and white: a 2×2 cell is ink
/// when its mean is darker than the ink threshold's upper half, so thin strokes survive.
pub fn reduce_binarised(image: &GrayImage) -> GrayImage {
    let (width, height) = (image.width() / 2, image.height() / 2);
    let stride = image.width() as usize;
    let src = image.as_raw();
    let mut out = GrayImage::new(width, height);
    for (y, row) in out.chunks_exact_mut(width.max(1) as usize).enumerate() {
        let top = &src[2 * y * stride..][..2 * width as usize];
        let bottom = &src[(2 * y + 1) * stride..][..2 * width as usize];
        for (x, pixel) in row.iter_mut().enumerate() {
            let sum = u32::from(top[2 * x])
                + u32::from(top[2 * x + 1])
                + u32::from(bottom[2 * x])
                + u32::from(bottom[2 * x + 1]);
            *pixel = if sum < 4 * 160 { 0 } else { 255 };
        }
    }
    out
}

/// The page turned clockwise by a multiple of 90° (`degrees` is 0, 90, 180 or 270).
pub fn rotate_quarter_turns(image: GrayImage, degrees: u16) -> GrayImage {
    match degrees % 360 {
        90 => imageops::rotate90(&image),
        180 => imageops::rotate180(&image),
        270 => imageops::rotate270(&image),
        _ => image,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page with horizontal "text lines": rows of dark dashes, like words.
    fn lined_page(width: u32, height: u32) -> GrayImage {
        let mut page = GrayImage::from_pixel(width, height, Luma([255]));
        for line in 0..((height - 400) / 60) {
            let y = 200 + line * 60;
            let mut x = 200;
            while x + 120 < width - 200 {
                let word = 40 + (x * 7 + line * 13) % 80;
                for yy in y..y + 22 {
                    for xx in x..x + word {
                        page.put_pixel(xx, yy, Luma([0]));
                    }
                }
                x += word + 20;
            }
        }
        page
    }

    #[test]
    fn ink_bounds_hold_the_text_and_ignore_specks() {
        let mut page = GrayImage::from_pixel(2550, 3300, Luma([255]));
        // Three lines of "words" near the top: a progress note.
        for line in 0..3u32 {
            for x in 400..1900 {
                for y in (300 + line * 60)..(322 + line * 60) {
                    page.put_pixel(x, y, Luma([0]));
                }
            }
        }
        // Dust: single dark pixels far from the text.
        for (x, y) in [(5, 5), (2500, 3200), (1200, 3000)] {
            page.put_pixel(x, y, Luma([0]));
        }
        let (left, top, width, height) = ink_bounds(&page, 300.0).expect("ink");
        // The text with a sixth of an inch (50 px) around it, give or take one cell.
        assert!((340..=350).contains(&left), "left {left}");
        assert!((240..=250).contains(&top), "top {top}");
        assert!(
            (1950..=1960).contains(&(left + width)),
            "right {}",
            left + width
        );
        assert!(
            (490..=500).contains(&(top + height)),
            "bottom {}",
            top + height
        );
        assert_eq!(
            ink_bounds(&GrayImage::from_pixel(800, 600, Luma([255])), 300.0),
            None
        );
    }

    #[test]
    fn skew_is_measured_in_both_directions() {
        let page = lined_page(1700, 2200);
        assert!(estimate_skew(&page).unwrap().abs() < 0.05);
        for degrees in [3.0f32, -3.0, 1.2, -7.5] {
            let skewed = rotate(&page, degrees);
            let measured = estimate_skew(&skewed).expect("lines to measure");
            assert!(
                (measured - degrees).abs() < 0.1,
                "rotated by {degrees}, measured {measured}"
            );
            let straightened = rotate(&skewed, -measured);
            let rest = estimate_skew(&straightened).unwrap();
            assert!(rest.abs() < 0.1, "after correction {rest}");
        }
    }

    #[test]
    fn pages_without_lines_have_no_skew() {
        assert_eq!(
            estimate_skew(&GrayImage::from_pixel(800, 1000, Luma([255]))),
            None
        );
        // A photograph-like gradient.
        let gradient = GrayImage::from_fn(800, 1000, |x, y| Luma([((x + y) % 256) as u8]));
        assert_eq!(estimate_skew(&gradient), None);
    }

    #[test]
    fn blank_pages_ignore_specks_and_margins() {
        let mut page = GrayImage::from_pixel(2550, 3300, Luma([255]));
        // Scanner noise: isolated dark pixels, 0.5% of the page.
        let mut state = 12345u64;
        for _ in 0..(2550 * 3300 / 200) {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            let x = (state >> 33) as u32 % 2550;
            let y = (state >> 13) as u32 % 3300;
            page.put_pixel(x, y, Luma([0]));
        }
        // A black scanner edge and a punch hole in the margin.
        for y in 0..3300 {
            for x in 0..40 {
                page.put_pixel(x, y, Luma([0]));
            }
        }
        for y in 1000..1070 {
            for x in 60..130 {
                page.put_pixel(x, y, Luma([10]));
            }
        }
        let ink = ink_coverage(&page, 300.0);
        assert!(ink < 0.0002, "noise counted as ink: {ink}");
        let text = lined_page(2550, 3300);
        let ink = ink_coverage(&text, 300.0);
        assert!(ink > 0.1, "text page ink {ink}");
    }

    #[test]
    fn high_resolution_scans_are_downsampled() {
        let page = GrayImage::from_pixel(5100, 6600, Luma([255]));
        let (page, dpi) = normalise_resolution(page, 600.0, 300);
        assert_eq!(page.dimensions(), (2550, 3300));
        assert_eq!(dpi, 300.0);
        let small = GrayImage::from_pixel(100, 100, Luma([255]));
        let (small, dpi) = normalise_resolution(small, 320.0, 300);
        assert_eq!((small.width(), dpi), (100, 320.0));
    }

    #[test]
    fn rotation_is_within_a_grey_level_of_exact_bilinear() {
        let (width, height) = (301u32, 203u32);
        // Smooth shading and steep edges, as scans have (up to ~40 grey levels a pixel).
        let page = GrayImage::from_fn(width, height, |x, y| {
            let shade = 128.0 + 100.0 * (x as f32 / 5.0).sin() * (y as f32 / 7.0).cos();
            Luma([shade.round() as u8])
        });
        for degrees in [0.37f32, -2.9, 9.5] {
            let fast = rotate(&page, degrees);
            let (sin, cos) = degrees.to_radians().sin_cos();
            let (cx, cy) = ((width as f32 - 1.0) / 2.0, (height as f32 - 1.0) / 2.0);
            let mut compared = 0;
            for y in 2..height - 2 {
                for x in 2..width - 2 {
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    let (sx, sy) = (cx + dx * cos + dy * sin, cy - dx * sin + dy * cos);
                    // Exact bilinear where the source is well inside the page.
                    if sx < 1.0 || sy < 1.0 || sx > width as f32 - 2.0 || sy > height as f32 - 2.0 {
                        continue;
                    }
                    let (x0, y0) = (sx as u32, sy as u32);
                    let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                    let at = |x: u32, y: u32| f32::from(page.get_pixel(x, y)[0]);
                    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1, y0) * fx;
                    let bottom = at(x0, y0 + 1) * (1.0 - fx) + at(x0 + 1, y0 + 1) * fx;
                    let exact = top * (1.0 - fy) + bottom * fy;
                    let got = f32::from(fast.get_pixel(x, y)[0]);
                    assert!(
                        (got - exact).abs() <= 1.5,
                        "{degrees}° at {x},{y}: {got} vs {exact}"
                    );
                    compared += 1;
                }
            }
            assert!(compared > 40_000);
            // What comes into view from outside the page is white paper.
            assert_eq!(fast.get_pixel(0, 0)[0], 255, "{degrees}°");
        }
    }

    #[test]
    fn quarter_turns_swap_sides() {
        let page = GrayImage::from_fn(3, 2, |x, y| Luma([(x + 3 * y) as u8]));
        let turned = rotate_quarter_turns(page.clone(), 90);
        assert_eq!(turned.dimensions(), (2, 3));
        // Clockwise: the bottom-left pixel goes to the top-left.
        assert_eq!(turned.get_pixel(0, 0).0[0], 3);
        assert_eq!(rotate_quarter_turns(page.clone(), 360), page);
    }
}
