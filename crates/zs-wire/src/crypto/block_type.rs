//! The `cipher` trait boilerplate shared by the block ciphers written here (MARS, Twofish).

/// Defines a public block-cipher type around a key schedule `$keys` (which has
/// `expand(&[u8]) -> Self`, `encrypt(&self, &[u8; 16]) -> [u8; 16]` and `decrypt`), with the
/// RustCrypto `cipher` 0.5 traits. `accepts = f` makes `KeyInit::new_from_slice` take every key
/// length `f(len)` allows (variable-key types); without it only the nominal size is taken.
/// Paths in the expansion resolve at the call site, which imports the `cipher` items used here.
macro_rules! block_cipher_type {
    ($(#[$doc:meta])* $name:ident, $keys:ty, $key_size:ty, $alg:literal $(, accepts = $valid:path)?) => {
        impl KeyInit for $name {
            fn new(key: &Key<Self>) -> Self {
                Self {
                    keys: <$keys>::expand(key),
                }
            }

            $(
                fn new_from_slice(key: &[u8]) -> Result<Self, InvalidLength> {
                    if $valid(key.len()) {
                        Ok(Self {
                            keys: <$keys>::expand(key),
                        })
                    } else {
                        Err(InvalidLength)
                    }
                }
            )?
        }

        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name {
            keys: $keys,
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

pub(crate) use block_cipher_type;
