//! scwd-metad: the project's own Scaleway metadata service, for the
//! namespace lab, the end-to-end tests and `make demo`; never installed.
//!
//! It answers the way 169.254.42.42 does (`scaleway-metadata.md` §1–§4)
//! from one fixture file, re-read on every request so a test can change
//! the metadata under a running daemon, and it misbehaves on demand so
//! scwd's error handling meets a real socket rather than a mock.
//!
//! Every request is logged as one line, flushed at once so a test can
//! follow the log while scwd runs:
//! `t=+1234ms PATCH /state {"state_detail":"booted"} -> 200`.
//! With `-T` the time is the wall clock instead, in seconds since the
//! epoch to the microsecond (`t=1732700000.123456`), so that a benchmark
//! can compare it with a timestamp taken in another process.
//! Large answers are generated while they are sent, never held in memory.

use std::env;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

const USAGE: &str =
    "usage: scwd-metad [-nT] [-a address] [-B size] [-c status] [-D seconds] [-e count] [-l logfile]
                  [-m path] [-p count] [-q count] [-r count] [-S count] [-s ms]
                  [-t count] [-u count] [-w count] -f fixture";

/// `GET /` as documented by Scaleway (fixture
/// `root_GET-slash_api-metadata-banner.json`).
const BANNER: &str = r#"{"api": "api-metadata", "description": "Metadata API, just query http://169.254.42.42/conf or http://169.254.42.42/conf?format=json to get info about yourself", "version": "12.23.0"}"#;

/// Largest request head accepted; real clients send a few hundred bytes.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body accepted (`PATCH /state` sends about 30 bytes).
const MAX_BODY: usize = 64 * 1024;
/// How long a silent client may keep a connection before it is dropped.
const CLIENT_IDLE: Duration = Duration::from_secs(10);
/// How long a hung request is held at most when the client never gives up.
const HANG_MAX: Duration = Duration::from_secs(600);
/// Longest request target or body quoted in the log.
const LOG_QUOTE_MAX: usize = 256;

/// How many requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    First(u64),
    All,
}

impl Count {
    fn covers(self, index: u64) -> bool {
        match self {
            Count::First(n) => index < n,
            Count::All => true,
        }
    }
}

/// Faults decided before the request is routed, in the order they are
/// applied: the first `-r` requests are reset, the next `-w` hang, the
/// next `-e` get 500, the next `-q` get 429, and the rest are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Reset,
    Hang,
    Status(u16),
}

#[derive(Debug, Clone)]
struct Options {
    address: SocketAddr,
    fixture: String,
    logfile: Option<String>,
    down: Duration,
    reset: Count,
    hang: Count,
    error500: Count,
    error429: Count,
    only_path: Option<String>,
    patch_fail: Count,
    patch_status: u16,
    truncate: Count,
    unusable: Count,
    huge: Option<u64>,
    huge_unframed: bool,
    epoch_time: bool,
    drip: Option<Duration>,
    drip_count: Count,
}

impl Options {
    fn counted_fault(&self, index: u64) -> Option<Fault> {
        let chain = [
            (self.reset, Fault::Reset),
            (self.hang, Fault::Hang),
            (self.error500, Fault::Status(500)),
            (self.error429, Fault::Status(429)),
        ];
        let mut base = 0;
        for (count, fault) in chain {
            match count {
                Count::All => return Some(fault),
                Count::First(n) if index < base + n => return Some(fault),
                Count::First(n) => base += n,
            }
        }
        None
    }

    /// Whether the `-m` filter lets faults touch a request for `path`.
    fn targets(&self, path: &str) -> bool {
        self.only_path.as_deref().is_none_or(|p| p == path)
    }
}

fn parse_count(flag: char, value: &str) -> Result<Count, String> {
    if value == "all" {
        return Ok(Count::All);
    }
    value
        .parse()
        .map(Count::First)
        .map_err(|_| format!("-{flag}: expected a count or \"all\", got \"{value}\""))
}

fn parse_number(flag: char, value: &str) -> Result<u64, String> {
    value
        .parse()
        .map_err(|_| format!("-{flag}: expected a number, got \"{value}\""))
}

