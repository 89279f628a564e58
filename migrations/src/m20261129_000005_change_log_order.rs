//! Gap-free change-log order and a district scope on change-log rows.
//!
//! `sync_locks` holds one row per serialised writer. Every transaction that
//! appends to `change_log` first updates the `change_log` row here, which
//! locks it until commit, so sequence numbers are handed out in commit
//! order: a pull can never see a later sequence number while an earlier one
//! is still uncommitted (the sequence-gap problem of concurrent writers).
//! `change_log.district_id` lets an admin's pull select the district.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncLocks::Table)
                    .col(
                        ColumnDef::new(SyncLocks::Name)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncLocks::Taken)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(SyncLocks::Table)
                    .columns([SyncLocks::Name, SyncLocks::Taken])
                    .values_panic(["change_log".into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeLog::Table)
                    .add_column(ColumnDef::new(ChangeLog::DistrictId).uuid().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_change_log_district_seq")
                    .table(ChangeLog::Table)
                    .col(ChangeLog::DistrictId)
                    .col(ChangeLog::Seq)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_change_log_district_seq")
                    .table(ChangeLog::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ChangeLog::Table)
                    .drop_column(ChangeLog::DistrictId)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(SyncLocks::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncLocks {
    Table,
    Name,
    Taken,
}

#[derive(DeriveIden)]
enum ChangeLog {
    Table,
    Seq,
    DistrictId,
}
