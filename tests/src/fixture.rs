//! A small district for tests: two towns, three villages, and one account of
//! each role, all with the password [`PASSWORD`].

use std::sync::OnceLock;

use chrono::Utc;
use seedling_server::entity::{org_unit, user};
use seedling_server::repo;
use uuid::Uuid;

use crate::TestApp;

pub const PASSWORD: &str = "fixture-password";

/// Ids of the fixture's org units and users.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub district: Uuid,
    pub town_a: Uuid,
    pub town_b: Uuid,
    /// Two villages in town A, one in town B.
    pub village_a1: Uuid,
    pub village_a2: Uuid,
    pub village_b1: Uuid,
    pub users: Vec<(String, Uuid)>,
}

impl Fixture {
    /// Inserts the fixture district into the app's database.
    pub async fn load(app: &TestApp) -> Self {
        let db = app.db();
        let unit = |code: &str, name: &str, kind: &str, parent: Option<Uuid>| org_unit::Model {
            id: Uuid::new_v4(),
            code: code.to_owned(),
            name: name.to_owned(),
            kind: kind.to_owned(),
            parent_id: parent,
            created_at: Utc::now(),
        };
        let district = repo::org_units::insert(db, unit("990000", "测试区", "district", None))
            .await
            .expect("district");
        let town_a =
            repo::org_units::insert(db, unit("990000001", "甲镇", "town", Some(district.id)))
                .await
                .expect("town a");
        let town_b =
            repo::org_units::insert(db, unit("990000002", "乙街道", "town", Some(district.id)))
                .await
                .expect("town b");
        let village_a1 = repo::org_units::insert(
            db,
            unit("990000001001", "甲一村", "village", Some(town_a.id)),
        )
        .await
        .expect("village a1");
        let village_a2 = repo::org_units::insert(
            db,
            unit("990000001002", "甲二村", "village", Some(town_a.id)),
        )
        .await
        .expect("village a2");
        let village_b1 = repo::org_units::insert(
            db,
            unit("990000002001", "乙一社区", "village", Some(town_b.id)),
        )
        .await
        .expect("village b1");

        let accounts = [
            ("admin", "admin", district.id),
            ("integration", "integration", district.id),
            ("supervisor-a", "supervisor", town_a.id),
            ("supervisor-b", "supervisor", town_b.id),
            ("director-a1", "director", village_a1.id),
            ("director-a2", "director", village_a2.id),
            ("director-b1", "director", village_b1.id),
        ];
        let mut users = Vec::new();
        for (username, role, org_unit_id) in accounts {
            let now = Utc::now();
            let created = repo::users::insert(
                db,
                user::Model {
                    id: Uuid::new_v4(),
                    username: username.to_owned(),
                    display_name: format!("测试 {username}"),
                    role: role.to_owned(),
                    org_unit_id,
                    password_hash: password_hash().to_owned(),
                    active: true,
                    created_at: now,
                    updated_at: now,
                },
            )
            .await
            .expect("user");
            users.push((username.to_owned(), created.id));
        }
        Self {
            district: district.id,
            town_a: town_a.id,
            town_b: town_b.id,
            village_a1: village_a1.id,
            village_a2: village_a2.id,
            village_b1: village_b1.id,
            users,
        }
    }

    pub fn user_id(&self, username: &str) -> Uuid {
        self.users
            .iter()
            .find(|(name, _)| name == username)
            .map(|(_, id)| *id)
            .unwrap_or_else(|| panic!("no fixture user {username}"))
    }
}

/// One Argon2id hash of [`PASSWORD`], computed once per test binary.
fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| seedling_server::auth::password::hash_password(PASSWORD).expect("hash"))
}
