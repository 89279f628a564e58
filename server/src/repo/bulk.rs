//! Bulk loading on PostgreSQL: `COPY … FROM STDIN (FORMAT csv)` and
//! `ANALYZE`, for the generated benchmark province.

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

/// Refreshes the planner's statistics after a bulk load.
pub async fn analyze(conn: &mut PgConnection) -> Result<(), DbErr> {
    sqlx::query("ANALYZE").execute(conn).await.map_err(failed)?;
    Ok(())
}
