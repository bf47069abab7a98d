//! SHA-3 (FIPS 202): the fixed-size hashes SHA3-224/256/384/512 and the extendable-output
//! functions SHAKE128/256, behind one streaming [`Hasher`].
//!
//! ```
//! use zs_wire::crypto::hash::{HashAlgorithm, Hasher, hex};
//!
//! let mut hasher = Hasher::new(HashAlgorithm::from_name("sha3-256").unwrap());
//! hasher.update(b"ab");
//! hasher.update(b"c");
//! assert_eq!(
//!     hex(&hasher.finalize()),
//!     "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
//! );
//!
//! // SHAKE gives as many bytes as asked for.
//! let xof = Hasher::with_output_len(HashAlgorithm::Shake128, 16).unwrap();
//! assert_eq!(xof.finalize().len(), 16);
//! ```

use core::fmt;
use core::str::FromStr;

use sha3::Digest;
use shake::{ExtendableOutput, Update, XofReader};

use super::CryptoError;

/// A SHA-3 family algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlgorithm {
    /// SHA3-224: 28-byte digests.
    Sha3_224,
    /// SHA3-256: 32-byte digests.
    Sha3_256,
    /// SHA3-384: 48-byte digests.
    Sha3_384,
    /// SHA3-512: 64-byte digests.
    Sha3_512,
    /// SHAKE128, an extendable-output function; 32 bytes unless asked otherwise.
    Shake128,
    /// SHAKE256, an extendable-output function; 64 bytes unless asked otherwise.
    Shake256,
}

impl HashAlgorithm {
    /// Every algorithm, in declaration order.
    pub const ALL: [HashAlgorithm; 6] = [
        HashAlgorithm::Sha3_224,
        HashAlgorithm::Sha3_256,
        HashAlgorithm::Sha3_384,
        HashAlgorithm::Sha3_512,
        HashAlgorithm::Shake128,
        HashAlgorithm::Shake256,
    ];

    /// Looks an algorithm up by name: `"sha3-224"`, `"sha3-256"`, `"sha3-384"`, `"sha3-512"`,
    /// `"shake128"`, `"shake256"`. ASCII case is ignored, and `-` or `_` may be written or left
    /// out (`"SHA3_256"`, `"sha3256"`, `"shake-128"`).
    pub fn from_name(name: &str) -> Result<Self, CryptoError> {
        let normalized: String = name
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .map(|c| c.to_ascii_lowercase())
            .collect();
        Self::ALL
            .into_iter()
            .find(|algorithm| algorithm.name().replace('-', "") == normalized)
            .ok_or_else(|| CryptoError::UnknownHash {
                name: name.to_owned(),
            })
    }

    /// The canonical name, as accepted by [`HashAlgorithm::from_name`].
    pub const fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha3_224 => "sha3-224",
            HashAlgorithm::Sha3_256 => "sha3-256",
            HashAlgorithm::Sha3_384 => "sha3-384",
            HashAlgorithm::Sha3_512 => "sha3-512",
            HashAlgorithm::Shake128 => "shake128",
            HashAlgorithm::Shake256 => "shake256",
        }
    }

    /// The output length in bytes: the digest size, or for SHAKE the default length
    /// (32 bytes for SHAKE128, 64 for SHAKE256, twice their security level).
    pub const fn output_len(self) -> usize {
        match self {
            HashAlgorithm::Sha3_224 => 28,
            HashAlgorithm::Sha3_256 | HashAlgorithm::Shake128 => 32,
            HashAlgorithm::Sha3_384 => 48,
            HashAlgorithm::Sha3_512 | HashAlgorithm::Shake256 => 64,
        }
    }

    /// Whether this is an extendable-output function (SHAKE), whose output length is free.
    pub const fn is_xof(self) -> bool {
        matches!(self, HashAlgorithm::Shake128 | HashAlgorithm::Shake256)
    }

    /// A fresh streaming hasher with the default output length.
    pub fn hasher(self) -> Hasher {
        Hasher::new(self)
    }

    /// Hashes `data` in one call, with the default output length.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut hasher = Hasher::new(self);
        hasher.update(data);
        hasher.finalize()
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = CryptoError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::from_name(name)
    }
}

/// The running state of one algorithm.
#[derive(Clone)]
enum State {
    Sha3_224(sha3::Sha3_224),
    Sha3_256(sha3::Sha3_256),
    Sha3_384(sha3::Sha3_384),
    Sha3_512(sha3::Sha3_512),
    Shake128(shake::Shake128),
    Shake256(shake::Shake256),
}

/// A streaming SHA-3 or SHAKE computation: feed it with [`Hasher::update`], then take the
/// output with [`Hasher::finalize`].
#[derive(Clone)]
pub struct Hasher {
    algorithm: HashAlgorithm,
    out_len: usize,
    state: State,
}

