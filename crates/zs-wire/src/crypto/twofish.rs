//! The Twofish block cipher (Counterpane's AES finalist): 128-bit blocks, 128-, 192- and
//! 256-bit keys.
//!
//! Written by hand for zserver because of speed: the `twofish` crate (0.8) evaluates the
//! key-dependent S-boxes and the MDS multiplication byte by byte on every round, which
//! holds GCM over it to a few MB/s. This implementation follows "Twofish: A 128-Bit Block
//! Cipher" (Schneier, Kelsey, Whiting, Wagner, Hall, Ferguson; 1998) and uses the paper's
//! "full keying" option: at key setup it composes the key-dependent S-boxes with the MDS
//! matrix into four tables of 256 words, so each `g` is four table lookups and three XORs.
//! All words are little-endian, as the specification defines them. The `twofish` crate
//! remains a dev-dependency, as an independent implementation the tests compare against.
//!
//! The types implement the same traits as the RustCrypto ciphers (`KeyInit`,
//! `BlockCipherEncrypt`, `BlockCipherDecrypt`, …), so they plug into generic modes such as
//! `aes_gcm::AesGcm<Twofish256, U12>`:
//! - [`Twofish128`], [`Twofish192`], [`Twofish256`]: fixed 16-, 24- and 32-byte keys;
//! - [`Twofish`]: any of the three key lengths through `KeyInit::new_from_slice` (its
//!   nominal `KeySize` is the maximum, 32 bytes, as for the `twofish` crate's type).
//!
//! The key schedule (subkeys and key-dependent tables) is wiped from memory when a cipher
//! value is dropped.

use core::fmt;

use cipher::consts::{U1, U16, U24, U32};
use cipher::{
    AlgorithmName, Block, BlockCipherDecBackend, BlockCipherDecClosure, BlockCipherDecrypt,
    BlockCipherEncBackend, BlockCipherEncClosure, BlockCipherEncrypt, BlockSizeUser, InOut,
    InvalidLength, Key, KeyInit, KeySizeUser, ParBlocksSizeUser,
};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::block_type::block_cipher_type;

/// Whether `len` bytes is a Twofish key length this module supports (16, 24 or 32).
pub(super) const fn is_valid_key_len(len: usize) -> bool {
    matches!(len, 16 | 24 | 32)
}

/// The 4-bit permutations `t0..t3` that define `q0` (paper, section 4.3.5).
const Q0_T: [[u8; 16]; 4] = [
    [
        0x8, 0x1, 0x7, 0xD, 0x6, 0xF, 0x3, 0x2, 0x0, 0xB, 0x5, 0x9, 0xE, 0xC, 0xA, 0x4,
    ],
    [
        0xE, 0xC, 0xB, 0x8, 0x1, 0x2, 0x3, 0x5, 0xF, 0x4, 0xA, 0x6, 0x7, 0x0, 0x9, 0xD,
    ],
    [
        0xB, 0xA, 0x5, 0xE, 0x6, 0xD, 0x9, 0x0, 0xC, 0x8, 0xF, 0x3, 0x2, 0x4, 0x7, 0x1,
    ],
    [
        0xD, 0x7, 0xF, 0x4, 0x1, 0x2, 0x6, 0xE, 0x9, 0xB, 0x3, 0x0, 0x8, 0x5, 0xC, 0xA,
    ],
];

/// The 4-bit permutations `t0..t3` that define `q1`.
const Q1_T: [[u8; 16]; 4] = [
    [
        0x2, 0x8, 0xB, 0xD, 0xF, 0x7, 0x6, 0xE, 0x3, 0x1, 0x9, 0x4, 0x0, 0xA, 0xC, 0x5,
    ],
    [
        0x1, 0xE, 0x2, 0xB, 0x4, 0xC, 0x3, 0x7, 0x6, 0xD, 0xA, 0x5, 0xF, 0x9, 0x0, 0x8,
    ],
    [
        0x4, 0xC, 0x7, 0x5, 0x1, 0x6, 0x9, 0xA, 0x0, 0xE, 0xD, 0x8, 0x2, 0xB, 0x3, 0xF,
    ],
    [
        0xB, 0x9, 0x5, 0x1, 0xC, 0x3, 0xD, 0xE, 0x6, 0x4, 0x7, 0xF, 0x2, 0x0, 0x8, 0xA,
    ],
];

