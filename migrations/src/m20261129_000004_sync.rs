//! The tables the sync engine and the integration worker fill: the change
//! log (server sequence per record change, with its scope), applied
//! mutations (idempotency), conflicts, the integration outbox, the
//! hash-chained audit log and content-addressed attachments.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

fn required_time<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn optional_time<T: IntoIden>(col: T) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .null()
        .to_owned()
}

async fn index<T, C>(
    manager: &SchemaManager<'_>,
    name: &str,
    table: T,
    cols: impl IntoIterator<Item = C>,
) -> Result<(), DbErr>
where
    T: IntoIden,
    C: IntoIden,
{
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col);
    }
    manager.create_index(index.to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChangeLog::Table)
                    .col(
                        ColumnDef::new(ChangeLog::Seq)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(ChangeLog::Entity).string().not_null())
                    .col(ColumnDef::new(ChangeLog::RecordId).uuid().not_null())
                    .col(ColumnDef::new(ChangeLog::Version).big_integer().not_null())
                    .col(ColumnDef::new(ChangeLog::Op).string().not_null())
                    .col(ColumnDef::new(ChangeLog::VillageId).uuid().null())
                    .col(ColumnDef::new(ChangeLog::TownId).uuid().null())
                    .col(required_time(ChangeLog::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_change_log_village_seq",
            ChangeLog::Table,
            [ChangeLog::VillageId, ChangeLog::Seq],
        )
        .await?;
        index(
            manager,
            "idx_change_log_town_seq",
            ChangeLog::Table,
            [ChangeLog::TownId, ChangeLog::Seq],
        )
        .await?;
        index(
            manager,
            "idx_change_log_record",
            ChangeLog::Table,
            [ChangeLog::Entity, ChangeLog::RecordId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AppliedMutations::Table)
                    .col(
                        ColumnDef::new(AppliedMutations::MutationId)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(AppliedMutations::DeviceId).uuid().not_null())
                    .col(ColumnDef::new(AppliedMutations::UserId).uuid().not_null())
                    .col(ColumnDef::new(AppliedMutations::Entity).string().not_null())
                    .col(ColumnDef::new(AppliedMutations::RecordId).uuid().not_null())
                    .col(ColumnDef::new(AppliedMutations::Outcome).json().not_null())
                    .col(required_time(AppliedMutations::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Conflicts::Table)
                    .col(
                        ColumnDef::new(Conflicts::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Conflicts::Entity).string().not_null())
                    .col(ColumnDef::new(Conflicts::RecordId).uuid().not_null())
                    .col(ColumnDef::new(Conflicts::Field).string().null())
                    .col(ColumnDef::new(Conflicts::Kind).string().not_null())
                    .col(ColumnDef::new(Conflicts::LocalValue).json().null())
                    .col(ColumnDef::new(Conflicts::RemoteValue).json().null())
                    .col(ColumnDef::new(Conflicts::LocalClock).string().null())
                    .col(ColumnDef::new(Conflicts::RemoteClock).string().null())
                    .col(ColumnDef::new(Conflicts::Rule).string().null())
                    .col(ColumnDef::new(Conflicts::Winner).string().null())
                    .col(ColumnDef::new(Conflicts::MutationId).uuid().null())
                    .col(ColumnDef::new(Conflicts::ActorId).uuid().null())
                    .col(ColumnDef::new(Conflicts::VillageId).uuid().null())
                    .col(ColumnDef::new(Conflicts::Status).string().not_null())
                    .col(ColumnDef::new(Conflicts::Resolution).json().null())
                    .col(ColumnDef::new(Conflicts::ResolvedBy).uuid().null())
                    .col(optional_time(Conflicts::ResolvedAt))
                    .col(required_time(Conflicts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_conflicts_village_status",
            Conflicts::Table,
            [Conflicts::VillageId, Conflicts::Status],
        )
        .await?;
        index(
            manager,
            "idx_conflicts_record",
            Conflicts::Table,
            [Conflicts::Entity, Conflicts::RecordId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(ColumnDef::new(Outbox::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Outbox::Kind).string().not_null())
                    .col(ColumnDef::new(Outbox::AggregateId).uuid().not_null())
                    .col(ColumnDef::new(Outbox::Payload).json().not_null())
                    .col(ColumnDef::new(Outbox::Status).string().not_null())
                    .col(
                        ColumnDef::new(Outbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(required_time(Outbox::NextAttemptAt))
                    .col(optional_time(Outbox::LockedUntil))
                    .col(ColumnDef::new(Outbox::LastError).string().null())
                    .col(required_time(Outbox::CreatedAt))
                    .col(optional_time(Outbox::DeliveredAt))
                    .to_owned(),
            )
            .await?;
        index(
            manager,
            "idx_outbox_status_next",
            Outbox::Table,
            [Outbox::Status, Outbox::NextAttemptAt],
        )
        .await?;
        index(
            manager,
            "idx_outbox_aggregate",
            Outbox::Table,
            [Outbox::AggregateId],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(
                        ColumnDef::new(AuditLog::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(required_time(AuditLog::At))
                    .col(ColumnDef::new(AuditLog::ActorId).uuid().null())
                    .col(ColumnDef::new(AuditLog::Action).string().not_null())
                    .col(ColumnDef::new(AuditLog::Entity).string().null())
                    .col(ColumnDef::new(AuditLog::RecordId).uuid().null())
                    .col(ColumnDef::new(AuditLog::Detail).json().null())
                    .col(ColumnDef::new(AuditLog::PrevHash).string().null())
                    .col(ColumnDef::new(AuditLog::Hash).string().not_null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Attachments::Table)
                    .col(
                        ColumnDef::new(Attachments::Sha256)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(Attachments::SizeBytes)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Attachments::ContentType).string().not_null())
                    .col(ColumnDef::new(Attachments::Status).string().not_null())
                    .col(
                        ColumnDef::new(Attachments::ReceivedBytes)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(Attachments::CreatedBy).uuid().null())
                    .col(required_time(Attachments::CreatedAt))
                    .col(optional_time(Attachments::CompletedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Attachments::Table.into_iden(),
            AuditLog::Table.into_iden(),
            Outbox::Table.into_iden(),
            Conflicts::Table.into_iden(),
            AppliedMutations::Table.into_iden(),
            ChangeLog::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum ChangeLog {
    Table,
    Seq,
    Entity,
    RecordId,
    Version,
    Op,
    VillageId,
    TownId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AppliedMutations {
    Table,
    MutationId,
    DeviceId,
    UserId,
    Entity,
    RecordId,
    Outcome,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Conflicts {
    Table,
    Id,
    Entity,
    RecordId,
    Field,
    Kind,
    LocalValue,
    RemoteValue,
    LocalClock,
    RemoteClock,
    Rule,
    Winner,
    MutationId,
    ActorId,
    VillageId,
    Status,
    Resolution,
    ResolvedBy,
    ResolvedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    Kind,
    AggregateId,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LockedUntil,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    ActorId,
    Action,
    Entity,
    RecordId,
    Detail,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Sha256,
    SizeBytes,
    ContentType,
    Status,
    ReceivedBytes,
    CreatedBy,
    CreatedAt,
    CompletedAt,
}
