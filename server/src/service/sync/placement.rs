//! Where a synced record sits in the org tree, which decides which devices
//! receive it: a child's records follow the child; an exited child leaves
//! its village's phones but stays with the town and the district.

use std::collections::HashMap;

use sea_orm::ConnectionTrait;
use sync_core::record::Record;
use uuid::Uuid;

use crate::auth::Scope;
use crate::error::AppResult;
use crate::repo;
use crate::repo::change_log::{Placement, ScopeColumn};

/// Org-unit lineages looked up while serving one request, so a batch of
/// mutations in one village asks the database once. Lives only as long as
/// the request: nothing is kept between requests.
#[derive(Debug, Default)]
pub struct Lineages(HashMap<Uuid, Vec<Uuid>>);

impl Lineages {
    /// The unit, its parent, … up to the district (see `repo::org_units::lineage`).
    pub async fn of(&mut self, db: &impl ConnectionTrait, unit: Uuid) -> AppResult<Vec<Uuid>> {
        if let Some(known) = self.0.get(&unit) {
            return Ok(known.clone());
        }
        let lineage = repo::org_units::lineage(db, unit).await?;
        self.0.insert(unit, lineage.clone());
        Ok(lineage)
    }

    /// Looks up the lineages of many units at once (one query per level of
    /// the tree), so the mutations of a push need no query of their own.
    pub async fn prefetch(
        &mut self,
        db: &impl ConnectionTrait,
        units: impl IntoIterator<Item = Uuid>,
    ) -> AppResult<()> {
        let wanted: Vec<Uuid> = units
            .into_iter()
            .filter(|unit| !self.0.contains_key(unit))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !wanted.is_empty() {
            self.0.extend(repo::org_units::lineages(db, wanted).await?);
        }
        Ok(())
    }

    /// Where a record recorded in `village` sits, `in_village` telling
    /// whether it is still on that village's phones.
    pub async fn placement(
        &mut self,
        db: &impl ConnectionTrait,
        village: Uuid,
        in_village: bool,
    ) -> AppResult<Placement> {
        let lineage = self.of(db, village).await?;
        Ok(Placement {
            village: in_village.then_some(village),
            town: lineage.get(1).copied(),
            district: lineage.get(2).copied(),
        })
    }

    /// The placement of a child record (its current values): an exited
    /// child leaves its village but stays with the town and the district.
    pub async fn of_child(
        &mut self,
        db: &impl ConnectionTrait,
        child: &Record,
    ) -> AppResult<Placement> {
        match child
            .get_str("village_id")
            .and_then(|v| Uuid::try_parse(v).ok())
        {
            Some(village) => {
                let active = child.get_str("status") == Some("active");
                self.placement(db, village, active).await
            }
            None => Ok(Placement::default()),
        }
    }
}

/// The scope column a caller's pull filters on, if the caller syncs.
pub fn scope_column(scope: Scope) -> Option<ScopeColumn> {
    match scope {
        Scope::Village(id) => Some(ScopeColumn::Village(id)),
        Scope::Town(id) => Some(ScopeColumn::Town(id)),
        Scope::District(id) => Some(ScopeColumn::District(id)),
        Scope::Province => None,
    }
}

/// The scopes a record loses when it moves from `before` to `after`.
pub fn lost(before: Placement, after: Placement) -> Vec<ScopeColumn> {
    let mut lost = Vec::new();
    if let Some(v) = before.village.filter(|v| after.village != Some(*v)) {
        lost.push(ScopeColumn::Village(v));
    }
    if let Some(t) = before.town.filter(|t| after.town != Some(*t)) {
        lost.push(ScopeColumn::Town(t));
    }
    if let Some(d) = before.district.filter(|d| after.district != Some(*d)) {
        lost.push(ScopeColumn::District(d));
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_within_a_town_loses_only_the_village() {
        let (v1, v2, t, d) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let before = Placement {
            village: Some(v1),
            town: Some(t),
            district: Some(d),
        };
        let after = Placement {
            village: Some(v2),
            ..before
        };
        assert_eq!(lost(before, after), vec![ScopeColumn::Village(v1)]);
        let exited = Placement {
            village: None,
            ..before
        };
        assert_eq!(lost(before, exited), vec![ScopeColumn::Village(v1)]);
        let other_town = Placement {
            village: Some(v2),
            town: Some(Uuid::new_v4()),
            district: Some(d),
        };
        assert_eq!(
            lost(before, other_town),
            vec![ScopeColumn::Village(v1), ScopeColumn::Town(t)]
        );
        assert!(lost(before, before).is_empty());
    }
}
