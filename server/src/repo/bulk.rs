//! Bulk loading on PostgreSQL: `COPY … FROM STDIN (FORMAT csv)` and
//! `VACUUM ANALYZE`, for the generated benchmark province.

use sea_orm::DbErr;
use sea_orm::sqlx::{self, PgConnection};

fn failed(err: sqlx::Error) -> DbErr {
    DbErr::Custom(format!("COPY: {err}"))
}

/// Streams CSV rows (no header; empty unquoted fields are NULL) into
/// `table_and_columns`, e.g. `org_units (id, code, name)`.
pub async fn copy_csv(
    conn: &mut PgConnection,
    table_and_columns: &str,
    csv: Vec<u8>,
) -> Result<u64, DbErr> {
    let mut copy = conn
        .copy_in_raw(&format!(
            "COPY {table_and_columns} FROM STDIN WITH (FORMAT csv)"
        ))
        .await
        .map_err(failed)?;
    if let Err(err) = copy.send(csv).await {
        let _ = copy.abort(err.to_string()).await;
        return Err(failed(err));
    }
    copy.finish().await.map_err(failed)
}

/// Refreshes the planner's statistics after a bulk load and sets the
/// visibility map, as autovacuum would later, so that the reports'
/// index-only scans over the visits need no heap fetches from the start.
pub async fn vacuum_analyze(conn: &mut PgConnection) -> Result<(), DbErr> {
    sqlx::raw_sql("VACUUM ANALYZE")
        .execute(conn)
        .await
        .map_err(failed)?;
    Ok(())
}
