//! # The record layer: every byte after the handshake, sealed in records
//!
//! Once the handshake has agreed on a [`Suite`] and given each direction of the connection a
//! 32-byte *traffic secret*, everything either side sends is cut into records. A [`Sealer`]
//! turns one direction's plaintext into records; the peer's [`Opener`] for that direction
//! checks and opens them. Both are sans-IO: they only read and append byte buffers.
//!
//! ## Records on the wire
//!
//! ```text
//! header (5 bytes) = u8 record_type | u32 length (little-endian)
//! body             = length bytes
//! ```
//!
//! | `record_type` | meaning    | plaintext                                       |
//! | ------------- | ---------- | ----------------------------------------------- |
//! | 1             | data       | 0 to [`MAX_RECORD_PLAINTEXT`] (16384) bytes     |
//! | 2             | key update | empty                                           |
//!
//! For an encrypted suite the body is the ciphertext followed by the 16-byte tag
//! ([`TAG_LEN`]), so `length` = plaintext length + 16; for [`Suite::Plain`] the body is the
//! plaintext itself. The additional authenticated data of every record is its own 5-byte
//! header, so the type and length are authenticated with the body.
//!
//! The 12-byte nonce of a record is four zero bytes followed by the direction's record
//! counter as a little-endian `u64`. The counter starts at 0 under each key and grows by one
//! per record, data or key update. A counter never wraps: a direction that has used counter
//! `u64::MAX - 1` can send nothing more under that key ([`RecordError::CounterExhausted`]).
//! Because the counter is implicit, a record that was altered, replayed, dropped or
//! reordered fails authentication ([`RecordError::Decrypt`]).
//!
//! A decoder rejects a header before buffering its body when the declared length is larger
//! than the largest record of the suite (16384 + 16 for the encrypted suites, 16384 for
//! `plain`), when the type is unknown, or when a key update would carry plaintext.
//!
//! ## Keys
//!
//! With `name` the suite's [name](Suite::name) and `key_len` its [key length](Suite::key_len),
//! and HKDF-Expand the one of RFC 5869 over HMAC-SHA-256 with the traffic secret used directly
//! as the pseudorandom key:
//!
//! ```text
//! aead_key    = HKDF-Expand(PRK = secret, info = "zs record key " || name, L = key_len)
//! next_secret = HKDF-Expand(PRK = secret, info = "zs key update",          L = 32)
//! ```
//!
//! A key-update record is sealed under the old key; right after it, the sender replaces its
//! secret with `next_secret`, derives the new AEAD key and restarts its counter at 0. The
//! receiver does the same on opening it. A [`Sealer`] updates its key by itself once the
//! plaintext sealed under the current key reaches its `rekey_after_bytes` (cutting the record
//! at that boundary, so no key ever seals more), and on [`Sealer::force_key_update`] (which
//! the runtime calls on a timer). Traffic never pauses for a key update: the new key is used
//! from the next record on.
//!
//! ## Suites
//!
//! | name                  | id | AEAD                                   | key bytes |
//! | --------------------- | -- | -------------------------------------- | --------- |
//! | `"aes-128-gcm"`       | 1  | AES-128 in GCM                         | 16        |
//! | `"aes-256-gcm"`       | 2  | AES-256 in GCM                         | 32        |
//! | `"chacha20-poly1305"` | 3  | ChaCha20-Poly1305 (RFC 8439)           | 32        |
//! | `"rc6-gcm"`           | 4  | RC6-32/20/32 in GCM                    | 32        |
//! | `"twofish-gcm"`       | 5  | Twofish (256-bit key) in GCM           | 32        |
//! | `"serpent-gcm"`       | 6  | Serpent (256-bit key) in GCM           | 32        |
//! | `"mars-gcm"`          | 7  | MARS (256-bit key) in GCM              | 32        |
//! | `"plain"`             | 0  | none: no confidentiality, no integrity | 0         |
//!
//! Every GCM suite uses 12-byte nonces and 16-byte tags.
//!
//! ## Key material
//!
//! Traffic secrets and derived keys are wiped when replaced or dropped; the AEAD states wipe
//! themselves, except the RC6 key table (the `rc6` crate does not wipe it).
//!
//! ```
//! use bytes::BytesMut;
//! use zs_wire::crypto::record::{Opener, Sealer, Suite};
//!
//! let secret = [7u8; 32];
//! let mut sealer = Sealer::new(Suite::Aes128Gcm, secret, 1 << 30).unwrap();
//! let mut opener = Opener::new(Suite::Aes128Gcm, secret).unwrap();
//!
//! let mut wire = BytesMut::new();
//! sealer.seal(b"hello", &mut wire).unwrap();
//! assert_eq!(wire.len(), 5 + 5 + 16);
//!
//! let mut plaintext = BytesMut::new();
//! opener.open(&mut wire, &mut plaintext).unwrap();
//! assert_eq!(&plaintext[..], b"hello");
//! assert!(wire.is_empty());
//! ```