/// Rotates a 4-bit value right by one bit.
const fn ror4(x: u8) -> u8 {
    ((x >> 1) | (x << 3)) & 0xf
}

/// Builds the byte permutation `q` from its four nibble permutations.
const fn build_q(t: &[[u8; 16]; 4]) -> [u8; 256] {
    let mut q = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        let a0 = (x >> 4) as u8;
        let b0 = (x & 0xf) as u8;
        let a1 = a0 ^ b0;
        let b1 = a0 ^ ror4(b0) ^ ((a0 << 3) & 0xf);
        let a2 = t[0][a1 as usize];
        let b2 = t[1][b1 as usize];
        let a3 = a2 ^ b2;
        let b3 = a2 ^ ror4(b2) ^ ((a2 << 3) & 0xf);
        let a4 = t[2][a3 as usize];
        let b4 = t[3][b3 as usize];
        q[x] = (b4 << 4) | a4;
        x += 1;
    }
    q
}

/// The fixed permutation `q0`.
static Q0: [u8; 256] = build_q(&Q0_T);
/// The fixed permutation `q1`.
static Q1: [u8; 256] = build_q(&Q1_T);

/// Multiplies `a` by `b` in GF(2^8) modulo the polynomial `poly` (with its x^8 bit).
const fn gf_mul(mut a: u8, mut b: u8, poly: u16) -> u8 {
    let reduce = (poly & 0xff) as u8;
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80 != 0;
        a <<= 1;
        if carry {
            a ^= reduce;
        }
        b >>= 1;
    }
    product
}

/// The field polynomial of the MDS matrix: x^8 + x^6 + x^5 + x^3 + 1.
const MDS_POLY: u16 = 0x169;
/// The field polynomial of the RS code: x^8 + x^6 + x^3 + x^2 + 1.
const RS_POLY: u16 = 0x14d;

/// The MDS matrix (paper, section 4.2), row by row.
const MDS: [[u8; 4]; 4] = [
    [0x01, 0xef, 0x5b, 0x5b],
    [0x5b, 0xef, 0xef, 0x01],
    [0xef, 0x5b, 0x01, 0xef],
    [0xef, 0x01, 0xef, 0x5b],
];

/// The RS matrix of the key schedule (paper, section 4.3), row by row.
const RS: [[u8; 8]; 4] = [
    [0x01, 0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e],
    [0xa4, 0x56, 0x82, 0xf3, 0x1e, 0xc6, 0x68, 0xe5],
    [0x02, 0xa1, 0xfc, 0xc1, 0x47, 0xae, 0x3d, 0x19],
    [0xa4, 0x55, 0x87, 0x5a, 0x58, 0xdb, 0x9e, 0x03],
];

/// `MDS_COLUMNS[j][v]`: column `j` of the MDS matrix times the byte `v`, as a little-endian
/// word (row `i` in byte `i`).
static MDS_COLUMNS: [[u32; 256]; 4] = build_mds_columns();

const fn build_mds_columns() -> [[u32; 256]; 4] {
    let mut table = [[0u32; 256]; 4];
    let mut j = 0;
    while j < 4 {
        let mut v = 0;
        while v < 256 {
            let mut word = 0u32;
            let mut i = 0;
            while i < 4 {
                word |= (gf_mul(MDS[i][j], v as u8, MDS_POLY) as u32) << (8 * i);
                i += 1;
            }
            table[j][v] = word;
            v += 1;
        }
        j += 1;
    }
    table
}

