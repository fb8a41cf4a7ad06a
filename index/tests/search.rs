//! Behaviour of the index through its public API: indexing through the writer service, then
//! authorised searches.

use std::collections::BTreeSet;
use std::time::Duration;

use chartvault_index::{
    IndexError, IndexWriterService, PageRecord, SearchIndex, SearchRequest, SearchResults,
};
use chrono::NaiveDate;
use uuid::Uuid;

fn page(document_id: Uuid, page: u32, patient_id: Uuid, text: &str) -> PageRecord {
    PageRecord {
        document_id,
        page,
        patient_id,
        patient_name: "Test Patient".to_string(),
        document_type: "progress-note".to_string(),
        category: "general".to_string(),
        service_date: None,
        text: text.to_string(),
    }
}

fn start_writer(index: &SearchIndex) -> IndexWriterService {
    IndexWriterService::start(index, Duration::from_millis(50), 1000).expect("writer starts")
}

async fn indexed(pages: Vec<PageRecord>) -> (SearchIndex, IndexWriterService) {
    let index = SearchIndex::create_in_ram().expect("ram index");
    let writer = start_writer(&index);
    writer.index_pages(pages).await.expect("pages index");
    (index, writer)
}

fn request(query: &str) -> SearchRequest {
    SearchRequest {
        query: query.to_string(),
        limit: 100,
        ..SearchRequest::default()
    }
}

fn search(index: &SearchIndex, request: &SearchRequest) -> SearchResults {
    index.search(request).expect("search succeeds")
}

/// The (document, page) of every hit, in order.
fn found(index: &SearchIndex, query: &str) -> Vec<(Uuid, u32)> {
    search(index, &request(query))
        .hits
        .iter()
        .map(|hit| (hit.document_id, hit.page))
        .collect()
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).expect("valid test date")
}

#[tokio::test]
async fn term_hit_names_the_right_document_page_and_patient() {
    let (document, other_document, patient) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let (index, _writer) = indexed(vec![
        page(
            document,
            1,
            patient,
            "Admission note. Blood pressure stable.",
        ),
        page(
            document,
            2,
            patient,
            "Plan: continue Metformin 500 mg twice daily.",
        ),
        page(document, 3, patient, "Follow up in three months."),
        page(other_document, 1, patient, "Insulin sliding scale."),
    ])
    .await;
    let results = search(&index, &request("metformin"));
    assert_eq!(results.total, 1);
    assert_eq!(results.hits.len(), 1);
    let hit = &results.hits[0];
    assert_eq!(
        (hit.document_id, hit.page, hit.patient_id),
        (document, 2, patient)
    );
    assert!(hit.score > 0.0);
    assert_eq!(index.page_count().expect("count"), 4);
}

#[tokio::test]
async fn phrase_query_matches_only_adjacent_words() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let (index, _writer) = indexed(vec![
        page(
            document,
            1,
            patient,
            "Assessment: congestive heart failure.",
        ),
        page(document, 2, patient, "Heart rate 80. No signs of failure."),
    ])
    .await;
    assert_eq!(found(&index, "\"heart failure\""), vec![(document, 1)]);
    assert_eq!(found(&index, "heart failure").len(), 2);
    assert!(found(&index, "\"failure heart\"").is_empty());
}

#[tokio::test]
async fn boolean_and_or_not() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let (index, _writer) = indexed(vec![
        page(document, 1, patient, "metformin and insulin"),
        page(document, 2, patient, "metformin and glipizide"),
        page(document, 3, patient, "insulin alone"),
    ])
    .await;
    let pages = |query: &str| -> BTreeSet<u32> {
        found(&index, query)
            .into_iter()
            .map(|(_, page)| page)
            .collect()
    };
    assert_eq!(pages("metformin AND insulin"), BTreeSet::from([1]));
    assert_eq!(pages("metformin insulin"), BTreeSet::from([1]));
    assert_eq!(pages("metformin OR insulin"), BTreeSet::from([1, 2, 3]));
    assert_eq!(pages("metformin NOT insulin"), BTreeSet::from([2]));
    assert_eq!(pages("metformin -insulin"), BTreeSet::from([2]));
    assert_eq!(pages("+metformin +glipizide"), BTreeSet::from([2]));
    assert_eq!(
        pages("(glipizide OR insulin) -metformin"),
        BTreeSet::from([3])
    );
    assert_eq!(
        pages("metformin glipizide OR insulin"),
        BTreeSet::from([1, 2])
    );
    assert_eq!(pages("-metformin"), BTreeSet::from([3]));
}