fn parse_size(flag: char, value: &str) -> Result<u64, String> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, 'K' | 'k')) => (&value[..i], 1 << 10),
        Some((i, 'M' | 'm')) => (&value[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&value[..i], 1 << 30),
        _ => (value, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("-{flag}: expected a size such as 100M, got \"{value}\""))
}

/// getopt(3)-style parsing: flags may be grouped (`-nB100M`), an option
/// argument may be glued or separate, `--` ends the options.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Options, Option<String>> {
    let mut opts = Options {
        address: "169.254.42.42:80".parse().expect("literal address"),
        fixture: String::new(),
        logfile: None,
        down: Duration::ZERO,
        reset: Count::First(0),
        hang: Count::First(0),
        error500: Count::First(0),
        error429: Count::First(0),
        only_path: None,
        patch_fail: Count::First(0),
        patch_status: 500,
        truncate: Count::First(0),
        unusable: Count::First(0),
        huge: None,
        huge_unframed: false,
        epoch_time: false,
        drip: None,
        drip_count: Count::All,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            return Err(Some(format!("unexpected argument \"{arg}\"")));
        };
        for (i, flag) in cluster.char_indices() {
            if flag == 'n' {
                opts.huge_unframed = true;
                continue;
            }
            if flag == 'T' {
                opts.epoch_time = true;
                continue;
            }
            if !"aBcDeflmpqrSstuw".contains(flag) {
                return Err(Some(format!("unknown option -{flag}")));
            }
            let glued = &cluster[i + flag.len_utf8()..];
            let value = if glued.is_empty() {
                args.next()
                    .ok_or_else(|| Some(format!("-{flag} needs an argument")))?
            } else {
                glued.to_string()
            };
            match flag {
                'a' => {
                    opts.address = value
                        .parse()
                        .map_err(|_| format!("-a: expected address:port, got \"{value}\""))?
                }
                'B' => opts.huge = Some(parse_size(flag, &value)?),
                'c' => {
                    opts.patch_status = parse_number(flag, &value)
                        .ok()
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|n| (100..=599).contains(n))
                        .ok_or_else(|| format!("-c: expected an HTTP status, got \"{value}\""))?
                }
                'D' => opts.down = Duration::from_secs(parse_number(flag, &value)?),
                'e' => opts.error500 = parse_count(flag, &value)?,
                'f' => opts.fixture = value,
                'l' => opts.logfile = Some(value),
                'm' => opts.only_path = Some(value),
                'p' => opts.patch_fail = parse_count(flag, &value)?,
                'q' => opts.error429 = parse_count(flag, &value)?,
                'r' => opts.reset = parse_count(flag, &value)?,
                'S' => opts.drip_count = parse_count(flag, &value)?,
                's' => opts.drip = Some(Duration::from_millis(parse_number(flag, &value)?)),
                't' => opts.truncate = parse_count(flag, &value)?,
                'u' => opts.unusable = parse_count(flag, &value)?,
                'w' => opts.hang = parse_count(flag, &value)?,
                _ => unreachable!("flag list above"),
            }
            break;
        }
    }
    if let Some(extra) = args.next() {
        return Err(Some(format!("unexpected argument \"{extra}\"")));
    }
    if opts.fixture.is_empty() {
        return Err(Some("-f fixture is required".to_string()));
    }
    Ok(opts)
}

/// Per-kind request numbers, so "the first N" means the same thing
/// whichever thread a request lands on.
#[derive(Default)]
struct Counters {
    faultable: u64,
    patches: u64,
    confs: u64,
    dripped: u64,
}

struct Service {
    opts: Options,
    start: Instant,
    /// The wall clock at `start`, for `-T`.
    start_wall: SystemTime,
    log: Mutex<Box<dyn Write + Send>>,
    counters: Mutex<Counters>,
}

impl Service {
    fn millis(&self, at: Instant) -> u128 {
        at.duration_since(self.start).as_millis()
    }

