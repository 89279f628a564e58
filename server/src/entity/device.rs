//! Devices: the phones (and consoles) a user signs in from, identified by a
//! client-made id.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    /// `active`, `retired`, `lost` or `revoked`.
    pub state: String,
    pub protocol_version: Option<i32>,
    pub last_seen_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    /// Base64 of 32 random bytes: the key that wraps the field app's data
    /// key on this device, handed out only on a password sign-in from it
    /// (a device belongs to one account: another is refused
    /// `device_in_use`).
    pub device_key: Option<String>,
    /// When the last session on this device ended (sign-out, or a reused
    /// refresh token): access tokens issued before are refused.
    pub session_ended_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
