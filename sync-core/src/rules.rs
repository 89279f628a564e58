//! Field rules, declared per entity in one place: each field's merge kind,
//! value type, who may write it, and whether it is required on create; per
//! entity, who may create and delete, how a delete meets a concurrent edit,
//! and when the record locks. [`rules_for`] is the only way in.
//!
//! The tables below are the single source of truth for authority
//! (DESIGN.md §2.9) and are mirrored as one table in `docs/SYNC-PROTOCOL.md`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::record::{Entity, item_id};

/// Who is making a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Village child director (儿童主任): records visits.
    Director,
    /// Town child supervisor (儿童督导员): reviews visits.
    Supervisor,
    /// District bureau staff (区民政局): manages the register.
    Admin,
    /// The provincial platform feed.
    Integration,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Director => "director",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
            Role::Integration => "integration",
        })
    }
}

/// The authenticated author of a mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Actor {
    /// The user id (compared with a visit's `author_id`).
    pub user_id: Uuid,
    /// The user's role.
    pub role: Role,
}

impl Actor {
    /// Builds an actor.
    pub const fn new(user_id: Uuid, role: Role) -> Self {
        Self { user_id, role }
    }
}

/// A set of roles, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    /// Nobody.
    pub const NONE: Roles = Roles(0);
    /// Directors only.
    pub const D: Roles = Roles(1);
    /// Supervisors only.
    pub const S: Roles = Roles(2);
    /// Admins only.
    pub const A: Roles = Roles(4);
    /// The provincial feed only.
    pub const I: Roles = Roles(8);

    /// The union of two sets.
    pub const fn or(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }

    /// True when `role` is in the set.
    pub const fn contains(self, role: Role) -> bool {
        let bit = match role {
            Role::Director => 1,
            Role::Supervisor => 2,
            Role::Admin => 4,
            Role::Integration => 8,
        };
        self.0 & bit != 0
    }
}

const D: Roles = Roles::D;
const S: Roles = Roles::S;
const A: Roles = Roles::A;
const I: Roles = Roles::I;
const AI: Roles = A.or(I);
const DAI: Roles = D.or(A).or(I);
const DSA: Roles = D.or(S).or(A);
const SA: Roles = S.or(A);

/// How concurrent writes to a field are resolved.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::VariantArray,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum FieldKind {
    /// Last writer wins by HLC; ties broken by the canonical JSON of the value.
    Lww,
    /// Add-wins set of items with ids; removals honoured only for items the
    /// remover had seen; concurrent changes to one item resolved by LWW.
    AddWinsSet,
    /// Set on create; any later different value is refused.
    ImmutableAfterCreate,
    /// Written only by the server-side feed (integration); LWW among those writes.
    ServerOnly,
}

impl FieldKind {
    /// True for set kinds.
    pub const fn is_set(self) -> bool {
        matches!(self, FieldKind::AddWinsSet)
    }
}

/// The JSON shape a field's value must have (`null` is allowed unless required).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// A string.
    Text,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339 date-time with offset.
    DateTime,
    /// A hyphenated UUID string.
    Uuid,
    /// A non-negative integer.
    Count,
    /// Any JSON number.
    Number,
    /// Any JSON object.
    Object,
    /// Where a visit took place: a place name (string), or a position
    /// `{"lat", "lon", "accuracy_m"?}` in degrees (WGS 84) and metres.
    Place,
    /// One of the listed strings.
    OneOf(&'static [&'static str]),
    /// Items of an add-wins set: objects with a string `"id"`; when given,
    /// the named key must hold one of the listed strings.
    Items(Option<(&'static str, &'static [&'static str])>),
}

/// Who may write a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writers {
    /// Any actor whose role is in the set.
    Roles(Roles),
    /// Only the record's author (the user named by the entity's author field),
    /// and only with a role in the set.
    Author(Roles),
    /// Value-level authority: only the listed transitions.
    Transitions(&'static [Transition]),
}

/// One allowed value change: `role` may move the field from `from` (`None`
/// = on create) to `to`; `author` = only the record's author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The role allowed.
    pub role: Role,
    /// Only the record's author (with that role).
    pub author: bool,
    /// Value before (`None`: the record is being created).
    pub from: Option<&'static str>,
    /// Value after.
    pub to: &'static str,
}

/// The rule for one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRule {
    /// Field (column) name.
    pub name: &'static str,
    /// Merge kind.
    pub kind: FieldKind,
    /// Value type.
    pub ty: ValueType,
    /// Who may write it.
    pub writers: Writers,
    /// Must be present and non-null on create.
    pub required: bool,
}

