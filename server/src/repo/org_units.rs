//! Queries on the org tree.

use std::collections::HashMap;

use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use uuid::Uuid;

use crate::entity::org_unit;

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<org_unit::Model>, DbErr> {
    org_unit::Entity::find_by_id(id).one(db).await
}

pub async fn find_by_code(
    db: &impl ConnectionTrait,
    code: &str,
) -> Result<Option<org_unit::Model>, DbErr> {
    org_unit::Entity::find()
        .filter(org_unit::Column::Code.eq(code))
        .one(db)
        .await
}

/// The unit itself, then its parent, and so on up to the root (at most a few
/// steps: village → town → district).
pub async fn lineage(db: &impl ConnectionTrait, id: Uuid) -> Result<Vec<Uuid>, DbErr> {
    let mut lineage = Vec::with_capacity(3);
    let mut next = Some(id);
    while let Some(current) = next {
        if lineage.contains(&current) || lineage.len() > 8 {
            break;
        }
        match find(db, current).await? {
            Some(unit) => {
                lineage.push(unit.id);
                next = unit.parent_id;
            }
            None => break,
        }
    }
    Ok(lineage)
}

/// The lineages (see [`lineage`]) of many units, asking one query per
/// level of the tree rather than one per unit.
pub async fn lineages(
    db: &impl ConnectionTrait,
    ids: Vec<Uuid>,
) -> Result<HashMap<Uuid, Vec<Uuid>>, DbErr> {
    let mut parents: HashMap<Uuid, Option<Uuid>> = HashMap::new();
    let mut frontier: Vec<Uuid> = ids.clone();
    frontier.sort_unstable();
    frontier.dedup();
    for _ in 0..=8 {
        if frontier.is_empty() {
            break;
        }
        let mut next = Vec::new();
        for chunk in frontier.chunks(super::MAX_BIND_PARAMETERS) {
            let rows: Vec<(Uuid, Option<Uuid>)> = org_unit::Entity::find()
                .select_only()
                .column(org_unit::Column::Id)
                .column(org_unit::Column::ParentId)
                .filter(org_unit::Column::Id.is_in(chunk.iter().copied()))
                .into_tuple()
                .all(db)
                .await?;
            for (id, parent) in rows {
                parents.insert(id, parent);
                next.extend(parent);
            }
        }
        next.retain(|id| !parents.contains_key(id));
        next.sort_unstable();
        next.dedup();
        frontier = next;
    }
    Ok(ids
        .into_iter()
        .map(|id| {
            let mut lineage = Vec::with_capacity(3);
            let mut next = Some(id);
            while let Some(current) = next {
                if lineage.contains(&current) || lineage.len() > 8 {
                    break;
                }
                match parents.get(&current) {
                    Some(parent) => {
                        lineage.push(current);
                        next = *parent;
                    }
                    None => break,
                }
            }
            (id, lineage)
        })
        .collect())
}

/// The unit with `root` as id and every unit below it, ordered by code.
pub async fn subtree(db: &impl ConnectionTrait, root: Uuid) -> Result<Vec<org_unit::Model>, DbErr> {
    let mut all = Vec::new();
    let mut frontier = vec![root];
    if let Some(unit) = find(db, root).await? {
        all.push(unit);
    }
    while !frontier.is_empty() {
        let children = org_unit::Entity::find()
            .filter(org_unit::Column::ParentId.is_in(frontier.clone()))
            .order_by_asc(org_unit::Column::Code)
            .all(db)
            .await?;
        frontier = children.iter().map(|unit| unit.id).collect();
        all.extend(children);
    }
    all.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(all)
}

/// Every unit, ordered by code.
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<org_unit::Model>, DbErr> {
    org_unit::Entity::find()
        .order_by_asc(org_unit::Column::Code)
        .all(db)
        .await
}

pub async fn insert(
    db: &impl ConnectionTrait,
    unit: org_unit::Model,
) -> Result<org_unit::Model, DbErr> {
    org_unit::ActiveModel::from(unit).insert(db).await
}
