//! chartvault-storage (being written)
