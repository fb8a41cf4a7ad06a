//! Shredding a document ([`IndexWriterService::purge_document`]) out of an encrypted index on
//! disk: its words leave every segment's term dictionary (not just hidden by delete bitsets),
//! its segment files and their cached plaintext are gone, other documents stay searchable,
//! and only the segments that held it are rewritten. Also [`SearchIndex::indexed_pages`].

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use chartvault_index::{
    EncryptedDirectory, IndexWriterService, PageRecord, SearchIndex, SearchRequest,
};
use chartvault_storage::{DataKey, KeyId};
use tantivy::directory::MmapDirectory;
use tantivy::Index;
use uuid::Uuid;

fn page(document_id: Uuid, page: u32, text: &str) -> PageRecord {
    PageRecord {
        document_id,
        page,
        patient_id: Uuid::from_u128(0x5eed),
        patient_name: "Test Patient".to_string(),
        document_type: "progress-note".to_string(),
        category: "general".to_string(),
        service_date: None,
        text: text.to_string(),
    }
}

/// An encrypted index over a temp mmap directory, a clone of its directory (to inspect the
/// cache and open a second, read-only tantivy view), and its writer.
struct EncryptedIndex {
    dir: tempfile::TempDir,
    directory: EncryptedDirectory,
    index: SearchIndex,
    writer: IndexWriterService,
}

fn encrypted_index() -> EncryptedIndex {
    let dir = tempfile::tempdir().expect("temp dir");
    let mmap = MmapDirectory::open(dir.path()).expect("mmap directory");
    let directory = EncryptedDirectory::new(mmap, DataKey::generate(), KeyId::generate(), 1 << 20);
    let index = SearchIndex::open_in_directory(directory.clone()).expect("encrypted index");
    // Commits come from the awaited calls; one segment per `index_pages` call.
    let writer = IndexWriterService::start(&index, Duration::from_millis(20), 100_000)
        .expect("writer starts");
    EncryptedIndex {
        dir,
        directory,
        index,
        writer,
    }
}

fn found(index: &SearchIndex, query: &str) -> Vec<(Uuid, u32)> {
    let results = index
        .search(&SearchRequest {
            query: query.to_string(),
            limit: 100,
            ..SearchRequest::default()
        })
        .expect("search succeeds");
    let mut hits: Vec<(Uuid, u32)> = results
        .hits
        .iter()
        .map(|hit| (hit.document_id, hit.page))
        .collect();
    hits.sort();
    hits
}

/// What one committed segment holds in its term dictionaries, deleted documents included.
#[derive(Debug)]
struct SegmentTerms {
    id: String,
    text: BTreeSet<String>,
    document_ids: BTreeSet<String>,
}

/// Every committed segment's text and document-id terms, read through a separate tantivy
/// view of the same (encrypted) directory, straight from the term dictionaries: a term of a
/// deleted page is still listed until its segment is merged.
fn segment_terms(directory: &EncryptedDirectory) -> Vec<SegmentTerms> {
    let index = Index::open(directory.clone()).expect("second view of the index");
    let schema = index.schema();
    let terms_of = |segment: &tantivy::SegmentReader, field_name: &str| {
        let field = schema.get_field(field_name).expect("field");
        let inverted_index = segment.inverted_index(field).expect("inverted index");
        let mut stream = inverted_index.terms().stream().expect("term stream");
        let mut terms = BTreeSet::new();
        while stream.advance() {
            terms.insert(String::from_utf8_lossy(stream.key()).into_owned());
        }
        terms
    };
    let searcher = index.reader().expect("reader").searcher();
    searcher
        .segment_readers()
        .iter()
        .map(|segment| SegmentTerms {
            id: segment.segment_id().uuid_string(),
            text: terms_of(segment, "text"),
            document_ids: terms_of(segment, "document_id"),
        })
        .collect()
}

