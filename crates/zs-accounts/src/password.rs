//! # Password hashing for user accounts: Argon2id in PHC strings
//!
//! [`hash_password`] turns a password into a self-describing
//! [PHC string](https://github.com/P-H-C/phc-string-format/blob/master/phc-sf-spec.md) that
//! carries the algorithm, its version and parameters, a fresh random salt and the hash;
//! [`verify_password`] checks a password against such a string, with the parameters the
//! string names (so strings written with older parameters keep verifying after
//! [`PARAMS`] change).
//!
//! ```text
//! $argon2id$v=19$m=19456,t=2,p=1$<22 characters: 16-byte salt, B64>$<43 characters: 32-byte hash, B64>
//! ```
//!
//! **Never store a bare hash of a password.** ZServer4D stored `base64(SHAKE256(password))`:
//! unsalted, so equal passwords had equal entries and one precomputed table cracked every
//! account at once, and fast, so a stolen user file could be searched at billions of guesses
//! per second. Argon2id is salted per password and deliberately slow and memory-hard.
//!
//! ## Parameters
//!
//! Argon2id (RFC 9106), version 0x13 (19), with the `argon2` crate's defaults, which are
//! OWASP's recommended minimum for Argon2id: **m = 19 MiB (19456 KiB), t = 2 passes, p = 1
//! lane**, a 32-byte output and a 16-byte salt from the operating system's random number
//! generator (`getrandom`). Hashing takes a few tens of milliseconds on current hardware.
//!
//! [`verify_password`] accepts only `$argon2id$` strings (all that [`hash_password`] writes),
//! and refuses parameters above [`MAX_VERIFY_M_COST`], [`MAX_VERIFY_T_COST`] and
//! [`MAX_VERIFY_P_COST`] before computing anything, so a corrupted or planted entry cannot
//! make a check allocate gigabytes or run for minutes.
//!
//! ```
//! use zs_accounts::password::{hash_password, verify_password};
//!
//! let phc = hash_password("correct horse battery staple").unwrap();
//! assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
//! assert!(verify_password("correct horse battery staple", &phc).unwrap());
//! assert!(!verify_password("Tr0ub4dor&3", &phc).unwrap());
//! assert!(verify_password("anything", "not a PHC string").is_err());
//! ```

use argon2::password_hash::phc::PasswordHash;
use argon2::{
    ARGON2ID_IDENT, Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version,
};
use zeroize::Zeroizing;

/// Bytes of random salt per password (the PHC format's recommendation).
pub const SALT_LEN: usize = 16;

/// The parameters [`hash_password`] uses: m = 19456 KiB (19 MiB), t = 2, p = 1, 32-byte
/// output.
pub const PARAMS: Params = Params::DEFAULT;

/// Largest memory cost [`verify_password`] accepts, in KiB (256 MiB).
pub const MAX_VERIFY_M_COST: u32 = 256 * 1024;
/// Largest number of passes [`verify_password`] accepts.
pub const MAX_VERIFY_T_COST: u32 = 16;
/// Largest number of lanes [`verify_password`] accepts.
pub const MAX_VERIFY_P_COST: u32 = 16;

/// Why a password could not be hashed or a PHC string could not be checked.
///
/// A wrong password is not an error: [`verify_password`] returns `Ok(false)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordError {
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// Argon2 refused to hash.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The stored string is not a complete Argon2 PHC string (bad syntax, missing salt or
    /// hash, bad base64, invalid parameters or version).
    #[error("malformed password hash: {what}")]
    Malformed {
        /// What is wrong.
        what: String,
    },
    /// The PHC string names another algorithm than `argon2id`.
    #[error("unsupported password hash algorithm {algorithm:?} (only argon2id)")]
    UnsupportedAlgorithm {
        /// The algorithm identifier found.
        algorithm: String,
    },
    /// The PHC string asks for more work than [`verify_password`] is willing to do.
    #[error(
        "password hash parameters m={m_cost}, t={t_cost}, p={p_cost} exceed the limits \
         m={MAX_VERIFY_M_COST}, t={MAX_VERIFY_T_COST}, p={MAX_VERIFY_P_COST}"
    )]
    TooCostly {
        /// Memory cost in KiB.
        m_cost: u32,
        /// Number of passes.
        t_cost: u32,
        /// Number of lanes.
        p_cost: u32,
    },
}

