//! Visit rules per district, and the indexes the reports need.
//!
//! `visit_rules` was keyed by category alone, so every district sharing a
//! database (a province on PostgreSQL) would share one set of intervals. It
//! is rebuilt keyed by `(district_id, category)`; rows already there are
//! copied to every district. A district without a row for a category uses
//! the assumed default of `sync-core` (`semantic::VisitIntervals`).
//!
//! Indexes for the reports (see docs/BENCHMARKS.md for the plans):
//! * `visits (village_id, visited_at)`: a town's or village's visits in a
//!   period (the visit log, visits by month);
//! * `register_events (kind, effective_date)`: children added or exited in
//!   a period, and each child's first `added` date;
//! * `case_plan_items (village_id, status)`: open needs-ledger items.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DistrictVisitRules::Table)
                    .col(
                        ColumnDef::new(DistrictVisitRules::DistrictId)
                            .uuid()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DistrictVisitRules::Category)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DistrictVisitRules::IntervalDays)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DistrictVisitRules::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(DistrictVisitRules::UpdatedBy).uuid().null())
                    .primary_key(
                        Index::create()
                            .col(DistrictVisitRules::DistrictId)
                            .col(DistrictVisitRules::Category),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DistrictVisitRules::Table, DistrictVisitRules::DistrictId)
                            .to(OrgUnits::Table, OrgUnits::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(DistrictVisitRules::Table, DistrictVisitRules::UpdatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO district_visit_rules (district_id, category, interval_days, updated_at) \
                 SELECT o.id, r.category, r.interval_days, r.updated_at \
                 FROM visit_rules r CROSS JOIN org_units o WHERE o.kind = 'district'",
            )
            .await?;
        manager
            .drop_table(Table::drop().table(VisitRules::Table).to_owned())
            .await?;
        manager
            .rename_table(
                Table::rename()
                    .table(DistrictVisitRules::Table, VisitRules::Table)
                    .to_owned(),
            )
            .await?;

        manager
            .create_index(
                Index::create()
                    .name("idx_visits_village_visited_at")
                    .table(Visits::Table)
                    .col(Visits::VillageId)
                    .col(Visits::VisitedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_register_events_kind_effective")
                    .table(RegisterEvents::Table)
                    .col(RegisterEvents::Kind)
                    .col(RegisterEvents::EffectiveDate)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_case_plan_items_village_status")
                    .table(CasePlanItems::Table)
                    .col(CasePlanItems::VillageId)
                    .col(CasePlanItems::Status)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            (
                "idx_case_plan_items_village_status",
                CasePlanItems::Table.into_iden(),
            ),
            (
                "idx_register_events_kind_effective",
                RegisterEvents::Table.into_iden(),
            ),
            ("idx_visits_village_visited_at", Visits::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        // Back to one rule set: keep, per category, the longest interval
        // any district configured.
        manager
            .create_table(
                Table::create()
                    .table(DistrictVisitRules::Table)
                    .col(
                        ColumnDef::new(DistrictVisitRules::Category)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(DistrictVisitRules::IntervalDays)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(DistrictVisitRules::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "INSERT INTO district_visit_rules (category, interval_days, updated_at) \
                 SELECT category, MAX(interval_days), MAX(updated_at) FROM visit_rules \
                 GROUP BY category",
            )
            .await?;
        manager
            .drop_table(Table::drop().table(VisitRules::Table).to_owned())
            .await?;
        manager
            .rename_table(
                Table::rename()
                    .table(DistrictVisitRules::Table, VisitRules::Table)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum DistrictVisitRules {
    Table,
    DistrictId,
    Category,
    IntervalDays,
    UpdatedAt,
    UpdatedBy,
}

#[derive(DeriveIden)]
enum VisitRules {
    Table,
}

#[derive(DeriveIden)]
enum OrgUnits {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Visits {
    Table,
    VillageId,
    VisitedAt,
}

#[derive(DeriveIden)]
enum RegisterEvents {
    Table,
    Kind,
    EffectiveDate,
}

#[derive(DeriveIden)]
enum CasePlanItems {
    Table,
    VillageId,
    Status,
}
