//! Each device's key for the field app's store: the phone keeps its data
//! key wrapped by the director's PIN and by this key, which the server hands
//! out only on a password sign-in from that device, so a forgotten PIN loses
//! no pending visit. Null for devices that have not signed in since.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(ColumnDef::new(Devices::DeviceKey).string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .drop_column(Devices::DeviceKey)
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    DeviceKey,
}
