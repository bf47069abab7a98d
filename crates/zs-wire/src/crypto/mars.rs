//! The MARS block cipher (IBM's AES finalist): 128-bit blocks, keys of 16 to 56 bytes in steps
//! of four.
//!
//! Written by hand for zserver: no crate on crates.io implements MARS for the RustCrypto
//! `cipher` 0.5 traits. This follows the algorithm as specified in "MARS - a candidate cipher
//! for AES" (Burwick et al., IBM, revised 1999 — the AES round-2 version with the tweaked key
//! schedule): forward mixing, a 16-round cryptographic core built on the E-function, and
//! backward mixing, with key whitening before and after. All words are little-endian, so the
//! byte layout matches the AES submission's known-answer files.
//!
//! The types implement the same traits as the RustCrypto ciphers (`KeyInit`,
//! `BlockCipherEncrypt`, `BlockCipherDecrypt`, …), so they plug into generic modes such as
//! `aes_gcm::AesGcm<Mars128, U12>`:
//! - [`Mars128`], [`Mars192`], [`Mars256`]: fixed 16-, 24- and 32-byte keys;
//! - [`Mars`]: any MARS key length through `KeyInit::new_from_slice` (its nominal
//!   `KeySize` is the maximum, 56 bytes).
//!
//! The key schedule is wiped from memory when a cipher value is dropped.

use core::fmt;

use cipher::consts::{U1, U16, U24, U32, U56};
use cipher::{
    AlgorithmName, Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt,
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InOut,
    InvalidLength, Key, KeyInit, KeySizeUser, ParBlocksSizeUser,
};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::mars_sbox::SBOX;

use super::block_type::block_cipher_type;

/// The S-box in static memory: indexing it never copies the table, and every index below is
/// masked to its range, so the compiler drops the bounds checks.
static S: [u32; 512] = SBOX;

/// `S0[x]`: the first half of the S-box, indexed by the low byte of `x`.
#[inline(always)]
fn s0(x: u32) -> u32 {
    S[(x & 0xff) as usize]
}

/// `S1[x]`: the second half of the S-box, indexed by the low byte of `x`.
#[inline(always)]
fn s1(x: u32) -> u32 {
    S[256 + (x & 0xff) as usize]
}

/// Whether `len` bytes is a valid MARS key length (16..=56, a multiple of 4).
pub(super) const fn is_valid_key_len(len: usize) -> bool {
    len >= 16 && len <= 56 && len.is_multiple_of(4)
}

/// Bit mask of the key-fixing step: bit `l` is set iff bit `l` of `w` lies in a run of at
/// least ten equal bits, `2 <= l <= 30`, and `w[l-1] == w[l] == w[l+1]` — that is, `l` is an
/// interior bit (not an end) of such a run.
fn fixing_mask(w: u32) -> u32 {
    let bit = |i: u32| (w >> i) & 1;
    let mut mask = 0u32;
    let mut start = 0u32;
    while start < 32 {
        let value = bit(start);
        let mut end = start;
        while end < 31 && bit(end + 1) == value {
            end += 1;
        }
        if end - start + 1 >= 10 {
            for l in (start + 1)..end {
                if (2..=30).contains(&l) {
                    mask |= 1 << l;
                }
            }
        }
        start = end + 1;
    }
    mask
}

/// The E-function of the cryptographic core: returns `(L, M, R)`.
#[inline(always)]
fn e_function(input: u32, key1: u32, key2: u32) -> (u32, u32, u32) {
    let mut m = input.wrapping_add(key1);
    let mut r = input.rotate_left(13).wrapping_mul(key2);
    let mut l = S[(m & 0x1ff) as usize];
    r = r.rotate_left(5);
    m = m.rotate_left(r & 31);
    l ^= r;
    r = r.rotate_left(5);
    l ^= r;
    l = l.rotate_left(r & 31);
    (l, m, r)
}

/// The expanded key `K[0..40]`, shared by all the public MARS types.
#[derive(Clone)]
struct MarsKeys {
    k: [u32; 40],
}

impl Drop for MarsKeys {
    fn drop(&mut self) {
        self.k.zeroize();
    }
}