fn malformed(error: impl core::fmt::Display) -> PasswordError {
    PasswordError::Malformed {
        what: error.to_string(),
    }
}

/// Hashes `password` with Argon2id ([`PARAMS`]) and a fresh random salt, and returns the PHC
/// string to store, e.g. `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`.
///
/// Two calls with the same password give different strings (the salt differs); both verify.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = Zeroizing::new([0u8; SALT_LEN]);
    getrandom::fill(salt.as_mut_slice())
        .map_err(|error| PasswordError::Random(error.to_string()))?;
    let hash = argon2id()
        .hash_password_with_salt(password.as_bytes(), salt.as_slice())
        .map_err(|error| PasswordError::Hash(error.to_string()))?;
    Ok(hash.to_string())
}

/// Checks `password` against a PHC string made by [`hash_password`] (or any Argon2id PHC
/// string within the limits), using the parameters and salt the string names. The final
/// comparison is constant time.
///
/// Returns `Ok(true)` for the right password, `Ok(false)` for a wrong one, and an error when
/// `phc` is malformed, not Argon2id, or too costly to check (see the module docs).
pub fn verify_password(password: &str, phc: &str) -> Result<bool, PasswordError> {
    let hash = PasswordHash::new(phc).map_err(malformed)?;
    if hash.algorithm != ARGON2ID_IDENT {
        return Err(PasswordError::UnsupportedAlgorithm {
            algorithm: hash.algorithm.as_str().to_owned(),
        });
    }
    if hash.salt.is_none() {
        return Err(malformed("no salt"));
    }
    if hash.hash.is_none() {
        return Err(malformed("no hash"));
    }
    if let Some(version) = hash.version {
        Version::try_from(version).map_err(malformed)?;
    }
    let params = Params::try_from(&hash).map_err(malformed)?;
    if params.m_cost() > MAX_VERIFY_M_COST
        || params.t_cost() > MAX_VERIFY_T_COST
        || params.p_cost() > MAX_VERIFY_P_COST
    {
        return Err(PasswordError::TooCostly {
            m_cost: params.m_cost(),
            t_cost: params.t_cost(),
            p_cost: params.p_cost(),
        });
    }
    match argon2id().verify_password(password.as_bytes(), &hash) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(error) => Err(malformed(error)),
    }
}

