//! # Cryptography: 128-bit block ciphers and SHA-3
//!
//! The block ciphers zserver can run its record layer over, all with 128-bit blocks:
//!
//! | name        | types                                                       | key bytes | source       |
//! | ----------- | ----------------------------------------------------------- | --------- | ------------ |
//! | `"aes"`     | [`Aes128`], [`Aes192`], [`Aes256`]                          | 16/24/32  | `aes`        |
//! | `"rc6"`     | [`Rc6_128`], [`Rc6_192`], [`Rc6_256`]                       | 16/24/32  | `rc6`        |
//! | `"twofish"` | [`Twofish128`], [`Twofish192`], [`Twofish256`], [`Twofish`] | 16/24/32  | hand-written |
//! | `"serpent"` | [`Serpent`]                                                 | 16/24/32  | `serpent`    |
//! | `"mars"`    | [`Mars128`], [`Mars192`], [`Mars256`], [`Mars`]             | 16/24/32  | hand-written |
//!
//! ([`Mars`] also takes the other MARS key lengths, 20 to 56 bytes in steps of four;
//! [`Twofish`] takes any of 16, 24 or 32 bytes through `KeyInit::new_from_slice`.)
//!
//! Every type implements the RustCrypto [`cipher`] 0.5 traits (`KeyInit`,
//! `BlockCipherEncrypt`, `BlockCipherDecrypt`), so each works in generic modes such as GCM:
//! `aes_gcm::AesGcm<Twofish, U12>` (for a cipher whose nominal key size is not the one you
//! want, build the cipher with `KeyInit::new_from_slice` and convert it with
//! `AesGcm::from(cipher)`).
//!
//! [`block_cipher`] picks a cipher by name and key length at run time and hides it behind the
//! object-safe [`BlockCipher128`] trait.
//!
//! [`hash`] has SHA3-224/256/384/512 and SHAKE128/256 behind one streaming [`Hasher`];
//! [`mac`] computes and checks (in constant time) the HMAC-SHA256 proofs of StableIO and XNat.
//!
//! Known-answer tests pin every cipher and hash to published vectors (FIPS-197, the RC6 and
//! Twofish papers, NESSIE, the MARS vectors shipped with Crypto++, FIPS 202, and the GCM
//! specification's test cases).
//!
//! Key material: the AES, Twofish, Serpent and MARS key schedules are wiped when dropped;
//! the `rc6` crate (0.1) does not wipe its key table.

use core::fmt;

use cipher::consts::{U16, U20, U24, U32};
use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser, KeyInit};

mod block_type;
pub mod hash;
pub mod mac;
mod mars;
mod mars_sbox;
pub mod record;
mod twofish;

#[cfg(test)]
mod gcm_tests;
#[cfg(test)]
mod kat_tests;

pub use aes::{Aes128, Aes192, Aes256};
pub use aes_gcm;
pub use cipher;
pub use hash::{HashAlgorithm, Hasher, hex};
pub use mars::{Mars, Mars128, Mars192, Mars256};
pub use serpent::Serpent;
pub use twofish::{Twofish, Twofish128, Twofish192, Twofish256};

/// RC6-32/20/16: RC6 with 32-bit words, 20 rounds and a 128-bit key (the AES submission's
/// parameters).
pub type Rc6_128 = rc6::RC6<u32, U20, U16>;
/// RC6-32/20/24: RC6 with a 192-bit key.
pub type Rc6_192 = rc6::RC6<u32, U20, U24>;
/// RC6-32/20/32: RC6 with a 256-bit key.
pub type Rc6_256 = rc6::RC6<u32, U20, U32>;
/// RC6 with a 128-bit key; the same type as [`Rc6_128`].
pub type Rc6 = Rc6_128;

/// The names [`block_cipher`] accepts.
pub const BLOCK_CIPHER_NAMES: [&str; 5] = ["aes", "rc6", "twofish", "serpent", "mars"];

/// Errors from choosing or configuring a cipher or hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// No block cipher has this name.
    #[error("unknown block cipher {name:?} (known: aes, rc6, twofish, serpent, mars)")]
    UnknownCipher {
        /// The name as given.
        name: String,
    },
    /// The cipher does not take a key of this length.
    #[error("{cipher} does not take a {len}-byte key (16, 24 or 32 bytes)")]
    BadKeyLength {
        /// The cipher's name.
        cipher: &'static str,
        /// The length of the key given, in bytes.
        len: usize,
    },
    /// No hash algorithm has this name.
    #[error(
        "unknown hash algorithm {name:?} (known: sha3-224, sha3-256, sha3-384, sha3-512, shake128, shake256)"
    )]
    UnknownHash {
        /// The name as given.
        name: String,
    },
    /// The hash algorithm cannot produce this many output bytes.
    #[error("{algorithm} cannot produce {len} output bytes")]
    BadOutputLength {
        /// The algorithm's name.
        algorithm: &'static str,
        /// The output length asked for, in bytes.
        len: usize,
    },
}