impl MarsKeys {
    /// Key expansion. `key.len()` must satisfy [`is_valid_key_len`]; callers check it.
    fn expand(key: &[u8]) -> Self {
        debug_assert!(is_valid_key_len(key.len()));
        let n = key.len() / 4;
        let mut t = [0u32; 15];
        for (slot, chunk) in t.iter_mut().zip(key.chunks_exact(4)) {
            *slot = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        t[n] = n as u32;

        let mut k = [0u32; 40];
        for j in 0..4u32 {
            // Linear transformation.
            for i in 0..15usize {
                t[i] ^= (t[(i + 8) % 15] ^ t[(i + 13) % 15]).rotate_left(3) ^ (4 * i as u32 + j);
            }
            // Four stirring rounds.
            for _ in 0..4 {
                for i in 0..15usize {
                    let prev = t[(i + 14) % 15];
                    t[i] = t[i].wrapping_add(S[(prev & 0x1ff) as usize]).rotate_left(9);
                }
            }
            // Store the next ten key words.
            for i in 0..10usize {
                k[10 * j as usize + i] = t[(4 * i) % 15];
            }
        }
        t.zeroize();

        // Fix the multiplication keys K[5], K[7], …, K[35] so none has long runs of equal bits.
        for i in (5..=35).step_by(2) {
            let pattern = S[265 + (k[i] & 3) as usize];
            let w = k[i] | 3;
            let p = pattern.rotate_left(k[i - 1] & 31);
            k[i] = w ^ (p & fixing_mask(w));
        }
        Self { k }
    }

    // Encryption and decryption keep the four data words in registers: where the
    // specification rotates the array D[0..4] by one word after each round, these rename the
    // words instead, unrolling four rounds (one full turn of the array) per step.

    fn encrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let k = &self.k;
        let [d0, d1, d2, d3] = load(block);
        let mut a = d0.wrapping_add(k[0]);
        let mut b = d1.wrapping_add(k[1]);
        let mut c = d2.wrapping_add(k[2]);
        let mut d = d3.wrapping_add(k[3]);

        // Forward mixing: rounds 0..8; rounds 0 and 4 add D[3], rounds 1 and 5 add D[1].
        for _ in 0..2 {
            forward_mix(&mut a, &mut b, &mut c, &mut d);
            a = a.wrapping_add(d);
            forward_mix(&mut b, &mut c, &mut d, &mut a);
            b = b.wrapping_add(c);
            forward_mix(&mut c, &mut d, &mut a, &mut b);
            forward_mix(&mut d, &mut a, &mut b, &mut c);
        }

        // Cryptographic core: eight rounds in forward mode, eight in backward mode; round `i`
        // uses K[2i + 4] and K[2i + 5].
        for keys in k[4..20].chunks_exact(8) {
            core_forward(&mut a, &mut b, &mut c, &mut d, keys[0], keys[1]);
            core_forward(&mut b, &mut c, &mut d, &mut a, keys[2], keys[3]);
            core_forward(&mut c, &mut d, &mut a, &mut b, keys[4], keys[5]);
            core_forward(&mut d, &mut a, &mut b, &mut c, keys[6], keys[7]);
        }
        for keys in k[20..36].chunks_exact(8) {
            core_backward(&mut a, &mut b, &mut c, &mut d, keys[0], keys[1]);
            core_backward(&mut b, &mut c, &mut d, &mut a, keys[2], keys[3]);
            core_backward(&mut c, &mut d, &mut a, &mut b, keys[4], keys[5]);
            core_backward(&mut d, &mut a, &mut b, &mut c, keys[6], keys[7]);
        }

        // Backward mixing: rounds 2 and 6 first subtract D[3], rounds 3 and 7 D[1].
        for _ in 0..2 {
            backward_mix(&mut a, &mut b, &mut c, &mut d);
            backward_mix(&mut b, &mut c, &mut d, &mut a);
            c = c.wrapping_sub(b);
            backward_mix(&mut c, &mut d, &mut a, &mut b);
            d = d.wrapping_sub(a);
            backward_mix(&mut d, &mut a, &mut b, &mut c);
        }

        store([
            a.wrapping_sub(k[36]),
            b.wrapping_sub(k[37]),
            c.wrapping_sub(k[38]),
            d.wrapping_sub(k[39]),
        ])
    }

