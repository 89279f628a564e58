//! `/api/v1/reports/*`: overdue children, coverage, visits by month,
//! register changes, open needs and benefits, as JSON, CSV or XLSX — chosen
//! by `?format=` or else by the `Accept` header — and the console's
//! dashboard (JSON).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::auth::AuthUser;
use crate::error::{AppError, AppResult, ErrorBody, ErrorCode};
use crate::routes::extract::ApiQuery;
use crate::service::reports::export::{self, Tabular};
use crate::service::reports::{
    self, BenefitsReport, CoverageReport, Dashboard, OpenNeedsReport, OverdueReport,
    RegisterChangesReport, ReportFormat, ReportQuery, VisitsByMonthReport,
};
use crate::state::AppState;

const CSV: &str = "text/csv";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The export format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FormatParam {
    /// `json`, `csv` or `xlsx`. Without it, `Accept: text/csv` or the XLSX
    /// media type choose; anything else gets JSON.
    pub format: Option<String>,
}

fn negotiate(param: &FormatParam, headers: &HeaderMap) -> AppResult<ReportFormat> {
    if let Some(format) = param.format.as_deref() {
        return match format.to_ascii_lowercase().as_str() {
            "json" => Ok(ReportFormat::Json),
            "csv" => Ok(ReportFormat::Csv),
            "xlsx" => Ok(ReportFormat::Xlsx),
            other => Err(AppError::bad_request(
                ErrorCode::UnsupportedFormat,
                format!("unknown format `{other}`; expected json, csv or xlsx"),
            )),
        };
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    Ok(if accept.contains(XLSX) {
        ReportFormat::Xlsx
    } else if accept.contains(CSV) {
        ReportFormat::Csv
    } else {
        ReportFormat::Json
    })
}

/// The report in the chosen format; exports come as attachments named
/// after the report and its period.
fn answer<R: Serialize + Tabular>(
    report: &R,
    format: ReportFormat,
    period: (chrono::NaiveDate, chrono::NaiveDate),
) -> AppResult<Response> {
    let (bytes, content_type, extension) = match format {
        ReportFormat::Json => return Ok(Json(report).into_response()),
        ReportFormat::Csv => (
            export::to_csv(&report.table())?,
            "text/csv; charset=utf-8",
            "csv",
        ),
        ReportFormat::Xlsx => (export::to_xlsx(&report.table())?, XLSX, "xlsx"),
    };
    let name = format!(
        "attachment; filename=\"{}-{}-{}.{extension}\"",
        report.table().slug,
        period.0,
        period.1
    );
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&name).map_err(|err| AppError::Internal(err.to_string()))?,
            ),
        ],
        bytes,
    )
        .into_response())
}

macro_rules! report_route {
    ($name:ident, $path:literal, $body:ty, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(get, path = $path, tag = "reports",
            security(("bearer" = [])),
            params(ReportQuery, FormatParam),
            responses(
                (status = 200, description = "The report (JSON; CSV and XLSX as attachments)",
                    content(($body = "application/json"), (String = "text/csv"),
                        (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
                (status = 400, description = "Bad filter or unknown format", body = ErrorBody),
                (status = 401, description = "Not signed in", body = ErrorBody),
                (status = 403, description = "Directors get no reports; a town or village outside the caller's scope", body = ErrorBody),
                (status = 422, description = "The period ends before it starts, or a unit of the wrong kind", body = ErrorBody),
            ))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: AuthUser,
            ApiQuery(query): ApiQuery<ReportQuery>,
            ApiQuery(format): ApiQuery<FormatParam>,
            headers: HeaderMap,
        ) -> AppResult<Response> {
            let format = negotiate(&format, &headers)?;
            let report = reports::$name(&state, &caller, &query, format).await?;
            let period = (report.filters.from, report.filters.to);
            answer(&report, format, period)
        }
    };
}

report_route!(
    overdue,
    "/api/v1/reports/overdue",
    OverdueReport,
    "Children overdue for a visit on `as_of`, with days overdue, most overdue first."
);
report_route!(
    coverage,
    "/api/v1/reports/coverage",
    CoverageReport,
    "Share of children visited within their interval on `as_of`, by town and village."
);
report_route!(
    visits_by_month,
    "/api/v1/reports/visits-by-month",
    VisitsByMonthReport,
    "Visits in the period by month and kind; the total equals the visit log's count with the same filters."
);
report_route!(
    register_changes,
    "/api/v1/reports/register-changes",
    RegisterChangesReport,
    "Children added to and exited from the register in the period, with sources and exit reasons."
);
report_route!(
    open_needs,
    "/api/v1/reports/open-needs",
    OpenNeedsReport,
    "Needs-ledger items still open or in progress, by village and needs area."
);
report_route!(
    benefits,
    "/api/v1/reports/benefits",
    BenefitsReport,
    "Benefit totals per month and category from the dated benefit standards."
);

/// The console's dashboard: overdue count, coverage by town, visits per month.
#[utoipa::path(get, path = "/api/v1/reports/dashboard", tag = "reports",
    security(("bearer" = [])),
    params(ReportQuery),
    responses(
        (status = 200, description = "The dashboard figures", body = Dashboard),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Directors get no reports; a unit outside the caller's scope", body = ErrorBody),
        (status = 422, description = "The period ends before it starts, or a unit of the wrong kind", body = ErrorBody),
    ))]
pub async fn dashboard(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> AppResult<Json<Dashboard>> {
    reports::dashboard(&state, &caller, &query).await.map(Json)
}
