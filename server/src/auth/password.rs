//! Argon2id password hashing. Hashing is deliberately slow, so callers in
//! async code run it on the blocking pool.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::error::AppError;

/// Hashes `password` into a PHC string (Argon2id, the crate's recommended
/// parameters).
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| AppError::Internal(format!("password hashing failed: {err}")))
}

/// True when `password` matches the PHC string `hash`. A malformed stored
/// hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Password checks running at once. Each Argon2id check takes 19 MiB for a
/// moment; a morning of 327 phones signing in together must not take
/// gigabytes, so checks queue for one of these permits.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// [`verify_password`] on the blocking pool, at most two at a time.
pub async fn verify_password_async(password: String, hash: String) -> Result<bool, AppError> {
    let _permit = CHECKS
        .acquire()
        .await
        .map_err(|err| AppError::Internal(err.to_string()))?;
    tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|err| AppError::Internal(err.to_string()))
}

/// [`hash_password`] on the blocking pool, sharing the same permits.
pub async fn hash_password_async(password: String) -> Result<String, AppError> {
    let _permit = CHECKS
        .acquire()
        .await
        .map_err(|err| AppError::Internal(err.to_string()))?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|err| AppError::Internal(err.to_string()))?
}

/// A valid hash of an unguessable password, verified against when the
/// username does not exist so that both cases take the same time.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&uuid::Uuid::new_v4().to_string()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_nothing_else() {
        let hash = hash_password("seedling-demo").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("seedling-demo", &hash));
        assert!(!verify_password("seedling-demo ", &hash));
        assert!(!verify_password("seedling-demo", "not a phc string"));
    }
}
