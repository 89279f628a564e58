//! The children's register: children, their register events (added,
//! category changed, transferred, exited), the visiting rules per category
//! and the monthly benefit standards with their effective dates.

use sea_orm_migration::prelude::*;

use crate::m20261129_000001_org_and_users::{OrgUnits, Users};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Children::Table)
                    .col(ColumnDef::new(Children::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Children::Version).big_integer().not_null())
                    .col(ColumnDef::new(Children::FieldClocks).json().not_null())
                    .col(
                        ColumnDef::new(Children::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Children::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Children::Deleted)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(Children::Name).string().not_null())
                    .col(ColumnDef::new(Children::Gender).string().null())
                    .col(ColumnDef::new(Children::BirthDate).date().not_null())
                    .col(ColumnDef::new(Children::IdNumber).string().null())
                    .col(ColumnDef::new(Children::Category).string().not_null())
                    .col(ColumnDef::new(Children::Status).string().not_null())
                    .col(ColumnDef::new(Children::ExitReason).string().null())
                    .col(ColumnDef::new(Children::ExitDate).date().null())
                    .col(ColumnDef::new(Children::VillageId).uuid().not_null())
                    .col(ColumnDef::new(Children::GuardianName).string().null())
                    .col(ColumnDef::new(Children::GuardianRelation).string().null())
                    .col(ColumnDef::new(Children::GuardianPhone).string().null())
                    .col(ColumnDef::new(Children::Address).string().null())
                    .col(ColumnDef::new(Children::School).string().null())
                    .col(ColumnDef::new(Children::HealthNotes).string().null())
                    .col(ColumnDef::new(Children::DisabilityNotes).string().null())
                    .col(
                        ColumnDef::new(Children::BenefitStandardCny)
                            .integer()
                            .null(),
                    )
                    .col(ColumnDef::new(Children::VisitIntervalDays).integer().null())
                    .col(
                        ColumnDef::new(Children::ExternalId)
                            .string()
                            .null()
                            .unique_key(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Children::Table, Children::VillageId)
                            .to(OrgUnits::Table, OrgUnits::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_children_village", Children::VillageId),
            ("idx_children_category", Children::Category),
            ("idx_children_status", Children::Status),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Children::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(RegisterEvents::Table)
                    .col(
                        ColumnDef::new(RegisterEvents::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(RegisterEvents::ChildId).uuid().not_null())
                    .col(ColumnDef::new(RegisterEvents::Kind).string().not_null())
                    .col(
                        ColumnDef::new(RegisterEvents::EffectiveDate)
                            .date()
                            .not_null(),
                    )
                    .col(ColumnDef::new(RegisterEvents::Source).string().not_null())
                    .col(ColumnDef::new(RegisterEvents::FromValue).string().null())
                    .col(ColumnDef::new(RegisterEvents::ToValue).string().null())
                    .col(ColumnDef::new(RegisterEvents::Reason).string().null())
                    .col(ColumnDef::new(RegisterEvents::RecordedBy).uuid().null())
                    .col(
                        ColumnDef::new(RegisterEvents::CreatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RegisterEvents::Table, RegisterEvents::ChildId)
                            .to(Children::Table, Children::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RegisterEvents::Table, RegisterEvents::RecordedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_register_events_child", RegisterEvents::ChildId),
            (
                "idx_register_events_effective",
                RegisterEvents::EffectiveDate,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(RegisterEvents::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(VisitRules::Table)
                    .col(
                        ColumnDef::new(VisitRules::Category)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(VisitRules::IntervalDays)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(VisitRules::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BenefitStandards::Table)
                    .col(
                        ColumnDef::new(BenefitStandards::Id)
                            .uuid()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(BenefitStandards::Category)
                            .string()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BenefitStandards::AmountCny)
                            .integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(BenefitStandards::EffectiveFrom)
                            .date()
                            .not_null(),
                    )
                    .col(ColumnDef::new(BenefitStandards::EffectiveTo).date().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("uq_benefit_standards_category_from")
                    .table(BenefitStandards::Table)
                    .col(BenefitStandards::Category)
                    .col(BenefitStandards::EffectiveFrom)
                    .unique()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            BenefitStandards::Table.into_iden(),
            VisitRules::Table.into_iden(),
            RegisterEvents::Table.into_iden(),
            Children::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
pub(crate) enum Children {
    Table,
    Id,
    Version,
    FieldClocks,
    CreatedAt,
    UpdatedAt,
    Deleted,
    Name,
    Gender,
    BirthDate,
    IdNumber,
    Category,
    Status,
    ExitReason,
    ExitDate,
    VillageId,
    GuardianName,
    GuardianRelation,
    GuardianPhone,
    Address,
    School,
    HealthNotes,
    DisabilityNotes,
    BenefitStandardCny,
    VisitIntervalDays,
    ExternalId,
}

#[derive(DeriveIden)]
enum RegisterEvents {
    Table,
    Id,
    ChildId,
    Kind,
    EffectiveDate,
    Source,
    FromValue,
    ToValue,
    Reason,
    RecordedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum VisitRules {
    Table,
    Category,
    IntervalDays,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BenefitStandards {
    Table,
    Id,
    Category,
    AmountCny,
    EffectiveFrom,
    EffectiveTo,
}
