//! The org tree and the people in it, as the caller's scope allows.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::auth::{AuthUser, Role, Scope};
use crate::entity::org_unit;
use crate::error::{AppError, AppResult};
use crate::repo;
use crate::service::auth::{UserView, user_view};
use crate::state::AppState;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct OrgUnitView {
    pub id: Uuid,
    /// Administrative code.
    pub code: String,
    pub name: String,
    /// `district`, `town` or `village`.
    pub kind: String,
    pub parent_id: Option<Uuid>,
}

impl From<org_unit::Model> for OrgUnitView {
    fn from(unit: org_unit::Model) -> Self {
        Self {
            id: unit.id,
            code: unit.code,
            name: unit.name,
            kind: unit.kind,
            parent_id: unit.parent_id,
        }
    }
}

/// The caller's org unit and every unit below it.
pub async fn units_in_scope(state: &AppState, caller: &AuthUser) -> AppResult<Vec<OrgUnitView>> {
    let units = match Scope::of(caller).root() {
        Some(root) => repo::org_units::subtree(&state.db, root).await?,
        None => repo::org_units::all(&state.db).await?,
    };
    Ok(units.into_iter().map(OrgUnitView::from).collect())
}

/// True when the org unit lies inside the caller's scope.
pub async fn org_unit_in_scope(state: &AppState, caller: &AuthUser, unit: Uuid) -> AppResult<bool> {
    let lineage = repo::org_units::lineage(&state.db, unit).await?;
    Ok(Scope::of(caller).contains(&lineage))
}

/// The accounts bound to units in the caller's scope. Supervisors and admins
/// only: a director manages no one.
pub async fn users_in_scope(state: &AppState, caller: &AuthUser) -> AppResult<Vec<UserView>> {
    caller.require_role(&[Role::Supervisor, Role::Admin])?;
    let units = units_in_scope(state, caller).await?;
    let ids = units.iter().map(|unit| unit.id).collect();
    let users = repo::users::in_org_units(&state.db, ids).await?;
    users
        .into_iter()
        .map(|user| {
            let unit = units
                .iter()
                .find(|unit| unit.id == user.org_unit_id)
                .cloned()
                .ok_or_else(|| {
                    AppError::Internal("user outside the units just listed".to_owned())
                })?;
            user_view(user, unit)
        })
        .collect()
}
