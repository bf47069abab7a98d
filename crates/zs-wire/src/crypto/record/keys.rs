//! One direction's key schedule: HKDF from the traffic secret, the AEAD behind an
//! object-safe trait, the record counter.

use core::fmt;

use aes_gcm::AesGcm;
use aes_gcm::aead::{AeadCore, AeadInOut, KeyInit};
use cipher::consts::{U12, U16};
use cipher::{BlockCipherEncrypt, BlockSizeUser};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{NONCE_LEN, RecordError, SECRET_LEN, Suite, TAG_LEN};
use crate::crypto::{Mars256, Rc6_256, Serpent, Twofish256};

/// HKDF info prefix of the AEAD key; the suite's name follows it.
const KEY_LABEL: &[u8] = b"zs record key ";
/// HKDF info of the next traffic secret.
const KEY_UPDATE_LABEL: &[u8] = b"zs key update";

/// One AEAD keyed for a direction, behind an object-safe interface. Works in place.
pub(super) trait RecordAead: Send + Sync {
    /// Encrypts `buffer` in place and returns the tag.
    fn seal_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], aes_gcm::Error>;

    /// Checks `tag` over `buffer` and, if it is right, decrypts `buffer` in place.
    fn open_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), aes_gcm::Error>;
}

impl<A> RecordAead for A
where
    A: AeadInOut + AeadCore<NonceSize = U12, TagSize = U16> + Send + Sync,
{
    fn seal_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], aes_gcm::Error> {
        let tag = self.encrypt_inout_detached(nonce.into(), aad, buffer.into())?;
        Ok(tag.into())
    }

    fn open_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), aes_gcm::Error> {
        self.decrypt_inout_detached(nonce.into(), aad, buffer.into(), tag.into())
    }
}

/// AES-GCM and ChaCha20-Poly1305 from aws-lc (BoringSSL's assembly, as OpenSSL has it):
/// the RustCrypto crates reached about two thirds of `openssl speed` on the same core
/// (issue 18; `zs-bench crypto` measures both). The finalists only RustCrypto and this
/// project implement stay on `gcm` below.
struct AwsLc(aws_lc_rs::aead::LessSafeKey);

impl AwsLc {
    fn keyed(
        algorithm: &'static aws_lc_rs::aead::Algorithm,
        key: &[u8],
    ) -> Option<Box<dyn RecordAead>> {
        let key = aws_lc_rs::aead::UnboundKey::new(algorithm, key).ok()?;
        Some(Box::new(Self(aws_lc_rs::aead::LessSafeKey::new(key))))
    }
}

impl RecordAead for AwsLc {
    fn seal_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], aes_gcm::Error> {
        let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key(*nonce);
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::from(aad), buffer)
            .map_err(|_| aes_gcm::Error)?;
        tag.as_ref().try_into().map_err(|_| aes_gcm::Error)
    }

    fn open_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), aes_gcm::Error> {
        let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key(*nonce);
        self.0
            .open_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::from(aad), tag, buffer)
            .map(|_| ())
            .map_err(|_| aes_gcm::Error)
    }
}

/// GCM over the block cipher `C`, keyed with `key`.
fn gcm<C>(key: &[u8]) -> Option<Box<dyn RecordAead>>
where
    C: KeyInit + BlockCipherEncrypt + BlockSizeUser<BlockSize = U16> + Send + Sync + 'static,
{
    let cipher = C::new_from_slice(key).ok()?;
    Some(Box::new(AesGcm::<C, U12>::from(cipher)))
}

/// HKDF-Expand with SHA-256 and `secret` as the pseudorandom key.
fn expand(
    suite: Suite,
    secret: &[u8; SECRET_LEN],
    info: &[&[u8]],
    okm: &mut [u8],
) -> Result<(), RecordError> {
    let error = || RecordError::KeySchedule {
        suite: suite.name(),
    };
    let hkdf = Hkdf::<Sha256>::from_prk(secret).map_err(|_| error())?;
    hkdf.expand_multi_info(info, okm).map_err(|_| error())
}

/// Derives the AEAD of `suite` from a traffic secret; `None` for `plain`.
fn make_aead(
    suite: Suite,
    secret: &[u8; SECRET_LEN],
) -> Result<Option<Box<dyn RecordAead>>, RecordError> {
    if suite.is_plain() {
        return Ok(None);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    let key = &mut key[..suite.key_len()];
    expand(suite, secret, &[KEY_LABEL, suite.name().as_bytes()], key)?;
    let aead = match suite {
        Suite::Aes128Gcm => AwsLc::keyed(&aws_lc_rs::aead::AES_128_GCM, key),
        Suite::Aes256Gcm => AwsLc::keyed(&aws_lc_rs::aead::AES_256_GCM, key),
        #[cfg(not(feature = "openssl"))]
        Suite::ChaCha20Poly1305 => AwsLc::keyed(&aws_lc_rs::aead::CHACHA20_POLY1305, key),
        #[cfg(feature = "openssl")]
        Suite::ChaCha20Poly1305 => super::openssl_aead::OpenSslChaCha::keyed(key),
        Suite::Rc6Gcm => gcm::<Rc6_256>(key),
        Suite::TwofishGcm => gcm::<Twofish256>(key),
        Suite::SerpentGcm => gcm::<Serpent>(key),
        Suite::MarsGcm => gcm::<Mars256>(key),
        Suite::Plain => None,
    };
    match aead {
        Some(aead) => Ok(Some(aead)),
        None => Err(RecordError::KeySchedule {
            suite: suite.name(),
        }),
    }
}

/// The nonce of the record with this counter.
pub(super) fn nonce(counter: u64) -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    nonce[4..].copy_from_slice(&counter.to_le_bytes());
    nonce
}

/// One direction's keys: the traffic secret, its AEAD, the record counter.
pub(super) struct Keys {
    pub(super) suite: Suite,
    secret: Zeroizing<[u8; SECRET_LEN]>,
    pub(super) aead: Option<Box<dyn RecordAead>>,
    pub(super) counter: u64,
    pub(super) key_updates: u64,
}

impl Keys {
    pub(super) fn new(suite: Suite, secret: [u8; SECRET_LEN]) -> Result<Self, RecordError> {
        let secret = Zeroizing::new(secret);
        let aead = make_aead(suite, &secret)?;
        Ok(Self {
            suite,
            secret,
            aead,
            counter: 0,
            key_updates: 0,
        })
    }

    /// The counter of the next record, which must not be the last value of a `u64`.
    pub(super) fn current_counter(&self) -> Result<u64, RecordError> {
        if self.counter == u64::MAX {
            Err(RecordError::CounterExhausted)
        } else {
            Ok(self.counter)
        }
    }

    /// Moves to the next traffic secret and its key; the counter restarts at 0.
    pub(super) fn update(&mut self) -> Result<(), RecordError> {
        let mut next = Zeroizing::new([0u8; SECRET_LEN]);
        expand(self.suite, &self.secret, &[KEY_UPDATE_LABEL], &mut next[..])?;
        self.aead = make_aead(self.suite, &next)?;
        *self.secret = *next;
        self.counter = 0;
        self.key_updates += 1;
        Ok(())
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("suite", &self.suite)
            .field("counter", &self.counter)
            .field("key_updates", &self.key_updates)
            .finish_non_exhaustive()
    }
}
