//! A data set as DICOM JSON (PS3.18 F.2): what DICOMweb answers for an instance's
//! `/metadata`, and what the archive keeps (sealed) to answer QIDO searches without reading
//! the original again.
//!
//! Every element of the data set (sequences item by item, to the walk's depth bound) except
//! Pixel Data, group lengths and binary values over [`INLINE_BINARY_MAX`] bytes, which a
//! DICOMweb client reads from the instance itself.

use base64::Engine;
use dicom_core::header::Header;
use dicom_core::value::{PrimitiveValue, Value as DicomValue};
use dicom_core::VR;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use serde_json::{json, Map, Value};

/// Binary values (OB, OW, UN, ...) at most this long are kept inline (base64).
pub const INLINE_BINARY_MAX: usize = 4096;

/// The most a data set's JSON may take (it is kept, sealed, beside the document): past it,
/// sequences and binary values are left out, then everything but the attributes searches
/// and viewers need. A file of hundreds of thousands of elements cannot make it large.
pub const METADATA_MAX_BYTES: usize = 1 << 20;

/// What is kept of a data set whose JSON is too large even without its sequences and binary
/// values: identity, study, series and image geometry.
const ESSENTIAL: &[&str] = &[
    "00080005", "00080016", "00080018", "00080020", "00080030", "00080050", "00080060", "00080090",
    "00081030", "0008103E", "00100010", "00100020", "00100021", "00100030", "00100040", "00180015",
    "00185101", "0020000D", "0020000E", "00200010", "00200011", "00200013", "00280002", "00280004",
    "00280008", "00280010", "00280011", "00280100", "00280101",
];

/// The data set's JSON within [`METADATA_MAX_BYTES`] (see there).
pub fn bounded(metadata: Value) -> Value {
    let size = |value: &Value| value.to_string().len();
    if size(&metadata) <= METADATA_MAX_BYTES {
        return metadata;
    }
    let Value::Object(elements) = metadata else {
        return Value::Object(Map::new());
    };
    let flat: Map<String, Value> = elements
        .iter()
        .filter(|(_, e)| e["vr"] != "SQ" && e.get("InlineBinary").is_none())
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    if size(&Value::Object(flat.clone())) <= METADATA_MAX_BYTES {
        return Value::Object(flat);
    }
    let essential: Map<String, Value> = flat
        .into_iter()
        .filter(|(k, e)| ESSENTIAL.contains(&k.as_str()) && e.to_string().len() <= 4096)
        .collect();
    Value::Object(essential)
}

/// The first value of an element of a DICOM JSON data set, as text (`None` when absent or
/// not text).
pub fn first_text<'a>(metadata: &'a Value, tag: &str) -> Option<&'a str> {
    metadata[tag]["Value"][0]
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The data set's elements as a DICOM JSON object (keys `GGGGEEEE`, upper-case hex).
pub fn data_set_json(obj: &InMemDicomObject) -> Value {
    let mut out = Map::new();
    for element in obj {
        let tag = element.tag();
        if tag == tags::PIXEL_DATA || tag.element() == 0 {
            continue;
        }
        if let Some(value) = element_json(element.vr(), element.value()) {
            out.insert(format!("{:04X}{:04X}", tag.group(), tag.element()), value);
        }
    }
    Value::Object(out)
}

fn element_json(
    vr: VR,
    value: &DicomValue<InMemDicomObject, dicom_object::mem::InMemFragment>,
) -> Option<Value> {
    let vr_name = vr.to_string();
    let primitive = match value {
        DicomValue::Sequence(sequence) => {
            let items: Vec<Value> = sequence.items().iter().map(data_set_json).collect();
            return Some(if items.is_empty() {
                json!({ "vr": "SQ" })
            } else {
                json!({ "vr": "SQ", "Value": items })
            });
        }
        // Encapsulated data (compressed pixels, or a fragment sequence elsewhere): bulk.
        DicomValue::PixelSequence(_) => return None,
        DicomValue::Primitive(primitive) => primitive,
    };
    if matches!(primitive, PrimitiveValue::Empty) {
        return Some(json!({ "vr": vr_name }));
    }
    let values: Vec<Value> = match vr {
        VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN => {
            let bytes = primitive.to_bytes();
            if bytes.len() > INLINE_BINARY_MAX {
                return None;
            }
            return Some(json!({
                "vr": vr_name,
                "InlineBinary": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }));
        }
        VR::PN => primitive
            .to_multi_str()
            .iter()
            .map(|name| person_name(trimmed(name)))
            .collect(),
        VR::AT => match primitive {
            PrimitiveValue::Tags(values) => values
                .iter()
                .map(|t| Value::String(format!("{:04X}{:04X}", t.group(), t.element())))
                .collect(),
            _ => return None,
        },
        VR::US | VR::SS | VR::UL | VR::SL | VR::UV | VR::SV => match primitive {
            PrimitiveValue::U64(values) => values.iter().map(|v| json!(v)).collect(),
            _ => primitive
                .to_multi_int::<i64>()
                .ok()?
                .into_iter()
                .map(|v| json!(v))
                .collect(),
        },
        VR::FL | VR::FD => primitive
            .to_multi_float64()
            .ok()?
            .into_iter()
            .map(number)
            .collect(),
        VR::IS => primitive
            .to_multi_str()
            .iter()
            .map(|s| match trimmed(s).parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) if trimmed(s).is_empty() => Value::Null,
                Err(_) => Value::String(trimmed(s).to_string()),
            })
            .collect(),
        VR::DS => primitive
            .to_multi_str()
            .iter()
            .map(|s| match trimmed(s).parse::<f64>() {
                Ok(n) => number(n),
                Err(_) if trimmed(s).is_empty() => Value::Null,
                Err(_) => Value::String(trimmed(s).to_string()),
            })
            .collect(),
        // Texts that may hold a backslash are one value.
        VR::LT | VR::ST | VR::UT | VR::UR => {
            vec![Value::String(
                primitive.to_str().trim_end_matches([' ', '\0']).to_string(),
            )]
        }
        _ => primitive
            .to_multi_str()
            .iter()
            .map(|s| {
                let s = trimmed(s);
                if s.is_empty() {
                    Value::Null
                } else {
                    Value::String(s.to_string())
                }
            })
            .collect(),
    };
    if values.iter().all(Value::is_null) {
        return Some(json!({ "vr": vr_name }));
    }
    Some(json!({ "vr": vr_name, "Value": values }))
}

fn trimmed(s: &str) -> &str {
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

/// A float as a JSON number (NaN and infinities, which JSON has not, as strings).
fn number(value: f64) -> Value {
    serde_json::Number::from_f64(value)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(value.to_string()))
}

/// A PN value as its component groups: `Alphabetic=Ideographic=Phonetic`.
fn person_name(name: &str) -> Value {
    if name.is_empty() {
        return Value::Null;
    }
    let mut groups = Map::new();
    for (key, group) in ["Alphabetic", "Ideographic", "Phonetic"]
        .into_iter()
        .zip(name.split('='))
    {
        if !group.is_empty() {
            groups.insert(key.to_string(), Value::String(group.to_string()));
        }
    }
    Value::Object(groups)
}
