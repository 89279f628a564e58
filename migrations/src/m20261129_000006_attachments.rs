//! What a resumable attachment upload needs beyond the first schema: the
//! id of the upload in progress (its chunks live in the store's temporary
//! area under it, so a discarded upload never mixes with the next one) and
//! the ordered list of chunk ends received so far (a JSON array of byte
//! offsets), which names exactly the chunks the finished file is made of.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table(Attachments::Table)
                    .add_column(ColumnDef::new(Attachments::UploadId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Attachments::Table)
                    .add_column(
                        ColumnDef::new(Attachments::Parts)
                            .text()
                            .not_null()
                            .default("[]"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Attachments::Parts, Attachments::UploadId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Attachments::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    UploadId,
    Parts,
}
