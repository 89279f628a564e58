//! The history of every visit: one row per server version, naming who made
//! the change (and through which mutation) and, per changed field, the value
//! before and after. A supervisor reads a visit's whole history from it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(VisitVersions::Table)
                    .col(
                        ColumnDef::new(VisitVersions::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(VisitVersions::VisitId).uuid().not_null())
                    .col(
                        ColumnDef::new(VisitVersions::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(VisitVersions::ActorId).uuid().null())
                    .col(ColumnDef::new(VisitVersions::ActorRole).string().null())
                    .col(ColumnDef::new(VisitVersions::MutationId).uuid().null())
                    .col(ColumnDef::new(VisitVersions::Kind).string().not_null())
                    .col(ColumnDef::new(VisitVersions::Changes).json().not_null())
                    .col(
                        ColumnDef::new(VisitVersions::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_visit_versions_visit")
                    .table(VisitVersions::Table)
                    .col(VisitVersions::VisitId)
                    .col(VisitVersions::Version)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(VisitVersions::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum VisitVersions {
    Table,
    Id,
    VisitId,
    Version,
    ActorId,
    ActorRole,
    MutationId,
    Kind,
    Changes,
    CreatedAt,
}
