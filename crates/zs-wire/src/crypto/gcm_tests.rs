//! GCM over each block cipher: the specification's AES-128 test cases as known answers, and
//! a round trip (with tamper detection) for every cipher.

use aes_gcm::AesGcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use cipher::consts::U12;
use cipher::{BlockCipherEncrypt, BlockSizeUser};

use super::{
    Aes128, Aes256, Mars, Mars128, Mars256, Rc6, Rc6_256, Serpent, Twofish, Twofish128, Twofish256,
};

fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

fn nonce(s: &str) -> aes_gcm::Nonce<U12> {
    let bytes: [u8; 12] = unhex(s).try_into().unwrap();
    bytes.into()
}

/// "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega (revised 2005), Appendix B,
/// test cases 1 to 4 (AES-128): (key, plaintext, additional data, IV, ciphertext, tag).
const GCM_SPEC_AES128: [(&str, &str, &str, &str, &str, &str); 4] = [
    (
        "00000000000000000000000000000000",
        "",
        "",
        "000000000000000000000000",
        "",
        "58e2fccefa7e3061367f1d57a4e7455a",
    ),
    (
        "00000000000000000000000000000000",
        "00000000000000000000000000000000",
        "",
        "000000000000000000000000",
        "0388dace60b6a392f328c2b971b2fe78",
        "ab6e47d42cec13bdf53a67b21257bddf",
    ),
    (
        "feffe9928665731c6d6a8f9467308308",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
        "",
        "cafebabefacedbaddecaf888",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
        "4d5c2af327cd64a62cf35abd2ba6fab4",
    ),
    (
        "feffe9928665731c6d6a8f9467308308",
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
         1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        "cafebabefacedbaddecaf888",
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
         21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
        "5bc94fbc3221a5db94fae95ae7121a47",
    ),
];

#[test]
fn crypto_gcm_spec_test_cases_aes128() {
    for (i, (key, pt, aad, iv, ct, tag)) in GCM_SPEC_AES128.into_iter().enumerate() {
        let case = i + 1;
        let gcm = AesGcm::<Aes128, U12>::new_from_slice(&unhex(key)).unwrap();
        let (pt, aad) = (unhex(pt), unhex(aad));
        let sealed = gcm
            .encrypt(
                &nonce(iv),
                Payload {
                    msg: &pt,
                    aad: &aad,
                },
            )
            .unwrap();
        let mut expected = unhex(ct);
        expected.extend_from_slice(&unhex(tag));
        assert_eq!(sealed, expected, "test case {case}");
        let opened = gcm
            .decrypt(
                &nonce(iv),
                Payload {
                    msg: &sealed,
                    aad: &aad,
                },
            )
            .unwrap();
        assert_eq!(opened, pt, "test case {case}");
    }
}

/// Seals and opens a message with GCM over `cipher`, and checks that any change to the
/// ciphertext, tag, nonce or additional data is rejected. Returns the sealed bytes.
fn gcm_round_trip<C>(cipher: C) -> Vec<u8>
where
    C: BlockCipherEncrypt + BlockSizeUser<BlockSize = cipher::consts::U16>,
{
    let gcm: AesGcm<C, U12> = AesGcm::from(cipher);
    let n = nonce("000102030405060708090a0b");
    let msg = b"zserver record layer: GCM round trip over one cipher, 2+ blocks long";
    let aad = b"header";
    let sealed = gcm.encrypt(&n, Payload { msg, aad }).unwrap();
    assert_eq!(sealed.len(), msg.len() + 16);
    assert_ne!(&sealed[..msg.len()], &msg[..]);
    let opened = gcm.decrypt(&n, Payload { msg: &sealed, aad }).unwrap();
    assert_eq!(opened, msg);

    for position in [0, msg.len() - 1, msg.len(), sealed.len() - 1] {
        let mut bad = sealed.clone();
        bad[position] ^= 0x01;
        assert!(gcm.decrypt(&n, Payload { msg: &bad, aad }).is_err());
    }
    let other_nonce = nonce("000102030405060708090a0c");
    assert!(
        gcm.decrypt(&other_nonce, Payload { msg: &sealed, aad })
            .is_err()
    );
    assert!(
        gcm.decrypt(
            &n,
            Payload {
                msg: &sealed,
                aad: b"Header"
            }
        )
        .is_err()
    );
    sealed
}