#[tokio::test]
async fn prefix_matches_the_start_of_words() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let (index, _writer) = indexed(vec![
        page(document, 1, patient, "Started Metformin today."),
        page(document, 2, patient, "Metoprolol continued."),
        page(document, 3, patient, "Type 2 diabetes mellitus."),
    ])
    .await;
    assert_eq!(found(&index, "metf*"), vec![(document, 1)]);
    assert_eq!(found(&index, "met*").len(), 2);
    assert_eq!(found(&index, "\"type 2 diab\"*"), vec![(document, 3)]);
    assert!(found(&index, "\"type 3 diab\"*").is_empty());
    let results = search(&index, &request("metf*"));
    assert!(results.highlighter.matches_word("Metformin,"));
    assert!(!results.highlighter.matches_word("Metoprolol"));
}

#[tokio::test]
async fn case_and_accents_fold() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let (index, _writer) = indexed(vec![
        page(document, 1, patient, "Patient drinks CAFE au lait"),
        page(document, 2, patient, "Naïve T cells; crème"),
    ])
    .await;
    assert_eq!(found(&index, "café"), vec![(document, 1)]);
    assert_eq!(found(&index, "Cafe"), vec![(document, 1)]);
    assert_eq!(found(&index, "NAIVE creme"), vec![(document, 2)]);
}

#[tokio::test]
async fn patient_filter_counts_and_pages_only_allowed_patients() {
    let (patient_a, patient_b) = (Uuid::new_v4(), Uuid::new_v4());
    let (document_a, document_b) = (Uuid::new_v4(), Uuid::new_v4());
    let mut pages: Vec<PageRecord> = (1..=30)
        .map(|n| page(document_a, n, patient_a, "metformin 500 mg"))
        .collect();
    pages.extend((1..=10).map(|n| page(document_b, n, patient_b, "metformin 500 mg")));
    let (index, _writer) = indexed(pages).await;

    assert_eq!(search(&index, &request("metformin")).total, 40);

    let mut seen = BTreeSet::new();
    let mut offset = 0;
    loop {
        let results = search(
            &index,
            &SearchRequest {
                patient_ids: Some(vec![patient_b]),
                limit: 3,
                offset,
                ..request("metformin")
            },
        );
        assert_eq!(results.total, 10, "total counts only patient B's pages");
        if results.hits.is_empty() {
            break;
        }
        for hit in &results.hits {
            assert_eq!(hit.patient_id, patient_b);
            assert!(
                seen.insert((hit.document_id, hit.page)),
                "a page came back twice"
            );
        }
        offset += 3;
    }
    assert_eq!(seen.len(), 10);

    let nobody = search(
        &index,
        &SearchRequest {
            patient_ids: Some(Vec::new()),
            ..request("metformin")
        },
    );
    assert_eq!((nobody.total, nobody.hits.len()), (0, 0));
}

#[tokio::test]
async fn equal_scores_are_ordered_by_document_and_page() {
    let patient = Uuid::new_v4();
    let mut documents = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];
    let mut pages = Vec::new();
    for document in documents {
        for n in [3, 1, 2] {
            pages.push(page(document, n, patient, "same words"));
        }
    }
    let (index, _writer) = indexed(pages).await;
    documents.sort();
    let expected: Vec<(Uuid, u32)> = documents
        .iter()
        .flat_map(|document| (1..=3).map(move |n| (*document, n)))
        .collect();
    assert_eq!(found(&index, "same"), expected);
}