    /// Writes one line and flushes it: tests read the log while we run.
    fn log(&self, at: Instant, line: fmt::Arguments) {
        let mut out = self.log.lock().unwrap_or_else(|e| e.into_inner());
        if self.opts.epoch_time {
            let wall = self.start_wall + at.duration_since(self.start);
            let t = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
            let _ = writeln!(out, "t={}.{:06} {}", t.as_secs(), t.subsec_micros(), line);
        } else {
            let _ = writeln!(out, "t=+{}ms {}", self.millis(at), line);
        }
        let _ = out.flush();
    }

    fn next(&self, pick: impl FnOnce(&mut Counters) -> &mut u64) -> u64 {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let n = pick(&mut counters);
        *n += 1;
        *n - 1
    }
}

/// `io::Error` without Rust's "(os error N)" suffix, as strerror(3) says it.
fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// A request target or body made safe for a one-line log.
fn quote_for_log(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes.iter().take(LOG_QUOTE_MAX) {
        if (0x20..0x7f).contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > LOG_QUOTE_MAX {
        s.push_str("...");
    }
    s
}

struct Request {
    method: String,
    target: String,
    content_length: usize,
    chunked: bool,
    head_len: usize,
}

impl Request {
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn wants_json(&self) -> bool {
        self.target
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv == "format=json"))
    }
}

enum HeadError {
    Closed,
    TooLarge,
    Malformed,
    Io(io::Error),
}

/// Reads the request head with `peek`, leaving it in the socket: a
/// connection closed with unread data makes the kernel send a reset,
/// which is how `-r` resets without anything beyond std.
fn peek_head(stream: &TcpStream) -> Result<Request, HeadError> {
    let mut buf = vec![0; MAX_HEAD];
    let deadline = Instant::now() + CLIENT_IDLE;
    let mut seen = 0;
    loop {
        let n = stream.peek(&mut buf).map_err(HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        if let Some(end) = buf[..n].windows(4).position(|w| w == b"\r\n\r\n") {
            return parse_head(&buf[..end], end + 4);
        }
        if n == buf.len() {
            return Err(HeadError::TooLarge);
        }
        if Instant::now() > deadline {
            return Err(HeadError::Io(io::ErrorKind::TimedOut.into()));
        }
        if n == seen {
            // peek returns at once while the head is incomplete.
            thread::sleep(Duration::from_millis(2));
        }
        seen = n;
    }
}

fn parse_head(head: &[u8], head_len: usize) -> Result<Request, HeadError> {
    let head = std::str::from_utf8(head).map_err(|_| HeadError::Malformed)?;
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (first.next(), first.next(), first.next(), first.next())
    else {
        return Err(HeadError::Malformed);
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(HeadError::Malformed);
    }
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        content_length: 0,
        chunked: false,
        head_len,
    };
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HeadError::Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            req.content_length = value.parse().map_err(|_| HeadError::Malformed)?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            req.chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok(req)
}

/// What goes after the status line and headers.
enum Body {
    Bytes(Vec<u8>),
    /// Content-Length names the whole body; only the first half is sent.
    Truncated(Vec<u8>),
    /// A valid JSON object of exactly this many bytes, made while sent.
    Huge {
        size: u64,
        framed: bool,
    },
}

struct Response {
    status: u16,
    content_type: &'static str,
    body: Body,
}

impl Response {
    fn json(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: Body::Bytes(body.into()),
        }
    }

    fn text(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: Body::Bytes(body.into()),
        }
    }

    fn error(status: u16) -> Self {
        Response::json(status, format!("{{\"message\": \"{}\"}}", reason(status)))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// Writes bytes at once or, when dripping, one at a time.
struct Sender<'a> {
    stream: &'a TcpStream,
    drip: Option<Duration>,
    sent: u64,
}

impl Sender<'_> {
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.drip {
            None => {
                (&*self.stream).write_all(bytes)?;
                self.sent += bytes.len() as u64;
            }
            Some(pause) => {
                for b in bytes {
                    (&*self.stream).write_all(std::slice::from_ref(b))?;
                    self.sent += 1;
                    thread::sleep(pause);
                }
            }
        }
        Ok(())
    }
}

const HUGE_HEAD: &[u8] = br#"{"pad":""#;
const HUGE_TAIL: &[u8] = br#""}"#;

