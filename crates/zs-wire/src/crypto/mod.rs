//! Cryptography: block ciphers, AEAD record suites and SHA-3 (being built).