impl Hasher {
    /// Starts hashing with `algorithm` and its default output length
    /// ([`HashAlgorithm::output_len`]).
    pub fn new(algorithm: HashAlgorithm) -> Self {
        let state = match algorithm {
            HashAlgorithm::Sha3_224 => State::Sha3_224(sha3::Sha3_224::new()),
            HashAlgorithm::Sha3_256 => State::Sha3_256(sha3::Sha3_256::new()),
            HashAlgorithm::Sha3_384 => State::Sha3_384(sha3::Sha3_384::new()),
            HashAlgorithm::Sha3_512 => State::Sha3_512(sha3::Sha3_512::new()),
            HashAlgorithm::Shake128 => State::Shake128(shake::Shake128::default()),
            HashAlgorithm::Shake256 => State::Shake256(shake::Shake256::default()),
        };
        Self {
            algorithm,
            out_len: algorithm.output_len(),
            state,
        }
    }

    /// Starts hashing with `algorithm`, producing `len` bytes. SHAKE takes any `len` of at
    /// least 1; the fixed-size hashes take only their own digest size.
    pub fn with_output_len(algorithm: HashAlgorithm, len: usize) -> Result<Self, CryptoError> {
        let fits = if algorithm.is_xof() {
            len > 0
        } else {
            len == algorithm.output_len()
        };
        if !fits {
            return Err(CryptoError::BadOutputLength {
                algorithm: algorithm.name(),
                len,
            });
        }
        let mut hasher = Self::new(algorithm);
        hasher.out_len = len;
        Ok(hasher)
    }

    /// The algorithm being computed.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// How many bytes [`Hasher::finalize`] will return.
    pub fn output_len(&self) -> usize {
        self.out_len
    }

    /// Absorbs more input.
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            State::Sha3_224(h) => Digest::update(h, data),
            State::Sha3_256(h) => Digest::update(h, data),
            State::Sha3_384(h) => Digest::update(h, data),
            State::Sha3_512(h) => Digest::update(h, data),
            State::Shake128(h) => Update::update(h, data),
            State::Shake256(h) => Update::update(h, data),
        }
    }

    /// Finishes and returns the output ([`Hasher::output_len`] bytes).
    pub fn finalize(self) -> Vec<u8> {
        match self.state {
            State::Sha3_224(h) => h.finalize().to_vec(),
            State::Sha3_256(h) => h.finalize().to_vec(),
            State::Sha3_384(h) => h.finalize().to_vec(),
            State::Sha3_512(h) => h.finalize().to_vec(),
            State::Shake128(h) => {
                let mut out = vec![0u8; self.out_len];
                h.finalize_xof().read(&mut out);
                out
            }
            State::Shake256(h) => {
                let mut out = vec![0u8; self.out_len];
                h.finalize_xof().read(&mut out);
                out
            }
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hasher")
            .field("algorithm", &self.algorithm)
            .field("output_len", &self.out_len)
            .finish_non_exhaustive()
    }
}

