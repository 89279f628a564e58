//! Delivery to the provincial platform and the roster import from it.
//!
//! `outbox` gains `order_key` (the child a message is about: a later message
//! for a child never overtakes an earlier undelivered one) and `lease_id`
//! (which worker's claim a row is under, so a worker whose lease ran out
//! cannot mark a row another worker took over). `delivery_attempts` records
//! every attempt; `integration_settings` holds state all processes obey
//! (delivery paused); `integration_batches` stores the report of each
//! applied roster batch under its batch id, so a retried batch answers the
//! same report and changes nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        for column in [Outbox::OrderKey, Outbox::LeaseId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .add_column(ColumnDef::new(column).uuid().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_outbox_order_key")
                    .table(Outbox::Table)
                    .col(Outbox::OrderKey)
                    .col(Outbox::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeliveryAttempts::Table)
                    .col(
                        ColumnDef::new(DeliveryAttempts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(DeliveryAttempts::OutboxId).uuid().not_null())
                    .col(
                        ColumnDef::new(DeliveryAttempts::Attempt)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeliveryAttempts::StartedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeliveryAttempts::LatencyMs)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DeliveryAttempts::StatusCode)
                            .integer()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(DeliveryAttempts::Outcome)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DeliveryAttempts::Error).string().null())
                    .col(
                        ColumnDef::new(DeliveryAttempts::ResponseExcerpt)
                            .string()
                            .null(),
                    )
                    .col(ColumnDef::new(DeliveryAttempts::KeyId).string().not_null())
                    .col(ColumnDef::new(DeliveryAttempts::WorkerId).uuid().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_delivery_attempts_outbox")
                    .table(DeliveryAttempts::Table)
                    .col(DeliveryAttempts::OutboxId)
                    .col(DeliveryAttempts::Attempt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IntegrationSettings::Table)
                    .col(
                        ColumnDef::new(IntegrationSettings::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(IntegrationSettings::Value).json().not_null())
                    .col(ColumnDef::new(IntegrationSettings::UpdatedBy).uuid().null())
                    .col(
                        ColumnDef::new(IntegrationSettings::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(IntegrationBatches::Table)
                    .col(
                        ColumnDef::new(IntegrationBatches::ClientId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IntegrationBatches::BatchId)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(IntegrationBatches::RequestSha256)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(IntegrationBatches::Report).json().not_null())
                    .col(
                        ColumnDef::new(IntegrationBatches::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(IntegrationBatches::ClientId)
                            .col(IntegrationBatches::BatchId),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IntegrationBatches::Table.into_iden(),
            IntegrationSettings::Table.into_iden(),
            DeliveryAttempts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbox_order_key")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Outbox::LeaseId, Outbox::OrderKey] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    OrderKey,
    LeaseId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DeliveryAttempts {
    Table,
    Id,
    OutboxId,
    Attempt,
    StartedAt,
    LatencyMs,
    StatusCode,
    Outcome,
    Error,
    ResponseExcerpt,
    KeyId,
    WorkerId,
}

#[derive(DeriveIden)]
enum IntegrationSettings {
    Table,
    Name,
    Value,
    UpdatedBy,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum IntegrationBatches {
    Table,
    ClientId,
    BatchId,
    RequestSha256,
    Report,
    CreatedAt,
}
