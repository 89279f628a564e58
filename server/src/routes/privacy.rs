//! `/api/v1/children/{id}/export`: the subject-access export of one child
//! (docs/API.md, "Subject access"; docs/SECURITY.md).

use axum::Json;
use axum::extract::State;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::ApiPath;
use crate::service::privacy::export::{self, SubjectExport};
use crate::state::AppState;

/// Everything about one child as one JSON document: register entry and
/// events, visits with every version and review decision, needs ledger,
/// conflicts, photo metadata, deliveries to the provincial platform and
/// audit entries. District admins only; the export is audited
/// (`child.export`).
#[utoipa::path(get, path = "/api/v1/children/{id}/export", tag = "privacy",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Child id")),
    responses(
        (status = 200, description = "The subject-access document", body = SubjectExport),
        (status = 403, description = "Not a district admin", body = ErrorBody),
        (status = 404, description = "No such child in your district", body = ErrorBody),
    ))]
pub async fn export_child(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
) -> AppResult<Json<SubjectExport>> {
    export::export_child(&state, &caller, id).await.map(Json)
}
