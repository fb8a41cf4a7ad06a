//! The index half of `verify`: every index file authenticated under the index key
//! (`chartvault_index::verify_index_dir`), and the index's pages cross-checked with the
//! `pages` rows (`SearchIndex::indexed_pages`). The index is opened without a writer, so the
//! check never takes the writer lock.
//!
//! Beside a running server the index directory also holds files tantivy is still writing
//! (not yet in `meta.json`) and obsolete ones it has not yet garbage-collected: a problem is
//! reported only for a file the current commit uses, and only if a second pass finds it
//! again (a file read while being written may be committed by then).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use chartvault_index::{
    verify_index_dir, EncryptedDirectory, IndexFileProblem, IndexVerifyReport, LiveIndexFiles,
    SearchIndex,
};
use chartvault_storage::{DataKey, KeyId};

use crate::config::Config;
use crate::domain::DocumentId;
use crate::ops::findings::{Finding, FindingKind, VerifyReport};
use crate::ops::keys::Keyring;
use crate::store::inventory::Inventory;
use crate::store::prelude::*;
use crate::store::Db;

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
    if !index_dir.is_dir() {
        report.findings.push(Finding::new(
            FindingKind::IndexUnreadable,
            "there is no index directory",
        ));
        return Ok(());
    }

    // 1. Every file of the current commit authenticates.
    let (files, problems) = {
        let (dir, key) = (index_dir.clone(), key.clone());
        tokio::task::spawn_blocking(move || confirmed_problems(&dir, &key, key_id)).await??
    };
    report.checked.index_files = files.files_checked;
    report.checked.index_bytes = files.bytes_checked;
    for problem in problems {
        let mut finding = Finding::new(FindingKind::IndexFileCorrupt, problem.problem);
        finding.file = Some(problem.file);
        report.findings.push(finding);
    }
    if !index_dir.join("meta.json").is_file() {
        return Ok(()); // reported above; opening would create an empty index
    }

    // 2. The index's pages against the rows.
    let cache_bytes = config.index.cache_bytes;
    let pages = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(uuid::Uuid, u32)>> {
        let directory = EncryptedDirectory::open_mmap(&index_dir, key, key_id, cache_bytes)?;
        let index = SearchIndex::open_in(Box::new(directory))?;
        Ok(index.indexed_pages()?)
    })
    .await?;
    let indexed = match pages {
        Ok(pages) => pages,
        Err(error) => {
            report.findings.push(Finding::new(
                FindingKind::IndexUnreadable,
                format!("the index does not open or list its pages: {error:#}"),
            ));
            return Ok(());
        }
    };
    report.checked.indexed_pages = indexed.len();
    cross_check(db, inventory, &indexed, report).await
}

/// Runs [`verify_index_dir`] and keeps the problems of files the current commit uses that a
/// second pass confirms. Returns the first pass's report (for its counts) and those problems.
fn confirmed_problems(
    dir: &Path,
    key: &DataKey,
    key_id: KeyId,
) -> anyhow::Result<(IndexVerifyReport, Vec<IndexFileProblem>)> {
    let first = verify_index_dir(dir, key, key_id)?;
    let used_now = |problems: &[IndexFileProblem]| -> Vec<IndexFileProblem> {
        match LiveIndexFiles::read(dir, key.clone(), key_id) {
            Ok(live) => problems
                .iter()
                .filter(|p| live.is_live(&p.file))
                .cloned()
                .collect(),
            // The index does not open (meta.json itself is damaged): every problem stands.
            Err(_) => problems.to_vec(),
        }
    };
    let candidates = used_now(&first.problems);
    if candidates.is_empty() {
        return Ok((first, Vec::new()));
    }
    let second = verify_index_dir(dir, key, key_id)?;
    let confirmed = used_now(&second.problems)
        .into_iter()
        .filter(|p| candidates.iter().any(|c| c.file == p.file))
        .collect();
    Ok((first, confirmed))
}

async fn cross_check(
    db: &Db,
    inventory: &Inventory,
    indexed: &[(uuid::Uuid, u32)],
    report: &mut VerifyReport,
) -> anyhow::Result<()> {
    let status: BTreeMap<DocumentId, &str> = inventory
        .documents
        .iter()
        .map(|d| (d.id, d.status.as_str()))
        .collect();
    let rows: HashSet<(DocumentId, u32)> = inventory.pages.iter().copied().collect();
    let in_index: BTreeSet<(DocumentId, u32)> = indexed
        .iter()
        .map(|(doc, page)| (DocumentId(*doc), *page))
        .collect();

    for pair in indexed.windows(2) {
        if pair[0] == pair[1] {
            let mut finding = Finding::new(
                FindingKind::IndexPageDuplicate,
                "the page is in the index more than once",
            );
            finding.document_id = Some(pair[0].0.to_string());
            finding.page = Some(pair[0].1);
            report.findings.push(finding);
        }
    }

    for &(doc, page) in &in_index {
        let expected =
            rows.contains(&(doc, page)) && status.get(&doc).is_some_and(|s| *s != "deleted");
        if expected {
            continue;
        }
        // Indexed after the snapshot (its row is newer)? Then it is fine.
        let now = db.document_status(doc).await?;
        if now.as_deref().is_some_and(|s| s != "deleted") && db.page_exists(doc, page).await? {
            continue;
        }
        let mut finding = Finding::new(
            FindingKind::IndexPageWithoutRow,
            match now.as_deref() {
                None => "the index holds a page of a document the database does not know",
                Some("deleted") => "the index still holds a page of a deleted document",
                Some(_) => "the index holds a page that has no `pages` row",
            },
        );
        finding.document_id = Some(doc.to_string());
        finding.page = Some(page);
        report.findings.push(finding);
    }

    for &(doc, page) in &inventory.pages {
        if status.get(&doc) != Some(&"indexed") || in_index.contains(&(doc, page)) {
            continue;
        }
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
