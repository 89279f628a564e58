//! Extractors whose rejections answer with the standard error envelope.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::{AppError, ErrorCode};

/// `Json<T>` whose failures are [`AppError`]s: malformed JSON is 400,
/// well-formed JSON of the wrong shape is 422, a wrong content type 415, an
/// oversized body 413.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` answering 400 with the standard envelope. A parameter sent
/// empty (`?category=&q=`, as a form with nothing chosen sends it) is the
/// same as one not sent.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let given: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        let kept = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(given)
            .finish();
        axum::extract::Query::<T>::try_from_uri(&format!("/?{kept}").parse().map_err(|_| {
            AppError::bad_request(ErrorCode::InvalidQuery, "the query string is not valid")
        })?)
        .map(|axum::extract::Query(value)| Self(value))
        .map_err(AppError::from)
    }
}

/// `Path<T>` answering 400 with the standard envelope.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);

/// The client's address: the connection's peer, or the first
/// `X-Forwarded-For` entry when `trust_forwarded_for` is set. `None` when
/// neither is known (a server run without connection info).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub Option<std::net::IpAddr>);

impl FromRequestParts<crate::state::AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, Self::Rejection> {
        let forwarded = state
            .config
            .trust_forwarded_for
            .then(|| parts.headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| first.trim().parse().ok());
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(Self(forwarded.or(peer)))
    }
}