#[tokio::test]
async fn better_matches_rank_first() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let (index, _writer) = indexed(vec![
        page(
            document,
            1,
            patient,
            "metformin mentioned once among many other unrelated words about the visit",
        ),
        page(document, 2, patient, "metformin metformin metformin"),
    ])
    .await;
    let results = search(&index, &request("metformin"));
    assert_eq!(results.hits[0].page, 2);
    assert!(results.hits[0].score > results.hits[1].score);
}

#[tokio::test]
async fn category_filter_hides_sensitive_pages_even_for_phrases() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let sensitive = PageRecord {
        category: "psychotherapy-notes".to_string(),
        ..page(
            document,
            2,
            patient,
            "Discussed heart failure diagnosis anxiety.",
        )
    };
    let (index, _writer) = indexed(vec![
        page(document, 1, patient, "Known heart failure."),
        sensitive,
    ])
    .await;
    let general_only = SearchRequest {
        categories: Some(vec!["general".to_string()]),
        ..request("\"heart failure\"")
    };
    let results = search(&index, &general_only);
    assert_eq!(results.total, 1);
    assert_eq!(results.hits[0].page, 1);
    let results = search(
        &index,
        &SearchRequest {
            query: "anxiety".to_string(),
            ..general_only
        },
    );
    assert_eq!(results.total, 0);

    let granted = SearchRequest {
        categories: Some(vec![
            "general".to_string(),
            "psychotherapy-notes".to_string(),
        ]),
        ..request("\"heart failure\"")
    };
    assert_eq!(search(&index, &granted).total, 2);
    let none_granted = SearchRequest {
        categories: Some(Vec::new()),
        ..request("\"heart failure\"")
    };
    assert_eq!(search(&index, &none_granted).total, 0);
}

#[tokio::test]
async fn document_type_document_and_date_filters() {
    let (document_1998, document_2005, undated) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let patient = Uuid::new_v4();
    let (index, _writer) = indexed(vec![
        PageRecord {
            document_type: "discharge-summary".to_string(),
            service_date: Some(date(1998, 3, 1)),
            ..page(document_1998, 1, patient, "metformin started")
        },
        PageRecord {
            service_date: Some(date(2005, 6, 1)),
            ..page(document_2005, 1, patient, "metformin continued")
        },
        page(undated, 1, patient, "metformin unknown date"),
    ])
    .await;
    let documents = |request: SearchRequest| -> Vec<Uuid> {
        search(&index, &request)
            .hits
            .iter()
            .map(|hit| hit.document_id)
            .collect()
    };
    assert_eq!(
        documents(SearchRequest {
            document_type: Some("discharge-summary".to_string()),
            ..request("metformin")
        }),
        vec![document_1998]
    );
    assert_eq!(
        documents(SearchRequest {
            document_ids: Some(vec![document_2005, undated]),
            ..request("metformin")
        })
        .len(),
        2
    );
    assert_eq!(
        documents(SearchRequest {
            from: Some(date(1998, 1, 1)),
            to: Some(date(1998, 12, 31)),
            ..request("metformin")
        }),
        vec![document_1998]
    );
    // Both ends are inclusive.
    assert_eq!(
        documents(SearchRequest {
            from: Some(date(1998, 3, 1)),
            to: Some(date(1998, 3, 1)),
            ..request("metformin")
        }),
        vec![document_1998]
    );
    assert_eq!(
        documents(SearchRequest {
            from: Some(date(2000, 1, 1)),
            ..request("metformin")
        }),
        vec![document_2005]
    );
    // Open-ended ranges still exclude undated pages.
    assert_eq!(
        documents(SearchRequest {
            to: Some(date(2030, 1, 1)),
            ..request("metformin")
        })
        .len(),
        2
    );
    assert_eq!(documents(request("metformin")).len(), 3);
}

#[tokio::test]
async fn reindexing_a_page_replaces_it() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let (index, writer) = indexed(vec![page(document, 1, patient, "old text aspirin")]).await;
    writer
        .index_pages(vec![page(document, 1, patient, "new text metformin")])
        .await
        .expect("re-index");
    // Twice in one batch, as a re-run step might.
    writer
        .index_pages(vec![
            page(document, 1, patient, "new text metformin"),
            page(document, 1, patient, "new text metformin"),
        ])
        .await
        .expect("re-index twice");
    assert_eq!(index.contains_page(document, 1).expect("count"), 1);
    assert_eq!(index.page_count().expect("count"), 1);
    assert!(found(&index, "aspirin").is_empty());
    assert_eq!(found(&index, "metformin"), vec![(document, 1)]);
    assert_eq!(index.contains_page(document, 2).expect("count"), 0);
}

