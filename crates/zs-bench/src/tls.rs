//! The rustls peer shared by `zs-bench handshake` and `zs-bench stream`: TLS 1.3 with X25519
//! and AES-128-GCM only, a self-signed ECDSA P-256 certificate made at start by rcgen and
//! verified by the client, no resumption (every connection a full handshake, as every
//! zserver one is).

use std::sync::Arc;

use anyhow::Context as _;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Which rustls crypto provider does the work.
#[derive(Debug, Clone, Copy)]
pub enum Provider {
    /// `ring`: what `zs-bench handshake` has always measured against.
    Ring,
    /// `aws-lc-rs`: rustls's default provider, the one a user gets without choosing; the
    /// fastest AES-GCM rustls offers, and the library zserver's record layer uses too.
    AwsLc,
}

impl Provider {
    /// The provider's name as printed in reports.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Ring => "ring",
            Provider::AwsLc => "aws-lc-rs",
        }
    }

    fn provider(self) -> CryptoProvider {
        match self {
            Provider::Ring => CryptoProvider {
                cipher_suites: vec![rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256],
                kx_groups: vec![rustls::crypto::ring::kx_group::X25519],
                ..rustls::crypto::ring::default_provider()
            },
            Provider::AwsLc => CryptoProvider {
                cipher_suites: vec![
                    rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256,
                ],
                kx_groups: vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
                ..rustls::crypto::aws_lc_rs::default_provider()
            },
        }
    }
}

/// A matching acceptor and connector: the connector trusts only the acceptor's certificate,
/// issued for `localhost`.
pub fn configs(provider: Provider) -> anyhow::Result<(TlsAcceptor, TlsConnector)> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .context("cannot make a self-signed certificate")?;
    let cert: CertificateDer<'static> = certified.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let provider = Arc::new(provider.provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)?;
    server.send_tls13_tickets = 0;
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.resumption = rustls::client::Resumption::disabled();
    Ok((
        TlsAcceptor::from(Arc::new(server)),
        TlsConnector::from(Arc::new(client)),
    ))
}