use std::ops::Deref;

use bytes::{Buf, BytesMut};

use crate::codec::Reader;

mod keys;
#[cfg(feature = "openssl")]
mod openssl_aead;
mod suite;
#[cfg(test)]
mod tests;

use keys::{Keys, nonce};
pub use suite::Suite;

/// Size of a record header: `u8 record_type | u32 length`.
pub const HEADER_LEN: usize = 5;
/// Largest plaintext one record carries.
pub const MAX_RECORD_PLAINTEXT: usize = 16384;
/// Size of the authentication tag that ends the body of an encrypted record.
pub const TAG_LEN: usize = 16;
/// Size of a record nonce.
pub const NONCE_LEN: usize = 12;
/// Size of a traffic secret.
pub const SECRET_LEN: usize = 32;
/// `record_type` of a data record.
pub const RECORD_TYPE_DATA: u8 = 1;
/// `record_type` of a key-update record.
pub const RECORD_TYPE_KEY_UPDATE: u8 = 2;

/// Errors of the record layer. Every one is fatal for the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// No suite has this name.
    #[error(
        "unknown record suite {name:?} (known: aes-128-gcm, aes-256-gcm, chacha20-poly1305, \
         rc6-gcm, twofish-gcm, serpent-gcm, mars-gcm, plain)"
    )]
    UnknownSuite {
        /// The name as given.
        name: String,
    },
    /// A record header declares a body longer than any record of the suite.
    #[error("record declares a {len}-byte body, more than the maximum of {max}")]
    RecordTooLarge {
        /// The declared body length.
        len: u64,
        /// The largest body length allowed.
        max: u64,
    },
    /// An encrypted record's body is too short to hold its tag.
    #[error("record declares a {len}-byte body, shorter than its {min}-byte tag")]
    RecordTooShort {
        /// The declared body length.
        len: u64,
        /// The shortest body length allowed.
        min: u64,
    },
    /// A record header has a type this version does not know.
    #[error("unknown record type {record_type}")]
    UnknownRecordType {
        /// The type byte received.
        record_type: u8,
    },
    /// A key-update record carries plaintext.
    #[error("key-update record carries {len} bytes of plaintext (it must be empty)")]
    NonEmptyKeyUpdate {
        /// The plaintext length it declares.
        len: u64,
    },
    /// A record failed authentication: it was altered, replayed, reordered or sealed under
    /// another key.
    #[error(
        "record {counter} after key update {key_updates} failed authentication \
         (altered, replayed, reordered or wrong key)"
    )]
    Decrypt {
        /// The counter the record was expected to have.
        counter: u64,
        /// How many key updates this direction had gone through.
        key_updates: u64,
    },
    /// The AEAD refused to seal a record.
    #[error("sealing record {counter} failed")]
    Encrypt {
        /// The counter of the record.
        counter: u64,
    },
    /// Every nonce of the current key has been used; a key update was due.
    #[error(
        "record counter exhausted: no record can be sent under this key without reusing a nonce"
    )]
    CounterExhausted,
    /// A key could not be derived or installed.
    #[error("cannot derive or install the {suite} record key")]
    KeySchedule {
        /// The suite's name.
        suite: &'static str,
    },
}

