//! Visit records (home visits, phone follow-ups, ...) and the per-child
//! needs ledger (case-plan items). Both are synced records: server version,
//! per-field clocks, created/updated times and a tombstone flag.

use sea_orm_migration::prelude::*;

use crate::m20261129_000001_org_and_users::{OrgUnits, Users};
use crate::m20261129_000002_register::Children;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The columns every synced record table starts with.
fn record_columns<T: IntoIden + Copy + 'static>(
    table: &mut TableCreateStatement,
    [id, version, field_clocks, created_at, updated_at, deleted]: [T; 6],
) {
    table
        .col(ColumnDef::new(id).uuid().not_null().primary_key())
        .col(ColumnDef::new(version).big_integer().not_null())
        .col(ColumnDef::new(field_clocks).json().not_null())
        .col(
            ColumnDef::new(created_at)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(updated_at)
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(ColumnDef::new(deleted).boolean().not_null().default(false));
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut visits = Table::create();
        visits.table(Visits::Table);
        record_columns(
            &mut visits,
            [
                Visits::Id,
                Visits::Version,
                Visits::FieldClocks,
                Visits::CreatedAt,
                Visits::UpdatedAt,
                Visits::Deleted,
            ],
        );
        visits
            .col(ColumnDef::new(Visits::ChildId).uuid().not_null())
            .col(ColumnDef::new(Visits::AuthorId).uuid().not_null())
            .col(ColumnDef::new(Visits::DeviceId).uuid().null())
            .col(ColumnDef::new(Visits::VillageId).uuid().not_null())
            .col(ColumnDef::new(Visits::Kind).string().not_null())
            .col(
                ColumnDef::new(Visits::VisitedAt)
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .col(ColumnDef::new(Visits::Location).json().null())
            .col(ColumnDef::new(Visits::Observations).json().null())
            .col(ColumnDef::new(Visits::Needs).json().not_null())
            .col(ColumnDef::new(Visits::RiskFlags).json().not_null())
            .col(ColumnDef::new(Visits::Photos).json().not_null())
            .col(ColumnDef::new(Visits::FollowUp).string().null())
            .col(ColumnDef::new(Visits::NextPlannedDate).date().null())
            .col(ColumnDef::new(Visits::ReviewStatus).string().not_null())
            .col(ColumnDef::new(Visits::ReviewComment).string().null())
            .col(ColumnDef::new(Visits::ReviewedBy).uuid().null())
            .col(
                ColumnDef::new(Visits::ReviewedAt)
                    .timestamp_with_time_zone()
                    .null(),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(Visits::Table, Visits::ChildId)
                    .to(Children::Table, Children::Id),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(Visits::Table, Visits::AuthorId)
                    .to(Users::Table, Users::Id),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(Visits::Table, Visits::VillageId)
                    .to(OrgUnits::Table, OrgUnits::Id),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(Visits::Table, Visits::ReviewedBy)
                    .to(Users::Table, Users::Id),
            );
        manager.create_table(visits.to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_visits_child_visited_at")
                    .table(Visits::Table)
                    .col(Visits::ChildId)
                    .col(Visits::VisitedAt)
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_visits_village", Visits::VillageId),
            ("idx_visits_review_status", Visits::ReviewStatus),
            ("idx_visits_author", Visits::AuthorId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Visits::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }

        let mut items = Table::create();
        items.table(CasePlanItems::Table);
        record_columns(
            &mut items,
            [
                CasePlanItems::Id,
                CasePlanItems::Version,
                CasePlanItems::FieldClocks,
                CasePlanItems::CreatedAt,
                CasePlanItems::UpdatedAt,
                CasePlanItems::Deleted,
            ],
        );
        items
            .col(ColumnDef::new(CasePlanItems::ChildId).uuid().not_null())
            .col(ColumnDef::new(CasePlanItems::VillageId).uuid().not_null())
            .col(ColumnDef::new(CasePlanItems::Area).string().not_null())
            .col(
                ColumnDef::new(CasePlanItems::Description)
                    .string()
                    .not_null(),
            )
            .col(ColumnDef::new(CasePlanItems::Status).string().not_null())
            .col(ColumnDef::new(CasePlanItems::Owner).string().null())
            .col(ColumnDef::new(CasePlanItems::DueDate).date().null())
            .foreign_key(
                ForeignKey::create()
                    .from(CasePlanItems::Table, CasePlanItems::ChildId)
                    .to(Children::Table, Children::Id),
            )
            .foreign_key(
                ForeignKey::create()
                    .from(CasePlanItems::Table, CasePlanItems::VillageId)
                    .to(OrgUnits::Table, OrgUnits::Id),
            );
        manager.create_table(items.to_owned()).await?;
        for (name, col) in [
            ("idx_case_plan_items_child", CasePlanItems::ChildId),
            ("idx_case_plan_items_village", CasePlanItems::VillageId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(CasePlanItems::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [CasePlanItems::Table.into_iden(), Visits::Table.into_iden()] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(Clone, Copy, DeriveIden)]
enum Visits {
    Table,
    Id,
    Version,
    FieldClocks,
    CreatedAt,
    UpdatedAt,
    Deleted,
    ChildId,
    AuthorId,
    DeviceId,
    VillageId,
    Kind,
    VisitedAt,
    Location,
    Observations,
    Needs,
    RiskFlags,
    Photos,
    FollowUp,
    NextPlannedDate,
    ReviewStatus,
    ReviewComment,
    ReviewedBy,
    ReviewedAt,
}

#[derive(Clone, Copy, DeriveIden)]
enum CasePlanItems {
    Table,
    Id,
    Version,
    FieldClocks,
    CreatedAt,
    UpdatedAt,
    Deleted,
    ChildId,
    VillageId,
    Area,
    Description,
    Status,
    Owner,
    DueDate,
}
