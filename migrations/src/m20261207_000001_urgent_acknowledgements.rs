//! Acknowledgements of urgent risk alerts (强制报告): a supervisor or the
//! district records that they know of a visit's urgent risk flag
//! (`acknowledged`, 已知悉) or have reported it (`reported`, 已上报).
//! Server-only: phones never receive these rows.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(UrgentAcknowledgements::Table)
                    .col(
                        ColumnDef::new(UrgentAcknowledgements::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(UrgentAcknowledgements::VisitId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UrgentAcknowledgements::Action)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UrgentAcknowledgements::ActorId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UrgentAcknowledgements::ActorRole)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(UrgentAcknowledgements::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_urgent_acknowledgements_visit")
                    .table(UrgentAcknowledgements::Table)
                    .col(UrgentAcknowledgements::VisitId)
                    .col(UrgentAcknowledgements::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(UrgentAcknowledgements::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum UrgentAcknowledgements {
    Table,
    Id,
    VisitId,
    Action,
    ActorId,
    ActorRole,
    CreatedAt,
}