/// Argon2id, version 19, with [`PARAMS`]. (Verification takes the parameters from the PHC
/// string instead.)
fn argon2id() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, PARAMS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Argon2id test vector of the reference implementation (phc-winner-argon2,
    /// `src/test.c`; also in the `argon2` crate's `tests/phc_strings.rs`): password
    /// `"password"`, salt `"somesalt"`, m = 65536, t = 2, p = 1, hash
    /// `09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7`.
    const REFERENCE: &str =
        "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

    /// A valid string with cheap parameters, for the error tests: password "password".
    fn cheap_phc() -> String {
        let params = Params::new(8, 1, 1, Some(32)).unwrap();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_with_salt(b"password", b"saltsalt")
            .unwrap()
            .to_string()
    }

    #[test]
    fn password_round_trip() {
        let phc = hash_password("correct horse battery staple").unwrap();
        assert!(verify_password("correct horse battery staple", &phc).unwrap());
    }

    #[test]
    fn password_format_is_argon2id_with_documented_params() {
        let phc = hash_password("pw").unwrap();
        let parts: Vec<&str> = phc.split('$').collect();
        assert_eq!(
            parts[..5],
            ["", "argon2id", "v=19", "m=19456,t=2,p=1", parts[4]]
        );
        // 16 bytes of salt and 32 bytes of hash in unpadded base64.
        assert_eq!(parts[4].len(), 22, "{phc}");
        assert_eq!(parts[5].len(), 43, "{phc}");
        assert_eq!(parts.len(), 6);
    }

    #[test]
    fn password_wrong_is_false_not_an_error() {
        let phc = hash_password("hunter2").unwrap();
        assert_eq!(verify_password("hunter3", &phc), Ok(false));
        assert_eq!(verify_password("", &phc), Ok(false));
        assert_eq!(verify_password("hunter2 ", &phc), Ok(false));
    }

    #[test]
    fn password_hashes_of_the_same_password_differ() {
        let first = hash_password("same").unwrap();
        let second = hash_password("same").unwrap();
        assert_ne!(first, second);
        let salt = |phc: &str| phc.split('$').nth(4).map(str::to_owned);
        assert_ne!(salt(&first), salt(&second));
        assert!(verify_password("same", &first).unwrap());
        assert!(verify_password("same", &second).unwrap());
    }

    #[test]
    fn password_empty_and_unicode_round_trip() {
        for password in ["", "pässwörd ✓", "\u{0}"] {
            let phc = hash_password(password).unwrap();
            assert!(verify_password(password, &phc).unwrap(), "{password:?}");
        }
    }

    #[test]
    fn password_reference_vector_verifies() {
        assert_eq!(verify_password("password", REFERENCE), Ok(true));
        assert_eq!(verify_password("sassword", REFERENCE), Ok(false));
    }

    #[test]
    fn password_malformed_strings_are_errors() {
        let good = cheap_phc();
        assert_eq!(verify_password("password", &good), Ok(true));
        let without_hash = good.rsplit_once('$').unwrap().0.to_owned();
        let without_salt_and_hash = without_hash.rsplit_once('$').unwrap().0.to_owned();
        let bad_base64 = format!("{without_hash}$!!!!");
        let bad_salt = good.replace("$c2FsdHNhbHQ$", "$c2Fs$");
        assert_ne!(bad_salt, good);
        for phc in [
            "",
            "password",
            "$",
            "$argon2id",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            without_hash.as_str(),
            without_salt_and_hash.as_str(),
            bad_base64.as_str(),
            bad_salt.as_str(),
            "$argon2id$v=19$m=dummy,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=0,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=42$m=8,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
            "$argon2id$v=19$m=8,t=1,p=1,x=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
        ] {
            let result = verify_password("password", phc);
            assert!(
                matches!(result, Err(PasswordError::Malformed { .. })),
                "{phc:?}: {result:?}"
            );
        }
    }

    #[test]
    fn password_other_algorithms_are_refused() {
        let argon2i = "$argon2i$v=19$m=65536,t=1,p=1$c29tZXNhbHQAAAAAAAAAAA$+r0d29hqEB0yasKr55ZgICsQGSkl0v0kgwhd+U3wyRo";
        assert_eq!(
            verify_password("password", argon2i),
            Err(PasswordError::UnsupportedAlgorithm {
                algorithm: "argon2i".to_owned()
            })
        );
        let sha = "$sha512$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(matches!(
            verify_password("password", sha),
            Err(PasswordError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn password_costly_parameters_are_refused_before_hashing() {
        for params in ["m=4194304,t=1,p=1", "m=8,t=1000000,p=1", "m=1024,t=1,p=64"] {
            let phc = format!(
                "$argon2id$v=19${params}$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
            );
            assert!(
                matches!(
                    verify_password("password", &phc),
                    Err(PasswordError::TooCostly { .. })
                ),
                "{phc}"
            );
        }
    }

    #[test]
    fn password_error_display_names_the_problem() {
        let error = verify_password("x", "nope").unwrap_err();
        assert!(
            error.to_string().starts_with("malformed password hash"),
            "{error}"
        );
    }
}
