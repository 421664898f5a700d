//! TLS on the client port: loads the certificate, key and CA files named by
//! the `--tls-*` flags into a rustls acceptor (ring provider), once at start,
//! so a bad file stops the node before it listens; and the stream wrapper
//! the per-connection loop reads and writes through.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};

use crate::config::{AuthClients, Config};

/// Why the TLS configuration cannot be used. Each names the file at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("--tls-port needs --tls-cert-file and --tls-key-file")]
    MissingFiles,
    #[error("cannot read {}: {error}", .path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{}: malformed PEM: {error}", .path.display())]
    Pem { path: PathBuf, error: pem::Error },
    #[error("{}: no {what} found", .path.display())]
    Empty { path: PathBuf, what: &'static str },
    #[error("{}: not a usable private key: {error}", .path.display())]
    Key { path: PathBuf, error: rustls::Error },
    #[error("{} does not go with {}: {error}", .cert.display(), .key.display())]
    Pair {
        cert: PathBuf,
        key: PathBuf,
        error: rustls::Error,
    },
    #[error("{}: not a usable CA certificate: {error}", .path.display())]
    Ca { path: PathBuf, error: rustls::Error },
    #[error("{}: cannot verify client certificates with it: {error}", .path.display())]
    Verifier {
        path: PathBuf,
        error: rustls::server::VerifierBuilderError,
    },
    #[error("--tls-auth-clients yes or optional needs --tls-ca-cert-file")]
    MissingCa,
    #[error("TLS setup: {0}")]
    Rustls(rustls::Error),
}

/// The acceptor for `--tls-port`, or `None` when TLS is off.
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, Error> {
    if config.tls_port.is_none() {
        return Ok(None);
    }
    let (Some(cert_path), Some(key_path)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Err(Error::MissingFiles);
    };
    let chain = certificates(cert_path, "CERTIFICATE section")?;
    let key = private_key(key_path)?;
    // A CA that is given is checked even under `--tls-auth-clients no`: a
    // broken file is better reported at start than when someone turns
    // client authentication on.
    let roots = match &config.tls_ca_cert_file {
        Some(path) => Some((path, roots(path)?)),
        None => None,
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Parsing the key here, rather than leaving it to `with_single_cert`,
    // tells a bad key file apart from a key that belongs to another cert.
    provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|error| Error::Key {
            path: key_path.clone(),
            error,
        })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(Error::Rustls)?;
    let builder = match (config.auth_clients(), roots) {
        (AuthClients::No, _) => builder.with_no_client_auth(),
        (_, None) => return Err(Error::MissingCa),
        (auth, Some((path, roots))) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == AuthClients::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|error| Error::Verifier {
                path: path.clone(),
                error,
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|error| Error::Pair {
            cert: cert_path.clone(),
            key: key_path.clone(),
            error,
        })?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|error| Error::Read {
        path: path.into(),
        error,
    })
}

/// Every certificate in a PEM file, in order; other sections are skipped.
fn certificates(path: &Path, what: &'static str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Error::Pem {
            path: path.into(),
            error,
        })?;
    if certs.is_empty() {
        return Err(Error::Empty {
            path: path.into(),
            what,
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file: PKCS#8 (`PRIVATE KEY`), RSA
/// (`RSA PRIVATE KEY`) or EC (`EC PRIVATE KEY`).
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|error| match error {
        pem::Error::NoItemsFound => Error::Empty {
            path: path.into(),
            what: "private key (PKCS#8, RSA or EC PEM section)",
        },
        error => Error::Pem {
            path: path.into(),
            error,
        },
    })
}

fn roots(path: &Path) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "CA certificate (CERTIFICATE section)")? {
        roots.add(cert).map_err(|error| Error::Ca {
            path: path.into(),
            error,
        })?;
    }
    Ok(roots)
}

/// A TLS connection as the per-connection loop sees it. The loop writes a
/// batch of replies with `write_all` and then waits for input without
/// flushing; over TLS, `write_all` can return while rustls still holds the
/// last records (the socket was full), and nothing would send them until
/// the client wrote again, which a client waiting for its reply never does.
/// So every read first pushes pending records out; a read is always being
/// awaited while the connection is idle.
pub struct Stream<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Stream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        // Pending only means the socket is still full; the waker is then
        // registered for writability too, so the task comes back to finish.
        if let Poll::Ready(Err(e)) = Pin::new(&mut self.0).poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls_pki_types::{PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::TlsConnector;
    use tokio_rustls::rustls::ClientConfig;

    use super::*;

    /// A server and a client TLS stream joined by an in-memory pipe that
    /// holds only `capacity` bytes, so tests control when it is full.
    async fn pair(
        capacity: usize,
    ) -> (
        tokio_rustls::server::TlsStream<tokio::io::DuplexStream>,
        tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
    ) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let (server_io, client_io) = tokio::io::duplex(capacity);
        let name = ServerName::try_from("localhost").unwrap();
        let (server, client) = tokio::join!(
            TlsAcceptor::from(Arc::new(server)).accept(server_io),
            TlsConnector::from(Arc::new(client)).connect(name, client_io),
        );
        (server.unwrap(), client.unwrap())
    }

    #[tokio::test]
    async fn waiting_for_input_sends_what_write_all_left_in_rustls() {
        let (server, mut client) = pair(16 * 1024).await;
        let mut server = Stream(server);
        let reply = vec![b'x'; 48 * 1024];
        // The pipe takes 16 KiB; rustls keeps the rest and says "written".
        tokio::time::timeout(Duration::from_secs(5), server.write_all(&reply))
            .await
            .expect("write_all waits for the pipe")
            .unwrap();
        // As the connection loop does next: wait for the next request.
        let next_request = async {
            let mut buf = [0u8; 16];
            let n = server.read(&mut buf).await.unwrap();
            buf[..n].to_vec()
        };
        let client_side = async {
            let mut got = vec![0u8; reply.len()];
            tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
                .await
                .expect("the end of the reply stayed inside the server's rustls")
                .unwrap();
            client.write_all(b"PING\r\n").await.unwrap();
            client.flush().await.unwrap();
            got
        };
        let (request, got) = tokio::join!(next_request, client_side);
        assert!(got == reply);
        assert_eq!(request, b"PING\r\n");
    }
}
