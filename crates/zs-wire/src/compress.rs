//! Compression of CompleteBuffer transfers ([`Compression`] in a `StreamOpen` frame), without
//! I/O: LZ4 block format or a Zstandard frame.
//!
//! The sender announces the size after decompression (`StreamInfo::original_len`); the
//! receiver passes it to [`decompress`] with its own limit, so a compression bomb is refused
//! from the announcement alone, before anything is allocated, and a buffer that decompresses
//! to anything but the announced size is an error.

pub use crate::frame::Compression;

/// Inputs shorter than this are sent as they are by [`compress_if_smaller`]: too small to gain.
pub const MIN_COMPRESS_LEN: usize = 1024;

/// The Zstandard level used: fast, and most of the gain.
pub const ZSTD_LEVEL: i32 = 3;

/// A buffer could not be compressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressError {
    /// The Zstandard encoder failed.
    #[error("zstd: {0}")]
    Zstd(String),
}

/// A received buffer could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressError {
    /// The announced size is over the receiver's limit (refused before allocating).
    #[error("{compression:?} buffer announces {announced} bytes; the limit is {max}")]
    TooLarge {
        /// How the buffer is compressed.
        compression: Compression,
        /// The announced size after decompression.
        announced: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// The compressed bytes are not valid for their format, or hold more than announced.
    #[error("{compression:?} buffer is corrupt: {reason}")]
    Corrupt {
        /// How the buffer is compressed.
        compression: Compression,
        /// The decoder's complaint.
        reason: String,
    },
    /// The buffer decompressed to fewer bytes than announced (or, uncompressed, its length
    /// differs from the announcement).
    #[error("{compression:?} buffer decompressed to {len} bytes, announced {announced}")]
    LengthMismatch {
        /// How the buffer is compressed.
        compression: Compression,
        /// Bytes actually produced.
        len: usize,
        /// The announced size.
        announced: u64,
    },
}

/// Compresses `data`. [`Compression::None`] returns a copy.
pub fn compress(compression: Compression, data: &[u8]) -> Result<Vec<u8>, CompressError> {
    match compression {
        Compression::None => Ok(data.to_vec()),
        Compression::Lz4 => Ok(lz4_flex::block::compress(data)),
        Compression::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL)
            .map_err(|error| CompressError::Zstd(error.to_string())),
    }
}

/// Compresses `data` only when it pays: at least [`MIN_COMPRESS_LEN`] bytes in, at least an
/// eighth saved. `None` means "send it as is, with [`Compression::None`]" (also when the
/// encoder failed).
pub fn compress_if_smaller(compression: Compression, data: &[u8]) -> Option<Vec<u8>> {
    if compression == Compression::None || data.len() < MIN_COMPRESS_LEN {
        return None;
    }
    let compressed = compress(compression, data).ok()?;
    (compressed.len() < data.len() - data.len() / 8).then_some(compressed)
}

