//! chartvault (being written)
