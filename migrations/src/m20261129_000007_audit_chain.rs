//! The audit log's chain head and lookups.
//!
//! Appending to the hash chain must be serialised: every append first
//! updates the `audit_log` row of `sync_locks` (locking it until commit)
//! and bumps its counter, so the chain never forks under concurrent
//! writers and the counter equals the number of rows ever appended, which
//! lets `seedling audit verify` notice rows deleted from the end.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(SyncLocks::Table)
                    .columns([SyncLocks::Name, SyncLocks::Taken])
                    .values_panic(["audit_log".into(), 0i64.into()])
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_record")
                    .table(AuditLog::Table)
                    .col(AuditLog::RecordId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_actor")
                    .table(AuditLog::Table)
                    .col(AuditLog::ActorId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_audit_log_actor")
                    .table(AuditLog::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("idx_audit_log_record")
                    .table(AuditLog::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::delete()
                    .from_table(SyncLocks::Table)
                    .and_where(Expr::col(SyncLocks::Name).eq("audit_log"))
                    .to_owned(),
            )
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
enum AuditLog {
    Table,
    RecordId,
    ActorId,
}