/// What happens when a delete meets a concurrent edit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletePolicy {
    /// The edit wins: the record stays (or comes back), the delete is kept as a conflict.
    EditWins,
    /// The delete wins: the record stays deleted, the edit is merged into the
    /// tombstoned record (kept, not shown) and reported as a conflict.
    DeleteWins,
}

/// When a record locks (becomes immutable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRule {
    /// The field whose value locks the record.
    pub field: &'static str,
    /// The locking value.
    pub value: &'static str,
    /// Fields a reviewer may see change without their decision going stale.
    pub review_fields: &'static [&'static str],
}

/// All rules of one entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityRules {
    /// The entity.
    pub entity: Entity,
    /// Field rules.
    pub fields: &'static [FieldRule],
    /// Who may create a record.
    pub create: Writers,
    /// Who may delete a record.
    pub delete: Writers,
    /// Delete versus concurrent edit.
    pub delete_policy: DeletePolicy,
    /// Field naming the record's author (for [`Writers::Author`]).
    pub author_field: Option<&'static str>,
    /// When the record locks.
    pub lock: Option<LockRule>,
}

const fn f(
    name: &'static str,
    kind: FieldKind,
    ty: ValueType,
    writers: Writers,
    required: bool,
) -> FieldRule {
    FieldRule {
        name,
        kind,
        ty,
        writers,
        required,
    }
}

use FieldKind::{AddWinsSet as SET, ImmutableAfterCreate as IMMUTABLE, Lww as LWW, ServerOnly};
use ValueType::*;
use Writers::{Author, Roles as R};

/// Child categories (see GLOSSARY.md).
pub const CATEGORIES: &[&str] = &[
    "institutional_orphan",
    "scattered_orphan",
    "de_facto_unsupported",
    "in_difficulty",
    "left_behind",
    "migrant",
    "low_income_edge",
];
/// Register status of a child.
pub const CHILD_STATUSES: &[&str] = &["active", "exited"];
/// Why a child left the register.
pub const EXIT_REASONS: &[&str] = &[
    "turned_18",
    "adopted",
    "moved_away",
    "died",
    "no_longer_eligible",
    "other",
];
/// Visit kinds.
pub const VISIT_KINDS: &[&str] = &["home_visit", "phone_follow_up", "school_visit", "other"];
/// Review status of a visit.
pub const REVIEW_STATUSES: &[&str] = &["draft", "submitted", "returned", "approved"];
/// Needs-ledger areas.
pub const NEEDS_AREAS: &[&str] = &["living", "study", "psychology"];
/// Areas of a case-plan item (needs areas plus health and safety).
pub const PLAN_AREAS: &[&str] = &["living", "study", "psychology", "health", "safety"];
/// Status of a case-plan item.
pub const PLAN_STATUSES: &[&str] = &["open", "in_progress", "done", "cancelled"];

const fn t(role: Role, author: bool, from: Option<&'static str>, to: &'static str) -> Transition {
    Transition {
        role,
        author,
        from,
        to,
    }
}

/// Review workflow: directors create drafts or submit their own visits and
/// resubmit returned ones; supervisors approve or return submitted ones.
pub const REVIEW_TRANSITIONS: &[Transition] = &[
    t(Role::Director, true, None, "draft"),
    t(Role::Director, true, None, "submitted"),
    t(Role::Director, true, Some("draft"), "submitted"),
    t(Role::Director, true, Some("returned"), "submitted"),
    t(Role::Supervisor, false, Some("submitted"), "approved"),
    t(Role::Supervisor, false, Some("submitted"), "returned"),
];

const AUTHOR: Writers = Author(D);

#[rustfmt::skip]
static CHILD_FIELDS: &[FieldRule] = &[
    //  field                    kind        type                 writers   required
    f("name",                    LWW,        Text,                R(AI),    true),
    f("gender",                  LWW,        OneOf(&["male", "female"]), R(AI), false),
    f("birth_date",              LWW,        Date,                R(AI),    true),
    f("id_number",               LWW,        Text,                R(AI),    false),
    f("category",                LWW,        OneOf(CATEGORIES),   R(AI),    true),
    f("status",                  LWW,        OneOf(CHILD_STATUSES), R(AI),  true),
    f("exit_reason",             LWW,        OneOf(EXIT_REASONS), R(AI),    false),
    f("exit_date",               LWW,        Date,                R(AI),    false),
    f("village_id",              LWW,        Uuid,                R(AI),    true),
    f("guardian_name",           LWW,        Text,                R(DAI),   false),
    f("guardian_relation",       LWW,        Text,                R(DAI),   false),
    f("guardian_phone",          LWW,        Text,                R(DAI),   false),
    f("address",                 LWW,        Text,                R(DAI),   false),
    f("school",                  LWW,        Text,                R(DAI),   false),
    f("health_notes",            LWW,        Text,                R(DAI),   false),
    f("disability_notes",        LWW,        Text,                R(DAI),   false),
    f("benefit_standard_cny",    LWW,        Number,              R(AI),    false),
    f("visit_interval_days",     LWW,        Count,               R(SA),    false),
    f("external_id",             ServerOnly, Text,                R(I),     false),
];