#[tokio::test]
async fn delete_document_removes_all_its_pages() {
    let (document, kept, patient) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let mut pages: Vec<PageRecord> = (1..=5)
        .map(|n| page(document, n, patient, "metformin"))
        .collect();
    pages.push(page(kept, 1, patient, "metformin"));
    let (index, writer) = indexed(pages).await;
    writer.delete_document(document).await.expect("delete");
    assert_eq!(found(&index, "metformin"), vec![(kept, 1)]);
    for n in 1..=5 {
        assert_eq!(index.contains_page(document, n).expect("count"), 0);
    }
    assert_eq!(index.page_count().expect("count"), 1);
}

#[tokio::test]
async fn a_lone_page_is_committed_at_once_not_after_the_interval() {
    let index = SearchIndex::create_in_ram().expect("ram index");
    // An hour: only a commit on an idle writer can answer within the test's limit.
    let writer =
        IndexWriterService::start(&index, Duration::from_secs(3600), 1000).expect("writer");
    let document = Uuid::new_v4();
    tokio::time::timeout(
        Duration::from_secs(30),
        writer.index_pages(vec![page(document, 1, Uuid::new_v4(), "warfarin")]),
    )
    .await
    .expect("committed when the writer had nothing more queued")
    .expect("index");
    assert_eq!(index.contains_page(document, 1).expect("count"), 1);
}

#[tokio::test]
async fn search_right_after_index_pages_sees_them() {
    let index = SearchIndex::create_in_ram().expect("ram index");
    // A long commit interval: visibility must come from the commit the call waits for.
    let writer =
        IndexWriterService::start(&index, Duration::from_millis(300), 1000).expect("writer");
    let patient = Uuid::new_v4();
    for n in 1..=5 {
        let document = Uuid::new_v4();
        writer
            .index_pages(vec![page(document, n, patient, "metformin")])
            .await
            .expect("index");
        assert_eq!(index.contains_page(document, n).expect("count"), 1);
        assert_eq!(search(&index, &request("metformin")).total, n as usize);
    }
}

#[tokio::test]
async fn concurrent_callers_share_a_commit() {
    let index = SearchIndex::create_in_ram().expect("ram index");
    let writer =
        IndexWriterService::start(&index, Duration::from_millis(100), 1000).expect("writer");
    let patient = Uuid::new_v4();
    let mut calls = tokio::task::JoinSet::new();
    for n in 1..=20 {
        let writer = writer.clone();
        calls.spawn(async move {
            writer
                .index_pages(vec![page(Uuid::new_v4(), n, patient, "insulin")])
                .await
        });
    }
    while let Some(result) = calls.join_next().await {
        result.expect("task ran").expect("index");
    }
    assert_eq!(search(&index, &request("insulin")).total, 20);
}

#[tokio::test]
async fn index_reopened_from_disk_after_shutdown_still_finds_pages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    {
        let index = SearchIndex::open_or_create(dir.path()).expect("create");
        let writer = start_writer(&index);
        writer
            .index_pages(vec![page(document, 7, patient, "Metformin on disk")])
            .await
            .expect("index");
        writer.shutdown().await.expect("shutdown");
    }
    let index = SearchIndex::open_or_create(dir.path()).expect("reopen");
    assert_eq!(found(&index, "metformin"), vec![(document, 7)]);
    // The write lock was released: a new writer can start and write.
    let writer = start_writer(&index);
    writer
        .index_pages(vec![page(document, 8, patient, "metformin again")])
        .await
        .expect("index after reopen");
    assert_eq!(search(&index, &request("metformin")).total, 2);
}

