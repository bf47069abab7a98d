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

/// `S0[x]`: the first half of the S-box, indexed by the low byte of `x`.
fn s0(x: u32) -> u32 {
    SBOX[(x & 0xff) as usize]
}

/// `S1[x]`: the second half of the S-box, indexed by the low byte of `x`.
fn s1(x: u32) -> u32 {
    SBOX[256 + (x & 0xff) as usize]
}

/// Whether `len` bytes is a valid MARS key length (16..=56, a multiple of 4).
pub(super) const fn is_valid_key_len(len: usize) -> bool {
    len >= 16 && len <= 56 && len % 4 == 0
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
fn e_function(input: u32, key1: u32, key2: u32) -> (u32, u32, u32) {
    let mut m = input.wrapping_add(key1);
    let mut r = input.rotate_left(13).wrapping_mul(key2);
    let mut l = SBOX[(m & 0x1ff) as usize];
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
                    t[i] = t[i]
                        .wrapping_add(SBOX[(prev & 0x1ff) as usize])
                        .rotate_left(9);
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
            let pattern = SBOX[265 + (k[i] & 3) as usize];
            let w = k[i] | 3;
            let p = pattern.rotate_left(k[i - 1] & 31);
            k[i] = w ^ (p & fixing_mask(w));
        }
        Self { k }
    }

    fn encrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let k = &self.k;
        let mut d = load(block);
        for (word, key) in d.iter_mut().zip(&k[..4]) {
            *word = word.wrapping_add(*key);
        }

        // Forward mixing.
        for i in 0..8 {
            let x = d[0];
            d[1] ^= s0(x);
            d[1] = d[1].wrapping_add(s1(x >> 8));
            d[2] = d[2].wrapping_add(s0(x >> 16));
            d[3] ^= s1(x >> 24);
            d[0] = x.rotate_right(24);
            if i == 0 || i == 4 {
                d[0] = d[0].wrapping_add(d[3]);
            }
            if i == 1 || i == 5 {
                d[0] = d[0].wrapping_add(d[1]);
            }
            d.rotate_left(1);
        }

        // Cryptographic core: eight rounds in forward mode, eight in backward mode.
        for i in 0..16 {
            let (l, m, r) = e_function(d[0], k[2 * i + 4], k[2 * i + 5]);
            d[0] = d[0].rotate_left(13);
            d[2] = d[2].wrapping_add(m);
            if i < 8 {
                d[1] = d[1].wrapping_add(l);
                d[3] ^= r;
            } else {
                d[3] = d[3].wrapping_add(l);
                d[1] ^= r;
            }
            d.rotate_left(1);
        }

        // Backward mixing.
        for i in 0..8 {
            if i == 2 || i == 6 {
                d[0] = d[0].wrapping_sub(d[3]);
            }
            if i == 3 || i == 7 {
                d[0] = d[0].wrapping_sub(d[1]);
            }
            let x = d[0];
            d[1] ^= s1(x);
            d[2] = d[2].wrapping_sub(s0(x >> 24));
            d[3] = d[3].wrapping_sub(s1(x >> 16));
            d[3] ^= s0(x >> 8);
            d[0] = x.rotate_left(24);
            d.rotate_left(1);
        }

        for (word, key) in d.iter_mut().zip(&k[36..]) {
            *word = word.wrapping_sub(*key);
        }
        store(d)
    }

    /// The exact inverse of [`MarsKeys::encrypt`], step by step in reverse order.
    fn decrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let k = &self.k;
        let mut d = load(block);
        for (word, key) in d.iter_mut().zip(&k[36..]) {
            *word = word.wrapping_add(*key);
        }

        // Undo backward mixing.
        for i in (0..8).rev() {
            d.rotate_right(1);
            d[0] = d[0].rotate_right(24);
            let x = d[0];
            d[3] ^= s0(x >> 8);
            d[3] = d[3].wrapping_add(s1(x >> 16));
            d[2] = d[2].wrapping_add(s0(x >> 24));
            d[1] ^= s1(x);
            if i == 3 || i == 7 {
                d[0] = d[0].wrapping_add(d[1]);
            }
            if i == 2 || i == 6 {
                d[0] = d[0].wrapping_add(d[3]);
            }
        }

        // Undo the cryptographic core.
        for i in (0..16).rev() {
            d.rotate_right(1);
            d[0] = d[0].rotate_right(13);
            let (l, m, r) = e_function(d[0], k[2 * i + 4], k[2 * i + 5]);
            d[2] = d[2].wrapping_sub(m);
            if i < 8 {
                d[1] = d[1].wrapping_sub(l);
                d[3] ^= r;
            } else {
                d[3] = d[3].wrapping_sub(l);
                d[1] ^= r;
            }
        }

        // Undo forward mixing.
        for i in (0..8).rev() {
            d.rotate_right(1);
            if i == 1 || i == 5 {
                d[0] = d[0].wrapping_sub(d[1]);
            }
            if i == 0 || i == 4 {
                d[0] = d[0].wrapping_sub(d[3]);
            }
            d[0] = d[0].rotate_left(24);
            let x = d[0];
            d[3] ^= s1(x >> 24);
            d[2] = d[2].wrapping_sub(s0(x >> 16));
            d[1] = d[1].wrapping_sub(s1(x >> 8));
            d[1] ^= s0(x);
        }

        for (word, key) in d.iter_mut().zip(&k[..4]) {
            *word = word.wrapping_sub(*key);
        }
        store(d)
    }
}