#[rustfmt::skip]
static VISIT_FIELDS: &[FieldRule] = &[
    //  field                    kind        type                 writers   required
    f("child_id",                IMMUTABLE,  Uuid,                AUTHOR,   true),
    f("author_id",               IMMUTABLE,  Uuid,                AUTHOR,   true),
    f("device_id",               IMMUTABLE,  Uuid,                AUTHOR,   false),
    f("village_id",              IMMUTABLE,  Uuid,                AUTHOR,   true),
    f("kind",                    LWW,        OneOf(VISIT_KINDS),  AUTHOR,   true),
    f("visited_at",              LWW,        DateTime,            AUTHOR,   true),
    f("location",                LWW,        Place,               AUTHOR,   false),
    f("observations",            LWW,        Object,              AUTHOR,   false),
    f("needs",                   SET,        Items(Some(("area", NEEDS_AREAS))), AUTHOR, false),
    f("risk_flags",              SET,        Items(None),         AUTHOR,   false),
    f("photos",                  SET,        Items(None),         AUTHOR,   false),
    f("follow_up",               LWW,        Text,                AUTHOR,   false),
    f("next_planned_date",       LWW,        Date,                AUTHOR,   false),
    f("review_status",           LWW,        OneOf(REVIEW_STATUSES), Writers::Transitions(REVIEW_TRANSITIONS), true),
    f("review_comment",          LWW,        Text,                R(S),     false),
];

#[rustfmt::skip]
static CASE_PLAN_FIELDS: &[FieldRule] = &[
    //  field                    kind        type                 writers   required
    f("child_id",                IMMUTABLE,  Uuid,                R(DSA),   true),
    f("village_id",              IMMUTABLE,  Uuid,                R(DSA),   true),
    f("area",                    LWW,        OneOf(PLAN_AREAS),   R(DSA),   true),
    f("description",             LWW,        Text,                R(DSA),   true),
    f("status",                  LWW,        OneOf(PLAN_STATUSES), R(DSA),  true),
    f("owner",                   LWW,        Text,                R(DSA),   false),
    f("due_date",                LWW,        Date,                R(DSA),   false),
];

static CHILD: EntityRules = EntityRules {
    entity: Entity::Child,
    fields: CHILD_FIELDS,
    create: R(AI),
    delete: R(A),
    delete_policy: DeletePolicy::DeleteWins,
    author_field: None,
    lock: None,
};

static VISIT: EntityRules = EntityRules {
    entity: Entity::Visit,
    fields: VISIT_FIELDS,
    create: R(D),
    delete: AUTHOR,
    delete_policy: DeletePolicy::EditWins,
    author_field: Some("author_id"),
    lock: Some(LockRule {
        field: "review_status",
        value: "approved",
        review_fields: &["review_status", "review_comment"],
    }),
};

static CASE_PLAN_ITEM: EntityRules = EntityRules {
    entity: Entity::CasePlanItem,
    fields: CASE_PLAN_FIELDS,
    create: R(DSA),
    delete: R(DSA),
    delete_policy: DeletePolicy::EditWins,
    author_field: None,
    lock: None,
};

/// The rules of an entity.
pub fn rules_for(entity: Entity) -> &'static EntityRules {
    match entity {
        Entity::Child => &CHILD,
        Entity::Visit => &VISIT,
        Entity::CasePlanItem => &CASE_PLAN_ITEM,
    }
}

impl EntityRules {
    /// The rule of a field, if declared.
    pub fn field(&self, name: &str) -> Option<&'static FieldRule> {
        self.fields.iter().find(|r| r.name == name)
    }
}

/// Why a role may not do something (a machine-readable refusal cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// The role does not own the field or operation.
    Role,
    /// Only the record's author may do this.
    NotAuthor,
    /// The value change is not an allowed transition.
    Transition,
}

