//! ChaCha20-Poly1305 from the system's OpenSSL (cargo feature `openssl`).
//!
//! Why: OpenSSL 3 has AVX-512 ChaCha20 and Poly1305; aws-lc and ring stop at AVX2, and on a
//! core with AVX-512 they seal about 0.6× what `openssl speed -evp chacha20-poly1305` does
//! (issue 18, `zs-bench crypto`). The wire is the same: RFC 8439 with the record layer's
//! nonce and header as additional data, so either build talks to the other.
//!
//! Behind a feature because building it needs OpenSSL's headers and `pkg-config` (Debian:
//! `libssl-dev pkg-config`); the default build needs nothing but a Rust toolchain.

use openssl::cipher::Cipher;
use openssl::cipher_ctx::CipherCtx;

use super::keys::RecordAead;
use super::{NONCE_LEN, TAG_LEN};

/// One direction's ChaCha20-Poly1305: the key is set once, each record only sets the nonce.
pub(super) struct OpenSslChaCha {
    ctx: CipherCtx,
}

impl OpenSslChaCha {
    /// `None` when OpenSSL refuses the key (it must be 32 bytes).
    pub(super) fn keyed(key: &[u8]) -> Option<Box<dyn RecordAead>> {
        let cipher = Cipher::chacha20_poly1305();
        if key.len() != cipher.key_length() || cipher.iv_length() != NONCE_LEN {
            return None;
        }
        let mut ctx = CipherCtx::new().ok()?;
        // Keyed for encryption; `open_in_place` switches direction with the same key.
        ctx.encrypt_init(Some(cipher), Some(key), None).ok()?;
        Some(Box::new(Self { ctx }))
    }

    /// Encrypts or decrypts `buffer` in place after taking `aad` into the tag.
    fn update(&mut self, aad: &[u8], buffer: &mut [u8]) -> Result<(), aes_gcm::Error> {
        // `cipher_update` takes an `int` length; records are far smaller, but say so.
        if i32::try_from(buffer.len().max(aad.len())).is_err() {
            return Err(aes_gcm::Error);
        }
        self.ctx
            .cipher_update(aad, None)
            .map_err(|_| aes_gcm::Error)?;
        let len = buffer.len();
        // A stream cipher: exactly `len` bytes come out, in place.
        let written = self
            .ctx
            .cipher_update_inplace(buffer, len)
            .map_err(|_| aes_gcm::Error)?;
        if written == len {
            Ok(())
        } else {
            Err(aes_gcm::Error)
        }
    }
}

impl RecordAead for OpenSslChaCha {
    fn seal_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
    ) -> Result<[u8; TAG_LEN], aes_gcm::Error> {
        // No cipher and no key: OpenSSL keeps the key schedule (giving the cipher again would
        // reset the context), sets the direction and the nonce, and restarts the tag.
        self.ctx
            .encrypt_init(None, None, Some(nonce))
            .map_err(|_| aes_gcm::Error)?;
        self.update(aad, buffer)?;
        self.ctx.cipher_final(&mut []).map_err(|_| aes_gcm::Error)?;
        let mut tag = [0u8; TAG_LEN];
        self.ctx.tag(&mut tag).map_err(|_| aes_gcm::Error)?;
        Ok(tag)
    }

    fn open_in_place(
        &mut self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), aes_gcm::Error> {
        self.ctx
            .decrypt_init(None, None, Some(nonce))
            .map_err(|_| aes_gcm::Error)?;
        self.ctx.set_tag(tag).map_err(|_| aes_gcm::Error)?;
        let opened = self
            .update(aad, buffer)
            .and_then(|()| self.ctx.cipher_final(&mut []).map_err(|_| aes_gcm::Error));
        if opened.is_err() {
            // OpenSSL decrypts before it checks the tag: leave no unauthenticated plaintext.
            buffer.fill(0);
            return Err(aes_gcm::Error);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::ChaCha20Poly1305;
    use chacha20poly1305::aead::KeyInit;
    use proptest::prelude::*;

    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 8439 §2.8.2, the AEAD test vector.
    #[test]
    fn rfc_8439_aead_vector() {
        let key: Vec<u8> = (0x80..=0x9f).collect();
        let nonce: [u8; NONCE_LEN] = hex("070000004041424344454647").try_into().unwrap();
        let aad = hex("50515253c0c1c2c3c4c5c6c7");
        let plaintext = b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let mut aead = OpenSslChaCha::keyed(&key).unwrap();
        let mut buffer = plaintext.to_vec();
        let tag = aead.seal_in_place(&nonce, &aad, &mut buffer).unwrap();
        assert_eq!(tag.to_vec(), hex("1ae10b594f09e26a7e902ecbd0600691"));
        assert_eq!(buffer[..16], hex("d31a8d34648e60db7b86afbc53ef7ec2")[..]);
        aead.open_in_place(&nonce, &aad, &mut buffer, &tag).unwrap();
        assert_eq!(buffer, plaintext);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The same bytes as RustCrypto's implementation (the default build's aws-lc is
        /// checked against it in `tests::spec`), in both directions on one context, and a
        /// changed byte anywhere is refused with nothing left in the buffer.
        #[test]
        fn agrees_with_rustcrypto_and_refuses_tampering(
            key in prop::array::uniform32(any::<u8>()),
            nonce in prop::array::uniform12(any::<u8>()),
            aad in prop::collection::vec(any::<u8>(), 0..32),
            plaintext in prop::collection::vec(any::<u8>(), 0..3000),
            flip in any::<usize>(),
        ) {
            let mut aead = OpenSslChaCha::keyed(&key).unwrap();
            let mut reference = ChaCha20Poly1305::new_from_slice(&key).unwrap();
            for _ in 0..2 {
                let mut sealed = plaintext.clone();
                let tag = aead.seal_in_place(&nonce, &aad, &mut sealed).unwrap();
                let mut expected = plaintext.clone();
                let expected_tag = reference.seal_in_place(&nonce, &aad, &mut expected).unwrap();
                prop_assert_eq!(&sealed, &expected);
                prop_assert_eq!(tag, expected_tag);

                let mut opened = sealed.clone();
                aead.open_in_place(&nonce, &aad, &mut opened, &tag).unwrap();
                prop_assert_eq!(&opened, &plaintext);

                let mut bad_tag = tag;
                bad_tag[flip % TAG_LEN] ^= 1;
                let mut refused = sealed.clone();
                prop_assert!(aead.open_in_place(&nonce, &aad, &mut refused, &bad_tag).is_err());
                prop_assert!(refused.iter().all(|&b| b == 0));
                if !sealed.is_empty() {
                    let mut refused = sealed.clone();
                    refused[flip % sealed.len()] ^= 0x80;
                    prop_assert!(aead.open_in_place(&nonce, &aad, &mut refused, &tag).is_err());
                }
            }
        }
    }
}