/// Sends `resp`; the body is dripped when `drip` is set (headers go at
/// once, so the client is stuck in the body, where only a total timeout
/// saves it). On failure, says how many body bytes went out.
fn send_response(
    stream: &TcpStream,
    resp: Response,
    drip: Option<Duration>,
) -> Result<(), (io::Error, u64)> {
    let length = match &resp.body {
        Body::Bytes(b) | Body::Truncated(b) => Some(b.len() as u64),
        Body::Huge { size, framed } => framed.then_some(*size),
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nConnection: close\r\n",
        resp.status,
        reason(resp.status),
        resp.content_type
    );
    if let Some(n) = length {
        head.push_str(&format!("Content-Length: {n}\r\n"));
    }
    head.push_str("\r\n");
    (&*stream).write_all(head.as_bytes()).map_err(|e| (e, 0))?;
    let mut out = Sender {
        stream,
        drip,
        sent: 0,
    };
    send_body(&mut out, resp.body).map_err(|e| (e, out.sent))
}

fn send_body(out: &mut Sender, body: Body) -> io::Result<()> {
    match body {
        Body::Bytes(b) => out.send(&b)?,
        Body::Truncated(b) => out.send(&b[..b.len() / 2])?,
        Body::Huge { size, .. } => {
            let chunk = vec![b'x'; 64 * 1024];
            let fill = size.saturating_sub((HUGE_HEAD.len() + HUGE_TAIL.len()) as u64);
            out.send(HUGE_HEAD)?;
            let mut left = fill;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                out.send(&chunk[..n])?;
                left -= n as u64;
            }
            out.send(HUGE_TAIL)?;
        }
    }
    Ok(())
}

/// Routes a served (not faulted) request and says how it went in the log.
fn route(svc: &Service, req: &Request) -> (Response, String) {
    match (req.method.as_str(), req.path()) {
        ("GET", "/") => (Response::json(200, BANNER), "200".into()),
        ("GET", "/conf") => conf(svc, req),
        ("PATCH", "/state") => {
            let n = svc.next(|c| &mut c.patches);
            if svc.opts.patch_fail.covers(n) {
                let status = svc.opts.patch_status;
                (Response::error(status), format!("{status} (patch failure)"))
            } else {
                (Response::json(200, "{}"), "200".into())
            }
        }
        _ => (Response::error(404), "404".into()),
    }
}

fn conf(svc: &Service, req: &Request) -> (Response, String) {
    let json = req.wants_json();
    if json && let Some(size) = svc.opts.huge {
        let framed = !svc.opts.huge_unframed;
        let outcome = format!(
            "200 huge {size} bytes{}",
            if framed { "" } else { " unframed" }
        );
        let resp = Response {
            status: 200,
            content_type: "application/json",
            body: Body::Huge { size, framed },
        };
        return (resp, outcome);
    }
    let bytes = match fs::read(&svc.opts.fixture) {
        Ok(b) => b,
        Err(e) => {
            let outcome = format!("500 ({}: {})", svc.opts.fixture, strerror(&e));
            return (Response::error(500), outcome);
        }
    };
    let n = svc.next(|c| &mut c.confs);
    if json && svc.opts.unusable.covers(n) {
        return unusable(n, bytes);
    }
    let mut resp = if json {
        Response::json(200, bytes)
    } else {
        match text_conf(&bytes) {
            Ok(text) => Response::text(200, text),
            Err(e) => {
                let outcome = format!("500 (fixture is not a JSON object: {e})");
                return (Response::error(500), outcome);
            }
        }
    };
    if svc.opts.truncate.covers(n)
        && let Body::Bytes(b) = resp.body
    {
        let outcome = format!("200 truncated {}/{} bytes", b.len() / 2, b.len());
        resp.body = Body::Truncated(b);
        return (resp, outcome);
    }
    (resp, "200".into())
}

