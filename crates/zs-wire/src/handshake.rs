//! The handshake of the security layer, without I/O.
//!
//! Before any record is exchanged, client and server run a Noise
//! `Noise_XX_25519_ChaChaPoly_BLAKE2s` handshake (via the `snow` crate). It authenticates the
//! server by its static X25519 key, gives the server the client's static key (random per
//! connection unless configured, so clients can later be authenticated by key), negotiates the
//! record layer's cipher suite and derives one secret per direction for it.
//!
//! ```text
//!  client                                                            server
//!    │ hello  "ZSHS" | u16 version = 1                                    │
//!    │ msg1   u16 len | -> e                                              │
//!    │        payload (clear, hashed):                                    │
//!    │          u8 count | count × u8 suite id | u8 flags (bit0: plain)   │
//!    │ ─────────────────────────────────────────────────────────────────▶ │
//!    │ msg2   u16 len | <- e, ee, s, es                                   │
//!    │        payload (encrypted):                                        │
//!    │          u8 status = 0 (ok)      | u8 chosen suite id              │
//!    │       or u8 status = 1 (refused) | UTF-8 reason                    │
//!    │ ◀───────────────────────────────────────────────────────────────── │
//!    │ msg3   u16 len | -> s, se                                          │
//!    │        payload (encrypted):                                        │
//!    │          u8 token_len | token_len × u8 token                       │
//!    │ ─────────────────────────────────────────────────────────────────▶ │
//!    │ records, keyed with the split of the Noise chaining key            │
//! ```
//!
//! All integers are little-endian. Each handshake message is framed as `u16 length | noise
//! message`; a declared length beyond what that message can hold is refused before its bytes
//! are buffered ([`HandshakeError::MessageTooLarge`]), and a hello whose magic differs is
//! refused as soon as the first differing byte arrives ([`HandshakeError::BadHello`]). The
//! 6-byte hello is also the Noise prologue, so both sides must agree on it.
//!
//! ## Suite negotiation and downgrade protection
//!
//! The client offers its suites in preference order in msg1. The server takes the
//! intersection of its own ordered allow-list and the offer — [`Suite::Plain`] only when it
//! is in both lists *and* both sides set their "allow plain" flag — and picks either the first
//! in its own order or, with [`ServerConfig::random_suite`], one uniformly at random. msg1's
//! payload travels in the clear, but Noise hashes every payload into the transcript, and msg2
//! is encrypted under keys mixed with that transcript: an offer modified on the wire makes msg2
//! fail to decrypt at the client ([`HandshakeError::Decrypt`]). The client also checks that the
//! chosen suite is one it offered ([`HandshakeError::SuiteNotOffered`]). With no common suite
//! the server answers with status 1 and a reason naming what it allows; both sides end with
//! [`HandshakeError::NoCommonSuite`].
//!
//! ## Identities and the client token
//!
//! After msg2 the client knows the server's static key; if a fingerprint is pinned
//! ([`ClientConfig::pinned`]) and differs, it fails with
//! [`HandshakeError::FingerprintMismatch`] before sending msg3. msg3 carries the client's
//! static key and an optional pre-shared token. The server compares the token in constant time
//! but does **not** fail the handshake on a mismatch: the outcome says
//! [`HandshakeOutcome::client_token_ok`] and the runtime closes the connection with an
//! "unauthorized" code over the now encrypted channel. A handshake failure could only drop the
//! connection (the client's next step is sending records, not reading a refusal), so the client
//! would see a bare reset; this way it gets a clear reason, privately.
//!
//! ## Driving it
//!
//! Same contract as [`crate::session::Session`]: read socket bytes into a `BytesMut` and pass
//! it to `handle_received`, which takes every complete handshake message off its front and
//! leaves the rest — bytes after the last handshake message belong to the record layer and stay
//! in the buffer. Write [`ClientHandshake::transmit_pending`] to the socket and
//! [`ClientHandshake::advance_transmit`] by what was written (or
//! [`ClientHandshake::take_transmit`]). When `is_done()`, take the secrets with `outcome()`.
//! On an error the transmit buffer may still hold a message for the peer (the server's
//! refusal): flush it, then close. The client is done once msg3 is queued; that message must be
//! written before the first record.

use core::fmt;
use core::str::FromStr;

use bytes::{Buf, BufMut, BytesMut};
use sha3::Digest;
use snow::HandshakeState;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::crypto::hash::hex;
use crate::crypto::record::Suite;

/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// First bytes the client sends.
pub const HELLO_MAGIC: [u8; 4] = *b"ZSHS";

/// The handshake version this crate speaks.
pub const HANDSHAKE_VERSION: u16 = 1;

/// Length of the hello: magic and u16 version.
pub const HELLO_SIZE: usize = 6;

/// Largest Noise message (and so the largest handshake message body).
pub const MAX_MESSAGE_LEN: usize = 65535;

/// Longest client token.
pub const MAX_TOKEN_LEN: usize = 255;

