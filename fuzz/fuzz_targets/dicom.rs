#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| chartvault_ocr::fuzzing::dicom(data));