/// The permutation (`q0` or `q1`) that `h` applies to byte `j` at `stage` (paper, figure 2):
/// stage `s` in `1..=4` is the one just before the XOR with byte `j` of key word `l[s - 1]`
/// (stage 4 only with a 256-bit key, stage 3 only with 192 or more bits), and stage 0 is the
/// last one, after the XOR with `l[0]`.
fn q_chain(j: usize, stage: usize) -> &'static [u8; 256] {
    // Rows: byte position 0..3; columns: stages 0..=4.
    const USE_Q1: [[bool; 5]; 4] = [
        [true, false, false, true, true],
        [false, false, true, true, false],
        [true, true, false, false, false],
        [false, true, true, false, true],
    ];
    if USE_Q1[j][stage] { &Q1 } else { &Q0 }
}

/// The byte part of the function `h` (paper, section 4.3.2): the four bytes that enter the
/// MDS matrix, for input bytes `x` and key words `l` (`l.len()` is 2, 3 or 4).
fn h_bytes(x: [u8; 4], l: &[u32]) -> [u8; 4] {
    let k = l.len();
    let mut y = x;
    for (j, byte) in y.iter_mut().enumerate() {
        // Stages k down to 1: permute, then XOR in byte j of l[stage - 1]; stage 0 last.
        let mut value = *byte;
        let mut s = k;
        while s > 0 {
            s -= 1;
            value = q_chain(j, s + 1)[value as usize] ^ (l[s] >> (8 * j)) as u8;
        }
        *byte = q_chain(j, 0)[value as usize];
    }
    y
}

/// Multiplies the column vector `y` by the MDS matrix; the result as a little-endian word.
fn mds(y: [u8; 4]) -> u32 {
    y.iter()
        .zip(&MDS_COLUMNS)
        .fold(0, |acc, (&v, column)| acc ^ column[v as usize])
}

/// The function `h(X, L)`.
fn h(x: u32, l: &[u32]) -> u32 {
    mds(h_bytes(x.to_le_bytes(), l))
}

/// The key schedule: the 40 subkeys and the four key-dependent S-box/MDS tables.
#[derive(Clone)]
struct TwofishKeys {
    /// `K[0..40]`: input whitening, output whitening, then two words per round.
    k: [u32; 40],
    /// `sbox[j][b]`: column `j` of the MDS matrix times the key-dependent S-box `j` at `b`,
    /// so `g(X) = sbox[0][x0] ^ sbox[1][x1] ^ sbox[2][x2] ^ sbox[3][x3]`.
    sbox: [[u32; 256]; 4],
}

impl Drop for TwofishKeys {
    fn drop(&mut self) {
        self.k.zeroize();
        self.sbox.zeroize();
    }
}

/// `ρ` of the subkey generation: 2^24 + 2^16 + 2^8 + 2^0.
const RHO: u32 = 0x0101_0101;

