//! An encrypted byte stream on its own: the zs handshake and record layer over any transport,
//! without the command protocol on top.
//!
//! [`Server`](crate::Server) and [`Client`](crate::Client) use this for every connection.
//! It is public for layers that need a secure pipe but not RPC — the XNat link, StableIO
//! links — and for applications with their own protocol.
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use zs::{EncryptedStream, Security, StaticKeypair};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let (client_io, server_io) = tokio::io::duplex(64 * 1024);
//! let keypair = StaticKeypair::generate()?;
//! let security = Security::default();
//! let server = tokio::spawn({
//!     let security = security.clone();
//!     async move {
//!         let mut stream = EncryptedStream::accept(server_io, &security, &keypair).await?;
//!         let mut greeting = [0u8; 5];
//!         stream.read_exact(&mut greeting).await?;
//!         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(greeting)
//!     }
//! });
//! let mut stream = EncryptedStream::connect(client_io, &security).await?;
//! stream.write_all(b"hello").await?;
//! stream.flush().await?;
//! assert_eq!(&server.await?.map_err(|e| e.to_string())?, b"hello");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use zeroize::Zeroizing;
use zs_wire::crypto::record::Suite;
use zs_wire::handshake::{ClientHandshake, Fingerprint, Handshake, ServerHandshake, StaticKeypair};
use zs_wire::stable::{self, Role};

use crate::transport::secure::SecureStream;

use crate::transport::security::{Security, SecurityError, run_handshake};

/// A transport after the zs handshake: everything written is sealed into AEAD records,
/// everything read was opened and authenticated. Keys rotate as [`Security`] says.
pub struct EncryptedStream<IO> {
    stream: SecureStream<IO>,
    suite: Suite,
    peer_fingerprint: Fingerprint,
    client_token_ok: bool,
    stable_link: bool,
    link_secret: Zeroizing<[u8; 32]>,
}

impl<IO> std::fmt::Debug for EncryptedStream<IO> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedStream")
            .field("suite", &self.suite)
            .field("peer_fingerprint", &self.peer_fingerprint)
            .finish_non_exhaustive()
    }
}

impl<IO> EncryptedStream<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    /// Runs the client side of the handshake over `io` (pin, token and suites from
    /// `security`), within [`Security::handshake_timeout`].
    pub async fn connect(io: IO, security: &Security) -> Result<Self, SecurityError> {
        let handshake = ClientHandshake::new(security.client_config())?;
        Self::handshake(io, handshake, security, Role::Client).await
    }

    /// Like [`Self::connect`], for a link that will carry StableIO frames
    /// ([`zs_wire::stable`]; the handshake's first message says so). The client side of
    /// [`ClientBuilder::connect_stable`](crate::ClientBuilder::connect_stable) uses it; it is
    /// public for tools that speak the StableIO link protocol themselves.
    pub async fn connect_stable_link(io: IO, security: &Security) -> Result<Self, SecurityError> {
        let mut config = security.client_config();
        config.stable_link = true;
        let handshake = ClientHandshake::new(config)?;
        Self::handshake(io, handshake, security, Role::Client).await
    }

    /// Runs the server side of the handshake over `io`, proving `keypair`. A client without
    /// the configured token gets [`SecurityError::TokenRejected`] here and a closed
    /// connection on its side.
    pub async fn accept(
        io: IO,
        security: &Security,
        keypair: &StaticKeypair,
    ) -> Result<Self, SecurityError> {
        let stream = Self::accept_any_token(io, security, keypair).await?;
        if !stream.client_token_ok {
            return Err(SecurityError::TokenRejected);
        }
        Ok(stream)
    }

    /// Like [`Self::accept`], but a wrong token only clears
    /// [`Self::client_token_ok`], so the server can tell the client why it is refused.
    pub(crate) async fn accept_any_token(
        io: IO,
        security: &Security,
        keypair: &StaticKeypair,
    ) -> Result<Self, SecurityError> {
        let handshake = ServerHandshake::new(security.server_config(keypair.clone()))?;
        Self::handshake(io, handshake, security, Role::Server).await
    }

    async fn handshake<H: Handshake>(
        mut io: IO,
        handshake: H,
        security: &Security,
        role: Role,
    ) -> Result<Self, SecurityError> {
        let timeout = security.handshake_timeout;
        let (outcome, leftover) = tokio::time::timeout(timeout, run_handshake(&mut io, handshake))
            .await
            .map_err(|_| SecurityError::Timeout(timeout))??;
        let link_secret = stable::link_secret(
            role,
            &outcome.send_secret,
            &outcome.receive_secret,
            &outcome.handshake_hash,
        );
        let stream = SecureStream::new(io, &outcome, leftover, security.rekey_policy())?;
        Ok(Self {
            stream,
            suite: outcome.suite,
            peer_fingerprint: outcome.peer_fingerprint(),
            client_token_ok: outcome.client_token_ok,
            stable_link: outcome.stable_link,
            link_secret,
        })
    }
}

impl<IO> EncryptedStream<IO> {
    /// The negotiated record suite.
    pub fn suite(&self) -> Suite {
        self.suite
    }

    /// The peer's static key fingerprint (the server's on a client; the client's, usually
    /// ephemeral, on a server).
    pub fn peer_fingerprint(&self) -> Fingerprint {
        self.peer_fingerprint
    }

    /// Server side: whether the client presented the configured token (or none is set).
    pub(crate) fn client_token_ok(&self) -> bool {
        self.client_token_ok
    }

    /// Server side: the client asked for a StableIO link in its handshake.
    pub(crate) fn stable_link(&self) -> bool {
        self.stable_link
    }

    /// Key material only this connection's two ends know, derived from the handshake's
    /// traffic secrets (for StableIO's resume proofs).
    pub(crate) fn link_secret(&self) -> &[u8; 32] {
        &self.link_secret
    }

    /// A channel binding: 32 bytes unique to this connection and known only to its two
    /// ends (HKDF of the handshake's traffic secrets). Prove knowledge of a shared secret
    /// with a MAC over it instead of sending the secret: the proof is worthless on any other
    /// connection, including one a man in the middle opens to the real peer.
    pub fn channel_binding(&self) -> [u8; 32] {
        *self.link_secret
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for EncryptedStream<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for EncryptedStream<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
