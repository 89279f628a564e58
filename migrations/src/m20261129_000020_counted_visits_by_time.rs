//! The visits that count for a due date (not deleted, not a draft) by the
//! time they were made: a partial index on `visits (visited_at, child_id)`,
//! so that a report over many children reads each child's last visit of
//! the recent past from one range of an index instead of aggregating every
//! visit ever made. See docs/BENCHMARKS.md, "Reports over a province".

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("idx_visits_counted_visited_at")
                    .table(Visits::Table)
                    .col(Visits::VisitedAt)
                    .col(Visits::ChildId)
                    .and_where(Expr::col(Visits::Deleted).eq(false))
                    .and_where(Expr::col(Visits::ReviewStatus).ne("draft"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_visits_counted_visited_at")
                    .table(Visits::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Visits {
    Table,
    ChildId,
    VisitedAt,
    Deleted,
    ReviewStatus,
}