/// Decompresses `input`, which must produce exactly `announced` bytes. `announced` is checked
/// against `max` first, and the output buffer is sized from it, so no input can make this
/// allocate more than `max` bytes.
pub fn decompress(
    compression: Compression,
    input: &[u8],
    announced: u64,
    max: usize,
) -> Result<Vec<u8>, DecompressError> {
    let len = usize::try_from(announced)
        .ok()
        .filter(|&len| len <= max)
        .ok_or(DecompressError::TooLarge {
            compression,
            announced,
            max,
        })?;
    let corrupt = |reason: String| DecompressError::Corrupt {
        compression,
        reason,
    };
    let output = match compression {
        Compression::None => input.to_vec(),
        Compression::Lz4 => {
            // A block expands at most 255-fold: a larger announcement cannot be honest, and
            // is refused before the output buffer is allocated.
            if len / 255 > input.len() + 16 {
                return Err(corrupt(format!(
                    "{} bytes cannot decompress to {len}",
                    input.len()
                )));
            }
            let mut output = vec![0u8; len];
            // Fails instead of writing past `len` bytes.
            let written = lz4_flex::block::decompress_into(input, &mut output)
                .map_err(|error| corrupt(error.to_string()))?;
            output.truncate(written);
            output
        }
        Compression::Zstd => {
            // A frame that states its size must state the announced one.
            if let Ok(Some(stated)) = zstd::zstd_safe::get_frame_content_size(input)
                && stated != announced
            {
                return Err(corrupt(format!("frame states {stated} bytes")));
            }
            // Allocates at most `len` bytes and fails on more output.
            zstd::bulk::decompress(input, len).map_err(|error| corrupt(error.to_string()))?
        }
    };
    if output.len() != len {
        return Err(DecompressError::LengthMismatch {
            compression,
            len: output.len(),
            announced,
        });
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const KINDS: [Compression; 3] = [Compression::None, Compression::Lz4, Compression::Zstd];

    fn compressible(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"zserver "[i % 8]).collect()
    }

    #[test]
    fn every_kind_round_trips_including_empty_input() {
        for kind in KINDS {
            for data in [Vec::new(), b"x".to_vec(), compressible(100_000)] {
                let packed = compress(kind, &data).unwrap();
                let len = data.len() as u64;
                assert_eq!(decompress(kind, &packed, len, data.len()).unwrap(), data);
            }
        }
    }

    #[test]
    fn a_bomb_is_refused_from_its_announcement() {
        let packed = compress(Compression::Zstd, &compressible(1 << 20)).unwrap();
        assert!(packed.len() < 1024);
        for kind in KINDS {
            assert_eq!(
                decompress(kind, &packed, 1 << 20, 64 * 1024),
                Err(DecompressError::TooLarge {
                    compression: kind,
                    announced: 1 << 20,
                    max: 64 * 1024
                })
            );
        }
        // Without a limit, a lying announcement is still refused before allocating it.
        for kind in KINDS {
            let packed = compress(kind, b"small").unwrap();
            assert!(decompress(kind, &packed, u64::MAX >> 8, usize::MAX).is_err());
        }
    }

    #[test]
    fn more_or_fewer_bytes_than_announced_are_errors() {
        let data = compressible(10_000);
        for kind in [Compression::Lz4, Compression::Zstd] {
            let packed = compress(kind, &data).unwrap();
            // Announcing less: the decoder stops at the announced size and fails.
            assert!(matches!(
                decompress(kind, &packed, 9_999, 1 << 20),
                Err(DecompressError::Corrupt { .. })
            ));
            // Announcing more: the output falls short.
            assert!(matches!(
                decompress(kind, &packed, 10_001, 1 << 20),
                Err(DecompressError::LengthMismatch { len: 10_000, .. })
                    | Err(DecompressError::Corrupt { .. })
            ));
        }
        assert_eq!(
            decompress(Compression::None, b"abc", 4, 10),
            Err(DecompressError::LengthMismatch {
                compression: Compression::None,
                len: 3,
                announced: 4
            })
        );
    }

    #[test]
    fn compression_is_used_only_when_it_pays() {
        let small = compressible(MIN_COMPRESS_LEN - 1);
        assert_eq!(compress_if_smaller(Compression::Zstd, &small), None);
        assert_eq!(
            compress_if_smaller(Compression::None, &compressible(10_000)),
            None
        );
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 32) as u8
            })
            .collect();
        assert_eq!(compress_if_smaller(Compression::Lz4, &random), None);
        let packed = compress_if_smaller(Compression::Lz4, &compressible(10_000)).unwrap();
        assert!(packed.len() < 10_000 - 10_000 / 8);
    }

    proptest! {
        #[test]
        fn any_data_round_trips(data in proptest::collection::vec(any::<u8>(), 0..4096), kind in 0..3usize) {
            let kind = KINDS[kind];
            let packed = compress(kind, &data).unwrap();
            prop_assert_eq!(decompress(kind, &packed, data.len() as u64, data.len()).unwrap(), data);
        }

        #[test]
        fn any_input_decompresses_to_the_announced_size_or_an_error(
            input in proptest::collection::vec(any::<u8>(), 0..512),
            announced in 0..65_536u64,
            kind in 0..3usize,
        ) {
            if let Ok(output) = decompress(KINDS[kind], &input, announced, 32 * 1024) {
                prop_assert_eq!(output.len() as u64, announced);
                prop_assert!(announced <= 32 * 1024);
            }
        }
    }
}