/// A keyed block cipher with 128-bit blocks, usable as a trait object.
///
/// Both methods work in place on one 16-byte block; the key was fixed when the cipher was
/// made (see [`block_cipher`]).
pub trait BlockCipher128: Send + Sync + fmt::Debug {
    /// Encrypts one block in place.
    fn encrypt_block(&self, block: &mut [u8; 16]);
    /// Decrypts one block in place.
    fn decrypt_block(&self, block: &mut [u8; 16]);
    /// The cipher's name, one of [`BLOCK_CIPHER_NAMES`].
    fn name(&self) -> &'static str;
}

/// A cipher from one of the crates, with its name.
struct Named<C> {
    cipher: C,
    name: &'static str,
}

impl<C> fmt::Debug for Named<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlockCipher128({} {{ .. }})", self.name)
    }
}

impl<C> BlockCipher128 for Named<C>
where
    C: BlockCipherEncrypt + BlockCipherDecrypt + BlockSizeUser<BlockSize = U16> + Send + Sync,
{
    fn encrypt_block(&self, block: &mut [u8; 16]) {
        BlockCipherEncrypt::encrypt_block(&self.cipher, block.into());
    }

    fn decrypt_block(&self, block: &mut [u8; 16]) {
        BlockCipherDecrypt::decrypt_block(&self.cipher, block.into());
    }

    fn name(&self) -> &'static str {
        self.name
    }
}

/// Keys `C` with `key` and boxes it under `name`.
fn keyed<C>(name: &'static str, key: &[u8]) -> Result<Box<dyn BlockCipher128>, CryptoError>
where
    C: KeyInit
        + BlockCipherEncrypt
        + BlockCipherDecrypt
        + BlockSizeUser<BlockSize = U16>
        + Send
        + Sync
        + 'static,
{
    let cipher = C::new_from_slice(key).map_err(|_| CryptoError::BadKeyLength {
        cipher: name,
        len: key.len(),
    })?;
    Ok(Box::new(Named { cipher, name }))
}

/// Makes the block cipher `name` (any of [`BLOCK_CIPHER_NAMES`], ASCII case ignored) keyed
/// with `key`, which must be 16, 24 or 32 bytes long.
///
/// ```
/// use zs_wire::crypto::block_cipher;
///
/// let cipher = block_cipher("twofish", &[0u8; 16]).unwrap();
/// let mut block = [0u8; 16];
/// cipher.encrypt_block(&mut block);
/// assert_eq!(block[..4], [0x9f, 0x58, 0x9f, 0x5c]);
/// cipher.decrypt_block(&mut block);
/// assert_eq!(block, [0u8; 16]);
/// ```
pub fn block_cipher(name: &str, key: &[u8]) -> Result<Box<dyn BlockCipher128>, CryptoError> {
    let Some(&canonical) = BLOCK_CIPHER_NAMES
        .iter()
        .find(|known| known.eq_ignore_ascii_case(name))
    else {
        return Err(CryptoError::UnknownCipher {
            name: name.to_owned(),
        });
    };
    match (canonical, key.len()) {
        ("aes", 16) => keyed::<Aes128>(canonical, key),
        ("aes", 24) => keyed::<Aes192>(canonical, key),
        ("aes", 32) => keyed::<Aes256>(canonical, key),
        ("rc6", 16) => keyed::<Rc6_128>(canonical, key),
        ("rc6", 24) => keyed::<Rc6_192>(canonical, key),
        ("rc6", 32) => keyed::<Rc6_256>(canonical, key),
        ("twofish", 16) => keyed::<Twofish128>(canonical, key),
        ("twofish", 24) => keyed::<Twofish192>(canonical, key),
        ("twofish", 32) => keyed::<Twofish256>(canonical, key),
        ("serpent", 16 | 24 | 32) => keyed::<Serpent>(canonical, key),
        ("mars", 16) => keyed::<Mars128>(canonical, key),
        ("mars", 24) => keyed::<Mars192>(canonical, key),
        ("mars", 32) => keyed::<Mars256>(canonical, key),
        (cipher, len) => Err(CryptoError::BadKeyLength { cipher, len }),
    }
}