    /// The exact inverse of [`MarsKeys::encrypt`], step by step in reverse order.
    fn decrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let k = &self.k;
        let [d0, d1, d2, d3] = load(block);
        let mut a = d0.wrapping_add(k[36]);
        let mut b = d1.wrapping_add(k[37]);
        let mut c = d2.wrapping_add(k[38]);
        let mut d = d3.wrapping_add(k[39]);

        // Undo backward mixing.
        for _ in 0..2 {
            backward_unmix(&mut d, &mut a, &mut b, &mut c);
            d = d.wrapping_add(a);
            backward_unmix(&mut c, &mut d, &mut a, &mut b);
            c = c.wrapping_add(b);
            backward_unmix(&mut b, &mut c, &mut d, &mut a);
            backward_unmix(&mut a, &mut b, &mut c, &mut d);
        }

        // Undo the cryptographic core.
        for keys in k[20..36].chunks_exact(8).rev() {
            core_backward_inv(&mut d, &mut a, &mut b, &mut c, keys[6], keys[7]);
            core_backward_inv(&mut c, &mut d, &mut a, &mut b, keys[4], keys[5]);
            core_backward_inv(&mut b, &mut c, &mut d, &mut a, keys[2], keys[3]);
            core_backward_inv(&mut a, &mut b, &mut c, &mut d, keys[0], keys[1]);
        }
        for keys in k[4..20].chunks_exact(8).rev() {
            core_forward_inv(&mut d, &mut a, &mut b, &mut c, keys[6], keys[7]);
            core_forward_inv(&mut c, &mut d, &mut a, &mut b, keys[4], keys[5]);
            core_forward_inv(&mut b, &mut c, &mut d, &mut a, keys[2], keys[3]);
            core_forward_inv(&mut a, &mut b, &mut c, &mut d, keys[0], keys[1]);
        }

        // Undo forward mixing.
        for _ in 0..2 {
            forward_unmix(&mut d, &mut a, &mut b, &mut c);
            forward_unmix(&mut c, &mut d, &mut a, &mut b);
            b = b.wrapping_sub(c);
            forward_unmix(&mut b, &mut c, &mut d, &mut a);
            a = a.wrapping_sub(d);
            forward_unmix(&mut a, &mut b, &mut c, &mut d);
        }

        store([
            a.wrapping_sub(k[0]),
            b.wrapping_sub(k[1]),
            c.wrapping_sub(k[2]),
            d.wrapping_sub(k[3]),
        ])
    }
}

// One round of each phase, on the words D[0], D[1], D[2], D[3] of that round (`x`, `p`, `q`,
// `r`), without the rotation of the array, and its inverse.

/// A forward-mixing round, before any addition of D[1] or D[3] to D[0].
#[inline(always)]
fn forward_mix(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32) {
    let v = *x;
    *p = (*p ^ s0(v)).wrapping_add(s1(v >> 8));
    *q = q.wrapping_add(s0(v >> 16));
    *r ^= s1(v >> 24);
    *x = v.rotate_right(24);
}

/// The inverse of [`forward_mix`].
#[inline(always)]
fn forward_unmix(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32) {
    let v = x.rotate_left(24);
    *r ^= s1(v >> 24);
    *q = q.wrapping_sub(s0(v >> 16));
    *p = p.wrapping_sub(s1(v >> 8)) ^ s0(v);
    *x = v;
}

/// A core round in forward mode (the first eight rounds).
#[inline(always)]
fn core_forward(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32, key1: u32, key2: u32) {
    let (l, m, rr) = e_function(*x, key1, key2);
    *x = x.rotate_left(13);
    *q = q.wrapping_add(m);
    *p = p.wrapping_add(l);
    *r ^= rr;
}

/// The inverse of [`core_forward`].
#[inline(always)]
fn core_forward_inv(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32, key1: u32, key2: u32) {
    *x = x.rotate_right(13);
    let (l, m, rr) = e_function(*x, key1, key2);
    *q = q.wrapping_sub(m);
    *p = p.wrapping_sub(l);
    *r ^= rr;
}

