//! Self-signed certificates made by `openssl` the way private mirrors make them, and a
//! small HTTPS server (rustls) that serves fixed files with one of them. Loopback only.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::tools::require_tool;

/// A certificate and its key, as PEM files.
pub struct Cert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a certificate in `dir` with exactly the command, `openssl req -x509
/// -newkey rsa:2048 -nodes -subj /CN=… -addext subjectAltName=…` (OpenSSL marks it
/// `CA:TRUE`). `None` when openssl is not installed (outside CI the caller skips; in
/// CI it fails: see [`super::tools::require_tool`]).
pub fn openssl_cert(dir: &Path, name: &str, cn: &str, san: &str) -> Option<Cert> {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    let subj = format!("/CN={cn}");
    let san = format!("subjectAltName={san}");
    let openssl = require_tool("openssl")?;
    let out = Command::new(openssl)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", &subj,
        ])
        .args(["-addext", &san, "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let out = out.expect("run openssl");
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(Cert { cert, key })
}

/// Concatenates PEM files into one bundle, as `SSL_CERT_FILE` names.
pub fn bundle(path: &Path, certs: &[&Path]) -> PathBuf {
    let mut all = Vec::new();
    for c in certs {
        all.extend(std::fs::read(c).expect("read certificate"));
    }
    std::fs::write(path, all).expect("write bundle");
    path.to_path_buf()
}

/// An HTTPS/1.1 server on 127.0.0.1 that answers `GET path` with a fixed body (404 for
/// anything else) and closes each connection after one answer. Stops on drop.
pub struct TlsServer {
    addr: SocketAddr,
    served: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl TlsServer {
    pub fn start(cert: &Cert, files: &[(&str, Vec<u8>)]) -> TlsServer {
        let chain = vec![CertificateDer::from_pem_file(&cert.cert).expect("certificate")];
        let key = PrivateKeyDer::from_pem_file(&cert.key).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        let config = Arc::new(config);
        let files: Arc<HashMap<String, Vec<u8>>> = Arc::new(
            files
                .iter()
                .map(|(p, b)| ((*p).to_owned(), b.clone()))
                .collect(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let served = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (served.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(tcp) = conn else { continue };
                let (config, files, log) = (config.clone(), files.clone(), log.clone());
                thread::spawn(move || serve(tcp, config, &files, &log));
            }
        });
        TlsServer { addr, served, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The paths answered, in order (after a completed handshake).
    pub fn served(&self) -> Vec<String> {
        self.served.lock().unwrap().clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<ServerConfig>,
    files: &HashMap<String, Vec<u8>>,
    log: &Mutex<Vec<String>>,
) {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        // A refused certificate ends here: the client aborts the handshake.
        match tls.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
    log.lock().unwrap().push(path.clone());
    let (status, body) = match files.get(&path) {
        Some(body) => ("200 OK", body.clone()),
        None => ("404 Not Found", b"not found\n".to_vec()),
    };
    let _ = write!(
        tls,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tls.write_all(&body);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}
