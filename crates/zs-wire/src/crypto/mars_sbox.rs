//! The MARS S-box, derived at compile time exactly as the MARS specification describes.
//!
//! IBM's MARS paper ("MARS - a candidate cipher for AES", Burwick et al., 1999, section on
//! the S-box design) generates the 512-word table `S` from SHA-1:
//!
//! 1. `S[5i + j] = SHA-1(5i | c1 | c2 | c3)_j` for `i = 0..=102`, `j = 0..=4`, keeping the first
//!    512 words. The four 32-bit words of the SHA-1 input and the five words taken from its
//!    output are little-endian, `c1 = 0xb7e15162` and `c2 = 0x243f6a88` are the fractional
//!    parts of `e` and `pi`, and `c3 = 0x02917d59` is the value the designers searched for.
//! 2. The table is then "fixed" so that, within each half `S0 = S[0..256]` and
//!    `S1 = S[256..512]`, every two entries differ in at least three of their four bytes: for
//!    each violating pair `(i, j)`, `i < j`, the entry `S[i]` is multiplied by 3 (mod 2^32).
//!    Nine entries change this way (indices 17, 67, 76, 131, 147, 210, 297, 351, 420).
//!
//! The result is checked in the tests against published values of the table (first entries,
//! the repaired entries, the key-fixing words `S[265..269]`, and a digest of the whole table
//! taken from a published copy), and end to end by the MARS known-answer vectors.
//!
//! The SHA-1 here is a minimal `const fn` for one-block messages; it is used only to derive
//! these constants and is never exposed as a hash function.

/// `c1`: the fractional part of `e`, as a 32-bit word.
const C1: u32 = 0xb7e1_5162;
/// `c2`: the fractional part of `pi`, as a 32-bit word.
const C2: u32 = 0x243f_6a88;
/// `c3`: the constant chosen by the MARS designers.
const C3: u32 = 0x0291_7d59;

/// The MARS S-box `S[0..512]`; `S0` is its first half and `S1` its second.
pub(super) const SBOX: [u32; 512] = build_sbox();

/// Reads four bytes of a SHA-1 block as a big-endian word (SHA-1's word order), by shifts.
const fn word_be(b: &[u8; 64], at: usize) -> u32 {
    ((b[at] as u32) << 24)
        | ((b[at + 1] as u32) << 16)
        | ((b[at + 2] as u32) << 8)
        | (b[at + 3] as u32)
}

/// SHA-1 (FIPS 180-4) of a message of at most 55 bytes, which fits in one padded block.
pub(super) const fn sha1_one_block(msg: &[u8]) -> [u8; 20] {
    assert!(
        msg.len() <= 55,
        "sha1_one_block: message too long for one block"
    );
    let mut block = [0u8; 64];
    let mut i = 0;
    while i < msg.len() {
        block[i] = msg[i];
        i += 1;
    }
    block[msg.len()] = 0x80;
    let bits = (msg.len() as u64) * 8;
    let mut k = 0;
    while k < 8 {
        block[63 - k] = (bits >> (8 * k)) as u8;
        k += 1;
    }

    let mut w = [0u32; 80];
    let mut t = 0;
    while t < 16 {
        w[t] = word_be(&block, 4 * t);
        t += 1;
    }
    while t < 80 {
        w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        t += 1;
    }

    let h: [u32; 5] = [
        0x6745_2301,
        0xefcd_ab89,
        0x98ba_dcfe,
        0x1032_5476,
        0xc3d2_e1f0,
    ];
    let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
    t = 0;
    while t < 80 {
        let (f, k) = if t < 20 {
            ((b & c) | (!b & d), 0x5a82_7999)
        } else if t < 40 {
            (b ^ c ^ d, 0x6ed9_eba1)
        } else if t < 60 {
            ((b & c) | (b & d) | (c & d), 0x8f1b_bcdc)
        } else {
            (b ^ c ^ d, 0xca62_c1d6)
        };
        let temp = a
            .rotate_left(5)
            .wrapping_add(f)
            .wrapping_add(e)
            .wrapping_add(k)
            .wrapping_add(w[t]);
        e = d;
        d = c;
        c = b.rotate_left(30);
        b = a;
        a = temp;
        t += 1;
    }
    let out_words = [
        h[0].wrapping_add(a),
        h[1].wrapping_add(b),
        h[2].wrapping_add(c),
        h[3].wrapping_add(d),
        h[4].wrapping_add(e),
    ];
    let mut out = [0u8; 20];
    let mut j = 0;
    while j < 5 {
        let v = out_words[j];
        out[4 * j] = (v >> 24) as u8;
        out[4 * j + 1] = (v >> 16) as u8;
        out[4 * j + 2] = (v >> 8) as u8;
        out[4 * j + 3] = v as u8;
        j += 1;
    }
    out
}