/// `-u`: a complete, correctly framed answer that is no metadata
/// document, one kind after the other: 204 No Content, an empty 200, an
/// HTML error page (as a proxy in the way sends one), and the fixture cut
/// in half with a Content-Length that says so.
fn unusable(n: u64, fixture: Vec<u8>) -> (Response, String) {
    match n % 4 {
        0 => (Response::json(204, ""), "204 unusable".into()),
        1 => (Response::json(200, ""), "200 unusable empty".into()),
        2 => {
            let page = "<html><head><title>502 Bad Gateway</title></head>\n\
                        <body><h1>Bad Gateway</h1></body></html>\n";
            let resp = Response {
                status: 200,
                content_type: "text/html",
                body: Body::Bytes(page.into()),
            };
            (resp, "200 unusable html".into())
        }
        _ => {
            let half = fixture[..fixture.len() / 2].to_vec();
            let outcome = format!("200 unusable cut {}/{} bytes", half.len(), fixture.len());
            (Response::json(200, half), outcome)
        }
    }
}

/// Handles one connection from accept to close.
fn serve(svc: &Service, stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(CLIENT_IDLE));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let req = match peek_head(&stream) {
        Ok(r) => r,
        Err(HeadError::Closed) => return,
        Err(HeadError::Io(e)) => {
            svc.log(
                Instant::now(),
                format_args!("(request head: {})", strerror(&e)),
            );
            return;
        }
        Err(HeadError::TooLarge) => {
            svc.log(
                Instant::now(),
                format_args!("(request head too large) -> 431"),
            );
            let _ = send_response(&stream, Response::error(431), None);
            return;
        }
        Err(HeadError::Malformed) => {
            svc.log(Instant::now(), format_args!("(malformed request) -> 400"));
            let _ = send_response(&stream, Response::error(400), None);
            return;
        }
    };
    let at = Instant::now();
    let target = quote_for_log(req.target.as_bytes());
    let faultable = svc.opts.targets(req.path());
    let fault = if faultable {
        svc.opts.counted_fault(svc.next(|c| &mut c.faultable))
    } else {
        None
    };
    if fault == Some(Fault::Reset) {
        svc.log(at, format_args!("{} {target} -> reset", req.method));
        // Dropping the stream with the request unread sends RST.
        return;
    }
    let mut head = vec![0; req.head_len];
    if (&stream).read_exact(&mut head).is_err() {
        return;
    }
    if req.chunked {
        svc.log(at, format_args!("{} {target} (chunked) -> 411", req.method));
        let _ = send_response(&stream, Response::error(411), None);
        return;
    }
    if req.content_length > MAX_BODY {
        let n = req.content_length;
        svc.log(
            at,
            format_args!("{} {target} ({n} bytes) -> 413", req.method),
        );
        let _ = send_response(&stream, Response::error(413), None);
        return;
    }
    let mut body = vec![0; req.content_length];
    if let Err(e) = (&stream).read_exact(&mut body) {
        let e = strerror(&e);
        svc.log(at, format_args!("{} {target} (body: {e})", req.method));
        return;
    }
    let shown = if body.is_empty() {
        String::new()
    } else {
        format!(" {}", quote_for_log(&body))
    };
    let (resp, outcome) = match fault {
        Some(Fault::Hang) => {
            svc.log(at, format_args!("{} {target}{shown} -> hang", req.method));
            hang(svc, &stream, &req.method, &target, at);
            return;
        }
        Some(Fault::Status(code)) => (Response::error(code), code.to_string()),
        Some(Fault::Reset) | None => route(svc, &req),
    };
    let drip = svc
        .opts
        .drip
        .filter(|_| faultable && svc.opts.drip_count.covers(svc.next(|c| &mut c.dripped)));
    let outcome = match drip {
        Some(d) => format!("{outcome} drip {}ms", d.as_millis()),
        None => outcome,
    };
    svc.log(
        at,
        format_args!("{} {target}{shown} -> {outcome}", req.method),
    );
    if let Err((e, sent)) = send_response(&stream, resp, drip) {
        // A client that gives up on a huge or dripped answer is the point
        // of those tests: say when, and after how much.
        svc.log(
            Instant::now(),
            format_args!(
                "{} {target}: client went away after {} ms, {sent} body bytes sent: {}",
                req.method,
                at.elapsed().as_millis(),
                strerror(&e)
            ),
        );
    }
}

