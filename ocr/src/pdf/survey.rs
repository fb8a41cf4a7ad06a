//! A [`Device`] that renders nothing: it records where images are placed and which glyphs
//! (with their Unicode text and positions) are shown, so a page's native resolution and its
//! text layer can be found without decoding any pixel data.

use hayro::hayro_interpret::font::GlyphRun;
use hayro::hayro_interpret::{
    BlendMode, ClipPath, Device, DrawMode, DrawProps, Image, ImageDrawProps, SoftMask,
};
use hayro::kurbo::{Affine, BezPath, Point, Rect, Shape, Vec2};

/// More glyphs than this on one page are not recorded (bounded memory on hostile input;
/// a dense born-digital page has a few thousand).
const MAX_GLYPHS: usize = 500_000;
/// More image placements than this on one page are not recorded.
const MAX_IMAGES: usize = 100_000;

/// Glyph-space extent used for a glyph's box: the advance horizontally, and from the
/// descender to the ascender of a typical Latin font vertically (units of 1/1000 em).
const DESCENT: f64 = -210.0;
const ASCENT: f64 = 790.0;
/// Advance assumed for a glyph whose font states none (1/1000 em).
const DEFAULT_ADVANCE: f64 = 500.0;

/// One image drawn on the page, in the survey's device space.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlacedImage {
    /// The image's bounding box on the page.
    pub bbox: Rect,
    /// Image pixels per device unit along the image's own x and y axes.
    pub density: (f64, f64),
}

/// One shown glyph, in the survey's device space.
#[derive(Debug, Clone)]
pub(crate) struct PlacedGlyph {
    /// Its Unicode text (`None` when the font gives no mapping).
    pub text: Option<String>,
    /// Axis-aligned box around the glyph's advance × (descender..ascender).
    pub bbox: Rect,
    /// Axis-aligned box around the glyph's outline, where it puts ink; `None` for invisible
    /// text (render modes 3 and 7, as OCR text layers are written), for a glyph without an
    /// outline (a space, a Type 3 glyph), and when the survey was not asked for ink.
    pub ink: Option<Rect>,
    /// Origin on the baseline.
    pub origin: Point,
    /// Vector from the origin to the next glyph's origin (the advance).
    pub advance: Vec2,
    /// Length of one em along the glyph's vertical axis (the font size on the page).
    pub em: f64,
}

/// What a page draws, without the pixels.
#[derive(Default)]
pub(crate) struct Survey {
    pub images: Vec<PlacedImage>,
    pub glyphs: Vec<PlacedGlyph>,
    /// Whether to find each glyph's ink box (building its outline costs time; only the text
    /// layer needs it).
    pub want_ink: bool,
    /// The last run's first glyph transform, to skip the stroke pass of fill-and-stroke text.
    last_run: Option<(usize, Affine)>,
}

impl<'a> Device<'a> for Survey {
    fn draw_path(&mut self, _: &BezPath, _: DrawProps<'a>, _: &DrawMode) {}
    fn push_clip_path(&mut self, _: &ClipPath) {}
    fn push_transparency_group(&mut self, _: f32, _: Option<SoftMask<'a>>, _: BlendMode) {}
    fn pop_clip(&mut self) {}
    fn pop_transparency_group(&mut self) {}

    fn draw_image(&mut self, image: Image<'a, '_>, props: ImageDrawProps<'a>) {
        if self.images.len() >= MAX_IMAGES {
            return;
        }
        // `props.transform` maps image pixel space (x right, y down, one unit per pixel) to
        // device space. Reading the size only looks at the image dictionary: nothing is decoded.
        let (width, height) = (f64::from(image.width()), f64::from(image.height()));
        let t = props.transform;
        let x_axis = t * Point::new(1.0, 0.0) - t * Point::ZERO;
        let y_axis = t * Point::new(0.0, 1.0) - t * Point::ZERO;
        let (x_len, y_len) = (x_axis.hypot(), y_axis.hypot());
        if !(x_len.is_finite() && y_len.is_finite()) || x_len <= 0.0 || y_len <= 0.0 {
            return;
        }
        let bbox = t.transform_rect_bbox(Rect::new(0.0, 0.0, width, height));
        self.images.push(PlacedImage {
            bbox,
            density: (1.0 / x_len, 1.0 / y_len),
        });
    }

    fn draw_glyph_run(&mut self, run: &GlyphRun<'_, 'a>, props: DrawProps<'a>, mode: &DrawMode) {
        let glyphs = run.glyphs();
        let Some(first) = glyphs.first() else {
            return;
        };
        // Fill-and-stroke text is reported twice, fill first: keep one copy.
        let key = (glyphs.len(), props.transform * first.transform());
        if matches!(mode, DrawMode::Stroke(_)) && self.last_run == Some(key) {
            return;
        }
        self.last_run = Some(key);
        let visible = self.want_ink && !matches!(mode, DrawMode::Invisible);

        for glyph in glyphs {
            if self.glyphs.len() >= MAX_GLYPHS {
                return;
            }
            let t = props.transform * glyph.transform();
            let (advance, ink) = match &**glyph {
                hayro::hayro_interpret::font::Glyph::Outline(outline) => {
                    let ink = visible
                        .then(|| outline.outline())
                        .filter(|path| !path.elements().is_empty())
                        .map(|path| t.transform_rect_bbox(path.bounding_box()))
                        .filter(|ink| ink.is_finite() && ink.area() > 0.0);
                    let advance = outline
                        .advance_width()
                        .map(f64::from)
                        .filter(|a| a.is_finite() && *a > 0.0)
                        .unwrap_or(DEFAULT_ADVANCE);
                    (advance, ink)
                }
                // Type 3 glyph space is the font's own matrix, not 1/1000 em: assume a
                // typical advance.
                hayro::hayro_interpret::font::Glyph::Type3(_) => (DEFAULT_ADVANCE, None),
            };
            let origin = t * Point::ZERO;
            let advance_vec = t * Point::new(advance, 0.0) - origin;
            let em = (t * Point::new(0.0, 1000.0) - origin).hypot();
            let bbox = t.transform_rect_bbox(Rect::new(0.0, DESCENT, advance, ASCENT));
            if !(origin.is_finite() && bbox.is_finite() && em.is_finite()) {
                continue;
            }
            let text = glyph.as_unicode().map(|text| match text {
                hayro::hayro_interpret::hayro_cmap::BfString::Char(c) => c.to_string(),
                hayro::hayro_interpret::hayro_cmap::BfString::String(s) => s,
            });
            self.glyphs.push(PlacedGlyph {
                text,
                bbox,
                ink,
                origin,
                advance: advance_vec,
                em,
            });
        }
    }
}
