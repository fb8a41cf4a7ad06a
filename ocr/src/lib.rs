//! chartvault-ocr (being written)