/// Longest refusal reason the server sends, in bytes.
pub const MAX_REASON_LEN: usize = 1024;

/// Bytes of an X25519 key.
const KEY_LEN: usize = 32;
/// Bytes of a Noise AEAD tag.
const TAG_LEN: usize = 16;
/// msg1: `e` and the offer (at least count and flags, at most 255 ids).
const MSG1_MIN: usize = KEY_LEN + 2;
const MSG1_MAX: usize = KEY_LEN + 2 + 255;
/// msg2: `e`, encrypted `s`, encrypted payload of at least a status byte.
const MSG2_MIN: usize = KEY_LEN + KEY_LEN + TAG_LEN + 1 + TAG_LEN;
/// msg3: encrypted `s`, encrypted payload (token length and token).
const MSG3_MIN: usize = KEY_LEN + TAG_LEN + 1 + TAG_LEN;
const MSG3_MAX: usize = KEY_LEN + TAG_LEN + 1 + MAX_TOKEN_LEN + TAG_LEN;

const STATUS_OK: u8 = 0;
const STATUS_REFUSED: u8 = 1;
const FLAG_ALLOW_PLAIN: u8 = 0x01;
/// msg1 flag: the link will carry StableIO frames (`zs_wire::stable`) instead of a session.
const FLAG_STABLE_LINK: u8 = 0x02;

/// The hello, also used as the Noise prologue.
fn hello() -> [u8; HELLO_SIZE] {
    let version = HANDSHAKE_VERSION.to_le_bytes();
    [
        HELLO_MAGIC[0],
        HELLO_MAGIC[1],
        HELLO_MAGIC[2],
        HELLO_MAGIC[3],
        version[0],
        version[1],
    ]
}

/// Why a handshake failed, or a key, key file or fingerprint was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The client's first bytes are not a zserver handshake hello.
    #[error("not a zserver handshake: first bytes {} ({found:02x?}), expected \"ZSHS\"", show_bytes(.found))]
    BadHello {
        /// The bytes seen (up to four).
        found: Vec<u8>,
    },
    /// The client speaks another handshake version.
    #[error("client speaks handshake version {theirs}, this side {ours}")]
    UnsupportedVersion {
        /// The client's version.
        theirs: u16,
        /// Ours.
        ours: u16,
    },
    /// A handshake message declares more bytes than it can hold.
    #[error("handshake message {message} declares {len} bytes, at most {max} allowed")]
    MessageTooLarge {
        /// Which message (1, 2 or 3).
        message: u8,
        /// The declared length.
        len: usize,
        /// The largest length accepted for it.
        max: usize,
    },
    /// The Noise library refused an operation.
    #[error("noise: {0}")]
    Noise(String),
    /// A message failed to authenticate: changed on the wire (e.g. a downgraded offer), or
    /// not from the peer the keys belong to.
    #[error("handshake message {message} failed to decrypt: tampered with or not from the peer")]
    Decrypt {
        /// Which message (2 or 3).
        message: u8,
    },
    /// No cipher suite both sides allow; on the client, the server's refusal text.
    #[error("no common cipher suite: {reason}")]
    NoCommonSuite {
        /// What each side allows.
        reason: String,
    },
    /// The server chose a suite the client did not offer.
    #[error("server chose suite id {suite}, which this client did not offer")]
    SuiteNotOffered {
        /// The id of the chosen suite.
        suite: u8,
    },
    /// The server's static key is not the pinned one.
    #[error("server key fingerprint mismatch: expected {expected}, got {actual}")]
    FingerprintMismatch {
        /// The pinned fingerprint.
        expected: Fingerprint,
        /// The server's.
        actual: Fingerprint,
    },
    /// A handshake message's payload does not follow the layout.
    #[error("malformed handshake message: {what}")]
    Malformed {
        /// What is wrong, with the numbers seen.
        what: String,
    },
    /// A configured client token is longer than 255 bytes.
    #[error("client token of {len} bytes; at most {MAX_TOKEN_LEN}")]
    TokenTooLong {
        /// Its length.
        len: usize,
    },
    /// The client offers more than 255 suites.
    #[error("{count} suites offered; at most 255")]
    TooManySuites {
        /// How many.
        count: usize,
    },
    /// The operating system's random number generator failed.
    #[error("random number generator failed: {0}")]
    Random(String),
    /// A key file does not follow the format.
    #[error("bad key file: {what}")]
    KeyFile {
        /// What is wrong (never the secret itself).
        what: String,
    },
    /// A key file's public key does not belong to its private key.
    #[error("the public key does not match the private key (derived {derived})")]
    PublicKeyMismatch {
        /// The fingerprint of the public key derived from the private one.
        derived: Fingerprint,
    },
    /// A fingerprint could not be parsed.
    #[error("bad fingerprint: {what}")]
    BadFingerprint {
        /// What is wrong.
        what: String,
    },
    /// `outcome` was called before the handshake finished.
    #[error("the handshake has not finished")]
    NotFinished,
}

