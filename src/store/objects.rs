//! What each encrypted object is: its blob name and the associated data it is bound to.

use chartvault_storage::BlobName;

use crate::domain::{AttachmentId, BatchId, DocumentId, ProductionId};

/// What an object is, which fixes both its blob name and its associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectRef {
    Original(DocumentId),
    PageImage(DocumentId, u32),
    PageText(DocumentId, u32),
    PageWords(DocumentId, u32),
    /// A production's PDF (by the production's id).
    Production(ProductionId),
    /// A release request's supporting document (by the attachment's id).
    Attachment(AttachmentId),
}

impl ObjectRef {
    pub fn blob_name(&self) -> BlobName {
        let name = match self {
            ObjectRef::Original(doc) => format!("originals/{}/{doc}", shard(&doc.0)),
            ObjectRef::PageImage(doc, page) => {
                format!("pages/{}/{doc}/{page}.image", shard(&doc.0))
            }
            ObjectRef::PageText(doc, page) => format!("pages/{}/{doc}/{page}.text", shard(&doc.0)),
            ObjectRef::PageWords(doc, page) => {
                format!("pages/{}/{doc}/{page}.words", shard(&doc.0))
            }
            ObjectRef::Production(id) => format!("productions/{}/{id}.pdf", shard(&id.0)),
            ObjectRef::Attachment(id) => format!("releases/{}/{id}.attachment", shard(&id.0)),
        };
        BlobName::new(name).expect("names built from uuids and numbers are valid blob names")
    }

    /// The prefix under which every page artifact of a document lives.
    pub fn pages_prefix(doc: DocumentId) -> String {
        format!("pages/{}/{doc}/", shard(&doc.0))
    }

    /// Where an upload is staged before it is accepted: encrypted already under the
    /// identity it will have, so acceptance is a rename.
    pub fn staging_name(doc: DocumentId) -> BlobName {
        BlobName::new(format!("staging/{doc}"))
            .expect("names built from uuids are valid blob names")
    }

    /// The object a blob name stands for: the inverse of [`ObjectRef::blob_name`]. Only the
    /// canonical spelling parses (right shard, lowercase hyphenated uuid, page without
    /// leading zeros), so `from_blob_name(n).map(|o| o.blob_name()) == Some(n)`.
    pub fn from_blob_name(name: &BlobName) -> Option<ObjectRef> {
        let components: Vec<&str> = name.components().collect();
        let object = match components.as_slice() {
            ["originals", _shard, doc] => ObjectRef::Original(doc.parse().ok()?),
            ["productions", _shard, file] => {
                ObjectRef::Production(file.strip_suffix(".pdf")?.parse().ok()?)
            }
            ["releases", _shard, file] => {
                ObjectRef::Attachment(file.strip_suffix(".attachment")?.parse().ok()?)
            }
            ["pages", _shard, doc, file] => {
                let doc: DocumentId = doc.parse().ok()?;
                let (page, kind) = file.split_once('.')?;
                let page: u32 = page.parse().ok()?;
                match kind {
                    "image" => ObjectRef::PageImage(doc, page),
                    "text" => ObjectRef::PageText(doc, page),
                    "words" => ObjectRef::PageWords(doc, page),
                    _ => return None,
                }
            }
            _ => return None,
        };
        (object.blob_name() == *name).then_some(object)
    }

    /// The document of a [`ObjectRef::staging_name`], if `name` is one.
    pub fn staged_document(name: &BlobName) -> Option<DocumentId> {
        let doc: DocumentId = name.as_str().strip_prefix("staging/")?.parse().ok()?;
        (ObjectRef::staging_name(doc) == *name).then_some(doc)
    }

    /// The document (or batch) the object belongs to; `None` for a production or an
    /// attachment, which belong to a release.
    pub fn document(&self) -> Option<DocumentId> {
        match *self {
            ObjectRef::Production(_) | ObjectRef::Attachment(_) => None,
            ObjectRef::Original(doc)
            | ObjectRef::PageImage(doc, _)
            | ObjectRef::PageText(doc, _)
            | ObjectRef::PageWords(doc, _) => Some(doc),
        }
    }

    /// The id of the record the object belongs to: its document (or batch), production or
    /// attachment.
    pub fn record_id(&self) -> uuid::Uuid {
        match *self {
            ObjectRef::Production(id) => id.0,
            ObjectRef::Attachment(id) => id.0,
            ObjectRef::Original(doc)
            | ObjectRef::PageImage(doc, _)
            | ObjectRef::PageText(doc, _)
            | ObjectRef::PageWords(doc, _) => doc.0,
        }
    }

    /// The page of a page artifact; `None` for an original.
    pub fn page(&self) -> Option<u32> {
        match *self {
            ObjectRef::Original(_) | ObjectRef::Production(_) | ObjectRef::Attachment(_) => None,
            ObjectRef::PageImage(_, page)
            | ObjectRef::PageText(_, page)
            | ObjectRef::PageWords(_, page) => Some(page),
        }
    }

    /// A batch's file. A batch's objects live in the documents' namespace under the batch's
    /// uuid (`originals/…/{batch}`, `pages/…/{batch}/{n}.image`, with the same associated
    /// data), so a batch and the documents cut from it never share an id and an archive's
    /// names did not change when batches got an id type of their own. These functions and
    /// [`ObjectRef::staged_batch`] are the one place that mapping is made.
    pub fn batch_original(batch: BatchId) -> ObjectRef {
        ObjectRef::Original(DocumentId(batch.0))
    }

    /// The batch a staged upload becomes: an upload is staged under the uuid it will have,
    /// and [`ObjectRef::staging_name`] names it like a document's.
    pub fn staged_batch(staged: DocumentId) -> BatchId {
        BatchId(staged.0)
    }

    /// The image of a batch's page as processed (see [`ObjectRef::batch_original`]).
    pub fn batch_page_image(batch: BatchId, page: u32) -> ObjectRef {
        ObjectRef::PageImage(DocumentId(batch.0), page)
    }

    /// The artifacts of a batch's page still held under the batch.
    pub fn batch_page_artifacts(batch: BatchId, page: u32) -> [ObjectRef; 3] {
        ObjectRef::page_artifacts(DocumentId(batch.0), page)
    }

    /// The three artifacts the worker stores for each page.
    pub fn page_artifacts(doc: DocumentId, page: u32) -> [ObjectRef; 3] {
        [
            ObjectRef::PageImage(doc, page),
            ObjectRef::PageText(doc, page),
            ObjectRef::PageWords(doc, page),
        ]
    }

    pub fn aad(&self) -> Vec<u8> {
        match self {
            ObjectRef::Original(doc) => format!("chartvault:original:{doc}"),
            ObjectRef::PageImage(doc, page) => format!("chartvault:page-image:{doc}:{page}"),
            ObjectRef::PageText(doc, page) => format!("chartvault:page-text:{doc}:{page}"),
            ObjectRef::PageWords(doc, page) => format!("chartvault:page-words:{doc}:{page}"),
            ObjectRef::Production(id) => format!("chartvault:production:{id}"),
            ObjectRef::Attachment(id) => format!("chartvault:release-attachment:{id}"),
        }
        .into_bytes()
    }
}

fn shard(id: &uuid::Uuid) -> String {
    id.simple().to_string()[..2].to_string()
}
