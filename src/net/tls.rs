//! TLS for the HTTP sources (rustls), with Vector's option names.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
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

/// Accepts TCP connections and hands on those whose TLS handshake succeeded;
/// handshakes run apart, so a slow client holds up no one.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                    _ = tx.closed() => return,
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The accept loop ended: no connection will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
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