/// Bytes as an escaped byte string, e.g. `"GET"`.
fn show_bytes(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

fn malformed(what: impl Into<String>) -> HandshakeError {
    HandshakeError::Malformed { what: what.into() }
}

/// Maps a Noise error on handshake message `message`.
fn noise_error(message: u8, error: snow::Error) -> HandshakeError {
    match error {
        snow::Error::Decrypt => HandshakeError::Decrypt { message },
        other => HandshakeError::Noise(format!("message {message}: {other}")),
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], HandshakeError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|error| HandshakeError::Random(error.to_string()))?;
    Ok(bytes)
}

/// A uniformly random index below `n` (`n > 0`), by rejection sampling.
fn random_index(n: usize) -> Result<usize, HandshakeError> {
    let n64 = u64::try_from(n).unwrap_or(u64::MAX).max(1);
    // The largest multiple of n64 that fits: values at or above it would bias the result.
    let zone = u64::MAX - u64::MAX % n64;
    loop {
        let value = u64::from_le_bytes(random_bytes::<8>()?);
        if value < zone {
            return Ok(usize::try_from(value % n64).unwrap_or(0));
        }
    }
}

fn decode_hex_nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// 64 hex digits (either case) to 32 bytes.
fn decode_hex32(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (decode_hex_nibble(pair[0])? << 4) | decode_hex_nibble(pair[1])?;
    }
    Some(out)
}

/// The SHA3-256 of a static public key: how people compare and pin keys.
///
/// Displayed as `sha3-256:<64 lower-case hex digits>`; parsed with or without the prefix,
/// in either case.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The text before the hex digits.
    pub const PREFIX: &'static str = "sha3-256:";

    /// The fingerprint of a public key.
    pub fn of_public_key(public: &[u8; 32]) -> Self {
        Self(sha3::Sha3_256::digest(public).into())
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = HandshakeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let digits = match text.get(..Self::PREFIX.len()) {
            Some(prefix) if prefix.eq_ignore_ascii_case(Self::PREFIX) => {
                &text[Self::PREFIX.len()..]
            }
            _ => text,
        };
        decode_hex32(digits).map(Self).ok_or_else(|| {
            let count = digits.chars().count();
            HandshakeError::BadFingerprint {
                what: if count == 64 {
                    "not a hexadecimal number".to_owned()
                } else {
                    format!("{count} characters where 64 hex digits are expected")
                },
            }
        })
    }
}

/// A static X25519 key pair: the server's identity, or a client's.
///
/// The private key is wiped when dropped. Text form ([`Self::to_text`]):
///
/// ```text
/// private = "<64 hex digits>"
/// public = "<64 hex digits>"
/// ```
#[derive(Clone)]
pub struct StaticKeypair {
    private: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl StaticKeypair {
    /// A new random key pair from the operating system's generator.
    pub fn generate() -> Result<Self, HandshakeError> {
        let private = Zeroizing::new(random_bytes::<32>()?);
        Ok(Self::from_private(&private))
    }

    /// The key pair of a private key (the public key is derived from it).
    pub fn from_private(private: &[u8; 32]) -> Self {
        let secret = x25519_dalek::StaticSecret::from(*private);
        let public = x25519_dalek::PublicKey::from(&secret).to_bytes();
        Self {
            private: Zeroizing::new(*private),
            public,
        }
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The public key's fingerprint.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_public_key(&self.public)
    }

    /// The text form: two lines, `private = "<hex>"` and `public = "<hex>"`. It holds the
    /// secret key; store it accordingly.
    pub fn to_text(&self) -> String {
        format!(
            "private = \"{}\"\npublic = \"{}\"\n",
            hex(self.private.as_slice()),
            hex(&self.public)
        )
    }

    /// Parses [`Self::to_text`]'s form. Blank lines and `#` comments are ignored; both keys
    /// are required, and the public key must be the one the private key derives. Errors never
    /// quote the private key.
    pub fn from_text(text: &str) -> Result<Self, HandshakeError> {
        let key_file = |what: String| HandshakeError::KeyFile { what };
        let mut private: Option<Zeroizing<[u8; 32]>> = None;
        let mut public: Option<[u8; 32]> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, value)) = line.split_once('=') else {
                return Err(key_file(format!(
                    "line {number}: expected `name = \"hex\"`"
                )));
            };
            let name = name.trim();
            let value = value.trim();
            let Some(digits) = value
                .strip_prefix('"')
                .and_then(|value| value.strip_suffix('"'))
            else {
                return Err(key_file(format!(
                    "line {number}: the value of {name:?} must be in double quotes"
                )));
            };
            let bad_key = || {
                key_file(format!(
                    "line {number}: {name} must be 64 hexadecimal digits"
                ))
            };
            match name {
                "private" if private.is_none() => {
                    private = Some(Zeroizing::new(decode_hex32(digits).ok_or_else(bad_key)?));
                }
                "public" if public.is_none() => {
                    public = Some(decode_hex32(digits).ok_or_else(bad_key)?);
                }
                "private" | "public" => {
                    return Err(key_file(format!("line {number}: {name} given twice")));
                }
                other => {
                    return Err(key_file(format!(
                        "line {number}: unknown name {other:?} (expected private or public)"
                    )));
                }
            }
        }
        let private = private.ok_or_else(|| key_file("no `private = ...` line".to_owned()))?;
        let public = public.ok_or_else(|| key_file("no `public = ...` line".to_owned()))?;
        let keypair = Self::from_private(&private);
        if keypair.public != public {
            return Err(HandshakeError::PublicKeyMismatch {
                derived: keypair.fingerprint(),
            });
        }
        Ok(keypair)
    }

    fn private(&self) -> &[u8; 32] {
        &self.private
    }
}

