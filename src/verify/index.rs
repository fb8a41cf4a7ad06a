//! The index half of `verify`: every index file authenticated under the index key, and the
//! index's pages cross-checked with the `pages` rows. The index is opened without a writer.

use std::collections::BTreeSet;

use chartvault_index::{EncryptedDirectory, SearchIndex};

use super::{Finding, FindingKind, Keyring, VerifyReport};
use crate::config::Config;
use crate::db::{Db, Inventory};
use crate::domain::DocumentId;

pub(super) async fn check_index(
    config: &Config,
    db: &Db,
    inventory: &Inventory,
    keyring: &Keyring,
    report: &mut VerifyReport,
) -> anyhow::Result<()> {
    let index_dir = config.index_dir();
    let Some((key_id, key)) = keyring.service_key(inventory, "index")? else {
        if !inventory.pages.is_empty() {
            report.findings.push(Finding::new(
                FindingKind::IndexUnreadable,
                "the archive has pages but no index key",
            ));
        }
        return Ok(());
    };
    if !index_dir.join("meta.json").is_file() {
        report.findings.push(Finding::new(
            FindingKind::IndexUnreadable,
            "the index directory holds no index (meta.json is missing)",
        ));
        return Ok(());
    }
    let cache_bytes = config.index.cache_bytes;
    let opened = tokio::task::spawn_blocking(move || -> anyhow::Result<SearchIndex> {
        let directory = EncryptedDirectory::open_mmap(&index_dir, key, key_id, cache_bytes)?;
        Ok(SearchIndex::open_in(Box::new(directory))?)
    })
    .await?;
    let index = match opened {
        Ok(index) => index,
        Err(error) => {
            report.findings.push(Finding::new(
                FindingKind::IndexUnreadable,
                format!("the index does not open: {error}"),
            ));
            return Ok(());
        }
    };

    // Every page of an indexed document must be in the index.
    let indexed_docs: BTreeSet<DocumentId> = inventory
        .documents
        .iter()
        .filter(|d| d.status == "indexed")
        .map(|d| d.id)
        .collect();
    let expected: Vec<(DocumentId, u32)> = inventory
        .pages
        .iter()
        .filter(|(doc, _)| indexed_docs.contains(doc))
        .copied()
        .collect();
    let missing = {
        let index = index.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(DocumentId, u32)>> {
            let mut missing = Vec::new();
            for (doc, page) in expected {
                if index.contains_page(doc.0, page)? == 0 {
                    missing.push((doc, page));
                }
            }
            Ok(missing)
        })
        .await??
    };
    for (doc, page) in missing {
        // A document shredded since the snapshot is no longer expected in the index.
        if db.document_status(doc).await?.as_deref() == Some("deleted") {
            continue;
        }
        let mut finding = Finding::new(
            FindingKind::RowPageNotIndexed,
            "a page of an indexed document is not in the search index",
        );
        finding.document_id = Some(doc.to_string());
        finding.page = Some(page);
        report.findings.push(finding);
    }
    Ok(())
}
