//! Keys, key files and fingerprints.

use super::*;

proptest! {
    #[test]
    fn fingerprint_text_round_trips(bytes in any::<[u8; 32]>()) {
        let fingerprint = Fingerprint(bytes);
        let text = fingerprint.to_string();
        prop_assert_eq!(text.parse::<Fingerprint>().unwrap(), fingerprint);
        prop_assert_eq!(text.to_uppercase().parse::<Fingerprint>().unwrap(), fingerprint);
        prop_assert_eq!(hex(&bytes).parse::<Fingerprint>().unwrap(), fingerprint);
    }

    #[test]
    fn fingerprint_parse_never_panics(text in "\\PC{0,80}") {
        let _ = text.parse::<Fingerprint>();
    }

    #[test]
    fn key_file_parse_never_panics(text in "\\PC{0,200}") {
        let _ = StaticKeypair::from_text(&text);
    }
}

#[test]
fn public_key_derivation_matches_rfc_7748() {
    let private = decode_hex32(ALICE_PRIVATE).unwrap();
    let keypair = StaticKeypair::from_private(&private);
    assert_eq!(hex(&keypair.public()), ALICE_PUBLIC);
}

#[test]
fn public_key_derivation_matches_snow() {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse().unwrap();
    for _ in 0..4 {
        let generated = snow::Builder::new(params.clone())
            .generate_keypair()
            .unwrap();
        let private: [u8; 32] = generated.private.as_slice().try_into().unwrap();
        assert_eq!(
            StaticKeypair::from_private(&private).public().as_slice(),
            generated.public.as_slice()
        );
    }
}

#[test]
fn generated_keypairs_differ() {
    let a = StaticKeypair::generate().unwrap();
    let b = StaticKeypair::generate().unwrap();
    assert_ne!(a.public(), b.public());
    assert_eq!(
        StaticKeypair::from_private(a.private()).public(),
        a.public()
    );
}

#[test]
fn keypair_text_round_trips() {
    let keypair = StaticKeypair::generate().unwrap();
    let text = keypair.to_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].starts_with("private = \"") && lines[0].len() == 11 + 64 + 1);
    assert_eq!(lines[1], format!("public = \"{}\"", hex(&keypair.public())));
    let back = StaticKeypair::from_text(&text).unwrap();
    assert_eq!(back.public(), keypair.public());
    assert_eq!(back.private(), keypair.private());
    // Comments, blank lines, upper case, other order and spacing are fine.
    let loose = format!(
        "# server key\n\n  public=\"{}\"\nprivate   =   \"{}\"\n",
        hex(&keypair.public()).to_uppercase(),
        hex(keypair.private())
    );
    assert_eq!(
        StaticKeypair::from_text(&loose).unwrap().public(),
        keypair.public()
    );
    // Debug shows the fingerprint, not the private key.
    let debug = format!("{keypair:?}");
    assert!(!debug.contains(&hex(keypair.private())));
    assert!(debug.contains(&keypair.fingerprint().to_string()));
}

#[test]
fn keypair_text_with_a_wrong_public_key_is_refused() {
    let keypair = StaticKeypair::from_private(&[1; 32]);
    let text = format!(
        "private = \"{}\"\npublic = \"{}\"\n",
        hex(keypair.private()),
        hex(&[2; 32])
    );
    assert_eq!(
        StaticKeypair::from_text(&text).unwrap_err(),
        HandshakeError::PublicKeyMismatch {
            derived: keypair.fingerprint()
        }
    );
}

#[test]
fn bad_key_files_are_named_without_quoting_the_secret() {
    let private = hex(&[0x5a; 32]);
    let public = hex(&StaticKeypair::from_private(&[0x5a; 32]).public());
    let cases = [
        (
            format!("public = \"{public}\"\n"),
            "no `private = ...` line",
        ),
        (
            format!("private = \"{private}\"\n"),
            "no `public = ...` line",
        ),
        (
            format!("private = \"{private}\"\nprivate = \"{private}\"\n"),
            "line 2: private given twice",
        ),
        (
            format!("private = \"{}\"\n", &private[..63]),
            "line 1: private must be 64 hexadecimal digits",
        ),
        (
            format!("private = {private}\n"),
            "line 1: the value of \"private\" must be in double quotes",
        ),
        (
            "secret = \"00\"\n".to_owned(),
            "line 1: unknown name \"secret\"",
        ),
        (
            "just words\n".to_owned(),
            "line 1: expected `name = \"hex\"`",
        ),
        (
            format!("private = \"{}zz\"\n", &private[..62]),
            "must be 64",
        ),
    ];
    for (text, fragment) in cases {
        let error = StaticKeypair::from_text(&text).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(fragment), "{message}");
        assert!(!message.contains(&private[..16]), "{message}");
    }
}

#[test]
fn fingerprint_is_sha3_256_of_the_public_key() {
    let fingerprint = Fingerprint::of_public_key(&[0; 32]);
    assert_eq!(
        fingerprint.to_string(),
        "sha3-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e"
    );
    assert_eq!(
        format!("{fingerprint:?}"),
        format!("Fingerprint({fingerprint})")
    );
    let keypair = server_keypair();
    assert_eq!(
        keypair.fingerprint(),
        Fingerprint::of_public_key(&keypair.public())
    );
    assert_eq!(keypair.fingerprint().as_bytes().len(), 32);
}

#[test]
fn fingerprints_parse_with_or_without_prefix_in_any_case() {
    let expected = Fingerprint::of_public_key(&[0; 32]);
    for text in [
        "sha3-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e",
        "SHA3-256:9E6291970CB44DD94008C79BCAF9D86F18B4B49BA5B2A04781DB7199ED3B9E4E",
        "9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e",
        "  9E6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e\n",
    ] {
        assert_eq!(text.parse::<Fingerprint>().unwrap(), expected, "{text}");
    }
}

#[test]
fn bad_fingerprints_are_refused() {
    let short = "sha3-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4";
    assert_eq!(
        short.parse::<Fingerprint>().unwrap_err(),
        HandshakeError::BadFingerprint {
            what: "63 characters where 64 hex digits are expected".to_owned()
        }
    );
    let long = "9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e00";
    assert!(long.parse::<Fingerprint>().is_err());
    let not_hex = "xe6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e";
    assert_eq!(
        not_hex.parse::<Fingerprint>().unwrap_err(),
        HandshakeError::BadFingerprint {
            what: "not a hexadecimal number".to_owned()
        }
    );
    assert!("".parse::<Fingerprint>().is_err());
    assert!("sha3-256:".parse::<Fingerprint>().is_err());
    assert!(
        "sha2-256:9e6291970cb44dd94008c79bcaf9d86f18b4b49ba5b2a04781db7199ed3b9e4e"
            .parse::<Fingerprint>()
            .is_err()
    );
    // Multi-byte characters near the prefix boundary.
    assert!("sha3-25é:00".parse::<Fingerprint>().is_err());
}