impl fmt::Debug for StaticKeypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKeypair")
            .field("public", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

/// Describes an optional token without showing it.
fn describe_token(token: Option<&Vec<u8>>) -> String {
    match token {
        Some(token) => format!("Some(<{} bytes>)", token.len()),
        None => "None".to_owned(),
    }
}

/// The client's side of the handshake.
#[derive(Clone)]
pub struct ClientConfig {
    /// The suites to offer, most preferred first (duplicates are dropped).
    pub suites: Vec<Suite>,
    /// Accept [`Suite::Plain`] (it must also be in `suites`).
    pub allow_plain: bool,
    /// The server's expected key fingerprint; `None` accepts any server key.
    pub pinned: Option<Fingerprint>,
    /// The pre-shared token sent in msg3 (at most 255 bytes).
    pub token: Option<Vec<u8>>,
    /// This client's static key; `None` makes a random one for the connection.
    pub static_key: Option<StaticKeypair>,
    /// The link will carry StableIO frames ([`crate::stable`]) rather than a session; the
    /// server learns it from msg1 ([`HandshakeOutcome::stable_link`]).
    pub stable_link: bool,
}

impl ClientConfig {
    /// The default suites, no plain, no pin, no token, a random static key.
    pub fn new() -> Self {
        Self {
            suites: Suite::DEFAULT_SUITES.to_vec(),
            allow_plain: false,
            pinned: None,
            token: None,
            static_key: None,
            stable_link: false,
        }
    }
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("suites", &self.suites)
            .field("allow_plain", &self.allow_plain)
            .field("pinned", &self.pinned)
            .field("token", &describe_token(self.token.as_ref()))
            .field("static_key", &self.static_key)
            .finish()
    }
}

/// The server's side of the handshake.
#[derive(Clone)]
pub struct ServerConfig {
    /// The server's identity.
    pub keypair: StaticKeypair,
    /// The suites allowed, most preferred first.
    pub suites: Vec<Suite>,
    /// Pick uniformly at random among the common suites instead of the first in `suites`.
    pub random_suite: bool,
    /// Accept [`Suite::Plain`] (it must also be in `suites`).
    pub allow_plain: bool,
    /// The token clients must present; `None` requires none.
    pub token: Option<Vec<u8>>,
}

impl ServerConfig {
    /// The default suites in fixed order, no plain, no token.
    pub fn new(keypair: StaticKeypair) -> Self {
        Self {
            keypair,
            suites: Suite::DEFAULT_SUITES.to_vec(),
            random_suite: false,
            allow_plain: false,
            token: None,
        }
    }
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("keypair", &self.keypair)
            .field("suites", &self.suites)
            .field("random_suite", &self.random_suite)
            .field("allow_plain", &self.allow_plain)
            .field("token", &describe_token(self.token.as_ref()))
            .finish()
    }
}

/// What a finished handshake gives the record layer. The secrets are wiped when dropped.
pub struct HandshakeOutcome {
    /// The negotiated record suite.
    pub suite: Suite,
    /// Key material for records this side sends; equals the peer's `receive_secret`.
    pub send_secret: [u8; 32],
    /// Key material for records this side receives; equals the peer's `send_secret`.
    pub receive_secret: [u8; 32],
    /// The Noise handshake hash: identical on both sides, unique to this handshake (for
    /// channel binding).
    pub handshake_hash: Vec<u8>,
    /// The peer's static public key (the server's on the client, the client's on the server).
    pub peer_static: [u8; 32],
    /// On the server: the client presented the configured token, or none is configured.
    /// Always true on the client.
    pub client_token_ok: bool,
    /// The client asked for a StableIO link (see [`ClientConfig::stable_link`]).
    pub stable_link: bool,
}

impl HandshakeOutcome {
    /// The fingerprint of [`Self::peer_static`].
    pub fn peer_fingerprint(&self) -> Fingerprint {
        Fingerprint::of_public_key(&self.peer_static)
    }