/// Loads a block as four little-endian words.
fn load(block: &[u8; 16]) -> [u32; 4] {
    let mut d = [0u32; 4];
    for (word, chunk) in d.iter_mut().zip(block.chunks_exact(4)) {
        *word = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    d
}

/// Stores four words as a little-endian block.
fn store(d: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(d) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// Defines one public MARS type and its `cipher` trait implementations.
macro_rules! mars_type {
    ($(#[$doc:meta])* $name:ident, $key_size:ty, $alg:literal) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            keys: MarsKeys,
        }

        impl KeySizeUser for $name {
            type KeySize = $key_size;
        }

        impl BlockSizeUser for $name {
            type BlockSize = U16;
        }

        impl ParBlocksSizeUser for $name {
            type ParBlocksSize = U1;
        }

        impl BlockCipherEncrypt for $name {
            #[inline]
            fn encrypt_with_backend(
                &self,
                f: impl BlockCipherEncClosure<BlockSize = Self::BlockSize>,
            ) {
                f.call(self)
            }
        }

        impl BlockCipherEncBackend for $name {
            #[inline]
            fn encrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
                let output = self.keys.encrypt(block.get_in().into());
                *block.get_out() = output.into();
            }
        }

        impl BlockCipherDecrypt for $name {
            #[inline]
            fn decrypt_with_backend(
                &self,
                f: impl BlockCipherDecClosure<BlockSize = Self::BlockSize>,
            ) {
                f.call(self)
            }
        }

        impl BlockCipherDecBackend for $name {
            #[inline]
            fn decrypt_block(&self, mut block: InOut<'_, '_, Block<Self>>) {
                let output = self.keys.decrypt(block.get_in().into());
                *block.get_out() = output.into();
            }
        }

        impl AlgorithmName for $name {
            fn write_alg_name(f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($alg)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!($alg, " { .. }"))
            }
        }

        impl ZeroizeOnDrop for $name {}
    };
}

mars_type!(
    /// MARS with a 128-bit (16-byte) key.
    Mars128,
    U16,
    "MARS-128"
);
mars_type!(
    /// MARS with a 192-bit (24-byte) key.
    Mars192,
    U24,
    "MARS-192"
);
mars_type!(
    /// MARS with a 256-bit (32-byte) key.
    Mars256,
    U32,
    "MARS-256"
);
mars_type!(
    /// MARS with any key length the specification allows: 16 to 56 bytes in steps of four.
    ///
    /// Create it with `KeyInit::new_from_slice`; `KeyInit::new` takes the maximal 56-byte key.
    Mars,
    U56,
    "MARS"
);

impl KeyInit for Mars128 {
    fn new(key: &Key<Self>) -> Self {
        Self {
            keys: MarsKeys::expand(key),
        }
    }
}

impl KeyInit for Mars192 {
    fn new(key: &Key<Self>) -> Self {
        Self {
            keys: MarsKeys::expand(key),
        }
    }
}

impl KeyInit for Mars256 {
    fn new(key: &Key<Self>) -> Self {
        Self {
            keys: MarsKeys::expand(key),
        }
    }
}

impl KeyInit for Mars {
    fn new(key: &Key<Self>) -> Self {
        Self {
            keys: MarsKeys::expand(key),
        }
    }

    fn new_from_slice(key: &[u8]) -> Result<Self, InvalidLength> {
        if is_valid_key_len(key.len()) {
            Ok(Self {
                keys: MarsKeys::expand(key),
            })
        } else {
            Err(InvalidLength)
        }
    }
}

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
