//! Which files of an index directory belong to its current commit.
//!
//! The one reader of that list, used by the offline check ([`crate::verify_index_dir`]) and by
//! the app's online backup: `meta.json` (what tantivy commits through), `.managed.json`
//! (tantivy's list of the files it manages), and for each segment `meta.json` names one file
//! per extension of tantivy's segment plugins (and of custom plugins the index records), plus
//! the delete bitset of a segment with deletes. Anything else is being written, or obsolete
//! and waiting for tantivy's garbage collection.

use std::collections::BTreeSet;
use std::path::Path;

use chartvault_storage::{DataKey, KeyId};
use tantivy::directory::Directory;
use tantivy::fastfield::FastFieldsPlugin;
use tantivy::index::{InvertedIndexPlugin, SegmentId};
use tantivy::store::StorePlugin;
use tantivy::SegmentPlugin;

use crate::encrypted_directory::EncryptedDirectory;
use crate::error::IndexError;

/// The file tantivy commits through.
pub const META_FILE: &str = "meta.json";
/// tantivy's list of the files it manages (and garbage-collects).
pub const MANAGED_FILE: &str = ".managed.json";

/// The segment files of one commit of an index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveIndexFiles {
    segment_files: BTreeSet<String>,
}

impl LiveIndexFiles {
    /// The files `meta_json` (the plaintext of `meta.json`) names; `None` if it does not
    /// parse as tantivy index metadata.
    pub fn from_meta_json(meta_json: &[u8]) -> Option<LiveIndexFiles> {
        let meta: serde_json::Value = serde_json::from_slice(meta_json).ok()?;
        let builtin: [&dyn SegmentPlugin; 3] =
            [&InvertedIndexPlugin, &FastFieldsPlugin, &StorePlugin];
        let mut extensions: Vec<String> = builtin
            .iter()
            .flat_map(|plugin| plugin.extensions().iter().map(|ext| ext.to_string()))
            .collect();
        if let Some(custom) = meta.get("persisted_custom_extensions") {
            for extension in custom.as_array()? {
                extensions.push(extension.as_str()?.to_string());
            }
        }
        let mut segment_files = BTreeSet::new();
        for segment in meta.get("segments")?.as_array()? {
            let id = SegmentId::from_uuid_string(segment.get("segment_id")?.as_str()?).ok()?;
            let id = id.uuid_string();
            for extension in &extensions {
                segment_files.insert(format!("{id}.{extension}"));
            }
            match segment.get("deletes") {
                None | Some(serde_json::Value::Null) => {}
                Some(deletes) => {
                    let opstamp = deletes.get("opstamp")?.as_u64()?;
                    segment_files.insert(format!("{id}.{opstamp}.del"));
                }
            }
        }
        Some(LiveIndexFiles { segment_files })
    }

    /// Reads the current `meta.json` of the encrypted index in `dir` through the index key
    /// (without opening tantivy, so never taking the writer lock).
    pub fn read(dir: &Path, key: DataKey, key_id: KeyId) -> Result<LiveIndexFiles, IndexError> {
        let directory = EncryptedDirectory::open_mmap(dir, key, key_id, 0)?;
        let meta = directory
            .atomic_read(Path::new(META_FILE))
            .map_err(|error| IndexError::CorruptMeta(format!("reading {META_FILE}: {error}")))?;
        LiveIndexFiles::from_meta_json(&meta)
            .ok_or_else(|| IndexError::CorruptMeta(format!("{META_FILE} is not index metadata")))
    }

    /// The segment files of the commit (not `meta.json` or `.managed.json`).
    pub fn segment_files(&self) -> &BTreeSet<String> {
        &self.segment_files
    }

    /// Whether the file `name` belongs to the commit.
    pub fn is_live(&self, name: &str) -> bool {
        name == META_FILE || name == MANAGED_FILE || self.segment_files.contains(name)
    }
}
