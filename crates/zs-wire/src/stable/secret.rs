//! Key material: link secrets and keys, session secrets, resume proofs.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{Role, SessionId, StableError};
use crate::crypto::mac;

/// Derives the secret of one link from its handshake, in the form
/// [`StableEndpoint::link_established`](super::StableEndpoint::link_established) and
/// [`StableRegistry::new_link`](super::StableRegistry::new_link) take: HKDF-SHA256 of the
/// client-to-server and server-to-client traffic secrets, salted with the handshake hash.
/// `send_secret`/`receive_secret` are this side's; both sides get the same result.
pub fn link_secret(
    role: Role,
    send_secret: &[u8; 32],
    receive_secret: &[u8; 32],
    handshake_hash: &[u8],
) -> Zeroizing<[u8; 32]> {
    let (c2s, s2c) = match role {
        Role::Client => (send_secret, receive_secret),
        Role::Server => (receive_secret, send_secret),
    };
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(c2s);
    ikm[32..].copy_from_slice(s2c);
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf_expand(
        handshake_hash,
        ikm.as_slice(),
        b"zs-stable link v1",
        &mut out,
    );
    out
}

fn hkdf_expand(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8; 32]) {
    let hkdf = Hkdf::<Sha256>::new(Some(salt), ikm);
    // 32 bytes is far below HKDF-SHA256's output limit, so expand cannot fail.
    let _ = hkdf.expand(info, out);
}

/// The fixed-size form of a link secret the runtime passed in: SHA-256 over a label and it.
pub(super) fn link_key(link_secret: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut hash = Sha256::new();
    hash.update(b"zs-stable link key v1");
    hash.update(link_secret);
    Zeroizing::new(hash.finalize().into())
}

pub(super) fn session_secret(
    id: SessionId,
    open_link: &[u8; 32],
    share: &[u8; 32],
) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 64]);
    ikm[..32].copy_from_slice(open_link);
    ikm[32..].copy_from_slice(share);
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf_expand(&id.0, ikm.as_slice(), b"zs-stable session v1", &mut out);
    out
}

/// The resume proof's message: label, session id, the link's nonce, the offset the client
/// received up to and the resume link's key (see the module docs).
fn resume_message<'a>(
    id: &'a SessionId,
    nonce: &'a [u8; 32],
    next_expected: &'a [u8; 8],
    link: &'a [u8; 32],
) -> [&'a [u8]; 5] {
    [b"zs-stable resume v1", &id.0, nonce, next_expected, link]
}

pub(super) fn resume_proof(
    secret: &[u8; 32],
    id: SessionId,
    nonce: &[u8; 32],
    next_expected: u64,
    link: &[u8; 32],
) -> [u8; 32] {
    let offset = next_expected.to_le_bytes();
    mac::prove(secret, &resume_message(&id, nonce, &offset, link))
}

pub(super) fn verify_proof(
    secret: &[u8; 32],
    id: SessionId,
    nonce: &[u8; 32],
    next_expected: u64,
    link: &[u8; 32],
    proof: &[u8; 32],
) -> bool {
    let offset = next_expected.to_le_bytes();
    mac::verify(secret, &resume_message(&id, nonce, &offset, link), proof)
}

pub(super) fn random<const N: usize>() -> Result<[u8; N], StableError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| StableError::Random(error.to_string()))?;
    Ok(bytes)
}
