//! The director's to-do list, computed on the phone from its synced
//! records: every visit the supervisor returned for revision, with the
//! supervisor's comment. Resubmitting the corrected visit (`review_status`
//! back to `submitted`) takes it off the list.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::{Entity, Record};

/// A visit to correct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewTask {
    /// The returned visit.
    pub visit_id: Uuid,
    /// The child it is about.
    pub child_id: Option<Uuid>,
    /// What the supervisor asked to correct.
    pub comment: Option<String>,
    /// When the visit happened, as entered.
    pub visited_at: Option<String>,
}

/// The visits by `author` that were returned for revision, oldest visit
/// first (then by id, so the list is the same in any input order).
pub fn review_tasks<'a>(
    author: Uuid,
    records: impl IntoIterator<Item = &'a Record>,
) -> Vec<ReviewTask> {
    let author = author.to_string();
    let mut tasks: Vec<ReviewTask> = records
        .into_iter()
        .filter(|r| r.entity == Entity::Visit && !r.is_deleted())
        .filter(|r| r.get_str("author_id") == Some(author.as_str()))
        .filter(|r| r.get_str("review_status") == Some("returned"))
        .map(|r| ReviewTask {
            visit_id: r.id,
            child_id: r.get_str("child_id").and_then(|c| Uuid::try_parse(c).ok()),
            comment: r.get_str("review_comment").map(str::to_owned),
            visited_at: r.get_str("visited_at").map(str::to_owned),
        })
        .collect();
    tasks.sort_by(|a, b| (&a.visited_at, a.visit_id).cmp(&(&b.visited_at, b.visit_id)));
    tasks
}