/// Holds a request unanswered until the client closes the connection,
/// and logs how long the client waited: that is its timeout.
fn hang(svc: &Service, stream: &TcpStream, method: &str, target: &str, at: Instant) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = [0u8; 512];
    loop {
        match (&*stream).read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                if at.elapsed() > HANG_MAX {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    svc.log(
        Instant::now(),
        format_args!(
            "{method} {target}: client went away after {} ms",
            at.elapsed().as_millis()
        ),
    );
}

/// Preserves key order, which `serde_json::Value` does not without a
/// feature the project does not enable; the text form lists sub-keys in
/// the order the service sent them.
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Number(n.to_string()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// Python's `shlex.quote`, which the text form's quoting matches
/// (`scaleway-metadata.md` §3.1).
fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
    if s.is_empty() {
        "''".to_string()
    } else if s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r#"'"'"'"#))
    }
}

fn flatten(key: &str, value: &Json, out: &mut String) {
    let line = |out: &mut String, v: &str| {
        out.push_str(key);
        out.push('=');
        out.push_str(v);
        out.push('\n');
    };
    match value {
        Json::Null => line(out, ""),
        Json::Bool(true) => line(out, "True"),
        Json::Bool(false) => line(out, "False"),
        Json::Number(n) => line(out, n),
        Json::String(s) => line(out, &shell_quote(s)),
        Json::Array(items) => {
            line(out, &items.len().to_string());
            for (i, item) in items.iter().enumerate() {
                flatten(&format!("{key}_{i}"), item, out);
            }
        }
        Json::Object(entries) => {
            // Sub-key lists are unquoted, as in the 2014 capture.
            let keys: Vec<String> = entries.iter().map(|(k, _)| k.to_uppercase()).collect();
            line(out, &keys.join(" "));
            for (k, v) in entries {
                flatten(&format!("{key}_{}", k.to_uppercase()), v, out);
            }
        }
    }
}

/// The `GET /conf` text (`sh`) form of a JSON metadata document.
fn text_conf(json: &[u8]) -> Result<String, String> {
    let doc: Json = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let Json::Object(entries) = doc else {
        return Err("top level is not an object".to_string());
    };
    let mut out = String::new();
    for (k, v) in &entries {
        flatten(&k.to_uppercase(), v, &mut out);
    }
    Ok(out)
}

fn open_log(path: Option<&str>) -> io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(OpenOptions::new().create(true).append(true).open(p)?),
        None => Box::new(io::stdout()),
    })
}

fn fatal(msg: String) -> ! {
    eprintln!("scwd-metad: {msg}");
    process::exit(1);
}

