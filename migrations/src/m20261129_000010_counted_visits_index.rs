//! Each child's last visit that counts for its due date (not deleted, not
//! a draft) read from an index alone: a partial index on
//! `visits (child_id, visited_at)`, in place of `(village_id, visited_at)`,
//! which no query used (reports and the visit log place a visit by its
//! child). See docs/BENCHMARKS.md, "Reports over a province".

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_visits_village_visited_at")
                    .table(Visits::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_visits_child_counted")
                    .table(Visits::Table)
                    .col(Visits::ChildId)
                    .col(Visits::VisitedAt)
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
                    .name("idx_visits_child_counted")
                    .table(Visits::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_visits_village_visited_at")
                    .table(Visits::Table)
                    .col(Visits::VillageId)
                    .col(Visits::VisitedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Visits {
    Table,
    ChildId,
    VillageId,
    VisitedAt,
    Deleted,
    ReviewStatus,
}
