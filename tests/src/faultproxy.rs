//! A fault-injecting HTTP proxy for the S3 tests: it sits on loopback between `tvault` and the S3
//! server and, for a share of requests, drops the connection without an answer or answers
//! `503 Slow Down`. The rest pass through untouched.
//!
//! One request per connection: the proxy forwards the request with `Connection: close`, so the
//! client opens a new connection (and meets a new fault decision) for every request.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

#[derive(Default)]
struct State {
    /// Faults per thousand requests (1000: every request fails).
    per_mille: AtomicU32,
    requests: AtomicU64,
    dropped: AtomicU64,
    unavailable: AtomicU64,
    rng: AtomicU64,
    stop: AtomicBool,
}

/// Counters of what the proxy did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultStats {
    pub requests: u64,
    pub dropped: u64,
    pub unavailable: u64,
}

pub struct FaultProxy {
    addr: SocketAddr,
    state: Arc<State>,
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://host:port`).
    pub fn start(upstream: &str) -> FaultProxy {
        let up: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .unwrap_or_else(|e| panic!("fault proxy upstream {upstream:?}: {e}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fault proxy");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            rng: AtomicU64::new(0x2545_F491_4F6C_DD1D),
            ..Default::default()
        });
        let s = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, up, &s);
                });
            }
        });
        FaultProxy { addr, state }
    }

    /// `http://127.0.0.1:<port>`: the endpoint to give `tvault`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Share of requests that fail, in thousandths.
    pub fn set_faults_per_mille(&self, per_mille: u32) {
        self.state.per_mille.store(per_mille.min(1000), Relaxed);
    }

    pub fn stats(&self) -> FaultStats {
        FaultStats {
            requests: self.state.requests.load(Relaxed),
            dropped: self.state.dropped.load(Relaxed),
            unavailable: self.state.unavailable.load(Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.state.stop.store(true, Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// xorshift64*: reproducible, and shared by all connections.
fn next_random(s: &State) -> u64 {
    let mut x = s.rng.load(Relaxed);
    loop {
        let mut y = x;
        y ^= y >> 12;
        y ^= y << 25;
        y ^= y >> 27;
        match s.rng.compare_exchange(x, y, Relaxed, Relaxed) {
            Ok(_) => return y.wrapping_mul(0x2545_F491_4F6C_DD1D),
            Err(now) => x = now,
        }
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, s: &State) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    // The request head, and whatever of the body came with it.
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            return Ok(());
        }
    };
    s.requests.fetch_add(1, Relaxed);
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let r = next_random(s);
    if (r % 1000) < u64::from(s.per_mille.load(Relaxed)) {
        if (r >> 32).is_multiple_of(2) {
            s.dropped.fetch_add(1, Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        s.unavailable.fetch_add(1, Relaxed);
        // Read the body first, so the client sees the answer rather than a reset.
        let mut left = content_length(&head).saturating_sub((buf.len() - head_end) as u64);
        let mut sink = [0u8; 16 << 10];
        while left > 0 {
            let n = client.read(&mut sink)?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n as u64);
        }
        let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
                    <Message>Please reduce your request rate.</Message></Error>";
        let answer = format!(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        client.write_all(answer.as_bytes())?;
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(close_connection(&head).as_bytes())?;
    server.write_all(&buf[head_end..])?;
    let mut to_server = client.try_clone()?;
    let mut from_client = server.try_clone()?;
    let pump = std::thread::spawn(move || {
        let _ = std::io::copy(&mut to_server, &mut from_client);
        let _ = from_client.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = pump.join();
    Ok(())
}

fn content_length(head: &str) -> u64 {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The head with its `Connection` header replaced by `Connection: close`.
fn close_connection(head: &str) -> String {
    let mut out = String::with_capacity(head.len() + 20);
    for line in head.trim_end_matches("\r\n").split("\r\n") {
        let is_connection = line
            .split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("connection"));
        if !is_connection {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out
}
