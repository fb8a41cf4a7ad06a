//! Patient-name search through the index: names are indexed on each page, never stored.

use std::time::Duration;

use chartvault_index::{IndexWriterService, NameScope, PageRecord, SearchIndex};
use uuid::Uuid;

fn page(document_id: Uuid, page: u32, patient_id: Uuid, name: &str) -> PageRecord {
    PageRecord {
        document_id,
        page,
        patient_id,
        patient_name: name.to_string(),
        document_type: "letter".to_string(),
        category: "general".to_string(),
        service_date: None,
        text: "routine follow up".to_string(),
    }
}

fn ids(index: &SearchIndex, name: &str, allowed: Option<&[Uuid]>) -> Vec<Uuid> {
    index
        .find_patients(
            name,
            &NameScope {
                allowed_patients: allowed,
                ..NameScope::default()
            },
            50,
        )
        .expect("name search")
        .into_iter()
        .map(|m| m.patient_id)
        .collect()
}

#[tokio::test]
async fn names_match_by_words_and_a_last_word_prefix_distinct_by_patient() {
    let index = SearchIndex::create_in_ram().unwrap();
    let writer = IndexWriterService::start(&index, Duration::from_millis(20), 100).unwrap();
    let (philippa, philip, anne) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let (doc_a, doc_b, doc_c, doc_d) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    writer
        .index_pages(vec![
            page(doc_a, 1, philippa, "Philippa Quarrendon"),
            page(doc_a, 2, philippa, "Philippa Quarrendon"),
            page(doc_a, 3, philippa, "Philippa Quarrendon"),
            page(doc_b, 1, philip, "Philip Quarry"),
            page(doc_c, 1, anne, "Anne Smith-Jones"),
            page(doc_d, 1, anne, "Anne Smith-Jones"),
        ])
        .await
        .unwrap();

    // Distinct patients, most matching pages first.
    let found = index
        .find_patients("quarr", &NameScope::default(), 50)
        .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].patient_id, philippa);
    assert_eq!(found[0].pages, 3);
    assert_eq!(found[1].patient_id, philip);
    // Every word must match; case and accents do not matter.
    assert_eq!(ids(&index, "philippa quarr", None), vec![philippa]);
    assert_eq!(ids(&index, "QUARRENDON", None), vec![philippa]);
    assert_eq!(ids(&index, "Quarréndon", None), vec![philippa]);
    assert_eq!(ids(&index, "smith jones", None), vec![anne]);
    assert_eq!(ids(&index, "jones anne", None), vec![anne]);
    assert!(ids(&index, "philippa smith", None).is_empty());
    assert!(
        ids(&index, "routine", None).is_empty(),
        "page text is not a name"
    );
    // The allow-list restricts results; an empty one finds nothing.
    assert_eq!(ids(&index, "quarr", Some(&[philip])), vec![philip]);
    assert!(ids(&index, "quarr", Some(&[])).is_empty());
    // A limit, and bad queries.
    assert_eq!(
        index
            .find_patients("quarr", &NameScope::default(), 1)
            .unwrap()
            .len(),
        1
    );
    assert!(index
        .find_patients(" - ", &NameScope::default(), 10)
        .is_err());
    // The scope is part of the query: a patient known only through pages of a hidden
    // category or a hidden document is not found, and hidden pages are not counted.
    let quentin_doc = Uuid::new_v4();
    writer
        .index_pages(
            (1..=5)
                .map(|n| PageRecord {
                    category: "hiv".to_string(),
                    ..page(quentin_doc, n, Uuid::from_u128(4), "Quentin Quarrel")
                })
                .collect(),
        )
        .await
        .unwrap();
    assert_eq!(ids(&index, "quentin", None), vec![Uuid::from_u128(4)]);
    let hidden_category = NameScope {
        excluded_categories: &["hiv".to_string()],
        ..NameScope::default()
    };
    assert!(index
        .find_patients("quentin", &hidden_category, 50)
        .unwrap()
        .is_empty());
    let hidden_document = NameScope {
        excluded_documents: &[doc_a],
        ..NameScope::default()
    };
    let found = index
        .find_patients("philippa", &hidden_document, 50)
        .unwrap();
    assert!(found.is_empty(), "philippa's only document is hidden");
    // The limit applies after the scope: hidden matches (Quentin's five pages would rank
    // first) do not use it up.
    let unscoped = index
        .find_patients("quarr", &NameScope::default(), 1)
        .unwrap();
    assert_eq!(unscoped[0].patient_id, Uuid::from_u128(4));
    let found = index.find_patients("quarr", &hidden_category, 1).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].patient_id, philippa);
    // A shredded document's pages no longer find their patient.
    writer.purge_document(doc_b).await.unwrap();
    writer.purge_document(quentin_doc).await.unwrap();
    assert_eq!(ids(&index, "quarr", None), vec![philippa]);
}
