//! Extractors whose rejections answer with the standard error envelope.

use axum::extract::{FromRequest, FromRequestParts};

use crate::error::AppError;

/// `Json<T>` whose failures are [`AppError`]s: malformed JSON is 400,
/// well-formed JSON of the wrong shape is 422, a wrong content type 415, an
/// oversized body 413.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(AppError))]
pub struct ApiJson<T>(pub T);

/// `Query<T>` answering 400 with the standard envelope.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(AppError))]
pub struct ApiQuery<T>(pub T);

/// `Path<T>` answering 400 with the standard envelope.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct ApiPath<T>(pub T);
