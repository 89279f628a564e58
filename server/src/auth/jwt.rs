//! Short-lived access tokens: HS256 JWTs carrying the user, role, org unit
//! and device. Each token names its signing key in the header (`kid`); the
//! server verifies with any key it still holds and signs with one, so keys
//! rotate without signing anyone out (docs/SECURITY.md).

use std::collections::BTreeMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;
use crate::error::{AppError, ErrorCode};

const ISSUER: &str = "seedling";

/// Shortest HMAC key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

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
    /// When it was issued, in milliseconds: a session ended (sign-out, a
    /// reused refresh token) refuses every token issued before it.
    #[serde(default)]
    pub iat_ms: Option<i64>,
}

/// The key ring for access tokens: verification keys by key id, and the
/// one key new tokens are signed with.
pub struct JwtKeys {
    signing_key_id: String,
    /// Per key id, the key that signs sync cursors (derived from the same
    /// secret), so a cursor cannot be forged or moved to another caller.
    cursor_keys: BTreeMap<String, ring::hmac::Key>,
    encoding: EncodingKey,
    decoding: BTreeMap<String, DecodingKey>,
    validation: Validation,
    ttl_secs: i64,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("signing_key_id", &self.signing_key_id)
            .field("key_ids", &self.decoding.keys().collect::<Vec<_>>())
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    /// A key ring of `keys` (key id, secret of at least [`MIN_KEY_BYTES`]),
    /// signing with the key named `signing_key_id`.
    pub fn new<'a>(
        signing_key_id: &str,
        keys: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        ttl_secs: u64,
    ) -> Result<Self, AppError> {
        let key_error = |err: jsonwebtoken::errors::Error| AppError::Internal(err.to_string());
        let mut encoding = None;
        let mut decoding = BTreeMap::new();
        let mut cursor_keys = BTreeMap::new();
        for (key_id, secret) in keys {
            if key_id.is_empty() {
                return Err(AppError::Internal(
                    "a token signing key needs a non-empty key id".to_owned(),
                ));
            }
            if secret.len() < MIN_KEY_BYTES {
                return Err(AppError::Internal(format!(
                    "token signing key `{key_id}` must be at least {MIN_KEY_BYTES} bytes"
                )));
            }
            if key_id == signing_key_id {
                encoding = Some(EncodingKey::from_secret(secret).map_err(key_error)?);
            }
            decoding.insert(
                key_id.to_owned(),
                DecodingKey::from_secret(secret).map_err(key_error)?,
            );
            let derived = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret),
                b"seedling sync cursor v1",
            );
            cursor_keys.insert(
                key_id.to_owned(),
                ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derived.as_ref()),
            );
        }
        let encoding = encoding.ok_or_else(|| {
            AppError::Internal(format!(
                "jwt_key_id `{signing_key_id}` names no configured token signing key"
            ))
        })?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 30;
        Ok(Self {
            signing_key_id: signing_key_id.to_owned(),
            cursor_keys,
            encoding,
            decoding,
            validation,
            ttl_secs: i64::try_from(ttl_secs).unwrap_or(i64::MAX),
        })
    }

    /// The tag of a sync cursor's `text`, under the signing key.
    pub fn cursor_tag(&self, text: &str) -> Vec<u8> {
        self.cursor_keys
            .get(&self.signing_key_id)
            .map(|key| ring::hmac::sign(key, text.as_bytes()).as_ref().to_vec())
            .unwrap_or_default()
    }

    /// Whether `tag` is the tag of `text` under any key of the ring (a
    /// cursor made before a key rotation still reads).
    pub fn cursor_tag_matches(&self, text: &str, tag: &[u8]) -> bool {
        self.cursor_keys
            .values()
            .any(|key| ring::hmac::verify(key, text.as_bytes(), tag).is_ok())
    }

    /// Seconds an access token stays valid.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl_secs
    }

    /// The key id new tokens carry.
    pub fn signing_key_id(&self) -> &str {
        &self.signing_key_id
    }

    /// Every key id a token may carry and still verify.
    pub fn key_ids(&self) -> impl Iterator<Item = &str> {
        self.decoding.keys().map(String::as_str)
    }

    /// Signs a token for this user and device, valid from `now` (Unix
    /// seconds), with the signing key; its id goes into the header.
    pub fn issue(
        &self,
        user_id: Uuid,
        role: Role,
        org_unit_id: Uuid,
        device_id: Uuid,
        now: i64,
    ) -> Result<String, AppError> {
        self.issue_at_ms(
            user_id,
            role,
            org_unit_id,
            device_id,
            now.saturating_mul(1000),
        )
    }

    /// As [`JwtKeys::issue`], from `now_ms` (Unix milliseconds).
    pub fn issue_at_ms(
        &self,
        user_id: Uuid,
        role: Role,
        org_unit_id: Uuid,
        device_id: Uuid,
        now_ms: i64,
    ) -> Result<String, AppError> {
        let now = now_ms.div_euclid(1000);
        let claims = Claims {
            sub: user_id,
            role,
            org: org_unit_id,
            dev: device_id,
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
            iss: ISSUER.to_owned(),
            iat_ms: Some(now_ms),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.signing_key_id.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|err| AppError::Internal(format!("token signing failed: {err}")))
    }

    /// Checks the key id, signature, algorithm, issuer and expiry. A token
    /// without a key id, or naming a key this server does not hold (never
    /// had, or removed after a rotation), is refused like a forged one; so
    /// are tokens with any other algorithm, including `none`.
    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        use jsonwebtoken::errors::ErrorKind;
        let invalid =
            || AppError::unauthorized(ErrorCode::InvalidToken, "the access token is not valid");
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or_else(invalid)?;
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => AppError::unauthorized(
                    ErrorCode::TokenExpired,
                    "the access token has expired; refresh it or sign in again",
                ),
                _ => invalid(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: [u8; 32] = [7; 32];
    const NEW: [u8; 32] = [9; 32];

    fn ring(signing: &str, keys: &[(&'static str, &'static [u8])]) -> JwtKeys {
        JwtKeys::new(signing, keys.iter().copied(), 900).unwrap()
    }

    fn keys() -> JwtKeys {
        ring("k1", &[("k1", &OLD)])
    }

    fn token(keys: &JwtKeys) -> String {
        let id = Uuid::new_v4();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        keys.issue(id, Role::Director, id, id, now).unwrap()
    }

    fn kid(token: &str) -> Option<String> {
        jsonwebtoken::decode_header(token).unwrap().kid
    }

    #[test]
    fn a_signed_token_verifies_with_its_claims() {
        let (user, org, dev) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let token = keys().issue(user, Role::Director, org, dev, now).unwrap();
        let claims = keys().verify(&token).unwrap();
        assert_eq!((claims.sub, claims.org, claims.dev), (user, org, dev));
        assert_eq!(claims.role, Role::Director);
        assert_eq!(kid(&token).as_deref(), Some("k1"));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let other = ring("k1", &[("k1", &NEW)]);
        let err = keys().verify(&token(&other)).unwrap_err();
        assert_eq!(err.code(), "invalid_token");
    }

    #[test]
    fn after_a_rotation_old_tokens_verify_until_their_key_is_removed() {
        let before = keys();
        let old_token = token(&before);

        let during = ring("k2", &[("k1", &OLD), ("k2", &NEW)]);
        let new_token = token(&during);
        assert_eq!(kid(&new_token).as_deref(), Some("k2"));
        assert!(during.verify(&old_token).is_ok(), "old tokens stay valid");
        assert!(during.verify(&new_token).is_ok());
        assert_eq!(
            before.verify(&new_token).unwrap_err().code(),
            "invalid_token",
            "a server without k2 does not know the new key"
        );

        let after = ring("k2", &[("k2", &NEW)]);
        assert!(after.verify(&new_token).is_ok());
        assert_eq!(
            after.verify(&old_token).unwrap_err().code(),
            "invalid_token"
        );
    }

    #[test]
    fn a_token_without_a_key_id_or_with_an_unknown_one_is_refused() {
        let keys = keys();
        let id = Uuid::new_v4();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let claims = Claims {
            sub: id,
            role: Role::Admin,
            org: id,
            dev: id,
            iat: now,
            exp: now + 600,
            iss: ISSUER.to_owned(),
            iat_ms: None,
        };
        let secret = EncodingKey::from_secret(&OLD).unwrap();
        for header_kid in [None, Some("k9".to_owned())] {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = header_kid.clone();
            let token = jsonwebtoken::encode(&header, &claims, &secret).unwrap();
            let err = keys.verify(&token).unwrap_err();
            assert_eq!(err.code(), "invalid_token", "kid {header_kid:?}");
        }
    }

    #[test]
    fn short_keys_empty_ids_and_a_missing_signing_key_are_refused() {
        assert!(JwtKeys::new("k1", [("k1", &b"short"[..])], 900).is_err());
        assert!(JwtKeys::new("", [("", &OLD[..])], 900).is_err());
        assert!(JwtKeys::new("k2", [("k1", &OLD[..])], 900).is_err());
    }
}