/// A core round in backward mode (the last eight rounds).
#[inline(always)]
fn core_backward(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32, key1: u32, key2: u32) {
    let (l, m, rr) = e_function(*x, key1, key2);
    *x = x.rotate_left(13);
    *q = q.wrapping_add(m);
    *r = r.wrapping_add(l);
    *p ^= rr;
}

/// The inverse of [`core_backward`].
#[inline(always)]
fn core_backward_inv(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32, key1: u32, key2: u32) {
    *x = x.rotate_right(13);
    let (l, m, rr) = e_function(*x, key1, key2);
    *q = q.wrapping_sub(m);
    *r = r.wrapping_sub(l);
    *p ^= rr;
}

/// A backward-mixing round, after any subtraction of D[1] or D[3] from D[0].
#[inline(always)]
fn backward_mix(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32) {
    let v = *x;
    *p ^= s1(v);
    *q = q.wrapping_sub(s0(v >> 24));
    *r = r.wrapping_sub(s1(v >> 16)) ^ s0(v >> 8);
    *x = v.rotate_left(24);
}

/// The inverse of [`backward_mix`].
#[inline(always)]
fn backward_unmix(x: &mut u32, p: &mut u32, q: &mut u32, r: &mut u32) {
    let v = x.rotate_right(24);
    *r = (*r ^ s0(v >> 8)).wrapping_add(s1(v >> 16));
    *q = q.wrapping_add(s0(v >> 24));
    *p ^= s1(v);
    *x = v;
}

/// Loads a block as four little-endian words.
#[inline(always)]
fn load(block: &[u8; 16]) -> [u32; 4] {
    let mut d = [0u32; 4];
    for (word, chunk) in d.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    d
}

/// Stores four words as a little-endian block.
#[inline(always)]
fn store(d: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(d) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

block_cipher_type!(
    /// MARS with a 128-bit (16-byte) key.
    Mars128,
    MarsKeys,
    U16,
    "MARS-128"
);
block_cipher_type!(
    /// MARS with a 192-bit (24-byte) key.
    Mars192,
    MarsKeys,
    U24,
    "MARS-192"
);
block_cipher_type!(
    /// MARS with a 256-bit (32-byte) key.
    Mars256,
    MarsKeys,
    U32,
    "MARS-256"
);
block_cipher_type!(
    /// MARS with any key length the specification allows: 16 to 56 bytes in steps of four.
    ///
    /// Create it with `KeyInit::new_from_slice`; `KeyInit::new` takes the maximal 56-byte key.
    Mars,
    MarsKeys,
    U56,
    "MARS",
    accepts = is_valid_key_len
);

#[cfg(test)]
mod tests {
    use super::{fixing_mask, is_valid_key_len};

    /// Masks worked out by hand from the specification's rule.
    #[test]
    fn mars_fixing_mask_examples() {
        // 32 ones: interior bits 1..=30, clipped to 2..=30.
        assert_eq!(fixing_mask(0xffff_ffff), 0x7fff_fffc);
        // Bits 0-1 ones (short run); bits 2..=31 zeros: interior 3..=30.
        assert_eq!(fixing_mask(0x0000_0003), 0x7fff_fff8);
        // Bits 0-1 ones; 2..=9 zeros (8, too short); 10..=19 ones (interior 11..=18);
        // 20..=31 zeros (interior 21..=30).
        assert_eq!(fixing_mask(0x000f_fc03), 0x7fe7_f800);
        // Runs of at most nine equal bits: no mask.
        assert_eq!(fixing_mask(0x5555_5557), 0);
        assert_eq!(fixing_mask(0x07fc_01ff), 0);
        // Zeros at bits 9..=18 (ten): interior 10..=17.
        assert_eq!(fixing_mask(0x0ff8_01ff), 0x0003_fc00);
    }

    #[test]
    fn mars_key_lengths() {
        let valid: Vec<usize> = (0..64).filter(|&n| is_valid_key_len(n)).collect();
        assert_eq!(valid, [16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56]);
    }
}