#[test]
fn crypto_gcm_round_trip_over_every_cipher() {
    let key16 = [0x42u8; 16];
    let key32 = [0x42u8; 32];
    let sealed = [
        gcm_round_trip(Aes128::new(&key16.into())),
        gcm_round_trip(Aes256::new(&key32.into())),
        gcm_round_trip(Rc6::new(&key16.into())),
        gcm_round_trip(Rc6_256::new(&key32.into())),
        gcm_round_trip(Twofish128::new(&key16.into())),
        gcm_round_trip(Twofish256::new(&key32.into())),
        gcm_round_trip(Serpent::new(&key16.into())),
        gcm_round_trip(Serpent::new_from_slice(&key32).unwrap()),
        gcm_round_trip(Mars128::new(&key16.into())),
        gcm_round_trip(Mars256::new(&key32.into())),
    ];
    // Different ciphers (or keys) must give different ciphertexts for the same input.
    for (i, a) in sealed.iter().enumerate() {
        for b in &sealed[i + 1..] {
            assert_ne!(a, b);
        }
    }
}

#[test]
fn crypto_gcm_keyinit_with_mars() {
    // `AesGcm<Mars128, U12>` takes its 16-byte key directly, like `Aes128Gcm`.
    let key = [7u8; 16];
    let direct = AesGcm::<Mars128, U12>::new(&key.into());
    let via_cipher: AesGcm<Mars, U12> = AesGcm::from(Mars::new_from_slice(&key).unwrap());
    let n = nonce("cafebabefacedbaddecaf888");
    let a = direct.encrypt(&n, &b"same input"[..]).unwrap();
    let b = via_cipher.encrypt(&n, &b"same input"[..]).unwrap();
    assert_eq!(a, b);
    assert_eq!(direct.decrypt(&n, &a[..]).unwrap(), b"same input");
    let gcm256 = AesGcm::<Mars256, U12>::new_from_slice(&[9u8; 32]).unwrap();
    let sealed = gcm256.encrypt(&n, &b"x"[..]).unwrap();
    assert_eq!(gcm256.decrypt(&n, &sealed[..]).unwrap(), b"x");
    assert!(AesGcm::<Mars256, U12>::new_from_slice(&[9u8; 16]).is_err());
}

#[test]
fn crypto_gcm_twofish_matches_the_twofish_crate() {
    // GCM over the hand-written Twofish seals exactly as GCM over the `twofish` crate, for
    // each key length, and each opens what the other sealed.
    let n = nonce("cafebabefacedbaddecaf888");
    let msg: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 1) as u8).collect();
    let aad = b"header";
    for len in [16, 24, 32] {
        let key: Vec<u8> = (0..len).map(|i| (i * 13 + 5) as u8).collect();
        let ours: AesGcm<Twofish, U12> = AesGcm::from(Twofish::new_from_slice(&key).unwrap());
        let reference: AesGcm<::twofish::Twofish, U12> =
            AesGcm::from(::twofish::Twofish::new_from_slice(&key).unwrap());
        let payload = || Payload { msg: &msg, aad };
        let sealed = ours.encrypt(&n, payload()).unwrap();
        assert_eq!(
            sealed,
            reference.encrypt(&n, payload()).unwrap(),
            "len {len}"
        );
        let opened = reference
            .decrypt(&n, Payload { msg: &sealed, aad })
            .unwrap();
        assert_eq!(opened, msg);
        let opened = ours.decrypt(&n, Payload { msg: &sealed, aad }).unwrap();
        assert_eq!(opened, msg);
    }
    // The fixed-size type takes its 32-byte key directly.
    let direct = AesGcm::<Twofish256, U12>::new(&[3u8; 32].into());
    let via_slice: AesGcm<Twofish, U12> =
        AesGcm::from(Twofish::new_from_slice(&[3u8; 32]).unwrap());
    assert_eq!(
        direct.encrypt(&n, &b"same"[..]).unwrap(),
        via_slice.encrypt(&n, &b"same"[..]).unwrap()
    );
}