fn main() {
    let opts = match parse_args(env::args().skip(1)) {
        Ok(o) => o,
        Err(msg) => {
            if let Some(msg) = msg {
                eprintln!("scwd-metad: {msg}");
            }
            eprintln!("{USAGE}");
            process::exit(1);
        }
    };
    if let Err(e) = File::open(&opts.fixture) {
        fatal(format!("{}: {}", opts.fixture, strerror(&e)));
    }
    let log = open_log(opts.logfile.as_deref()).unwrap_or_else(|e| {
        fatal(format!(
            "{}: {}",
            opts.logfile.as_deref().unwrap_or(""),
            strerror(&e)
        ))
    });
    let svc = Arc::new(Service {
        start: Instant::now(),
        start_wall: SystemTime::now(),
        log: Mutex::new(log),
        counters: Mutex::new(Counters::default()),
        opts,
    });
    if !svc.opts.down.is_zero() {
        // Not listening at all: connects are refused, as when the
        // service is not up yet.
        svc.log(
            svc.start,
            format_args!("down for {}s", svc.opts.down.as_secs()),
        );
        thread::sleep(svc.opts.down);
    }
    let listener = TcpListener::bind(svc.opts.address)
        .unwrap_or_else(|e| fatal(format!("bind {}: {}", svc.opts.address, strerror(&e))));
    let bound = listener.local_addr().unwrap_or(svc.opts.address);
    svc.log(
        Instant::now(),
        format_args!("listening on {bound} fixture {}", svc.opts.fixture),
    );
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let svc = Arc::clone(&svc);
        let _ = thread::Builder::new().spawn(move || serve(&svc, stream));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Options, Option<String>> {
        parse_args(s.split_whitespace().map(String::from))
    }

    #[test]
    fn flags_group_and_glue_like_getopt() {
        let o = args("-nB100M -a 127.0.0.1:0 -e3 -f x.json -q all -s 5 -S 1").unwrap();
        assert!(o.huge_unframed);
        assert!(!o.epoch_time);
        assert!(args("-Tf x.json").unwrap().epoch_time);
        assert_eq!(o.huge, Some(100 << 20));
        assert_eq!(o.address, "127.0.0.1:0".parse().unwrap());
        assert_eq!(o.error500, Count::First(3));
        assert_eq!(o.error429, Count::All);
        assert_eq!(o.drip, Some(Duration::from_millis(5)));
        assert_eq!(o.drip_count, Count::First(1));
        assert_eq!(o.fixture, "x.json");
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(args("-f x -z 1").is_err());
        assert!(args("-f x -e").is_err());
        assert!(args("-f x -e lots").is_err());
        assert!(args("-f x -B 12Q").is_err());
        assert!(args("-f x stray").is_err());
        assert!(args("-e 1").is_err());
    }

    #[test]
    fn counted_faults_come_in_turn() {
        let o = args("-f x -r 1 -w 1 -e 2 -q 1").unwrap();
        let seen: Vec<_> = (0..6).map(|i| o.counted_fault(i)).collect();
        assert_eq!(
            seen,
            [
                Some(Fault::Reset),
                Some(Fault::Hang),
                Some(Fault::Status(500)),
                Some(Fault::Status(500)),
                Some(Fault::Status(429)),
                None
            ]
        );
        let o = args("-f x -e all -q 1").unwrap();
        assert_eq!(o.counted_fault(1000), Some(Fault::Status(500)));
    }

    #[test]
    fn shell_quote_matches_python_shlex() {
        assert_eq!(shell_quote("myc1"), "myc1");
        assert_eq!(shell_quote("nbd://10.1.0.44:4320"), "nbd://10.1.0.44:4320");
        assert_eq!(shell_quote("Server 2"), "'Server 2'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("64; reboot"), "'64; reboot'");
        assert_eq!(shell_quote("it's"), r#"'it'"'"'s'"#);
    }

    fn fixture(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/scaleway/");
        fs::read(format!("{dir}{name}")).unwrap()
    }

    /// The 2017 API documentation shows both forms of one document.
    #[test]
    fn text_form_reproduces_the_documented_example() {
        let text = text_conf(&fixture("conf-json_api-doc-2017_minimal.json")).unwrap();
        let want = String::from_utf8(fixture("conf-text_api-doc-2017_minimal.txt")).unwrap();
        let mut got: Vec<&str> = text.lines().collect();
        let mut want: Vec<&str> = want.lines().collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    #[test]
    fn text_form_flattens_objects_lists_and_nulls_in_order() {
        let json = br#"{"public_ip": {"dynamic": true, "id": "x", "address": "1.2.3.4"},
            "tags": ["a b"], "ipv6": null, "volumes": {"1": {"size": 2}, "0": {"size": 1}}}"#;
        let text = text_conf(json).unwrap();
        assert_eq!(
            text,
            "PUBLIC_IP=DYNAMIC ID ADDRESS\nPUBLIC_IP_DYNAMIC=True\nPUBLIC_IP_ID=x\n\
             PUBLIC_IP_ADDRESS=1.2.3.4\nTAGS=1\nTAGS_0='a b'\nIPV6=\n\
             VOLUMES=1 0\nVOLUMES_1=SIZE\nVOLUMES_1_SIZE=2\nVOLUMES_0=SIZE\nVOLUMES_0_SIZE=1\n"
        );
        assert!(text_conf(b"[1]").is_err());
        assert!(text_conf(b"{\"a\":").is_err());
    }

    #[test]
    fn banner_is_the_documented_one() {
        assert_eq!(
            BANNER.as_bytes(),
            fixture("root_GET-slash_api-metadata-banner.json").trim_ascii_end()
        );
    }
}
