//! The decoder process alone (see `chartvault_ocr::Sandbox`): what `chartvault __decoder-child`
//! runs, in a binary that links no Tesseract. The service starts one for every upload's
//! preflight and every document's decoding; without Tesseract's ~50 shared libraries to load
//! and bind, it starts in about a millisecond instead of ~15. The service uses it when it sits
//! beside the `chartvault` binary (`decoder.program` names another), else itself.

fn main() {
    std::process::exit(chartvault_ocr::serve_child());
}