/// Lower-case hexadecimal of `bytes`, two digits a byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{HashAlgorithm, Hasher, hex};
    use crate::crypto::CryptoError;

    /// FIPS 202 example values (NIST "Cryptographic Standards and Guidelines: Examples with
    /// Intermediate Values", SHA3-*_Msg0 and the "abc" one-block examples), also printed in
    /// FIPS 202-based references such as Wikipedia's SHA-3 article.
    const FIXED: [(HashAlgorithm, &str, &str); 8] = [
        (
            HashAlgorithm::Sha3_224,
            "",
            "6b4e03423667dbb73b6e15454f0eb1abd4597f9a1b078e3f5b5a6bc7",
        ),
        (
            HashAlgorithm::Sha3_224,
            "abc",
            "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf",
        ),
        (
            HashAlgorithm::Sha3_256,
            "",
            "a7ffc6f8bf1ed76651c14756a061d662f580ff4de43b49fa82d80a4b80f8434a",
        ),
        (
            HashAlgorithm::Sha3_256,
            "abc",
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532",
        ),
        (
            HashAlgorithm::Sha3_384,
            "",
            "0c63a75b845e4f7d01107d852e4c2485c51a50aaaa94fc61995e71bbee983a2a\
             c3713831264adb47fb6bd1e058d5f004",
        ),
        (
            HashAlgorithm::Sha3_384,
            "abc",
            "ec01498288516fc926459f58e2c6ad8df9b473cb0fc08c2596da7cf0e49be4b2\
             98d88cea927ac7f539f1edf228376d25",
        ),
        (
            HashAlgorithm::Sha3_512,
            "",
            "a69f73cca23a9ac5c8b567dc185a756e97c982164fe25859e0d1dcc1475c80a6\
             15b2123af1f5f94c11e3e9402c3ac558f500199d95b6d3e301758586281dcd26",
        ),
        (
            HashAlgorithm::Sha3_512,
            "abc",
            "b751850b1a57168a5693cd924b6b096e08f621827444f70d884f5d0240d2712e\
             10e116e9192af3c91a7ec57647e3934057340b4cf408d5a56592f8274eec53f0",
        ),
    ];

    #[test]
    fn sha3_fips202_known_answers() {
        for (algorithm, message, expected) in FIXED {
            assert_eq!(
                hex(&algorithm.digest(message.as_bytes())),
                expected,
                "{algorithm}({message:?})"
            );
        }
    }

    /// FIPS 202 examples for the 1600-bit message of 200 bytes 0xa3 (NIST's SHA3-256_1600 /
    /// SHAKE128_1600 / SHAKE256_1600 example files), fed in uneven pieces.
    #[test]
    fn sha3_streaming_1600_bit_message() {
        let cases = [
            (
                HashAlgorithm::Sha3_256,
                "79f38adec5c20307a98ef76e8324afbfd46cfd81b22e3973c65fa1bd9de31787",
            ),
            (
                HashAlgorithm::Shake128,
                "131ab8d2b594946b9c81333f9bb6e0ce75c3b93104fa3469d3917457385da037",
            ),
            (
                HashAlgorithm::Shake256,
                "cd8a920ed141aa0407a22d59288652e9d9f1a7ee0c1e7c1ca699424da84a904d",
            ),
        ];
        let message = [0xa3u8; 200];
        for (algorithm, expected) in cases {
            let mut hasher = Hasher::with_output_len(algorithm, 32).unwrap();
            for piece in message.chunks(37) {
                hasher.update(piece);
            }
            assert_eq!(hex(&hasher.finalize()), expected, "{algorithm}");
        }
    }

    /// SHAKE of the empty string at the default lengths (FIPS 202 examples SHAKE128_Msg0 and
    /// SHAKE256_Msg0, first 256 and 512 output bits), plus the Wikipedia SHA-3 article's
    /// SHAKE128 of "The quick brown fox jumps over the lazy dog".
    #[test]
    fn shake_known_answers() {
        assert_eq!(
            hex(&HashAlgorithm::Shake128.digest(b"")),
            "7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26"
        );
        assert_eq!(
            hex(&HashAlgorithm::Shake256.digest(b"")),
            "46b9dd2b0ba88d13233b3feb743eeb243fcd52ea62b81b82b50c27646ed5762f\
             d75dc4ddd8c0f200cb05019d67b592f6fc821c49479ab48640292eacb3b7c4be"
        );
        assert_eq!(
            hex(&HashAlgorithm::Shake128.digest(b"The quick brown fox jumps over the lazy dog")),
            "f4202e3c5852f9182a0430fd8144f0a74b95e7417ecae17db0f8cfeed0e3e66e"
        );
    }

    #[test]
    fn shake_output_length_is_chosen() {
        let short = Hasher::with_output_len(HashAlgorithm::Shake256, 32)
            .unwrap()
            .finalize();
        assert_eq!(
            hex(&short),
            "46b9dd2b0ba88d13233b3feb743eeb243fcd52ea62b81b82b50c27646ed5762f"
        );
        let long = Hasher::with_output_len(HashAlgorithm::Shake128, 1000)
            .unwrap()
            .finalize();
        assert_eq!(long.len(), 1000);
        assert_eq!(hex(&long[..8]), "7f9c2ba4e88f827d");
    }

    #[test]
    fn hash_output_length_rules() {
        assert_eq!(
            Hasher::with_output_len(HashAlgorithm::Sha3_256, 16).unwrap_err(),
            CryptoError::BadOutputLength {
                algorithm: "sha3-256",
                len: 16
            }
        );
        assert!(Hasher::with_output_len(HashAlgorithm::Shake128, 0).is_err());
        assert!(Hasher::with_output_len(HashAlgorithm::Sha3_384, 48).is_ok());
        for algorithm in HashAlgorithm::ALL {
            assert_eq!(algorithm.digest(b"x").len(), algorithm.output_len());
        }
    }

    #[test]
    fn hash_algorithm_names() {
        for algorithm in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::from_name(algorithm.name()), Ok(algorithm));
            assert_eq!(algorithm.to_string().parse(), Ok(algorithm));
        }
        assert_eq!(
            HashAlgorithm::from_name("SHA3_256"),
            Ok(HashAlgorithm::Sha3_256)
        );
        assert_eq!(
            HashAlgorithm::from_name("sha3512"),
            Ok(HashAlgorithm::Sha3_512)
        );
        assert_eq!(
            HashAlgorithm::from_name("shake-128"),
            Ok(HashAlgorithm::Shake128)
        );
        assert_eq!(
            HashAlgorithm::from_name("sha256"),
            Err(CryptoError::UnknownHash {
                name: "sha256".to_owned()
            })
        );
        assert!(HashAlgorithm::from_name("").is_err());
    }

    #[test]
    fn hash_hex_formatting() {
        assert_eq!(hex(&[]), "");
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn hasher_clone_forks_the_state() {
        let mut a = Hasher::new(HashAlgorithm::Sha3_224);
        a.update(b"ab");
        let mut b = a.clone();
        a.update(b"c");
        b.update(b"d");
        assert_eq!(
            hex(&a.finalize()),
            "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf"
        );
        assert_ne!(
            hex(&b.finalize()),
            "e642824c3f8cf24ad09234ee7d3c766fc9a3a5168d0c94ad73b46fdf"
        );
    }
}