/// The header of a record of `record_type` with a `body_len`-byte body.
fn header(record_type: u8, body_len: usize) -> [u8; HEADER_LEN] {
    // Bodies are at most MAX_RECORD_PLAINTEXT + TAG_LEN bytes, far below u32::MAX.
    let len = u32::try_from(body_len).unwrap_or(u32::MAX).to_le_bytes();
    [record_type, len[0], len[1], len[2], len[3]]
}

/// Seals one direction's plaintext into records.
#[derive(Debug)]
pub struct Sealer {
    keys: Keys,
    rekey_after_bytes: u64,
    sealed_under_key: u64,
}

impl Sealer {
    /// A sealer for `suite` starting from the traffic `secret`. It updates its key by itself
    /// each time it has sealed `rekey_after_bytes` bytes of plaintext under the current key
    /// (0: never by volume, only by [`force_key_update`](Self::force_key_update)).
    pub fn new(
        suite: Suite,
        secret: [u8; SECRET_LEN],
        rekey_after_bytes: u64,
    ) -> Result<Self, RecordError> {
        Ok(Self {
            keys: Keys::new(suite, secret)?,
            rekey_after_bytes,
            sealed_under_key: 0,
        })
    }

    /// The suite in use.
    pub fn suite(&self) -> Suite {
        self.keys.suite
    }

    /// How many key updates this sealer has sent.
    pub fn key_updates(&self) -> u64 {
        self.keys.key_updates
    }

    /// Appends `plaintext` to `out` as data records of at most [`MAX_RECORD_PLAINTEXT`]
    /// bytes each, with a key-update record (and a switch to the next key) wherever the
    /// plaintext sealed under the current key reaches `rekey_after_bytes`. An empty
    /// `plaintext` appends nothing.
    ///
    /// On error, the records appended before it are complete and valid; the connection must
    /// be closed all the same.
    pub fn seal(&mut self, plaintext: &[u8], out: &mut BytesMut) -> Result<(), RecordError> {
        self.seal_vectored(&[plaintext], usize::MAX, out)
            .map(|_| ())
    }

    /// [`seal`](Self::seal) for plaintext in pieces: seals up to `max` bytes of `parts`, in
    /// order, as if they were one buffer, and returns how many it sealed. Records are filled
    /// across piece boundaries, so a frame header and the chunk after it share a record; this
    /// copy into `out` is the only one the plaintext goes through.
    pub fn seal_vectored<B: Deref<Target = [u8]>>(
        &mut self,
        parts: &[B],
        max: usize,
        out: &mut BytesMut,
    ) -> Result<usize, RecordError> {
        let total = parts.iter().map(|part| part.len()).sum::<usize>().min(max);
        if total == 0 {
            return Ok(0);
        }
        let records = total.div_ceil(MAX_RECORD_PLAINTEXT);
        out.reserve(total + records * (HEADER_LEN + self.keys.suite.tag_len()));
        let mut gather = Gather {
            parts,
            index: 0,
            offset: 0,
        };
        let mut remaining = total;
        while remaining > 0 {
            let mut take = remaining.min(MAX_RECORD_PLAINTEXT);
            if self.rekey_after_bytes != 0 {
                let budget = self.rekey_after_bytes.saturating_sub(self.sealed_under_key);
                take = take
                    .min(usize::try_from(budget).unwrap_or(usize::MAX))
                    .max(1);
            }
            self.write_record(RECORD_TYPE_DATA, take, &mut gather, out)?;
            self.sealed_under_key += take as u64;
            if self.rekey_after_bytes != 0 && self.sealed_under_key >= self.rekey_after_bytes {
                self.force_key_update(out)?;
            }
            remaining -= take;
        }
        Ok(total)
    }

