//! Supervisor review: the visit log and a visit's whole history
//! ([`log`]), children's pages and the roster ([`children`]), review
//! decisions and amendments ([`decide`]), the conflict queue
//! ([`conflicts`]) and the acknowledgement of urgent alerts ([`urgent`]). Supervisors see their town, admins their district;
//! directors and the provincial account have no access (403).
//!
//! Every change made here — a decision, an accepted amendment, a conflict
//! resolution — is a normal change merged through `sync-core` as the
//! supervisor, written with its change-log rows (so it reaches phones at
//! their next pull) and audited, in one transaction.

pub mod children;
pub mod conflicts;
pub mod decide;
pub mod log;
pub mod urgent;

use sea_orm::ConnectionTrait;
use uuid::Uuid;

use crate::auth::{AuthUser, Role, Scope};
use crate::entity::org_unit;
use crate::error::{AppError, AppResult};
use crate::repo;

/// Dates in filters and due dates are days of the district's calendar.
pub(crate) use crate::calendar::{start_of, today};

/// Reading the review APIs: supervisors and the district.
pub(crate) fn require_reader(caller: &AuthUser) -> AppResult<()> {
    match caller.role {
        Role::Supervisor | Role::Admin => Ok(()),
        _ => Err(AppError::forbidden(
            "the review API is for town supervisors and the district bureau",
        )),
    }
}

/// The org units the caller sees, to filter by and to name things with.
#[derive(Debug, Clone)]
pub(crate) struct ScopeUnits {
    pub units: Vec<org_unit::Model>,
}

impl ScopeUnits {
    /// The units in the caller's scope.
    pub async fn load(db: &impl ConnectionTrait, caller: &AuthUser) -> AppResult<Self> {
        let units = match Scope::of(caller).root() {
            Some(root) => repo::org_units::subtree(db, root).await?,
            None => repo::org_units::all(db).await?,
        };
        Ok(Self { units })
    }

    pub fn get(&self, id: Uuid) -> Option<&org_unit::Model> {
        self.units.iter().find(|unit| unit.id == id)
    }

    /// Every village in scope.
    pub fn villages(&self) -> Vec<Uuid> {
        self.units
            .iter()
            .filter(|unit| unit.kind == "village")
            .map(|unit| unit.id)
            .collect()
    }

    /// The villages of the scope below `unit` (a town or a village);
    /// refused when `unit` is outside the scope.
    pub fn villages_under(&self, unit: Uuid) -> AppResult<Vec<Uuid>> {
        let Some(found) = self.get(unit) else {
            return Err(AppError::forbidden(
                "this town or village is outside your scope",
            ));
        };
        Ok(match found.kind.as_str() {
            "village" => vec![found.id],
            _ => self
                .units
                .iter()
                .filter(|v| v.kind == "village" && self.is_below(v, found.id))
                .map(|v| v.id)
                .collect(),
        })
    }

    fn is_below(&self, unit: &org_unit::Model, ancestor: Uuid) -> bool {
        let mut next = unit.parent_id;
        for _ in 0..8 {
            match next {
                Some(id) if id == ancestor => return true,
                Some(id) => next = self.get(id).and_then(|u| u.parent_id),
                None => return false,
            }
        }
        false
    }

    /// Village name and its town's id and name.
    pub fn place(&self, village: Uuid) -> Place {
        let unit = self.get(village);
        let town = unit.and_then(|u| u.parent_id).and_then(|t| self.get(t));
        Place {
            village_id: village,
            village_name: unit.map(|u| u.name.clone()).unwrap_or_default(),
            town_id: town.map(|t| t.id),
            town_name: town.map(|t| t.name.clone()).unwrap_or_default(),
        }
    }
}

/// Where a child is registered, by name.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Place {
    pub village_id: Uuid,
    pub village_name: String,
    pub town_id: Option<Uuid>,
    pub town_name: String,
}
