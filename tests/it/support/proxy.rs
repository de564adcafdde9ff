//! A forward proxy on 127.0.0.1 that behaves like Squid with its default rules: plain
//! requests in absolute form (`GET http://host/path`) are forwarded, `CONNECT` is
//! allowed only to the TLS ports and refused (403) to any other port, port 80 included.
//! It records what it was asked. Stops on drop.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What the proxy was asked: the request line and the `Proxy-Authorization` header.
#[derive(Clone, Debug)]
pub struct Asked {
    pub line: String,
    pub auth: Option<String>,
}

/// A forward proxy on 127.0.0.1. `hosts` maps the names (and `host:port`s) the requests
/// carry to where they really are; `tls_ports` are the ports `CONNECT` may reach
/// (Squid's `SSL_ports`).
pub struct SquidLike {
    pub addr: SocketAddr,
    asked: Arc<Mutex<Vec<Asked>>>,
    stop: Arc<AtomicBool>,
}

#[derive(Clone)]
struct Rules {
    hosts: HashMap<String, SocketAddr>,
    tls_ports: Vec<u16>,
}

impl SquidLike {
    pub fn start(hosts: &[(&str, SocketAddr)], tls_ports: &[u16]) -> SquidLike {
        let rules = Rules {
            hosts: hosts.iter().map(|(h, a)| ((*h).to_owned(), *a)).collect(),
            tls_ports: tls_ports.to_vec(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log, halt) = (asked.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let (rules, log) = (rules.clone(), log.clone());
                thread::spawn(move || proxy(client, &rules, &log));
            }
        });
        SquidLike { addr, asked, stop }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn lines(&self) -> Vec<String> {
        self.asked().into_iter().map(|a| a.line).collect()
    }

    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().unwrap().clone()
    }
}

impl Drop for SquidLike {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Reads a request or response head: its first line and its header lines.
fn read_head(r: &mut impl BufRead) -> Option<(String, Vec<String>)> {
    let mut first = String::new();
    if r.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        headers.push(line.trim_end().to_owned());
    }
    Some((first.trim_end().to_owned(), headers))
}

fn refuse(mut client: TcpStream, status: &str) {
    let _ = write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}

/// Serves one client connection: requests in absolute form one after another (each
/// forwarded on a new connection), or one CONNECT tunnel.
fn proxy(client: TcpStream, rules: &Rules, log: &Mutex<Vec<Asked>>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    while let Some((line, headers)) = read_head(&mut reader) {
        let auth = headers.iter().find_map(|h| {
            let (name, value) = h.split_once(':')?;
            name.eq_ignore_ascii_case("proxy-authorization")
                .then(|| value.trim().to_owned())
        });
        log.lock().unwrap().push(Asked {
            line: line.clone(),
            auth,
        });
        let mut parts = line.split(' ');
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if method == "CONNECT" {
            let port = target.rsplit(':').next().and_then(|p| p.parse().ok());
            match (port, rules.hosts.get(target)) {
                (Some(port), Some(to)) if rules.tls_ports.contains(&port) => {
                    tunnel(client, reader, *to);
                }
                // Squid: `http_access deny CONNECT !SSL_ports`.
                _ => refuse(client, "403 Forbidden"),
            }
            return;
        }
        // Absolute form only, as Squid wants it from a client that knows it is
        // talking to a proxy.
        let Some(rest) = target.strip_prefix("http://") else {
            return refuse(client, "400 Bad Request");
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let Some(to) = rules.hosts.get(authority) else {
            return refuse(client, "503 Service Unavailable");
        };
        let mut request = format!("{method} {path} HTTP/1.1\r\n");
        for h in &headers {
            let name = h.split(':').next().unwrap_or("").to_ascii_lowercase();
            if !matches!(
                name.as_str(),
                "proxy-authorization" | "proxy-connection" | "connection"
            ) {
                request.push_str(h);
                request.push_str("\r\n");
            }
        }
        request.push_str("Connection: close\r\n\r\n");
        if !forward(&client, &request, *to, method == "HEAD") {
            return;
        }
    }
}

/// Sends `request` to `to` and relays the answer; false when the client connection
/// cannot go on.
fn forward(client: &TcpStream, request: &str, to: SocketAddr, head: bool) -> bool {
    let Ok(mut upstream) = TcpStream::connect(to) else {
        return false;
    };
    if upstream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut up = BufReader::new(upstream);
    let Some((status, headers)) = read_head(&mut up) else {
        return false;
    };
    let length = headers.iter().find_map(|h| {
        let (name, value) = h.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<u64>().ok())?
    });
    let mut out = client;
    let mut head_out = format!("{status}\r\n");
    for h in headers
        .iter()
        .filter(|h| !h.to_ascii_lowercase().starts_with("connection:"))
    {
        head_out.push_str(h);
        head_out.push_str("\r\n");
    }
    // Without a length the body ends with the connection, to the client too.
    let keep = length.is_some() || head;
    if !keep {
        head_out.push_str("Connection: close\r\n");
    }
    head_out.push_str("\r\n");
    if out.write_all(head_out.as_bytes()).is_err() {
        return false;
    }
    let copied = if head {
        Ok(0)
    } else {
        match length {
            Some(n) => std::io::copy(&mut (&mut up).take(n), &mut out),
            None => std::io::copy(&mut up, &mut out),
        }
    };
    copied.is_ok() && keep
}

fn tunnel(client: TcpStream, reader: BufReader<TcpStream>, to: SocketAddr) {
    let Ok(upstream) = TcpStream::connect(to) else {
        return refuse(client, "502 Bad Gateway");
    };
    let mut client_w = client;
    if client_w
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .is_err()
    {
        return;
    }
    let mut up_r = upstream.try_clone().expect("clone");
    let mut up_w = upstream;
    let to_client = thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut client_w);
        let _ = client_w.shutdown(Shutdown::Write);
    });
    let _ = up_w.write_all(reader.buffer());
    let _ = std::io::copy(&mut reader.into_inner(), &mut up_w);
    let _ = up_w.shutdown(Shutdown::Write);
    let _ = to_client.join();
}
