//! OCR languages beyond English: with `ocr.language = "eng+spa"` (Debian package
//! `tesseract-ocr-spa`, installed by scripts/setup.sh), a Spanish note is read with its
//! accents, and search finds its words on their page.

use serde_json::json;

use crate::helpers::*;

const NOTA: &[&str] = &[
    "Hospital General de Riverside   Nota de evolución",
    "El paciente refiere dolor en el corazón desde ayer",
    "Se indica reposo y una revisión la próxima semana",
    "Palabra clave de esta página: golondrina",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_spanish_data_a_spanish_note_is_read_accents_and_all() {
    let app = spawn_app_with(|c| c.ocr.language = "eng+spa".into()).await;
    let id = app
        .upload(
            png_of(&scanned_page(NOTA, 0.0, 5)),
            &metadata("00555", "Ana Garcia", "progress-note"),
        )
        .await;
    app.wait_indexed(&id).await;

    let text = app
        .get(
            &app.records,
            &format!("/api/v1/documents/{id}/pages/1/text"),
        )
        .await;
    assert_eq!(text.status(), 200);
    let text = text.text().await.unwrap();
    for word in ["evolución", "corazón", "revisión", "próxima", "página"] {
        assert!(text.contains(word), "{word:?} not read in {text:?}");
    }
    for word in ["corazón", "golondrina"] {
        let result = app.search(&app.clinician, json!({ "query": word })).await;
        assert_eq!(result["total"], 1, "{word}: {result}");
        assert_eq!(result["hits"][0]["page"], 1, "{word}");
    }
}