    /// For the `plain` suite: the header of a data record of `len` bytes (1 to
    /// [`MAX_RECORD_PLAINTEXT`]) whose body the caller sends itself, unchanged, right after
    /// it — a runtime can then write headers and the caller's buffers in one vectored write,
    /// copying nothing. The record counts as sealed. `None` for an encrypted suite, or when
    /// this record would reach the key-update boundary or the end of the counter: use
    /// [`seal`](Self::seal) then.
    pub fn plain_header(&mut self, len: usize) -> Option<[u8; HEADER_LEN]> {
        if !self.keys.suite.is_plain() || len == 0 || len > MAX_RECORD_PLAINTEXT {
            return None;
        }
        if self.rekey_after_bytes != 0
            && self.sealed_under_key + len as u64 >= self.rekey_after_bytes
        {
            return None;
        }
        let counter = self.keys.current_counter().ok()?;
        self.keys.counter = counter + 1;
        self.sealed_under_key += len as u64;
        Some(header(RECORD_TYPE_DATA, len))
    }

    /// For the `plain` suite: up to [`PLAIN_RECORDS_MAX`] data records carrying the first
    /// `len` bytes of the caller's plaintext (fewer where a key update or the counter's end
    /// is near), counted as sealed — a runtime writes [`PlainRecords::pieces`] in one
    /// vectored write, copying nothing. `None` when not one record can be made so: use
    /// [`seal_vectored`](Self::seal_vectored) then.
    pub fn plain_records(&mut self, len: usize) -> Option<PlainRecords> {
        let mut records = PlainRecords {
            headers: [[0; HEADER_LEN]; PLAIN_RECORDS_MAX],
            lens: [0; PLAIN_RECORDS_MAX],
            count: 0,
            plaintext: 0,
        };
        while records.plaintext < len && records.count < PLAIN_RECORDS_MAX {
            let take = (len - records.plaintext).min(MAX_RECORD_PLAINTEXT);
            let Some(header) = self.plain_header(take) else {
                break;
            };
            records.headers[records.count] = header;
            records.lens[records.count] = take;
            records.count += 1;
            records.plaintext += take;
        }
        (records.count > 0).then_some(records)
    }

    /// Appends a key-update record to `out`, sealed under the current key, and switches to
    /// the next key for every record after it.
    pub fn force_key_update(&mut self, out: &mut BytesMut) -> Result<(), RecordError> {
        let none: [&[u8]; 0] = [];
        let mut gather = Gather {
            parts: &none,
            index: 0,
            offset: 0,
        };
        self.write_record(RECORD_TYPE_KEY_UPDATE, 0, &mut gather, out)?;
        self.keys.update()?;
        self.sealed_under_key = 0;
        Ok(())
    }

    /// Appends one record carrying the next `len` bytes of `plaintext` (at most
    /// [`MAX_RECORD_PLAINTEXT`]).
    fn write_record<B: Deref<Target = [u8]>>(
        &mut self,
        record_type: u8,
        len: usize,
        plaintext: &mut Gather<'_, B>,
        out: &mut BytesMut,
    ) -> Result<(), RecordError> {
        let counter = self.keys.current_counter()?;
        let header = header(record_type, len + self.keys.suite.tag_len());
        let start = out.len();
        out.reserve(HEADER_LEN + len + self.keys.suite.tag_len());
        out.extend_from_slice(&header);
        plaintext.copy_into(len, out);
        // The nonce is spent from here on, whatever happens.
        self.keys.counter = counter + 1;
        if let Some(aead) = &mut self.keys.aead {
            let body = &mut out[start + HEADER_LEN..];
            match aead.seal_in_place(&nonce(counter), &header, body) {
                Ok(tag) => out.extend_from_slice(&tag),
                Err(_) => {
                    out.truncate(start);
                    return Err(RecordError::Encrypt { counter });
                }
            }
        }
        Ok(())
    }
}