    /// Takes the split keys of a finished Noise handshake.
    fn from_noise(
        noise: &mut HandshakeState,
        suite: Suite,
        client_token_ok: bool,
        stable_link: bool,
    ) -> Result<Self, HandshakeError> {
        let peer_static = remote_static(noise)?;
        let (mut initiator_to_responder, mut responder_to_initiator) =
            noise.dangerously_get_raw_split();
        let (send_secret, receive_secret) = if noise.is_initiator() {
            (initiator_to_responder, responder_to_initiator)
        } else {
            (responder_to_initiator, initiator_to_responder)
        };
        initiator_to_responder.zeroize();
        responder_to_initiator.zeroize();
        Ok(Self {
            suite,
            send_secret,
            receive_secret,
            handshake_hash: noise.get_handshake_hash().to_vec(),
            peer_static,
            client_token_ok,
            stable_link,
        })
    }
}

impl Drop for HandshakeOutcome {
    fn drop(&mut self) {
        self.send_secret.zeroize();
        self.receive_secret.zeroize();
    }
}

impl fmt::Debug for HandshakeOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeOutcome")
            .field("suite", &self.suite)
            .field("peer", &self.peer_fingerprint())
            .field("client_token_ok", &self.client_token_ok)
            .finish_non_exhaustive()
    }
}

fn remote_static(noise: &HandshakeState) -> Result<[u8; 32], HandshakeError> {
    noise
        .get_remote_static()
        .and_then(|key| <[u8; 32]>::try_from(key).ok())
        .ok_or_else(|| malformed("the peer's static key is missing"))
}

/// Bytes wiped when dropped (tokens).
#[derive(Clone, Default)]
struct SecretBytes(Vec<u8>);

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.0.as_mut_slice().zeroize();
    }
}

/// A Noise handshake state for one side.
fn build_noise(keypair: &StaticKeypair, initiator: bool) -> Result<HandshakeState, HandshakeError> {
    let setup = |error: snow::Error| HandshakeError::Noise(format!("setup: {error}"));
    let params = NOISE_PARAMS.parse().map_err(setup)?;
    let prologue = hello();
    let builder = snow::Builder::new(params)
        .local_private_key(keypair.private())
        .map_err(setup)?
        .prologue(&prologue)
        .map_err(setup)?;
    if initiator {
        builder.build_initiator().map_err(setup)
    } else {
        builder.build_responder().map_err(setup)
    }
}

/// Writes Noise message `message` with `payload` into `transmit`, framed.
fn write_message(
    noise: &mut HandshakeState,
    message: u8,
    payload: &[u8],
    transmit: &mut BytesMut,
) -> Result<(), HandshakeError> {
    // Keys, tags and the payload: 128 bytes covers every overhead of XX.
    let mut buffer = vec![0u8; (payload.len() + 128).min(MAX_MESSAGE_LEN)];
    let len = noise
        .write_message(payload, &mut buffer)
        .map_err(|error| noise_error(message, error))?;
    let framed = u16::try_from(len).map_err(|_| HandshakeError::MessageTooLarge {
        message,
        len,
        max: MAX_MESSAGE_LEN,
    })?;
    transmit.put_u16_le(framed);
    transmit.put_slice(&buffer[..len]);
    Ok(())
}

/// Takes handshake message `message` off the front of `received` once complete. Lengths are
/// checked against `min..=max` before any of the body is waited for.
fn take_message(
    received: &mut BytesMut,
    message: u8,
    min: usize,
    max: usize,
) -> Result<Option<BytesMut>, HandshakeError> {
    let [first, second, ..] = received[..] else {
        return Ok(None);
    };
    let len = usize::from(u16::from_le_bytes([first, second]));
    if len > max {
        return Err(HandshakeError::MessageTooLarge { message, len, max });
    }
    if len < min {
        return Err(malformed(format!(
            "message {message} declares {len} bytes; it takes at least {min}"
        )));
    }
    if received.len() < 2 + len {
        received.reserve(2 + len - received.len());
        return Ok(None);
    }
    received.advance(2);
    Ok(Some(received.split_to(len)))
}

/// Decrypts (or, for msg1, authenticates into the transcript) one Noise message.
fn read_message(
    noise: &mut HandshakeState,
    message: u8,
    bytes: &[u8],
) -> Result<SecretBytes, HandshakeError> {
    let mut payload = SecretBytes(vec![0u8; bytes.len()]);
    let len = noise
        .read_message(bytes, &mut payload.0)
        .map_err(|error| noise_error(message, error))?;
    payload.0.truncate(len);
    Ok(payload)
}

/// Comma-separated suite names, or `(none)`.
fn suite_names(suites: impl Iterator<Item = Suite>) -> String {
    let names: Vec<&str> = suites.map(Suite::name).collect();
    if names.is_empty() {
        "(none)".to_owned()
    } else {
        names.join(", ")
    }
}

