//! TLS (rustls) for receivers (`ServerTls`) and for HTTP clients
//! (`ClientTls`), with Vector's option names.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

use crate::component::{Context, Error};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// As in Vector, TLS is off unless enabled.
    #[serde(default)]
    pub enabled: bool,
    /// The server's certificate chain, PEM.
    pub crt_file: Option<PathBuf>,
    /// Its private key, PEM (unencrypted).
    pub key_file: Option<PathBuf>,
}

impl ServerTls {
    pub fn check(&self) -> Result<(), String> {
        if self.enabled && (self.crt_file.is_none() || self.key_file.is_none()) {
            return Err("`tls.enabled` needs `tls.crt_file` and `tls.key_file`".into());
        }
        Ok(())
    }

    /// The acceptor, or `None` when TLS is off. Reads the files now, so a bad
    /// certificate is a start-up error.
    pub fn acceptor(&self) -> Result<Option<TlsAcceptor>, Error> {
        let (true, Some(crt_file), Some(key_file)) = (self.enabled, &self.crt_file, &self.key_file) else { return Ok(None) };
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(crt_file)
            .and_then(|certs| certs.collect::<Result<_, _>>())
            .with_context(|| format!("tls.crt_file {}", crt_file.display()))?;
        if certs.is_empty() {
            return Err(Error::new(format!("tls.crt_file {} holds no certificate", crt_file.display())));
        }
        let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| format!("tls.key_file {}", key_file.display()))?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("tls: no protocol version")?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("tls: the certificate and key do not work together")?;
        // h2 for gRPC (and HTTP/2 clients), http/1.1 for the rest.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(TlsAcceptor::from(Arc::new(config))))
    }
}

/// For `https://` endpoints: the receiver's certificate is checked against
/// Mozilla's roots (built in) and `ca_file`, if given.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTls {
    /// A PEM file of CA certificates to trust too (a private CA, a self-signed receiver).
    pub ca_file: Option<PathBuf>,
}

impl ClientTls {
    pub fn ca_pem(&self) -> Result<Option<Vec<u8>>, Error> {
        let Some(path) = &self.ca_file else { return Ok(None) };
        std::fs::read(path).map(Some).with_context(|| format!("tls.ca_file {}", path.display()))
    }
}
