//! Bounds on drawing one page: the images it can reach must be within the page limits by their
//! declared size (the JBIG2, CCITT and JPEG decoders allocate what it declares), and the
//! drawing, with every form XObject expanded as often as it is invoked, must stay under
//! [`MAX_PAGE_OPERATIONS`] operators (a few nested forms each drawing the next ten times
//! would otherwise keep the renderer busy for ever).

use std::collections::HashMap;

use hayro::hayro_syntax::content::ops::TypedInstruction;
use hayro::hayro_syntax::content::TypedIter;
use hayro::hayro_syntax::object::dict::keys::{
    FORM, HEIGHT, IMAGE, MASK, RESOURCES, SMASK, SUBTYPE, WIDTH, XOBJECT,
};
use hayro::hayro_syntax::object::{Dict, Name, ObjectIdentifier, Stream};
use hayro::hayro_syntax::page::Page;

use crate::{Limits, ScanError};

/// Operators one page may execute, forms expanded (a dense born-digital page has ~10⁵).
const MAX_PAGE_OPERATIONS: u64 = 20_000_000;
/// How deep forms may nest (hayro stops at 50).
const MAX_FORM_DEPTH: u32 = 50;

/// Checks the images a page can draw and how many operators drawing it executes.
pub(in crate::pdf) fn check_page(
    page: &Page<'_>,
    limits: &Limits,
    number: usize,
) -> Result<(), ScanError> {
    let mut walk = Walk {
        limits,
        number,
        cost: HashMap::new(),
        operations: 0,
    };
    let xobjects = page.resources().x_objects.clone();
    let operations = walk.content(page.typed_operations(), &xobjects, 0)?;
    if operations > MAX_PAGE_OPERATIONS {
        return Err(too_complex(number));
    }
    Ok(())
}

fn too_complex(number: usize) -> ScanError {
    ScanError::Pdf {
        page: Some(number),
        detail: format!(
            "drawing it takes more than {MAX_PAGE_OPERATIONS} operations (forms drawn within forms)"
        ),
    }
}

struct Walk<'l> {
    limits: &'l Limits,
    number: usize,
    /// Expanded operator count of each form (or 1 for an image), by object.
    cost: HashMap<ObjectIdentifier, u64>,
    /// Operators read so far, across all streams (bounds the work of the walk itself).
    operations: u64,
}

impl Walk<'_> {
    /// Expanded operator count of a content stream drawn with `resources`.
    fn content(
        &mut self,
        mut ops: TypedIter<'_>,
        xobjects: &Dict<'_>,
        depth: u32,
    ) -> Result<u64, ScanError> {
        let mut total = 0u64;
        while let Some(op) = ops.next() {
            total += 1;
            self.operations += 1;
            if self.operations > MAX_PAGE_OPERATIONS {
                return Err(too_complex(self.number));
            }
            if let TypedInstruction::XObject(invocation) = op {
                let Some(stream) = xobjects.get::<Stream<'_>>(invocation.0) else {
                    continue;
                };
                total = total.saturating_add(self.xobject(&stream, xobjects, depth + 1)?);
                if total > MAX_PAGE_OPERATIONS {
                    return Err(too_complex(self.number));
                }
            }
        }
        Ok(total)
    }

    /// Expanded cost of drawing an XObject once; checks images against the limits.
    fn xobject(
        &mut self,
        stream: &Stream<'_>,
        parent_xobjects: &Dict<'_>,
        depth: u32,
    ) -> Result<u64, ScanError> {
        let id = stream.obj_id();
        if let Some(cost) = self.cost.get(&id) {
            return Ok(*cost);
        }
        if depth > MAX_FORM_DEPTH {
            return Ok(1); // hayro does not draw deeper
        }
        // A form that (indirectly) invokes itself: hayro stops at its depth limit; count it
        // as if it recursed to that depth, which the total cap then rejects if it fans out.
        self.cost.insert(id, 1);
        let dict = stream.dict();
        let subtype = dict.get::<Name<'_>>(SUBTYPE);
        let subtype: Option<&[u8]> = subtype.as_deref();
        let cost = match subtype {
            Some(s) if s == IMAGE => {
                self.check_image(dict)?;
                for mask in [SMASK, MASK] {
                    if let Some(mask) = dict.get::<Stream<'_>>(mask) {
                        self.check_image(mask.dict())?;
                    }
                }
                1
            }
            Some(s) if s == FORM => {
                let data = stream.decoded_data().map_err(|_| ScanError::Pdf {
                    page: Some(self.number),
                    detail: "a form on it does not decode".to_owned(),
                })?;
                // A form without resources of its own uses its parent's (as hayro does).
                let xobjects = match dict.get::<Dict<'_>>(RESOURCES) {
                    Some(resources) => resources.get::<Dict<'_>>(XOBJECT).unwrap_or_default(),
                    None => parent_xobjects.clone(),
                };
                self.content(TypedIter::new(&data), &xobjects, depth)?
            }
            _ => 1,
        };
        self.cost.insert(id, cost);
        Ok(cost)
    }

    fn check_image(&self, dict: &Dict<'_>) -> Result<(), ScanError> {
        let width = dict.get::<u32>(WIDTH).unwrap_or(0);
        let height = dict.get::<u32>(HEIGHT).unwrap_or(0);
        // Pixels, not sides: decoding costs memory by the pixel, and the page is rendered at
        // a size within the limits whatever the image's.
        if u64::from(width) * u64::from(height) > self.limits.max_pixels_per_page {
            return Err(ScanError::Pdf {
                page: Some(self.number),
                detail: format!(
                    "an image on it is {width}x{height} pixels, over the limit of {} pixels per page",
                    self.limits.max_pixels_per_page
                ),
            });
        }
        Ok(())
    }
}
