//! The server's epoch: which history of the database a phone's cursor was
//! made in. `seedling restore` (or `seedling mark-restored`, after a restore
//! by other means) sets a new one, so a phone that synced with the lost
//! history learns of the restore at its next pull and sends back what the
//! server lost. No row: the database was never restored (epoch `""`).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServerMeta::Table)
                    .col(
                        ColumnDef::new(ServerMeta::Key)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ServerMeta::Value).text().not_null())
                    .col(
                        ColumnDef::new(ServerMeta::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ServerMeta::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ServerMeta {
    Table,
    Key,
    Value,
    UpdatedAt,
}
