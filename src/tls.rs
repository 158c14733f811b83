//! TLS (rustls): the server's certificate, key and client-certificate CAs,
//! read from the configured files at start and again on SIGHUP. New
//! connections take whatever is current; open ones keep theirs.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

pub use crate::config::TlsFiles;
use crate::config::{AuthClients, Config};

/// The TLS settings connections are accepted with, if TLS is on.
#[derive(Default)]
pub struct Tls {
    current: RwLock<Option<TlsAcceptor>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("on", &self.current.read().is_some())
            .finish()
    }
}

impl Tls {
    /// What new TLS connections are accepted with; `None`: TLS is off.
    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.current.read().clone()
    }

    /// Reads the configured files (if TLS is configured) and uses them for
    /// new connections. On an error nothing changes.
    pub fn load(&self, config: &Config) -> Result<(), String> {
        let Some(files) = config.tls_files() else {
            return Ok(());
        };
        let server = server_config(&files)?;
        *self.current.write() = Some(TlsAcceptor::from(server));
        Ok(())
    }
}

/// A rustls server configuration from these files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, String> {
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("tls_key_file {}: {e}", files.key.display()))?;
    let builder = ServerConfig::builder();
    let builder = match (&files.ca, files.auth_clients) {
        (_, AuthClients::No) => builder.with_no_client_auth(),
        (None, _) => {
            return Err("tls_auth_clients yes or optional needs tls_ca_cert_file".into());
        }
        (Some(ca), auth) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("tls_ca_cert_file {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder(Arc::new(roots));
            let verifier = match auth {
                AuthClients::Optional => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
                .build()
                .map_err(|e| format!("tls_ca_cert_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("tls_cert_file {}: {e}", files.cert.display()))?;
    Ok(Arc::new(config))
}

/// Every certificate in a PEM file; at least one.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = || format!("{}", path.display());
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", what()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", what()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", what()));
    }
    Ok(certs)
}