impl TwofishKeys {
    /// Key setup. `key.len()` must satisfy [`is_valid_key_len`]; callers check it.
    fn expand(key: &[u8]) -> Self {
        debug_assert!(is_valid_key_len(key.len()));
        let k = key.len() / 8;

        // M_0 .. M_{2k-1} as little-endian words, split into even and odd words.
        let mut m_even = [0u32; 4];
        let mut m_odd = [0u32; 4];
        // S_{k-1}, …, S_0: each is RS times eight key bytes.
        let mut s = [0u32; 4];
        for (i, chunk) in key.chunks_exact(8).enumerate() {
            m_even[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            m_odd[i] = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
            let mut word = 0u32;
            for (r, row) in RS.iter().enumerate() {
                let byte = row
                    .iter()
                    .zip(chunk)
                    .fold(0u8, |acc, (&coef, &m)| acc ^ gf_mul(coef, m, RS_POLY));
                word |= u32::from(byte) << (8 * r);
            }
            s[k - 1 - i] = word;
        }

        let mut subkeys = [0u32; 40];
        for (i, pair) in subkeys.chunks_exact_mut(2).enumerate() {
            let i = i as u32;
            let a = h((2 * i).wrapping_mul(RHO), &m_even[..k]);
            let b = h((2 * i + 1).wrapping_mul(RHO), &m_odd[..k]).rotate_left(8);
            pair[0] = a.wrapping_add(b);
            pair[1] = a.wrapping_add(b.wrapping_mul(2)).rotate_left(9);
        }

        let mut sbox = [[0u32; 256]; 4];
        for b in 0..=255u8 {
            let y = h_bytes([b; 4], &s[..k]);
            for (j, table) in sbox.iter_mut().enumerate() {
                table[b as usize] = MDS_COLUMNS[j][y[j] as usize];
            }
        }

        m_even.zeroize();
        m_odd.zeroize();
        s.zeroize();
        Self { k: subkeys, sbox }
    }

    /// `g(X)`: the key-dependent S-boxes followed by the MDS matrix.
    #[inline(always)]
    fn g0(&self, x: u32) -> u32 {
        let [t0, t1, t2, t3] = &self.sbox;
        t0[(x & 0xff) as usize]
            ^ t1[((x >> 8) & 0xff) as usize]
            ^ t2[((x >> 16) & 0xff) as usize]
            ^ t3[(x >> 24) as usize]
    }

    /// `g(ROL(X, 8))`, without the rotation.
    #[inline(always)]
    fn g1(&self, x: u32) -> u32 {
        let [t0, t1, t2, t3] = &self.sbox;
        t0[(x >> 24) as usize]
            ^ t1[(x & 0xff) as usize]
            ^ t2[((x >> 8) & 0xff) as usize]
            ^ t3[((x >> 16) & 0xff) as usize]
    }

    #[inline]
    fn encrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let k = &self.k;
        let [mut a, mut b, mut c, mut d] = load(block);
        a ^= k[0];
        b ^= k[1];
        c ^= k[2];
        d ^= k[3];
        // Two rounds per step, without the swap of the halves: rounds 2r and 2r + 1.
        for round_keys in k[8..].chunks_exact(4) {
            let t0 = self.g0(a);
            let t1 = self.g1(b);
            let f0 = t0.wrapping_add(t1).wrapping_add(round_keys[0]);
            let f1 = t0
                .wrapping_add(t1.wrapping_mul(2))
                .wrapping_add(round_keys[1]);
            c = (c ^ f0).rotate_right(1);
            d = d.rotate_left(1) ^ f1;

            let t0 = self.g0(c);
            let t1 = self.g1(d);
            let f0 = t0.wrapping_add(t1).wrapping_add(round_keys[2]);
            let f1 = t0
                .wrapping_add(t1.wrapping_mul(2))
                .wrapping_add(round_keys[3]);
            a = (a ^ f0).rotate_right(1);
            b = b.rotate_left(1) ^ f1;
        }
        // Undo the last swap and whiten.
        store([c ^ k[4], d ^ k[5], a ^ k[6], b ^ k[7]])
    }

    /// The inverse of [`TwofishKeys::encrypt`].
    #[inline]
    fn decrypt(&self, block: &[u8; 16]) -> [u8; 16] {
        let k = &self.k;
        let [c0, c1, c2, c3] = load(block);
        let mut c = c0 ^ k[4];
        let mut d = c1 ^ k[5];
        let mut a = c2 ^ k[6];
        let mut b = c3 ^ k[7];
        for round_keys in k[8..].chunks_exact(4).rev() {
            let t0 = self.g0(c);
            let t1 = self.g1(d);
            let f0 = t0.wrapping_add(t1).wrapping_add(round_keys[2]);
            let f1 = t0
                .wrapping_add(t1.wrapping_mul(2))
                .wrapping_add(round_keys[3]);
            a = a.rotate_left(1) ^ f0;
            b = (b ^ f1).rotate_right(1);

            let t0 = self.g0(a);
            let t1 = self.g1(b);
            let f0 = t0.wrapping_add(t1).wrapping_add(round_keys[0]);
            let f1 = t0
                .wrapping_add(t1.wrapping_mul(2))
                .wrapping_add(round_keys[1]);
            c = c.rotate_left(1) ^ f0;
            d = (d ^ f1).rotate_right(1);
        }
        store([a ^ k[0], b ^ k[1], c ^ k[2], d ^ k[3]])
    }
}

