//! Scope: which part of the org tree a caller may see. A director sees their
//! village, a supervisor their town, an admin their district, and the
//! provincial integration account everything it is connected to.
//!
//! The decision is pure: callers hand in the *lineage* of the org unit a
//! record belongs to (the unit itself, then its parent, up to the district),
//! looked up by the persistence layer.

use uuid::Uuid;

use super::{AuthUser, Role};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Village(Uuid),
    Town(Uuid),
    District(Uuid),
    /// The provincial platform: every unit this server holds.
    Province,
}

impl Scope {
    pub fn of(user: &AuthUser) -> Self {
        match user.role {
            Role::Director => Self::Village(user.org_unit_id),
            Role::Supervisor => Self::Town(user.org_unit_id),
            Role::Admin => Self::District(user.org_unit_id),
            Role::Integration => Self::Province,
        }
    }

    /// The org unit at the root of this scope, if any.
    pub fn root(&self) -> Option<Uuid> {
        match *self {
            Self::Village(id) | Self::Town(id) | Self::District(id) => Some(id),
            Self::Province => None,
        }
    }

    /// True when the unit whose lineage (self first, then ancestors) is
    /// given lies inside this scope.
    pub fn contains(&self, lineage: &[Uuid]) -> bool {
        match self.root() {
            Some(root) => lineage.contains(&root),
            None => !lineage.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(role: Role, org: Uuid) -> AuthUser {
        AuthUser {
            user_id: Uuid::new_v4(),
            role,
            org_unit_id: org,
            device_id: Uuid::new_v4(),
            expires_at: 0,
        }
    }

    #[test]
    fn each_role_sees_its_own_branch_of_the_tree() {
        let (district, town, village) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let (other_town, other_village) = (Uuid::new_v4(), Uuid::new_v4());
        let here = [village, town, district];
        let elsewhere = [other_village, other_town, district];

        let director = Scope::of(&user(Role::Director, village));
        assert!(director.contains(&here));
        assert!(!director.contains(&elsewhere));
        assert!(
            !director.contains(&[town, district]),
            "a director does not see the town itself"
        );

        let supervisor = Scope::of(&user(Role::Supervisor, town));
        assert!(supervisor.contains(&here));
        assert!(!supervisor.contains(&elsewhere));

        let admin = Scope::of(&user(Role::Admin, district));
        assert!(admin.contains(&here) && admin.contains(&elsewhere));
        assert!(!admin.contains(&[Uuid::new_v4()]));

        assert!(Scope::of(&user(Role::Integration, district)).contains(&elsewhere));
    }
}
