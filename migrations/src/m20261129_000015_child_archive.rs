//! When a child's record was archived under the retention policy for exited
//! children (personal fields removed, kept for reports); null while it is
//! whole.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Children::Table)
                    .add_column(
                        ColumnDef::new(Children::ArchivedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Children::Table)
                    .drop_column(Children::ArchivedAt)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Children {
    Table,
    ArchivedAt,
}