fn file_names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|entry| {
            entry
                .expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

const PURGED_WORDS: [&str; 3] = ["zebrafish", "quokka", "narwhal"];

#[tokio::test]
async fn purged_document_leaves_no_term_in_any_segment_and_others_stay_searchable() {
    let setup = encrypted_index();
    let (purged, kept, untouched) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    // Four commits, four segments: the purged document is spread over the first two, and
    // shares the first with a page of the kept document.
    for pages in [
        vec![
            page(
                purged,
                1,
                "Zebrafish allergy; quokka bite. Metformin 500 mg.",
            ),
            page(kept, 1, "Axolotl exposure. Metformin 500 mg."),
        ],
        vec![page(purged, 2, "Narwhal tusk injury, metformin paused.")],
        vec![page(kept, 2, "Pangolin scales under the microscope.")],
        vec![page(untouched, 1, "Capybara therapy session.")],
    ] {
        setup.writer.index_pages(pages).await.expect("pages index");
    }

    let before = segment_terms(&setup.directory);
    assert_eq!(before.len(), 4, "one segment per commit: {before:?}");
    let purged_id = purged.to_string();
    let holding: BTreeSet<&str> = before
        .iter()
        .filter(|segment| segment.document_ids.contains(&purged_id))
        .map(|segment| segment.id.as_str())
        .collect();
    let not_holding: BTreeSet<&str> = before
        .iter()
        .filter(|segment| !segment.document_ids.contains(&purged_id))
        .map(|segment| segment.id.as_str())
        .collect();
    assert_eq!(holding.len(), 2, "the document spans two segments");
    for word in PURGED_WORDS {
        assert!(before.iter().any(|segment| segment.text.contains(word)));
    }
    assert_eq!(found(&setup.index, "zebrafish"), vec![(purged, 1)]);
    assert_eq!(found(&setup.index, "narwhal"), vec![(purged, 2)]);
    assert!(
        setup.directory.cached_chunks() > 0,
        "searches filled the cache"
    );

    setup
        .writer
        .purge_document(purged)
        .await
        .expect("purge succeeds");

    // (a) Nothing of it is found.
    for word in PURGED_WORDS {
        assert_eq!(found(&setup.index, word), vec![], "{word}");
    }
    // (b) Its words and its id are in no segment's term dictionary, deleted docs included.
    let after = segment_terms(&setup.directory);
    for segment in &after {
        for word in PURGED_WORDS {
            assert!(!segment.text.contains(word), "{word} in {}", segment.id);
        }
        assert!(!segment.document_ids.contains(&purged_id));
    }
    // (c) The other documents are fully searchable.
    assert_eq!(
        found(&setup.index, "metformin"),
        vec![(kept, 1)],
        "shared word"
    );
    assert_eq!(found(&setup.index, "axolotl"), vec![(kept, 1)]);
    assert_eq!(found(&setup.index, "pangolin"), vec![(kept, 2)]);
    assert_eq!(found(&setup.index, "capybara"), vec![(untouched, 1)]);
    let mut live = vec![(kept, 1), (kept, 2), (untouched, 1)];
    live.sort();
    assert_eq!(setup.index.indexed_pages().expect("pages"), live);
    assert_eq!(setup.index.page_count().expect("count"), 3);

    // Only the two segments that held it were rewritten (into one).
    let after_ids: BTreeSet<&str> = after.iter().map(|segment| segment.id.as_str()).collect();
    assert!(not_holding.is_subset(&after_ids), "{after_ids:?}");
    assert!(holding.is_disjoint(&after_ids));
    assert_eq!(after.len(), 3);

    // The rewritten segments' files are deleted, and nothing of them is cached.
    let on_disk = file_names(setup.dir.path());
    for segment in &holding {
        assert!(
            !on_disk.iter().any(|name| name.starts_with(segment)),
            "file of purged segment {segment} left: {on_disk:?}"
        );
    }
    let cached = setup.directory.cached_files();
    assert_eq!(
        cached.iter().map(|(_, chunks)| chunks).sum::<usize>(),
        setup.directory.cached_chunks(),
        "chunks of deleted files are cached: {cached:?}"
    );
    for (path, _) in &cached {
        let name = path.to_string_lossy();
        assert!(on_disk.contains(name.as_ref()), "{name} cached but deleted");
        assert!(!holding.iter().any(|segment| name.starts_with(segment)));
    }
    setup.writer.shutdown().await.expect("shutdown");
}

/// Many small commits make tantivy's merge policy merge in the background while the purge
/// merges too: whichever wins, the purge resolves only once no segment holds the document.
#[tokio::test]
async fn purge_while_background_merges_run_still_shreds() {
    let setup = encrypted_index();
    let (purged, kept) = (Uuid::new_v4(), Uuid::new_v4());
    for number in 1..=20 {
        setup
            .writer
            .index_pages(vec![
                page(purged, number, &format!("Zebrafish note {number}.")),
                page(kept, number, &format!("Axolotl note {number}.")),
            ])
            .await
            .expect("pages index");
    }
    setup
        .writer
        .purge_document(purged)
        .await
        .expect("purge succeeds");
    let purged_id = purged.to_string();
    for segment in segment_terms(&setup.directory) {
        assert!(!segment.text.contains("zebrafish"), "{segment:?}");
        assert!(!segment.document_ids.contains(&purged_id));
    }
    let expected: Vec<(Uuid, u32)> = (1..=20).map(|number| (kept, number)).collect();
    assert_eq!(setup.index.indexed_pages().expect("pages"), expected);
    assert_eq!(found(&setup.index, "zebrafish"), vec![]);
    setup.writer.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn purging_the_only_document_of_a_segment_removes_the_segment() {
    let setup = encrypted_index();
    let (purged, kept) = (Uuid::new_v4(), Uuid::new_v4());
    setup
        .writer
        .index_pages(vec![page(kept, 1, "Axolotl exposure.")])
        .await
        .expect("pages index");
    setup
        .writer
        .index_pages(vec![
            page(purged, 1, "Zebrafish allergy."),
            page(purged, 2, "Quokka bite."),
        ])
        .await
        .expect("pages index");
    assert_eq!(segment_terms(&setup.directory).len(), 2);

    setup
        .writer
        .purge_document(purged)
        .await
        .expect("purge succeeds");

    let after = segment_terms(&setup.directory);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(
        after[0].document_ids,
        BTreeSet::from([kept.to_string()]),
        "only the kept document's segment remains"
    );
    assert_eq!(found(&setup.index, "axolotl"), vec![(kept, 1)]);
    assert_eq!(setup.index.indexed_pages().expect("pages"), vec![(kept, 1)]);
}

#[tokio::test]
async fn purging_an_unknown_document_changes_nothing() {
    let setup = encrypted_index();
    let kept = Uuid::new_v4();
    setup
        .writer
        .index_pages(vec![page(kept, 1, "Axolotl exposure.")])
        .await
        .expect("pages index");
    let before: Vec<String> = segment_terms(&setup.directory)
        .into_iter()
        .map(|segment| segment.id)
        .collect();
    setup
        .writer
        .purge_document(Uuid::new_v4())
        .await
        .expect("purge succeeds");
    let after: Vec<String> = segment_terms(&setup.directory)
        .into_iter()
        .map(|segment| segment.id)
        .collect();
    assert_eq!(before, after);
    assert_eq!(found(&setup.index, "axolotl"), vec![(kept, 1)]);
}

#[tokio::test]
async fn purge_also_commits_changes_queued_before_it() {
    let index = SearchIndex::create_in_ram().expect("ram index");
    // Pages queued ahead of a purge come out indexed, whether their own commit or the
    // purge's takes them; the purged document's page does not.
    let writer =
        IndexWriterService::start(&index, Duration::from_secs(3600), 100_000).expect("writer");
    let (kept, purged) = (Uuid::new_v4(), Uuid::new_v4());
    let queued = writer.index_pages(vec![
        page(kept, 1, "Axolotl exposure."),
        page(purged, 1, "Zebrafish allergy."),
    ]);
    tokio::pin!(queued);
    // Poll the index request once: that sends it to the writer, ahead of the purge.
    tokio::select! {
        biased;
        result = &mut queued => panic!("resolved before any commit: {result:?}"),
        () = std::future::ready(()) => {}
    }
    writer.purge_document(purged).await.expect("purge succeeds");
    queued
        .await
        .expect("queued pages index with the purge's commit");
    assert_eq!(index.indexed_pages().expect("pages"), vec![(kept, 1)]);
}

#[tokio::test]
async fn indexed_pages_lists_every_live_page_sorted() {
    let index = SearchIndex::create_in_ram().expect("ram index");
    let writer = IndexWriterService::start(&index, Duration::from_millis(20), 100_000)
        .expect("writer starts");
    assert_eq!(index.indexed_pages().expect("empty index"), vec![]);

    let (first, second, deleted) = (
        Uuid::from_u128(1),
        Uuid::from_u128(u128::MAX),
        Uuid::new_v4(),
    );
    writer
        .index_pages(vec![
            page(second, 10, "ten"),
            page(first, 2, "two"),
            page(deleted, 1, "gone"),
        ])
        .await
        .expect("pages index");
    writer
        .index_pages(vec![
            page(second, 9, "nine"),
            page(first, 1, "one"),
            // Re-indexed: listed once.
            page(first, 2, "two again"),
        ])
        .await
        .expect("pages index");
    writer
        .delete_document(deleted)
        .await
        .expect("delete succeeds");

    assert_eq!(
        index.indexed_pages().expect("pages"),
        vec![(first, 1), (first, 2), (second, 9), (second, 10)]
    );
}