impl Writers {
    /// May `actor` write `to` over `from` (`None`: on create)? `author` is
    /// the record's author id as stored (or as given on create).
    pub fn check(
        &self,
        actor: &Actor,
        author: Option<Uuid>,
        from: Option<&Value>,
        to: Option<&Value>,
    ) -> Result<(), Denied> {
        let is_author = || author == Some(actor.user_id);
        match *self {
            Writers::Roles(roles) if roles.contains(actor.role) => Ok(()),
            Writers::Roles(_) => Err(Denied::Role),
            Writers::Author(roles) if !roles.contains(actor.role) => Err(Denied::Role),
            Writers::Author(_) if is_author() => Ok(()),
            Writers::Author(_) => Err(Denied::NotAuthor),
            Writers::Transitions(list) => {
                let from = from.and_then(Value::as_str);
                let to = to.and_then(Value::as_str);
                let mut role_seen = false;
                for tr in list.iter().filter(|t| t.role == actor.role) {
                    role_seen = true;
                    if tr.from == from && Some(tr.to) == to && (!tr.author || is_author()) {
                        return Ok(());
                    }
                }
                Err(if role_seen {
                    Denied::Transition
                } else {
                    Denied::Role
                })
            }
        }
    }

    /// True when some actor of `role` could ever write through these writers
    /// (used by tests to state authority).
    pub fn admits_role(&self, role: Role) -> bool {
        match *self {
            Writers::Roles(r) | Writers::Author(r) => r.contains(role),
            Writers::Transitions(list) => list.iter().any(|t| t.role == role),
        }
    }
}

impl ValueType {
    /// Checks a (non-null) value's shape; returns what is wrong.
    pub fn check(&self, v: &Value) -> Result<(), &'static str> {
        if holds_nul(v) {
            return Err(NUL_REFUSED);
        }
        let ok = match self {
            Text => v.is_string(),
            Date => v
                .as_str()
                .is_some_and(|s| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()),
            DateTime => v
                .as_str()
                .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            Uuid => v.as_str().is_some_and(|s| uuid::Uuid::try_parse(s).is_ok()),
            Count => v.is_u64(),
            Number => v.is_number(),
            Object => v.is_object(),
            Place => return check_place(v),
            OneOf(list) => v.as_str().is_some_and(|s| list.contains(&s)),
            Items(key) => return check_item(v, *key),
        };
        if ok { Ok(()) } else { Err(self.expected()) }
    }

    fn expected(&self) -> &'static str {
        match self {
            Text => "expected a string",
            Date => "expected a date YYYY-MM-DD",
            DateTime => "expected an RFC 3339 date-time",
            Uuid => "expected a UUID string",
            Count => "expected a non-negative integer",
            Number => "expected a number",
            Object => "expected an object",
            Place => PLACE_EXPECTED,
            OneOf(_) => "expected one of the allowed values",
            Items(_) => "expected an object with a string id",
        }
    }
}

/// Why a value holding U+0000 is refused: PostgreSQL's `text` and `jsonb`
/// cannot store it, so no database may accept it (both answer alike).
const NUL_REFUSED: &str = "text may not contain the NUL character (U+0000)";

/// True when a string anywhere in `v` (an object's keys too) holds U+0000.
pub fn holds_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Replaces every U+0000 in `v` (keys too) with U+FFFD, so a refused value
/// can be kept where PostgreSQL stores it.
pub fn replace_nul(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{fffd}"),
        Value::Array(items) => items.iter_mut().for_each(replace_nul),
        Value::Object(map) if map.keys().any(|k| k.contains('\0')) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                replace_nul(&mut v);
                map.insert(k.replace('\0', "\u{fffd}"), v);
            }
        }
        Value::Object(map) => map.values_mut().for_each(replace_nul),
        _ => {}
    }
}

const PLACE_EXPECTED: &str =
    "expected a place name or a position {\"lat\", \"lon\", \"accuracy_m\"}";

fn check_place(v: &Value) -> Result<(), &'static str> {
    if v.is_string() {
        return Ok(());
    }
    let Some(position) = v.as_object() else {
        return Err(PLACE_EXPECTED);
    };
    let within = |key: &str, bound: f64| {
        position
            .get(key)
            .and_then(Value::as_f64)
            .is_some_and(|x| x.abs() <= bound)
    };
    let accuracy_ok = position
        .get("accuracy_m")
        .is_none_or(|a| a.as_f64().is_some_and(|m| m >= 0.0));
    let known = position
        .keys()
        .all(|k| matches!(k.as_str(), "lat" | "lon" | "accuracy_m"));
    if within("lat", 90.0) && within("lon", 180.0) && accuracy_ok && known {
        Ok(())
    } else {
        Err(PLACE_EXPECTED)
    }
}

fn check_item(v: &Value, key: Option<(&str, &[&str])>) -> Result<(), &'static str> {
    if item_id(v).is_none() {
        return Err("expected an object with a string id");
    }
    if let Some((k, allowed)) = key
        && !v
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| allowed.contains(&s))
    {
        return Err("item has a missing or unknown area");
    }
    Ok(())
}