/// Number of byte positions in which `a` and `b` are equal.
const fn equal_bytes(a: u32, b: u32) -> u32 {
    let x = a ^ b;
    ((x & 0xff == 0) as u32)
        + ((x & 0xff00 == 0) as u32)
        + ((x & 0x00ff_0000 == 0) as u32)
        + ((x & 0xff00_0000 == 0) as u32)
}

/// Steps 1 and 2 of the module documentation.
const fn build_sbox() -> [u32; 512] {
    let mut s = [0u32; 512];
    let mut i: usize = 0;
    while i <= 102 {
        let mut msg = [0u8; 16];
        let words = [(5 * i) as u32, C1, C2, C3];
        let mut w = 0;
        while w < 4 {
            let le = words[w].to_le_bytes();
            msg[4 * w] = le[0];
            msg[4 * w + 1] = le[1];
            msg[4 * w + 2] = le[2];
            msg[4 * w + 3] = le[3];
            w += 1;
        }
        let digest = sha1_one_block(&msg);
        let mut j = 0;
        while j < 5 && 5 * i + j < 512 {
            s[5 * i + j] = u32::from_le_bytes([
                digest[4 * j],
                digest[4 * j + 1],
                digest[4 * j + 2],
                digest[4 * j + 3],
            ]);
            j += 1;
        }
        i += 1;
    }

    let mut half = 0;
    while half < 512 {
        let mut a = 0;
        while a < 256 {
            let mut b = a + 1;
            while b < 256 {
                if equal_bytes(s[half + a], s[half + b]) > 1 {
                    s[half + a] = s[half + a].wrapping_mul(3);
                }
                b += 1;
            }
            a += 1;
        }
        half += 256;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::{SBOX, equal_bytes, sha1_one_block};
    use sha3::{Digest, Sha3_256};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// FIPS 180-2 Appendix A.1 ("abc") and the well-known digest of the empty string.
    #[test]
    fn sha1_known_answers() {
        assert_eq!(
            hex(&sha1_one_block(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1_one_block(b"")),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        // FIPS 180-2 Appendix A.2 uses a 56-byte message (two blocks), out of reach here;
        // this 43-byte message is the classic "quick brown fox" digest.
        assert_eq!(
            hex(&sha1_one_block(
                b"The quick brown fox jumps over the lazy dog"
            )),
            "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12"
        );
    }

    /// Entries as printed in published copies of the MARS S-box (the IBM submission's
    /// reference code, Brian Gladman's AES-candidate implementation, Botan's `mars.cpp`).
    #[test]
    fn sbox_matches_published_entries() {
        let first = [
            0x09d0_c479,
            0x28c8_ffe0,
            0x84aa_6c39,
            0x9dad_7287,
            0x7dff_9be3,
            0xd426_8361,
        ];
        assert_eq!(SBOX[..6], first);
        // The four key-fixing words B[0..4] of the tweaked key schedule are S[265..269].
        assert_eq!(
            SBOX[265..269],
            [0xa4a8_d57b, 0x5b5d_193b, 0xc8a8_309b, 0x73f9_a978]
        );
        // The nine entries repaired by the "multiply by 3" step.
        let repaired = [
            (17, 0x0d72_ee46),
            (67, 0x4f48_1d45),
            (76, 0xabab_a014),
            (131, 0xefb1_0c53),
            (147, 0x2092_bd13),
            (210, 0xafc8_d52d),
            (297, 0x5579_2e2a),
            (351, 0x06c9_f246),
            (420, 0x7269_8d7d),
        ];
        for (index, value) in repaired {
            assert_eq!(SBOX[index], value, "S[{index}]");
        }
        assert_eq!(SBOX[256], 0x6b57_e354);
        assert_eq!(SBOX[511], 0x19af_70ee);
    }

    /// SHA3-256 of the 512 words in little-endian order, computed (outside this crate, with
    /// Python's hashlib) over the table as printed in Botan's `mars.cpp`.
    #[test]
    fn sbox_digest_matches_published_table() {
        let mut bytes = Vec::with_capacity(2048);
        for word in SBOX {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        assert_eq!(
            hex(&Sha3_256::digest(&bytes)),
            "5f827d57d3b8a32af98d2923040bf3e3f3bea3320db8b8bccae02bfc7867bbb0"
        );
    }

    /// The property the repair step establishes (spec: "every two entries of S0, or of S1,
    /// differ in at least three of their four bytes").
    #[test]
    fn sbox_halves_differ_in_three_bytes() {
        for half in [&SBOX[..256], &SBOX[256..]] {
            for (i, &a) in half.iter().enumerate() {
                for &b in &half[i + 1..] {
                    assert!(equal_bytes(a, b) <= 1, "{a:08x} vs {b:08x}");
                }
            }
        }
    }
}
