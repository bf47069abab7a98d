//! X25519 for the Noise handshake on aws-lc's assembly.
//!
//! snow's built-in X25519 is curve25519-dalek's portable field arithmetic; aws-lc (the
//! library under rustls's default provider) has hand-tuned assembly that does the same
//! Diffie-Hellman in about half the time on x86_64 (46 µs against 102 µs per operation,
//! measured on this project's 2-core machines). XX costs each side three DH and one key
//! generation, so this is most of a handshake's CPU (BENCHMARKS.md, handshakes). Written
//! here because snow takes its primitives through its resolver trait and no crate ships
//! an aws-lc resolver; everything else (cipher, hash, RNG) stays snow's default.
//!
//! Keys are interchangeable with the portable implementation: both compute RFC 7748's
//! X25519 (tested against its vector and against x25519-dalek).
//!
//! snow hands the local static private key to `Dh::set` on every handshake and expects the
//! public key to be derived there: a fixed-base multiply per handshake for a key whose public
//! half [`StaticKeypair`] already holds. The resolver is made per handshake with that key
//! pair, and `set` takes the known public key when the private key matches (compared in
//! constant time), so a handshake derives only its ephemeral key.

use aws_lc_rs::agreement::{self, PrivateKey, UnparsedPublicKey, X25519};
use snow::Error;
use snow::params::{CipherChoice, DHChoice, HashChoice};
use snow::resolvers::{BoxedCryptoResolver, CryptoResolver, DefaultResolver, FallbackResolver};
use snow::types::{Cipher, Dh, Hash, Random};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::StaticKeypair;

const KEY_LEN: usize = 32;

/// snow's resolver with X25519 from aws-lc, knowing the local static key pair `local`; the
/// rest from snow's defaults.
pub(super) fn resolver(local: &StaticKeypair) -> BoxedCryptoResolver {
    Box::new(FallbackResolver::new(
        Box::new(AwsLcResolver {
            known: Some(Known {
                private: Zeroizing::new(*local.private()),
                public: local.public(),
            }),
        }),
        Box::new(DefaultResolver),
    ))
}

/// The public key of X25519 private key `private` (RFC 7748's fixed-base multiply), or
/// `None` if aws-lc refuses the key (it takes any 32 bytes).
pub(super) fn public_key(private: &[u8; KEY_LEN]) -> Option<[u8; KEY_LEN]> {
    let key = PrivateKey::from_private_key(&X25519, private).ok()?;
    let public = key.compute_public_key().ok()?;
    <[u8; KEY_LEN]>::try_from(public.as_ref()).ok()
}

/// A key pair whose public half is already known.
#[derive(Clone)]
struct Known {
    private: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
}

struct AwsLcResolver {
    known: Option<Known>,
}

impl CryptoResolver for AwsLcResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        None
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        matches!(choice, DHChoice::Curve25519).then(|| {
            Box::new(AwsLcX25519 {
                known: self.known.clone(),
                ..AwsLcX25519::default()
            }) as _
        })
    }

    fn resolve_hash(&self, _choice: &HashChoice) -> Option<Box<dyn Hash>> {
        None
    }

    fn resolve_cipher(&self, _choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        None
    }
}

/// One X25519 key pair. The raw private key is kept because snow's `Dh` hands it out
/// (`privkey`); it is wiped on drop. `known` is a key pair whose public key `set` need not
/// derive.
#[derive(Default)]
struct AwsLcX25519 {
    key: Option<PrivateKey>,
    private: Zeroizing<[u8; KEY_LEN]>,
    public: [u8; KEY_LEN],
    known: Option<Known>,
}

