//! The duplicate check of a push reads, for each visit, the child's other
//! live visits on its day: `(child_id, id, device_id, visited_at)` of
//! `visits` where `child_id` matches, `visited_at` falls in the day and the
//! visit is not deleted. `(child_id, visited_at)` found those rows, then
//! read each whole row (about 2 KB) from the table; the index now carries
//! the other three columns, so the check is answered from the index alone.
//! Every query the old index served uses the same leading columns.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "idx_visits_child_visited_at";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(
            manager,
            &[
                Visits::ChildId,
                Visits::VisitedAt,
                Visits::Deleted,
                Visits::DeviceId,
                Visits::Id,
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(manager, &[Visits::ChildId, Visits::VisitedAt]).await
    }
}

async fn replace(manager: &SchemaManager<'_>, columns: &[Visits]) -> Result<(), DbErr> {
    manager
        .drop_index(Index::drop().name(NAME).table(Visits::Table).to_owned())
        .await?;
    let mut index = Index::create();
    index.name(NAME).table(Visits::Table);
    for column in columns {
        index.col(*column);
    }
    manager.create_index(index.to_owned()).await
}

#[derive(DeriveIden, Clone, Copy)]
enum Visits {
    Table,
    Id,
    ChildId,
    VisitedAt,
    Deleted,
    DeviceId,
}