/// A read position in plaintext given as pieces.
struct Gather<'a, B> {
    parts: &'a [B],
    /// The piece being read.
    index: usize,
    /// Bytes of that piece already taken.
    offset: usize,
}

impl<'a, B: Deref<Target = [u8]>> Gather<'a, B> {
    /// The next run of at most `max` bytes (within one piece); `None` at the end.
    fn next_piece(&mut self, max: usize) -> Option<&'a [u8]> {
        let parts: &'a [B] = self.parts;
        loop {
            let part: &'a [u8] = parts.get(self.index)?;
            let rest = &part[self.offset..];
            let step = rest.len().min(max);
            self.offset += step;
            if self.offset == part.len() {
                self.index += 1;
                self.offset = 0;
            }
            if step > 0 || max == 0 {
                return Some(&rest[..step]);
            }
        }
    }

    /// Appends the next `len` bytes to `out` (callers never ask for more than there is).
    fn copy_into(&mut self, mut len: usize, out: &mut BytesMut) {
        while len > 0 {
            let Some(piece) = self.next_piece(len) else {
                return;
            };
            out.extend_from_slice(piece);
            len -= piece.len();
        }
    }
}

/// Most records one [`PlainRecords`] plan holds (256 KiB of plaintext).
pub const PLAIN_RECORDS_MAX: usize = 16;

/// `plain` records counted as sealed by [`Sealer::plain_records`], whose bytes the caller
/// sends itself: each header, then that many of its plaintext bytes, unchanged.
#[derive(Debug)]
pub struct PlainRecords {
    headers: [[u8; HEADER_LEN]; PLAIN_RECORDS_MAX],
    lens: [usize; PLAIN_RECORDS_MAX],
    count: usize,
    plaintext: usize,
}

impl PlainRecords {
    /// Plaintext bytes the records carry.
    pub fn plaintext_len(&self) -> usize {
        self.plaintext
    }

    /// The records' bytes in wire order, as slices of the headers and of `parts` (the
    /// plaintext the plan was made for): nothing is copied.
    pub fn pieces<'a, B: Deref<Target = [u8]>>(
        &'a self,
        parts: &'a [B],
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut gather = Gather {
            parts,
            index: 0,
            offset: 0,
        };
        let mut record = 0;
        // `None`: the record's header is next; `Some(n)`: n bytes of its body are.
        let mut body_left: Option<usize> = None;
        std::iter::from_fn(move || {
            loop {
                if record == self.count {
                    return None;
                }
                match body_left {
                    None => {
                        body_left = Some(self.lens[record]);
                        return Some(&self.headers[record][..]);
                    }
                    Some(0) => {
                        record += 1;
                        body_left = None;
                    }
                    Some(left) => {
                        let piece = gather.next_piece(left)?;
                        body_left = Some(left - piece.len());
                        return Some(piece);
                    }
                }
            }
        })
    }
}

/// Opens the records of one direction.
#[derive(Debug)]
pub struct Opener {
    keys: Keys,
    failed: Option<RecordError>,
}

impl Opener {
    /// An opener for `suite` starting from the traffic `secret`.
    pub fn new(suite: Suite, secret: [u8; SECRET_LEN]) -> Result<Self, RecordError> {
        Ok(Self {
            keys: Keys::new(suite, secret)?,
            failed: None,
        })
    }

    /// The suite in use.
    pub fn suite(&self) -> Suite {
        self.keys.suite
    }

    /// How many key updates this opener has received.
    pub fn key_updates(&self) -> u64 {
        self.keys.key_updates
    }