impl Dh for AwsLcX25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        self.key = None;
        self.public = [0; KEY_LEN];
        // snow passes `priv_len` bytes; anything else leaves no key, and `dh` then fails.
        let Ok(bytes) = <[u8; KEY_LEN]>::try_from(privkey) else {
            return;
        };
        *self.private = bytes;
        let Ok(key) = PrivateKey::from_private_key(&X25519, privkey) else {
            return;
        };
        if let Some(known) = &self.known
            && bool::from(known.private.ct_eq(privkey))
        {
            self.public = known.public;
            self.key = Some(key);
            return;
        }
        if let Ok(public) = key.compute_public_key()
            && let Ok(public) = <[u8; KEY_LEN]>::try_from(public.as_ref())
        {
            self.public = public;
            self.key = Some(key);
        }
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), Error> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rng.try_fill_bytes(bytes.as_mut())?;
        self.set(bytes.as_ref());
        match self.key {
            Some(_) => Ok(()),
            None => Err(Error::Dh),
        }
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        self.private.as_ref()
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), Error> {
        let key = self.key.as_ref().ok_or(Error::Dh)?;
        // snow passes its whole key buffer (sized for its largest curve): the key is the
        // first 32 bytes.
        let pubkey = pubkey.get(..KEY_LEN).ok_or(Error::Dh)?;
        // aws-lc refuses a peer key that gives the all-zero secret (a low-order point).
        agreement::agree(
            key,
            UnparsedPublicKey::new(&X25519, pubkey),
            Error::Dh,
            |secret| {
                out.get_mut(..secret.len())
                    .ok_or(Error::Dh)?
                    .copy_from_slice(secret);
                Ok(())
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn hex32(text: &str) -> [u8; 32] {
        let bytes: Vec<u8> = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    /// RFC 7748 §6.1: Alice's and Bob's keys and their shared secret.
    #[test]
    fn rfc7748_diffie_hellman_vector() {
        let alice_private =
            hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let alice_public =
            hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
        let bob_private = hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        let bob_public = hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
        let shared = hex32(
            "4a5d9d5b a4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
                .replace(' ', "")
                .as_str(),
        );
        let mut alice = AwsLcX25519::default();
        alice.set(&alice_private);
        assert_eq!(alice.pubkey(), alice_public);
        assert_eq!(alice.privkey(), alice_private);
        let mut bob = AwsLcX25519::default();
        bob.set(&bob_private);
        assert_eq!(bob.pubkey(), bob_public);
        let mut out = [0u8; 32];
        alice.dh(&bob_public, &mut out).unwrap();
        assert_eq!(out, shared);
        bob.dh(&alice_public, &mut out).unwrap();
        assert_eq!(out, shared);
    }

    #[test]
    fn agrees_with_the_portable_implementation() {
        for seed in 0u8..8 {
            let ours = [seed.wrapping_mul(37).wrapping_add(1); 32];
            let theirs = x25519_dalek::StaticSecret::from([seed.wrapping_add(100); 32]);
            let mut key = AwsLcX25519::default();
            key.set(&ours);
            let dalek_ours = x25519_dalek::StaticSecret::from(ours);
            assert_eq!(
                key.pubkey(),
                x25519_dalek::PublicKey::from(&dalek_ours).as_bytes()
            );
            let their_public = x25519_dalek::PublicKey::from(&theirs);
            let mut out = [0u8; 32];
            key.dh(their_public.as_bytes(), &mut out).unwrap();
            assert_eq!(
                &out,
                theirs
                    .diffie_hellman(&x25519_dalek::PublicKey::from(&dalek_ours))
                    .as_bytes()
            );
        }
    }

    #[test]
    fn a_known_key_pair_gives_the_same_keys_and_secrets() {
        let local = StaticKeypair::from_private(&[7u8; 32]);
        let peer = StaticKeypair::from_private(&[9u8; 32]);
        let resolver = resolver(&local);
        let mut known = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        known.set(local.private());
        assert_eq!(known.pubkey(), local.public());
        let mut derived = AwsLcX25519::default();
        derived.set(local.private());
        assert_eq!(derived.pubkey(), local.public());
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        known.dh(&peer.public(), &mut a).unwrap();
        derived.dh(&peer.public(), &mut b).unwrap();
        assert_eq!(a, b);
        // Another private key through the same resolver is derived, not taken as known.
        let mut other = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        other.set(&[9u8; 32]);
        assert_eq!(other.pubkey(), peer.public());
    }

    #[test]
    fn public_key_matches_the_portable_implementation() {
        let private = [42u8; 32];
        let dalek = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(private));
        assert_eq!(public_key(&private).unwrap(), *dalek.as_bytes());
    }

    #[test]
    fn bad_keys_fail_instead_of_panicking() {
        let mut key = AwsLcX25519::default();
        let mut out = [0u8; 32];
        assert!(key.dh(&[9u8; 32], &mut out).is_err(), "no key set");
        key.set(&[1u8; 5]);
        assert!(key.dh(&[9u8; 32], &mut out).is_err(), "short private key");
        key.set(&[7u8; 32]);
        assert!(key.dh(&[0u8; 32], &mut out).is_err(), "low-order point");
        assert!(key.dh(&[9u8; 31], &mut out).is_err(), "short public key");
        let mut padded = [0u8; 65];
        padded[0] = 9;
        assert!(
            key.dh(&padded, &mut out).is_ok(),
            "snow's buffer: key then padding"
        );
        assert!(key.dh(&[9u8; 32], &mut [0u8; 8]).is_err(), "short output");
    }
}
