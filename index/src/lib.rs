//! chartvault-index (being written)
