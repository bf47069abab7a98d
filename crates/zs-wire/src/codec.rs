//! Little-endian primitives over byte slices, shared by every decoder in this crate.
//!
//! Decoders read from a [`Reader`] that never panics: every read checks the remaining length
//! first and returns [`UnexpectedEnd`] instead. Lengths read from the wire are `u32` and are
//! checked against the bytes actually present *before* anything is allocated, so a peer that
//! announces 4 GiB gets an error, not an allocation.

/// The input ended before a complete value could be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unexpected end of input")]
pub struct UnexpectedEnd;

/// A cursor over a byte slice with bounds-checked little-endian reads.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

macro_rules! read_le {
    ($($name:ident -> $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Reads a little-endian `", stringify!($ty), "`.")]
            pub fn $name(&mut self) -> Result<$ty, UnexpectedEnd> {
                let bytes = self.take_array::<{ std::mem::size_of::<$ty>() }>()?;
                Ok(<$ty>::from_le_bytes(bytes))
            }
        )*
    };
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    /// Offset of the next byte to read, from the start of the input.
    pub fn position(&self) -> usize {
        self.position
    }

    /// Takes the next `len` bytes.
    pub fn take(&mut self, len: usize) -> Result<&'a [u8], UnexpectedEnd> {
        if len > self.remaining() {
            return Err(UnexpectedEnd);
        }
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    /// Takes everything that is left.
    pub fn take_rest(&mut self) -> &'a [u8] {
        let slice = &self.bytes[self.position..];
        self.position = self.bytes.len();
        slice
    }

    /// Takes the next `N` bytes as an array.
    pub fn take_array<const N: usize>(&mut self) -> Result<[u8; N], UnexpectedEnd> {
        let slice = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(slice);
        Ok(array)
    }

    read_le! {
        read_u8 -> u8, read_i8 -> i8,
        read_u16 -> u16, read_i16 -> i16,
        read_u32 -> u32, read_i32 -> i32,
        read_u64 -> u64, read_i64 -> i64,
        read_f32 -> f32, read_f64 -> f64,
    }

    /// Reads a `u32` length prefix and then that many bytes, failing before any allocation if
    /// the input holds fewer bytes than announced.
    pub fn read_len_prefixed(&mut self) -> Result<&'a [u8], UnexpectedEnd> {
        let len = self.read_u32()?;
        self.take(len as usize)
    }

    /// Reads a `u8` length prefix and then that many bytes (names, tokens).
    pub fn read_u8_prefixed(&mut self) -> Result<&'a [u8], UnexpectedEnd> {
        let len = self.read_u8()?;
        self.take(usize::from(len))
    }

    /// Reads a `u16` length prefix and then that many bytes (messages).
    pub fn read_u16_prefixed(&mut self) -> Result<&'a [u8], UnexpectedEnd> {
        let len = self.read_u16()?;
        self.take(usize::from(len))
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
}

/// Appends a `u32` length prefix. Fails if `len` does not fit in 32 bits.
pub fn put_len(out: &mut Vec<u8>, len: usize) -> Result<(), LengthOverflow> {
    let len = u32::try_from(len).map_err(|_| LengthOverflow { len: len as u64 })?;
    out.extend_from_slice(&len.to_le_bytes());
    Ok(())
}

/// A length does not fit the wire's 32-bit length field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("length {len} does not fit in a 32-bit length field")]
pub struct LengthOverflow {
    /// The length that was too large.
    pub len: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_little_endian_and_stops_at_the_end() {
        let mut reader = Reader::new(&[0x01, 0x02, 0x03, 0x04, 0x05]);
        assert_eq!(reader.read_u32(), Ok(0x0403_0201));
        assert_eq!(reader.read_u16(), Err(UnexpectedEnd));
        assert_eq!(reader.read_u8(), Ok(5));
        assert_eq!(reader.remaining(), 0);
    }

    #[test]
    fn short_prefixes_are_bounded_by_the_input() {
        let mut reader = Reader::new(&[2, b'a', b'b', 3, 0, b'x']);
        assert_eq!(reader.read_u8_prefixed(), Ok(&b"ab"[..]));
        assert_eq!(reader.read_u16_prefixed(), Err(UnexpectedEnd));
        let mut reader = Reader::new(&[1, 0, b'x']);
        assert_eq!(reader.read_u16_prefixed(), Ok(&b"x"[..]));
        assert!(reader.is_empty());
    }

    #[test]
    fn length_prefix_larger_than_input_is_an_error_not_an_allocation() {
        let mut reader = Reader::new(&[0xff, 0xff, 0xff, 0xff, 1, 2]);
        assert_eq!(reader.read_len_prefixed(), Err(UnexpectedEnd));
    }
}