/// Longest prefix of `text` of at most `max` bytes ending on a character boundary.
fn truncate_utf8(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[derive(Debug)]
enum ClientState {
    /// hello and msg1 queued; waiting for msg2.
    AwaitMsg2,
    Done(Box<HandshakeOutcome>),
    Failed(HandshakeError),
}

/// The client's handshake state machine. See the module docs for the driving contract.
pub struct ClientHandshake {
    noise: Option<HandshakeState>,
    offered: Vec<Suite>,
    allow_plain: bool,
    pinned: Option<Fingerprint>,
    token: SecretBytes,
    transmit: BytesMut,
    state: ClientState,
    stable_link: bool,
}

impl ClientHandshake {
    /// Starts a handshake: the hello and msg1 are queued for transmission at once.
    pub fn new(config: ClientConfig) -> Result<Self, HandshakeError> {
        let token = SecretBytes(config.token.unwrap_or_default());
        if token.0.len() > MAX_TOKEN_LEN {
            return Err(HandshakeError::TokenTooLong { len: token.0.len() });
        }
        let mut offered: Vec<Suite> = Vec::with_capacity(config.suites.len());
        for suite in config.suites {
            if !offered.contains(&suite) {
                offered.push(suite);
            }
        }
        let count = u8::try_from(offered.len()).map_err(|_| HandshakeError::TooManySuites {
            count: offered.len(),
        })?;
        let keypair = match config.static_key {
            Some(keypair) => keypair,
            None => StaticKeypair::generate()?,
        };
        let mut noise = build_noise(&keypair, true)?;

        let mut payload = Vec::with_capacity(offered.len() + 2);
        payload.push(count);
        payload.extend(offered.iter().map(|suite| suite.id()));
        let mut flags = 0;
        if config.allow_plain {
            flags |= FLAG_ALLOW_PLAIN;
        }
        if config.stable_link {
            flags |= FLAG_STABLE_LINK;
        }
        payload.push(flags);
        let mut transmit = BytesMut::with_capacity(512);
        transmit.put_slice(&hello());
        write_message(&mut noise, 1, &payload, &mut transmit)?;
        Ok(Self {
            noise: Some(noise),
            offered,
            allow_plain: config.allow_plain,
            pinned: config.pinned,
            token,
            transmit,
            state: ClientState::AwaitMsg2,
            stable_link: config.stable_link,
        })
    }

    /// Processes received bytes: takes msg2 off the front of `received` once complete,
    /// verifies the server and queues msg3. Bytes after msg2 stay in `received`. After an
    /// error every call returns it again.
    pub fn handle_received(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        match &self.state {
            ClientState::AwaitMsg2 => {}
            ClientState::Done(_) => return Ok(()),
            ClientState::Failed(error) => return Err(error.clone()),
        }
        match self.process(received) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.noise = None;
                self.state = ClientState::Failed(error.clone());
                Err(error)
            }
        }
    }

    fn process(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        let Some(message) = take_message(received, 2, MSG2_MIN, MAX_MESSAGE_LEN)? else {
            return Ok(());
        };
        let Some(noise) = self.noise.as_mut() else {
            return Err(HandshakeError::Noise(
                "handshake state already consumed".to_owned(),
            ));
        };
        let payload = read_message(noise, 2, &message)?;

        // Who the server is comes first: a refusal from an impostor means nothing.
        let actual = Fingerprint::of_public_key(&remote_static(noise)?);
        if let Some(expected) = self.pinned
            && expected != actual
        {
            return Err(HandshakeError::FingerprintMismatch { expected, actual });
        }

        let suite = match payload.0[..] {
            [STATUS_OK, id] => Suite::from_id(id)
                .filter(|suite| self.offered.contains(suite))
                .filter(|suite| !suite.is_plain() || self.allow_plain)
                .ok_or(HandshakeError::SuiteNotOffered { suite: id })?,
            [STATUS_OK, ..] => {
                return Err(malformed(format!(
                    "msg2: status ok takes 1 byte of suite id, got {}",
                    payload.0.len() - 1
                )));
            }
            [STATUS_REFUSED, ref reason @ ..] => {
                return Err(HandshakeError::NoCommonSuite {
                    reason: String::from_utf8_lossy(reason).into_owned(),
                });
            }
            [status, ..] => return Err(malformed(format!("msg2: unknown status {status}"))),
            [] => return Err(malformed("msg2: empty payload")),
        };

        let mut payload3 = SecretBytes(Vec::with_capacity(1 + self.token.0.len()));
        // The length was checked in `new`.
        payload3
            .0
            .push(u8::try_from(self.token.0.len()).unwrap_or(u8::MAX));
        payload3.0.extend_from_slice(&self.token.0);
        write_message(noise, 3, &payload3.0, &mut self.transmit)?;
        let outcome = HandshakeOutcome::from_noise(noise, suite, true, self.stable_link)?;
        self.noise = None;
        self.token = SecretBytes::default();
        self.state = ClientState::Done(Box::new(outcome));
        Ok(())
    }

    /// Bytes waiting to be written to the socket.
    pub fn transmit_pending(&self) -> &[u8] {
        &self.transmit
    }

    /// Marks `written` bytes of [`Self::transmit_pending`] as sent.
    pub fn advance_transmit(&mut self, written: usize) {
        self.transmit.advance(written.min(self.transmit.len()));
    }

    /// Takes every byte waiting to be written.
    pub fn take_transmit(&mut self) -> BytesMut {
        self.transmit.split()
    }

    /// True once msg3 is queued and the outcome is ready.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ClientState::Done(_))
    }

    /// True once the handshake failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, ClientState::Failed(_))
    }

    /// The result: the outcome when done, the error when failed,
    /// [`HandshakeError::NotFinished`] before either.
    pub fn outcome(self) -> Result<HandshakeOutcome, HandshakeError> {
        match self.state {
            ClientState::Done(outcome) => Ok(*outcome),
            ClientState::Failed(error) => Err(error),
            ClientState::AwaitMsg2 => Err(HandshakeError::NotFinished),
        }
    }
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("state", &self.state)
            .field("offered", &self.offered)
            .field("transmit_pending", &self.transmit.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum ServerState {
    AwaitHello,
    AwaitMsg1,
    /// msg2 sent with this suite.
    AwaitMsg3 {
        suite: Suite,
    },
    Done(Box<HandshakeOutcome>),
    Failed(HandshakeError),
}

/// What the client offered in msg1.
#[derive(Debug)]
struct Offer {
    /// Known suites, in the client's order (unknown ids are skipped).
    suites: Vec<Suite>,
    allow_plain: bool,
    stable_link: bool,
}

impl Offer {
    fn parse(payload: &[u8]) -> Result<Self, HandshakeError> {
        let Some((&count, rest)) = payload.split_first() else {
            return Err(malformed("msg1: empty payload"));
        };
        let count = usize::from(count);
        if rest.len() != count + 1 {
            return Err(malformed(format!(
                "msg1: {count} suite ids and a flags byte announced, {} bytes follow",
                rest.len()
            )));
        }
        let (ids, flags) = rest.split_at(count);
        Ok(Self {
            // Ids this side does not know (a newer client's) cannot be chosen: skip them.
            suites: ids.iter().filter_map(|&id| Suite::from_id(id)).collect(),
            allow_plain: flags
                .first()
                .is_some_and(|flags| flags & FLAG_ALLOW_PLAIN != 0),
            stable_link: flags
                .first()
                .is_some_and(|flags| flags & FLAG_STABLE_LINK != 0),
        })
    }
}

/// The server's pick among the suites both sides allow, or the refusal reason.
fn choose_suite(
    config: &ServerConfig,
    offer: &Offer,
) -> Result<Result<Suite, String>, HandshakeError> {
    let plain_ok = config.allow_plain && offer.allow_plain;
    let mut common: Vec<Suite> = Vec::new();
    for &suite in &config.suites {
        if offer.suites.contains(&suite)
            && (!suite.is_plain() || plain_ok)
            && !common.contains(&suite)
        {
            common.push(suite);
        }
    }
    if common.is_empty() {
        let allows = config
            .suites
            .iter()
            .copied()
            .filter(|suite| !suite.is_plain() || config.allow_plain);
        let offered = offer
            .suites
            .iter()
            .copied()
            .filter(|suite| !suite.is_plain() || offer.allow_plain);
        let reason = format!(
            "no common cipher suite; server allows: {}; client offered: {}",
            suite_names(allows),
            suite_names(offered)
        );
        return Ok(Err(truncate_utf8(&reason, MAX_REASON_LEN).to_owned()));
    }
    let index = if config.random_suite {
        random_index(common.len())?
    } else {
        0
    };
    Ok(common
        .get(index)
        .copied()
        .ok_or_else(|| format!("no suite at index {index} of {} common ones", common.len())))
}

/// The server's handshake state machine. See the module docs for the driving contract.
pub struct ServerHandshake {
    config: ServerConfig,
    noise: Option<HandshakeState>,
    transmit: BytesMut,
    state: ServerState,
    /// msg1 asked for a StableIO link.
    stable_link: bool,
}

impl ServerHandshake {
    /// Starts a handshake that waits for the client's hello.
    pub fn new(config: ServerConfig) -> Result<Self, HandshakeError> {
        if let Some(token) = &config.token
            && token.len() > MAX_TOKEN_LEN
        {
            return Err(HandshakeError::TokenTooLong { len: token.len() });
        }
        let noise = build_noise(&config.keypair, false)?;
        Ok(Self {
            config,
            noise: Some(noise),
            transmit: BytesMut::with_capacity(256),
            state: ServerState::AwaitHello,
            stable_link: false,
        })
    }

    /// Processes received bytes: takes the hello, msg1 and msg3 off the front of `received`
    /// as they complete, queueing msg2 in between. Bytes after msg3 stay in `received`. After
    /// an error every call returns it again; the transmit buffer may hold msg2 with the
    /// refusal, to be flushed before closing.
    pub fn handle_received(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        match &self.state {
            ServerState::Done(_) => return Ok(()),
            ServerState::Failed(error) => return Err(error.clone()),
            _ => {}
        }
        match self.process(received) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.noise = None;
                self.state = ServerState::Failed(error.clone());
                Err(error)
            }
        }
    }

    fn process(&mut self, received: &mut BytesMut) -> Result<(), HandshakeError> {
        loop {
            match self.state {
                ServerState::AwaitHello => {
                    if !Self::take_hello(received)? {
                        return Ok(());
                    }
                    self.state = ServerState::AwaitMsg1;
                }
                ServerState::AwaitMsg1 => {
                    let Some(message) = take_message(received, 1, MSG1_MIN, MSG1_MAX)? else {
                        return Ok(());
                    };
                    let suite = self.answer_offer(&message)?;
                    self.state = ServerState::AwaitMsg3 { suite };
                }
                ServerState::AwaitMsg3 { suite } => {
                    let Some(message) = take_message(received, 3, MSG3_MIN, MSG3_MAX)? else {
                        return Ok(());
                    };
                    let outcome = self.finish(&message, suite)?;
                    self.noise = None;
                    self.state = ServerState::Done(Box::new(outcome));
                    return Ok(());
                }
                ServerState::Done(_) | ServerState::Failed(_) => return Ok(()),
            }
        }
    }

    /// Takes the hello off `received`: `Ok(true)` once taken, `Ok(false)` while incomplete.
    fn take_hello(received: &mut BytesMut) -> Result<bool, HandshakeError> {
        let seen = received.len().min(HELLO_MAGIC.len());
        if received[..seen] != HELLO_MAGIC[..seen] {
            return Err(HandshakeError::BadHello {
                found: received[..seen].to_vec(),
            });
        }
        let [_, _, _, _, low, high, ..] = received[..] else {
            return Ok(false);
        };
        let theirs = u16::from_le_bytes([low, high]);
        if theirs != HANDSHAKE_VERSION {
            return Err(HandshakeError::UnsupportedVersion {
                theirs,
                ours: HANDSHAKE_VERSION,
            });
        }
        received.advance(HELLO_SIZE);
        Ok(true)
    }

    /// Reads msg1, chooses a suite and queues msg2. A refusal is queued too, then returned
    /// as the error.
    fn answer_offer(&mut self, message: &[u8]) -> Result<Suite, HandshakeError> {
        let Some(noise) = self.noise.as_mut() else {
            return Err(HandshakeError::Noise(
                "handshake state already consumed".to_owned(),
            ));
        };
        let payload = read_message(noise, 1, message)?;
        let offer = Offer::parse(&payload.0)?;
        self.stable_link = offer.stable_link;
        match choose_suite(&self.config, &offer)? {
            Ok(suite) => {
                write_message(noise, 2, &[STATUS_OK, suite.id()], &mut self.transmit)?;
                Ok(suite)
            }
            Err(reason) => {
                let mut refusal = Vec::with_capacity(1 + reason.len());
                refusal.push(STATUS_REFUSED);
                refusal.extend_from_slice(reason.as_bytes());
                write_message(noise, 2, &refusal, &mut self.transmit)?;
                Err(HandshakeError::NoCommonSuite { reason })
            }
        }
    }

    /// Reads msg3 and checks the client's token.
    fn finish(&mut self, message: &[u8], suite: Suite) -> Result<HandshakeOutcome, HandshakeError> {
        let Some(noise) = self.noise.as_mut() else {
            return Err(HandshakeError::Noise(
                "handshake state already consumed".to_owned(),
            ));
        };
        let payload = read_message(noise, 3, message)?;
        let Some((&len, token)) = payload.0.split_first() else {
            return Err(malformed("msg3: empty payload"));
        };
        if token.len() != usize::from(len) {
            return Err(malformed(format!(
                "msg3: token of {len} bytes announced, {} bytes follow",
                token.len()
            )));
        }
        let client_token_ok = match &self.config.token {
            None => true,
            // Constant time in the token's contents (`subtle`); only the length may show.
            Some(expected) => bool::from(expected.as_slice().ct_eq(token)),
        };
        HandshakeOutcome::from_noise(noise, suite, client_token_ok, self.stable_link)
    }

    /// Bytes waiting to be written to the socket.
    pub fn transmit_pending(&self) -> &[u8] {
        &self.transmit
    }

    /// Marks `written` bytes of [`Self::transmit_pending`] as sent.
    pub fn advance_transmit(&mut self, written: usize) {
        self.transmit.advance(written.min(self.transmit.len()));
    }

    /// Takes every byte waiting to be written.
    pub fn take_transmit(&mut self) -> BytesMut {
        self.transmit.split()
    }

    /// True once msg3 is read and the outcome is ready.
    pub fn is_done(&self) -> bool {
        matches!(self.state, ServerState::Done(_))
    }

    /// True once the handshake failed.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, ServerState::Failed(_))
    }

    /// The result: the outcome when done, the error when failed,
    /// [`HandshakeError::NotFinished`] before either.
    pub fn outcome(self) -> Result<HandshakeOutcome, HandshakeError> {
        match self.state {
            ServerState::Done(outcome) => Ok(*outcome),
            ServerState::Failed(error) => Err(error),
            _ => Err(HandshakeError::NotFinished),
        }
    }
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("state", &self.state)
            .field("config", &self.config)
            .field("transmit_pending", &self.transmit.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
