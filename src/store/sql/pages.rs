//! [`PageStore`] in SQL, for every backend.

use super::*;
pub(super) use crate::store::pages::*;

/// A page row from a `pages` or `batch_pages` row (the same columns).
pub(super) fn page_row_from(r: &DbRow) -> super::StoreResult<PageRow> {
    Ok(PageRow {
        page: r.try_get::<i64, _>("page")? as u32,
        width: r.try_get::<i64, _>("width")? as u32,
        height: r.try_get::<i64, _>("height")? as u32,
        dpi: r.try_get("dpi")?,
        mean_confidence: r.try_get("mean_confidence")?,
        word_count: r.try_get::<i64, _>("word_count")? as u32,
        blank: r.try_get("blank")?,
        rotation: r.try_get::<i64, _>("rotation")? as u16,
        skew_degrees: r.try_get("skew_degrees")?,
        ink: r.try_get("ink")?,
        text_source: r
            .try_get::<&str, _>("text_source")?
            .parse()
            .map_err(decode_err)?,
    })
}

pub(super) fn insert_page_query(
    document: DocumentId,
    page: &PageRow,
) -> sqlx::query::Query<'_, Driver, <Driver as sqlx::Database>::Arguments<'_>> {
    sqlx::query(
        "INSERT INTO pages (document_id, page, width, height, dpi, mean_confidence, word_count,
            created_at, blank, rotation, skew_degrees, ink, text_source)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (document_id, page) DO UPDATE SET width = excluded.width,
            height = excluded.height, dpi = excluded.dpi,
            mean_confidence = excluded.mean_confidence, word_count = excluded.word_count,
            blank = excluded.blank, rotation = excluded.rotation,
            skew_degrees = excluded.skew_degrees, ink = excluded.ink,
            text_source = excluded.text_source",
    )
    .bind(document.to_string())
    .bind(page.page as i64)
    .bind(page.width as i64)
    .bind(page.height as i64)
    .bind(page.dpi)
    .bind(page.mean_confidence)
    .bind(page.word_count as i64)
    .bind(now())
    .bind(page.blank)
    .bind(i64::from(page.rotation))
    .bind(page.skew_degrees)
    .bind(page.ink)
    .bind(page.text_source.as_str())
}

impl PageStore for Backend {
    async fn insert_page(&self, document: DocumentId, page: &PageRow) -> super::StoreResult<()> {
        insert_page_query(document, page)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn insert_page_tx(
        tx: &mut Tx,
        document: DocumentId,
        page: &PageRow,
    ) -> super::StoreResult<()> {
        insert_page_query(document, page).execute(tx.conn()).await?;
        Ok(())
    }

    async fn pages(&self, document: DocumentId) -> super::StoreResult<Vec<PageRow>> {
        let rows = sqlx::query(
            "SELECT page, width, height, dpi, mean_confidence, word_count, blank, rotation,
                skew_degrees, ink, text_source FROM pages
             WHERE document_id = $1 ORDER BY page",
        )
        .bind(document.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(page_row_from).collect()
    }
}
