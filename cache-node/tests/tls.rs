//! TLS on the client port: certificates made at test time with rcgen, a
//! real rustls client, replies compared byte for byte.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use cache_node::Node;
use cache_node::config::Config;
use clap::Parser as _;
use common::encode;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

const WAIT: Duration = Duration::from_secs(5);

/// A certificate authority that signs leaf certificates.
struct Ca {
    pem: String,
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    fn sign(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (Certificate, KeyPair) {
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert, key)
    }

    fn server(&self) -> (Certificate, KeyPair) {
        self.sign(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    fn client(&self) -> (Certificate, KeyPair) {
        self.sign(&["client.test"], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A fresh directory for one test's files, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tidecache-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A CA, the node's certificate signed by it, and the files for both.
struct Setup {
    dir: Dir,
    ca: Ca,
    cert: String,
    key: String,
    ca_file: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = Dir::new();
        let ca = Ca::new("Tidecache test CA");
        let (cert, key) = ca.server();
        let cert = dir.write("server.pem", cert.pem());
        let key = dir.write("server.key", key.serialize_pem());
        let ca_file = dir.write("ca.pem", &ca.pem);
        Setup {
            dir,
            ca,
            cert,
            key,
            ca_file,
        }
    }

    /// `--tls-port 0 --port 0` (TLS only, on a free port) with this
    /// certificate and `extra` flags.
    async fn start(&self, extra: &[&str]) -> anyhow::Result<Node> {
        start_with(&self.cert, &self.key, extra).await
    }
}

async fn start_with(cert: &str, key: &str, extra: &[&str]) -> anyhow::Result<Node> {
    let mut argv = vec!["cache-node"];
    if !extra.contains(&"--port") {
        argv.extend(["--port", "0"]);
    }
    argv.extend([
        "--bind",
        "127.0.0.1",
        "--shutdown-timeout",
        "1",
        "--tls-port",
        "0",
        "--tls-cert-file",
        cert,
        "--tls-key-file",
        key,
    ]);
    argv.extend_from_slice(extra);
    let config = Config::try_parse_from(argv)?.resolve()?;
    Node::start(config).await
}

/// A client that trusts `ca`, presenting `identity` when given.
fn connector(ca: &Ca, identity: Option<&(Certificate, KeyPair)>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![cert.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .unwrap(),
    };
    TlsConnector::from(Arc::new(config))
}

async fn tls_connect(node: &Node, connector: &TlsConnector) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(node.tls_addr.expect("TLS is on")).await?;
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .expect("handshake hung")
        .map(Tls)
}

/// A TLS connection speaking raw RESP, like `common::Conn`.
struct Tls(TlsStream<TcpStream>);

impl Tls {
    async fn send(&mut self, args: &[&str]) {
        self.0.write_all(&encode(args)).await.unwrap();
        self.0.flush().await.unwrap();
    }

    async fn expect(&mut self, expected: &str) {
        let mut buf = vec![0u8; expected.len()];
        tokio::time::timeout(WAIT, self.0.read_exact(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {expected:?}"))
            .unwrap_or_else(|e| panic!("connection failed waiting for {expected:?}: {e}"));
        assert_eq!(String::from_utf8_lossy(&buf), expected);
    }

    async fn call(&mut self, args: &[&str], expected: &str) {
        self.send(args).await;
        self.expect(expected).await;
    }
}

/// The node refuses this client: either the handshake fails, or (TLS 1.3,
/// where the client finishes before the server has checked its
/// certificate) the first read ends in an alert or EOF, never a reply.
async fn assert_refused(node: &Node, connector: &TlsConnector) {
    let Ok(mut c) = tls_connect(node, connector).await else {
        return;
    };
    let _ = c.0.write_all(&encode(&["PING"])).await;
    let _ = c.0.flush().await;
    let mut buf = [0u8; 64];
    match tokio::time::timeout(WAIT, c.0.read(&mut buf))
        .await
        .expect("no answer at all")
    {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!(
            "refused client was served: {:?}",
            String::from_utf8_lossy(&buf[..n])
        ),
    }
}

/// Waits until the node has counted `n` failed handshakes: the server side
/// may see the failure a moment after the client does.
async fn assert_handshake_failures(node: &Node, n: u64) {
    let failures = || {
        node.shared
            .stats
            .tls_handshake_failures
            .load(Ordering::Relaxed)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while failures() < n && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(failures(), n);
}

#[tokio::test]
async fn commands_run_over_tls() {
    let s = Setup::new();
    let node = s.start(&[]).await.unwrap();
    assert_eq!(
        node.addr,
        node.tls_addr.unwrap(),
        "--port 0 with TLS: TLS only"
    );
    let mut c = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    c.call(&["PING"], "+PONG\r\n").await;
    c.call(&["SET", "k", "v"], "+OK\r\n").await;
    c.call(&["GET", "k"], "$1\r\nv\r\n").await;
    c.call(&["GET", "missing"], "$-1\r\n").await;
    // A pipeline in one write: replies in order.
    c.0.write_all(&[encode(&["INCR", "n"]), encode(&["INCR", "n"])].concat())
        .await
        .unwrap();
    c.0.flush().await.unwrap();
    c.expect(":1\r\n:2\r\n").await;
    node.shutdown().await;
}

#[tokio::test]
async fn tls_port_runs_beside_the_plain_port() {
    let s = Setup::new();
    // A port the OS just handed out and took back (`--port 0` would mean
    // TLS only here); another test may grab it in between, so a few tries.
    let mut tries = 0;
    let (node, port) = loop {
        let port = common::free_port().to_string();
        match s.start(&["--port", &port]).await {
            Ok(node) => break (node, port),
            Err(e) if tries < 5 => {
                tries += 1;
                eprintln!("port {port} taken ({e}), trying another");
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(node.addr.port().to_string(), port);
    assert_ne!(node.tls_addr.unwrap(), node.addr);
    let mut tls = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    let mut plain = common::Conn::to(&node).await;
    tls.call(&["SET", "k", "over tls"], "+OK\r\n").await;
    plain.call(&["GET", "k"], "$8\r\nover tls\r\n").await;
    node.shutdown().await;
}

#[tokio::test]
async fn auth_clients_yes_requires_a_certificate_from_the_ca() {
    let s = Setup::new();
    // `yes` is the default once a CA is given.
    let node = s.start(&["--tls-ca-cert-file", &s.ca_file]).await.unwrap();
    assert_refused(&node, &connector(&s.ca, None)).await;
    assert_handshake_failures(&node, 1).await;

    let other = Ca::new("Someone else's CA");
    assert_refused(&node, &connector(&s.ca, Some(&other.client()))).await;
    assert_handshake_failures(&node, 2).await;

    let mut c = tls_connect(&node, &connector(&s.ca, Some(&s.ca.client())))
        .await
        .unwrap();
    c.call(&["PING"], "+PONG\r\n").await;
    c.call(&["SET", "a", "1"], "+OK\r\n").await;
    c.call(&["GET", "a"], "$1\r\n1\r\n").await;
    node.shutdown().await;
}

#[tokio::test]
async fn auth_clients_optional_verifies_only_presented_certificates() {
    let s = Setup::new();
    let node = s
        .start(&[
            "--tls-ca-cert-file",
            &s.ca_file,
            "--tls-auth-clients",
            "optional",
        ])
        .await
        .unwrap();
    let mut anonymous = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    anonymous.call(&["PING"], "+PONG\r\n").await;
    let mut known = tls_connect(&node, &connector(&s.ca, Some(&s.ca.client())))
        .await
        .unwrap();
    known.call(&["PING"], "+PONG\r\n").await;

    let other = Ca::new("Someone else's CA");
    assert_refused(&node, &connector(&s.ca, Some(&other.client()))).await;
    assert_handshake_failures(&node, 1).await;
    node.shutdown().await;
}

#[tokio::test]
async fn auth_clients_no_serves_clients_without_certificates() {
    let s = Setup::new();
    let node = s
        .start(&["--tls-ca-cert-file", &s.ca_file, "--tls-auth-clients", "no"])
        .await
        .unwrap();
    let mut c = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    c.call(&["PING"], "+PONG\r\n").await;
    node.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_node_gives_up() {
    let s = Setup::new();
    let node = s.start(&[]).await.unwrap();
    let stranger = Ca::new("Someone else's CA");
    assert!(
        tls_connect(&node, &connector(&stranger, None))
            .await
            .is_err()
    );
    // The node saw the client's alert, and goes on serving.
    assert_handshake_failures(&node, 1).await;
    let mut c = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    c.call(&["PING"], "+PONG\r\n").await;
    node.shutdown().await;
}

#[tokio::test]
async fn plain_text_on_the_tls_port_gets_no_service() {
    let s = Setup::new();
    let node = s.start(&[]).await.unwrap();
    let client = connector(&s.ca, None);
    let mut before = tls_connect(&node, &client).await.unwrap();
    before.call(&["SET", "k", "v"], "+OK\r\n").await;

    for request in [encode(&["PING"]), b"PING\r\n".to_vec()] {
        let mut plain = TcpStream::connect(node.tls_addr.unwrap()).await.unwrap();
        plain.write_all(&request).await.unwrap();
        let mut got = Vec::new();
        // At most a TLS alert, then EOF (or a reset).
        let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut got))
            .await
            .expect("the node kept a plain-text client open");
        let text = String::from_utf8_lossy(&got);
        assert!(
            !text.contains("PONG") && !text.contains("ERR"),
            "plain text was served: {text:?}"
        );
    }
    assert_handshake_failures(&node, 2).await;

    before.call(&["GET", "k"], "$1\r\nv\r\n").await;
    let mut after = tls_connect(&node, &client).await.unwrap();
    after.call(&["GET", "k"], "$1\r\nv\r\n").await;
    node.shutdown().await;
}

#[tokio::test]
async fn quit_ends_with_close_notify() {
    let s = Setup::new();
    let node = s.start(&[]).await.unwrap();
    let mut c = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    c.call(&["QUIT"], "+OK\r\n").await;
    // rustls reports a close without `close_notify` as an error; a clean
    // close reads as EOF.
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(WAIT, c.0.read(&mut buf))
        .await
        .expect("node did not close")
        .expect("close without close_notify");
    assert_eq!(n, 0);
    node.shutdown().await;
}

#[tokio::test]
async fn a_large_reply_reaches_a_slow_reader_whole() {
    let s = Setup::new();
    let node = s.start(&[]).await.unwrap();
    let mut c = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    let value = "x".repeat(8 << 20);
    c.call(&["SET", "big", &value], "+OK\r\n").await;
    c.send(&["GET", "big"]).await;
    // Reading slowly keeps the socket full, so the node's last write of the
    // reply is likely to end with records still inside rustls, which only
    // leave if the node flushes them while it waits for the next request
    // (`tls::tests` checks that deterministically, over a pipe).
    let expected = format!("${}\r\n{value}\r\n", value.len()).into_bytes();
    let mut got = Vec::with_capacity(expected.len());
    let mut chunk = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < expected.len() {
        let n = tokio::time::timeout_at(deadline, c.0.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!("reply stalled at {} of {} bytes", got.len(), expected.len())
            })
            .unwrap();
        assert_ne!(n, 0, "connection closed mid-reply");
        got.extend_from_slice(&chunk[..n]);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(got == expected, "the reply differs");
    c.call(&["PING"], "+PONG\r\n").await;
    node.shutdown().await;
}

/// The SEC1 (`EC PRIVATE KEY`) form of a PKCS#8 EC key: the ECPrivateKey
/// inside the PKCS#8 envelope's OCTET STRING.
fn sec1_pem(key: &KeyPair) -> String {
    fn tlv(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let (tag, first) = (der[0], der[1]);
        let (len, start) = if first < 0x80 {
            (first as usize, 2)
        } else {
            let n = (first & 0x7f) as usize;
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| acc << 8 | *b as usize);
            (len, 2 + n)
        };
        (tag, &der[start..start + len], &der[start + len..])
    }
    let pkcs8 = key.serialize_der();
    let (_, body, _) = tlv(&pkcs8);
    let (_, _version, rest) = tlv(body);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, sec1, _) = tlv(rest);
    assert_eq!(tag, 0x04, "privateKey is an OCTET STRING");
    let b64 = base64::engine::general_purpose::STANDARD.encode(sec1);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN EC PRIVATE KEY-----\n{}\n-----END EC PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

#[tokio::test]
async fn ec_keys_load_in_sec1_form() {
    let s = Setup::new();
    let (cert, key) = s.ca.server();
    let cert = s.dir.write("ec.pem", cert.pem());
    let key = s.dir.write("ec.key", sec1_pem(&key));
    let node = start_with(&cert, &key, &[]).await.unwrap();
    let mut c = tls_connect(&node, &connector(&s.ca, None)).await.unwrap();
    c.call(&["PING"], "+PONG\r\n").await;
    node.shutdown().await;
}

/// Starting fails, with an error that names `file` and says `what`.
async fn assert_start_fails(cert: &str, key: &str, extra: &[&str], file: &str, what: &str) {
    let err = match start_with(cert, key, extra).await {
        Ok(_) => panic!("the node started with a bad {file}"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains(file), "error does not name {file}: {err}");
    assert!(err.contains(what), "error does not say {what:?}: {err}");
}

#[tokio::test]
async fn bad_files_stop_the_node_at_start_naming_the_file() {
    let s = Setup::new();
    let missing = s.dir.0.join("nowhere.key");
    let missing = missing.to_str().unwrap();
    assert_start_fails(&s.cert, missing, &[], missing, "cannot read").await;
    assert_start_fails(missing, &s.key, &[], missing, "cannot read").await;

    let junk = s.dir.write("junk.key", "this is not a key\n");
    assert_start_fails(&s.cert, &junk, &[], &junk, "no private key").await;

    let broken = s.dir.write(
        "broken.key",
        "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
    );
    assert_start_fails(&s.cert, &broken, &[], &broken, "malformed PEM").await;

    // Well-formed PEM around bytes that are no key.
    let hollow = s.dir.write(
        "hollow.key",
        "-----BEGIN PRIVATE KEY-----\naGVsbG8gd29ybGQ=\n-----END PRIVATE KEY-----\n",
    );
    assert_start_fails(&s.cert, &hollow, &[], &hollow, "not a usable private key").await;

    // A real key that belongs to another certificate.
    let (_, other_key) = s.ca.server();
    let other_key = s.dir.write("other.key", other_key.serialize_pem());
    assert_start_fails(&s.cert, &other_key, &[], &other_key, "does not go with").await;

    // A key where the certificate should be.
    assert_start_fails(&s.key, &s.key, &[], &s.key, "no CERTIFICATE").await;

    let ca = ["--tls-ca-cert-file", junk.as_str()];
    assert_start_fails(&s.cert, &s.key, &ca, &junk, "no CA certificate").await;
    let hollow_ca = s.dir.write(
        "hollow-ca.pem",
        "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
    );
    let ca = ["--tls-ca-cert-file", hollow_ca.as_str()];
    assert_start_fails(&s.cert, &s.key, &ca, &hollow_ca, "not a usable CA").await;
}

/// Runs the real binary with `env` (setting variables in this process
/// would need `unsafe`) and returns its exit status and stderr.
fn run_node(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cache-node"))
        .env_clear()
        .envs([("TIDECACHE_PORT", "0"), ("TIDECACHE_BIND", "127.0.0.1")])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tls_flags_come_from_the_environment_and_bad_files_exit_the_node() {
    let s = Setup::new();
    let junk = s.dir.write("junk.key", "this is not a key\n");
    let (status, stderr) = run_node(&[
        ("TIDECACHE_TLS_PORT", "0"),
        ("TIDECACHE_TLS_CERT_FILE", &s.cert),
        ("TIDECACHE_TLS_KEY_FILE", &junk),
    ]);
    assert!(!status.success());
    assert!(stderr.contains(&junk), "{stderr}");

    let (status, stderr) = run_node(&[
        ("TIDECACHE_TLS_PORT", "0"),
        ("TIDECACHE_TLS_CERT_FILE", &s.cert),
        ("TIDECACHE_TLS_KEY_FILE", &s.key),
        ("TIDECACHE_TLS_AUTH_CLIENTS", "optional"),
    ]);
    assert!(!status.success());
    assert!(stderr.contains("--tls-ca-cert-file"), "{stderr}");

    let (status, stderr) = run_node(&[
        ("TIDECACHE_TLS_PORT", "0"),
        ("TIDECACHE_TLS_CERT_FILE", &s.cert),
        ("TIDECACHE_TLS_KEY_FILE", &s.key),
        ("TIDECACHE_TLS_CA_CERT_FILE", &junk),
    ]);
    assert!(!status.success());
    assert!(stderr.contains(&junk), "{stderr}");
}