#[tokio::test]
async fn only_one_writer_per_index() {
    let index = SearchIndex::create_in_ram().expect("ram index");
    let writer = start_writer(&index);
    assert!(IndexWriterService::start(&index, Duration::from_millis(50), 10).is_err());
    let other_handle = writer.clone();
    writer.shutdown().await.expect("shutdown");
    let patient = Uuid::new_v4();
    assert!(matches!(
        other_handle
            .index_pages(vec![page(Uuid::new_v4(), 1, patient, "x")])
            .await,
        Err(IndexError::WriterGone)
    ));
}

#[tokio::test]
async fn page_zero_a_kept_cover_sheet_is_indexed_like_any_page() {
    let index = SearchIndex::create_in_ram().expect("ram index");
    let writer = start_writer(&index);
    let document = Uuid::new_v4();
    writer
        .index_pages(vec![page(document, 0, Uuid::new_v4(), "x")])
        .await
        .expect("page 0 indexes");
    assert_eq!(index.page_count().unwrap(), 1);
}

#[tokio::test]
async fn a_query_cannot_reach_other_fields() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let (index, _writer) = indexed(vec![
        PageRecord {
            document_type: "discharge-summary".to_string(),
            category: "hiv".to_string(),
            ..page(document, 1, patient, "metformin")
        },
        page(Uuid::new_v4(), 1, patient, "Form field document_type: foo"),
    ])
    .await;
    for query in [
        format!("patient_id:{patient}"),
        format!("patient_id:\"{patient}\""),
        format!("document_id:{document}"),
        "document_type:discharge-summary".to_string(),
        "category:hiv".to_string(),
        "doc_page:*".to_string(),
    ] {
        let results = index.search(&request(&query));
        match results {
            Ok(results) => assert_eq!(results.total, 0, "{query} reached another field"),
            Err(error) => assert!(matches!(error, IndexError::Query(_)), "{query}: {error}"),
        }
    }
    // Such words are page text: they match where the text has them.
    assert_eq!(found(&index, "document_type:foo").len(), 1);
}

#[tokio::test]
async fn invalid_syntax_is_a_query_error_without_query_words() {
    let (index, _writer) = indexed(vec![page(Uuid::new_v4(), 1, Uuid::new_v4(), "x")]).await;
    for query in [
        "(metformin",
        "metformin)",
        "\"metformin",
        "metformin OR",
        "",
        "m*",
    ] {
        match index.search(&request(query)) {
            Err(IndexError::Query(message)) => {
                assert!(!message.contains("metformin"), "{message}");
            }
            other => panic!("{query:?} gave {other:?}"),
        }
    }
}

#[tokio::test]
async fn paging_limits() {
    let patient = Uuid::new_v4();
    let pages = (1..=4)
        .map(|n| page(Uuid::new_v4(), n, patient, "insulin"))
        .collect();
    let (index, _writer) = indexed(pages).await;
    let count_only = search(
        &index,
        &SearchRequest {
            limit: 0,
            ..request("insulin")
        },
    );
    assert_eq!((count_only.total, count_only.hits.len()), (4, 0));
    let past_the_end = search(
        &index,
        &SearchRequest {
            offset: 10,
            ..request("insulin")
        },
    );
    assert_eq!((past_the_end.total, past_the_end.hits.len()), (4, 0));
    assert!(matches!(
        index.search(&SearchRequest {
            limit: 1_000_000,
            ..request("insulin")
        }),
        Err(IndexError::Query(_))
    ));
}

#[tokio::test]
async fn results_carry_a_highlighter_for_snippets() {
    let (document, patient) = (Uuid::new_v4(), Uuid::new_v4());
    let text = "<script>alert(1)</script> Plan: continue Metformin, recheck A1c.";
    let (index, _writer) = indexed(vec![page(document, 1, patient, text)]).await;
    let results = search(&index, &request("metformin -aspirin"));
    let snippet = results.highlighter.snippet(text, 200);
    assert!(snippet.contains("<mark>Metformin</mark>,"), "{snippet}");
    assert!(snippet.contains("&lt;script&gt;"), "{snippet}");
    assert!(!snippet.contains("<script>"));
    assert!(results.highlighter.matches_word("Metformin,"));
    assert!(!results.highlighter.matches_word("aspirin"));
}