/// Loads a block as four little-endian words.
#[inline(always)]
fn load(block: &[u8; 16]) -> [u32; 4] {
    let word = |i: usize| {
        u32::from_le_bytes([
            block[4 * i],
            block[4 * i + 1],
            block[4 * i + 2],
            block[4 * i + 3],
        ])
    };
    [word(0), word(1), word(2), word(3)]
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
    /// Twofish with a 128-bit (16-byte) key.
    Twofish128,
    TwofishKeys,
    U16,
    "Twofish-128"
);
block_cipher_type!(
    /// Twofish with a 192-bit (24-byte) key.
    Twofish192,
    TwofishKeys,
    U24,
    "Twofish-192"
);
block_cipher_type!(
    /// Twofish with a 256-bit (32-byte) key.
    Twofish256,
    TwofishKeys,
    U32,
    "Twofish-256"
);
block_cipher_type!(
    /// Twofish with any of its key lengths: 16, 24 or 32 bytes.
    ///
    /// Create it with `KeyInit::new_from_slice`; `KeyInit::new` takes a 32-byte key.
    Twofish,
    TwofishKeys,
    U32,
    "Twofish",
    accepts = is_valid_key_len
);

#[cfg(test)]
mod tests {
    use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};
    use proptest::prelude::*;

    use super::{Q0, Q1, Twofish, Twofish128, Twofish192, Twofish256, is_valid_key_len};

    /// The first entries of q0 and q1, as tabulated in the paper's reference code.
    #[test]
    fn twofish_q_tables() {
        assert_eq!(Q0[..4], [0xa9, 0x67, 0xb3, 0xe8]);
        assert_eq!(Q1[..4], [0x75, 0xf3, 0xc6, 0xf4]);
        // Both are permutations.
        for q in [&Q0, &Q1] {
            let mut seen = [false; 256];
            for &v in q.iter() {
                assert!(!seen[v as usize]);
                seen[v as usize] = true;
            }
        }
    }

    #[test]
    fn twofish_key_lengths() {
        let valid: Vec<usize> = (0..64).filter(|&n| is_valid_key_len(n)).collect();
        assert_eq!(valid, [16, 24, 32]);
        for len in [0, 8, 15, 17, 20, 28, 33, 40, 64] {
            assert!(
                Twofish::new_from_slice(&vec![0u8; len]).is_err(),
                "len {len}"
            );
        }
        assert!(Twofish128::new_from_slice(&[0u8; 24]).is_err());
        assert!(Twofish192::new_from_slice(&[0u8; 32]).is_err());
        assert!(Twofish256::new_from_slice(&[0u8; 16]).is_err());
    }

    /// Encrypts and decrypts `block` with this module's cipher and with the `twofish` crate
    /// (an independent implementation), both keyed with `key`, and checks they agree.
    fn agrees_with_crate(key: &[u8], block: [u8; 16]) {
        let ours = Twofish::new_from_slice(key).unwrap();
        let reference = ::twofish::Twofish::new_from_slice(key).unwrap();

        let (mut a, mut b) = (block, block);
        ours.encrypt_block((&mut a).into());
        reference.encrypt_block((&mut b).into());
        assert_eq!(a, b, "encrypt key={key:02x?} block={block:02x?}");

        let (mut a, mut b) = (block, block);
        ours.decrypt_block((&mut a).into());
        reference.decrypt_block((&mut b).into());
        assert_eq!(a, b, "decrypt key={key:02x?} block={block:02x?}");

        // The fixed-size types compute the same cipher.
        let mut c = block;
        match key.len() {
            16 => Twofish128::new_from_slice(key)
                .unwrap()
                .encrypt_block((&mut c).into()),
            24 => Twofish192::new_from_slice(key)
                .unwrap()
                .encrypt_block((&mut c).into()),
            _ => Twofish256::new_from_slice(key)
                .unwrap()
                .encrypt_block((&mut c).into()),
        }
        let mut d = block;
        ours.encrypt_block((&mut d).into());
        assert_eq!(c, d);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn twofish_matches_the_twofish_crate(
            key in prop_oneof![
                prop::collection::vec(any::<u8>(), 16),
                prop::collection::vec(any::<u8>(), 24),
                prop::collection::vec(any::<u8>(), 32),
            ],
            block in any::<[u8; 16]>(),
        ) {
            agrees_with_crate(&key, block);
        }
    }
}
