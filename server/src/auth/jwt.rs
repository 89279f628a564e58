//! Short-lived access tokens: HS256 JWTs carrying the user, role, org unit
//! and device, with a key id in the header so keys can rotate.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;
use crate::error::AppError;

const ISSUER: &str = "seedling";

/// The claims of an access token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: Uuid,
    pub role: Role,
    /// The org unit the user is bound to.
    pub org: Uuid,
    /// The device the token was issued to.
    pub dev: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
}

/// Signing and verification keys for access tokens.
pub struct JwtKeys {
    key_id: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl_secs: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("key_id", &self.key_id)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// Keys from a shared secret (at least 32 bytes).
    pub fn new(secret: &[u8], key_id: &str, ttl_secs: u64) -> Result<Self, AppError> {
        if secret.len() < 32 {
            return Err(AppError::Internal(
                "the JWT secret must be at least 32 bytes".to_owned(),
            ));
        }
        let key_error = |err: jsonwebtoken::errors::Error| AppError::Internal(err.to_string());
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        Ok(Self {
            key_id: key_id.to_owned(),
            encoding: EncodingKey::from_secret(secret).map_err(key_error)?,
            decoding: DecodingKey::from_secret(secret).map_err(key_error)?,
            validation,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        })
    }

    /// Seconds an access token stays valid.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// Signs a token for this user and device, valid from `now` (Unix seconds).
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        org_unit_id: Uuid,
        device_id: Uuid,
        now: i64,
    ) -> Result<String, AppError> {
        let claims = Claims {
            sub: user_id,
            role,
            org: org_unit_id,
            dev: device_id,
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
            iss: ISSUER.to_owned(),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|err| AppError::Internal(format!("token signing failed: {err}")))
    }

    /// Checks signature, algorithm, issuer and expiry. Tokens with any other
    /// algorithm, including `none`, are refused.
    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        use jsonwebtoken::errors::ErrorKind;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => AppError::unauthorized(
                    "token_expired",
                    "the access token has expired; refresh it or sign in again",
                ),
                _ => AppError::unauthorized("invalid_token", "the access token is not valid"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7; 32], "k1", 900).unwrap()
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims() {
        let (user, org, dev) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let token = keys().issue(user, Role::Director, org, dev, now).unwrap();
        let claims = keys().verify(&token).unwrap();
        assert_eq!((claims.sub, claims.org, claims.dev), (user, org, dev));
        assert_eq!(claims.role, Role::Director);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("k1"));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let other = JwtKeys::new(&[8; 32], "k1", 900).unwrap();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let id = Uuid::new_v4();
        let token = other.issue(id, Role::Admin, id, id, now).unwrap();
        let err = keys().verify(&token).unwrap_err();
        assert_eq!(err.code(), "invalid_token");
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(JwtKeys::new(b"short", "k1", 900).is_err());
    }
}
