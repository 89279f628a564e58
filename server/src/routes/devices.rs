//! `/api/v1/devices`: the phones in a supervisor's or admin's area, and
//! marking one retired or lost.

use axum::Json;
use axum::extract::State;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{AppResult, ErrorBody};
use crate::routes::extract::{ApiJson, ApiPath};
use crate::service::devices::{self, DeviceView, SetDeviceState};
use crate::state::AppState;

/// The devices of the accounts in the caller's scope.
#[utoipa::path(get, path = "/api/v1/devices", tag = "org",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Devices, most recently seen first", body = Vec<DeviceView>),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Directors manage no devices", body = ErrorBody),
    ))]
pub async fn list_devices(
    State(state): State<AppState>,
    caller: AuthUser,
) -> AppResult<Json<Vec<DeviceView>>> {
    devices::in_scope(&state, &caller).await.map(Json)
}

/// Mark a device active, retired (replaced) or lost.
#[utoipa::path(put, path = "/api/v1/devices/{id}/state", tag = "org",
    security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Device id")),
    request_body = SetDeviceState,
    responses(
        (status = 200, description = "The device in its new state", body = DeviceView),
        (status = 403, description = "Directors manage no devices", body = ErrorBody),
        (status = 404, description = "No such device in the caller's area", body = ErrorBody),
        (status = 422, description = "Unknown state", body = ErrorBody),
    ))]
pub async fn set_device_state(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(input): ApiJson<SetDeviceState>,
) -> AppResult<Json<DeviceView>> {
    devices::set_state(&state, &caller, id, input)
        .await
        .map(Json)
}