    /// Takes every complete record off the front of `input` and appends the plaintext of the
    /// data records to `plaintext`; a key-update record switches to the next key. An
    /// incomplete record stays in `input`, which gets room reserved for the rest of it.
    ///
    /// A header is checked as soon as its 5 bytes are there, before any of its body is
    /// buffered. On error, the records before the bad one have been opened and appended; the
    /// bad one stays at the front of `input` (its header intact; a body that failed
    /// authentication may have been overwritten in place). Errors are final: every later call returns the
    /// same error, and the connection must be closed.
    pub fn open(
        &mut self,
        input: &mut BytesMut,
        plaintext: &mut BytesMut,
    ) -> Result<(), RecordError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.open_records(input, plaintext);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn open_records(
        &mut self,
        input: &mut BytesMut,
        plaintext: &mut BytesMut,
    ) -> Result<(), RecordError> {
        while let Some(text) = self.open_next(input)? {
            plaintext.extend_from_slice(&text);
        }
        Ok(())
    }

    /// Takes the first complete data record off the front of `input` and returns its
    /// plaintext, opened in place: the returned buffer is the record's own bytes split off
    /// `input` (no copy), so a reader can hand them on with the one copy it has to make.
    /// Key-update records before it are taken and applied. `Ok(None)`: no complete data
    /// record yet (room is reserved in `input` for the rest of the next one). Checks and
    /// errors as [`open`](Self::open), and they are final here too.
    pub fn open_record(&mut self, input: &mut BytesMut) -> Result<Option<BytesMut>, RecordError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.open_next(input);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn open_next(&mut self, input: &mut BytesMut) -> Result<Option<BytesMut>, RecordError> {
        let tag_len = self.keys.suite.tag_len();
        loop {
            let mut reader = Reader::new(input);
            // The header is also the AEAD's associated data.
            let (Ok(header), Ok(record_type), Ok(len)) = (
                reader.clone().take_array::<HEADER_LEN>(),
                reader.read_u8(),
                reader.read_u32(),
            ) else {
                input.reserve(HEADER_LEN - input.len());
                return Ok(None);
            };
            let body_len = len as usize;
            if record_type != RECORD_TYPE_DATA && record_type != RECORD_TYPE_KEY_UPDATE {
                return Err(RecordError::UnknownRecordType { record_type });
            }
            let max = self.keys.suite.max_record_body();
            if body_len > max {
                return Err(RecordError::RecordTooLarge {
                    len: u64::from(len),
                    max: max as u64,
                });
            }
            if body_len < tag_len {
                return Err(RecordError::RecordTooShort {
                    len: u64::from(len),
                    min: tag_len as u64,
                });
            }
            let text_len = body_len - tag_len;
            if record_type == RECORD_TYPE_KEY_UPDATE && text_len != 0 {
                return Err(RecordError::NonEmptyKeyUpdate {
                    len: text_len as u64,
                });
            }
            let total = HEADER_LEN + body_len;
            if input.len() < total {
                input.reserve(total - input.len());
                return Ok(None);
            }
            let counter = self.keys.current_counter()?;

            let body = &mut input[HEADER_LEN..total];
            let (text, tag_bytes) = body.split_at_mut(text_len);
            if let Some(aead) = &mut self.keys.aead {
                let mut tag = [0u8; TAG_LEN];
                tag.copy_from_slice(tag_bytes);
                aead.open_in_place(&nonce(counter), &header, text, &tag)
                    .map_err(|_| RecordError::Decrypt {
                        counter,
                        key_updates: self.keys.key_updates,
                    })?;
            }
            self.keys.counter = counter + 1;
            if record_type == RECORD_TYPE_KEY_UPDATE {
                input.advance(total);
                self.keys.update()?;
                continue;
            }
            let mut record = input.split_to(total);
            record.advance(HEADER_LEN);
            record.truncate(text_len);
            return Ok(Some(record));
        }
    }
}
