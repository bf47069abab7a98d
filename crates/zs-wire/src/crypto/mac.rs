//! Keyed proofs: HMAC-SHA256 over a labelled message, checked in constant time.
//!
//! One helper for every proof zserver sends instead of a secret: StableIO's resume proof
//! ([`crate::stable`]) and XNat's mapping registration proof. Callers pass the message as
//! parts (a label first, then fixed-size or length-prefixed fields) so nothing is
//! concatenated in memory and two different field sequences cannot produce the same input.

use hkdf::hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Length of a proof: an HMAC-SHA256 tag.
pub const PROOF_LEN: usize = 32;

/// HMAC-SHA256 keyed by `key` over the concatenation of `parts`.
pub fn prove(key: &[u8], parts: &[&[u8]]) -> [u8; PROOF_LEN] {
    // HMAC takes keys of any length (longer ones are hashed), so this cannot fail; an
    // all-zero tag would only ever fail to verify.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return [0; PROOF_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `proof` is [`prove`]`(key, parts)`. Constant time in the proof's contents; a
/// proof of the wrong length is refused.
pub fn verify(key: &[u8], parts: &[&[u8]], proof: &[u8]) -> bool {
    prove(key, parts).ct_eq(proof).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_4231_test_case_2() {
        let tag = prove(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(crate::crypto::hash::hex(&tag), expected);
    }

    #[test]
    fn a_proof_holds_only_for_its_key_and_message() {
        let proof = prove(b"key", &[b"label", b"message"]);
        assert!(verify(b"key", &[b"label", b"message"], &proof));
        assert!(verify(b"key", &[b"labelmessage"], &proof));
        assert!(!verify(b"other", &[b"label", b"message"], &proof));
        assert!(!verify(b"key", &[b"label", b"messagf"], &proof));
        assert!(!verify(b"key", &[b"label", b"message"], &proof[..31]));
        let mut flipped = proof;
        flipped[31] ^= 1;
        assert!(!verify(b"key", &[b"label", b"message"], &flipped));
    }
}
