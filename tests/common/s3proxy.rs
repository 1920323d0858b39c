//! A small HTTP proxy in front of a test S3 server: it records every request
//! (method, target, `Range`, `If-Match`, status), so tests count ListObjectsV2
//! pages and GETs independently of nifuse, and it can misbehave on demand:
//! answer 503 SlowDown, stall (accept and never answer), pace responses, or
//! go down (cut the responses in flight and close new connections unanswered,
//! as the connections of a killed server end).
//!
//! One request per connection: the request goes upstream with
//! `Connection: close` and the response comes back byte for byte as it
//! arrives; when the upstream server is gone, the connection is closed
//! without an answer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the proxy saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `GET`, `PUT`, ...
    pub method: String,
    /// The request target (`/bucket/key?query`), as sent.
    pub target: String,
    /// The `Range` header.
    pub range: Option<String>,
    /// The `If-Match` header.
    pub if_match: Option<String>,
    /// The response status (0: none was given).
    pub status: u16,
}

impl Seen {
    /// Whether this is a ListObjectsV2 request (one page of a listing).
    pub fn is_list(&self) -> bool {
        self.method == "GET" && self.target.contains("list-type=2")
    }

    /// Whether this is a GET of an object whose key ends with `suffix` (URL-encoded).
    pub fn is_get_of(&self, suffix: &str) -> bool {
        self.method == "GET" && !self.is_list() && self.target.ends_with(suffix)
    }
}

#[derive(Default)]
struct State {
    upstream: AtomicU32,
    slow_down: AtomicU32,
    stalled: AtomicBool,
    down: AtomicBool,
    pace_ms: AtomicU64,
    relayed: AtomicU64,
    closed: AtomicBool,
    seen: Mutex<Vec<Seen>>,
}

/// The proxy, listening on the loopback until dropped.
pub struct Proxy {
    /// Its port.
    pub port: u16,
    state: Arc<State>,
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
    <Message>Please reduce your request rate.</Message></Error>";

impl Proxy {
    /// A proxy to the server on `upstream` (a loopback port).
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(State::default());
        state.upstream.store(u32::from(upstream), Ordering::SeqCst);
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.closed.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(&st, conn));
            }
        });
        Proxy { port, state }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The next `n` requests are answered 503 SlowDown.
    pub fn slow_down(&self, n: u32) {
        self.state.slow_down.store(n, Ordering::SeqCst);
    }

    /// Requests from now on are accepted and never answered (until `false`).
    pub fn stall(&self, on: bool) {
        self.state.stalled.store(on, Ordering::SeqCst);
    }

    /// Cuts every response in flight and closes new connections unanswered
    /// (until `false`): what the connections of a killed server do, without
    /// the bytes the kernel had buffered still arriving.
    pub fn down(&self, on: bool) {
        self.state.down.store(on, Ordering::SeqCst);
    }

    /// Responses are relayed 64 KiB at a time, `ms` milliseconds apart (0: at once).
    pub fn pace(&self, ms: u64) {
        self.state.pace_ms.store(ms, Ordering::SeqCst);
    }

    /// Bytes relayed from the server so far.
    pub fn relayed(&self) -> u64 {
        self.state.relayed.load(Ordering::SeqCst)
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Forgets the requests seen so far.
    pub fn clear(&self) {
        self.state.seen.lock().unwrap().clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.state.stalled.store(false, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads a request head (up to the blank line).
fn read_head(c: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if c.read(&mut byte).ok()? == 0 || head.len() > 1 << 16 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(head)
}

fn header(lines: &[&str], name: &str) -> Option<String> {
    lines.iter().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn serve(st: &State, mut client: TcpStream) {
    let Some(head) = read_head(&mut client) else {
        return;
    };
    let text = String::from_utf8_lossy(&head).into_owned();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    let mut first = lines.first().copied().unwrap_or_default().split(' ');
    let seen = Seen {
        method: first.next().unwrap_or_default().to_string(),
        target: first.next().unwrap_or_default().to_string(),
        range: header(&lines, "range"),
        if_match: header(&lines, "if-match"),
        status: 0,
    };
    let len: usize = header(&lines, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    if client.read_exact(&mut body).is_err() {
        return;
    }
    relay(st, &mut client, &lines, &body, seen);
}

/// Records `seen` with its response `status` (0: none), before the client
/// gets the response: a test that has its answer finds the request counted.
fn record(st: &State, mut seen: Seen, status: u16) {
    seen.status = status;
    st.seen.lock().unwrap().push(seen);
}

/// Answers one request, and records it.
fn relay(st: &State, client: &mut TcpStream, lines: &[&str], body: &[u8], seen: Seen) {
    let refuse = st
        .slow_down
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if refuse {
        record(st, seen, 503);
        let _ = write!(
            client,
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{SLOW_DOWN}",
            SLOW_DOWN.len()
        );
        return;
    }
    while st.stalled.load(Ordering::SeqCst) && !st.closed.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(10));
    }
    if st.down.load(Ordering::SeqCst) {
        return record(st, seen, 0);
    }
    let port = st.upstream.load(Ordering::SeqCst) as u16;
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", port)) else {
        return record(st, seen, 0);
    };
    let mut out = String::new();
    for l in lines {
        let name = l.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive") {
            out.push_str(l);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let sent = up
        .write_all(out.as_bytes())
        .and_then(|()| up.write_all(body));
    if sent.is_err() {
        return record(st, seen, 0);
    }
    let mut seen = Some(seen);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match up.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(seen) = seen.take() {
            let line = String::from_utf8_lossy(&buf[..n.min(32)]).into_owned();
            let status = line.split(' ').nth(1).and_then(|s| s.parse().ok());
            record(st, seen, status.unwrap_or(0));
        }
        if st.down.load(Ordering::SeqCst) || client.write_all(&buf[..n]).is_err() {
            break;
        }
        st.relayed.fetch_add(n as u64, Ordering::SeqCst);
        let pace = st.pace_ms.load(Ordering::SeqCst);
        if pace > 0 {
            std::thread::sleep(Duration::from_millis(pace));
        }
    }
    if let Some(seen) = seen {
        record(st, seen, 0);
    }
}
