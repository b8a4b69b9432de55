//! scwd-metad on a real loopback socket: it serves what the lab tests
//! rely on, and each fault really happens on the wire. A fault injector
//! that quietly stopped injecting would make the fault matrix in
//! `tests/lab.rs` pass for nothing. Needs no root.

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const METAD: &str = env!("CARGO_BIN_EXE_scwd-metad");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/scaleway/");
const ROUTED: &str = "conf-json_talos-v4_routed_dual-stack_dhcp-v4_slaac-v6.json";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One scwd-metad on 127.0.0.1, killed and cleaned up on drop.
struct Metad {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Metad {
    fn start(fixture: &str, flags: &[&str]) -> Metad {
        let dir = std::env::temp_dir().join(format!(
            "scwd-metad-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let child = Command::new(METAD)
            .args(["-a", "127.0.0.1:0", "-f", fixture, "-l"])
            .arg(&log)
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn scwd-metad");
        let mut metad = Metad {
            child,
            dir,
            addr: "127.0.0.1:0".parse().unwrap(),
        };
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let log = metad.log();
            if let Some(addr) = log
                .split("listening on ")
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
            {
                metad.addr = addr.parse().expect("listening address");
                return metad;
            }
            assert!(Instant::now() < end, "scwd-metad did not listen: {log}");
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn routed(flags: &[&str]) -> Metad {
        Metad::start(&format!("{FIXTURES}{ROUTED}"), flags)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Sends one request and reads the answer to EOF.
    fn request(&self, method: &str, target: &str, body: &str) -> Answer {
        let mut s = self.send(method, target, body);
        let mut raw = Vec::new();
        let read = s.read_to_end(&mut raw);
        Answer::parse(raw, read.err().map(|e| e.kind()))
    }

    fn send(&self, method: &str, target: &str, body: &str) -> TcpStream {
        let mut s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: 169.254.42.42\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("send request");
        s
    }

    fn get(&self, target: &str) -> Answer {
        self.request("GET", target, "")
    }

    fn vm_hwm_kib(&self) -> u64 {
        fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }
}

impl Drop for Metad {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// What came back: status (0 if none), headers, body, and how reading ended.
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
    error: Option<ErrorKind>,
}

impl Answer {
    fn parse(raw: Vec<u8>, error: Option<ErrorKind>) -> Answer {
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        let (head, body) = match split {
            Some(i) => (
                String::from_utf8_lossy(&raw[..i]).into_owned(),
                raw[i + 4..].to_vec(),
            ),
            None => (String::from_utf8_lossy(&raw).into_owned(), Vec::new()),
        };
        let status = head
            .strip_prefix("HTTP/1.1 ")
            .and_then(|r| r.get(..3))
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Answer {
            status,
            head,
            body,
            error,
        }
    }

    fn content_length(&self) -> Option<usize> {
        self.head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
    }
}

#[test]
fn serves_the_fixture_the_text_form_the_banner_and_state() {
    let md = Metad::routed(&[]);
    let json = md.get("/conf?format=json");
    assert_eq!(json.status, 200);
    assert_eq!(json.body, fs::read(format!("{FIXTURES}{ROUTED}")).unwrap());
    let text = String::from_utf8(md.get("/conf").body).unwrap();
    assert!(text.contains("\nPUBLIC_IPS_V6_0_ADDRESS=2001:bc8:1234:5678:dc00:1ff:fe14:a73b\n"));
    assert!(text.contains("\nIPV6=\n"), "{text}");
    let banner = md.get("/");
    assert_eq!(banner.status, 200);
    assert_eq!(
        banner.body,
        fs::read(format!("{FIXTURES}root_GET-slash_api-metadata-banner.json"))
            .unwrap()
            .trim_ascii_end()
    );
    let state = md.request("PATCH", "/state", r#"{"state_detail":"booted"}"#);
    assert_eq!(state.status, 200);
    assert_eq!(md.get("/user_data").status, 404);
    let log = md.log();
    assert!(
        log.contains(r#"PATCH /state {"state_detail":"booted"} -> 200"#),
        "{log}"
    );
    assert!(log.contains("GET /user_data -> 404"), "{log}");
}

#[test]
fn fixture_changes_are_served_at_once() {
    let dir = std::env::temp_dir().join(format!("scwd-metad-fixture-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("conf.json");
    fs::write(&file, r#"{"id": "a"}"#).unwrap();
    let md = Metad::start(file.to_str().unwrap(), &[]);
    assert_eq!(md.get("/conf").body, b"ID=a\n");
    fs::write(&file, r#"{"id": "b"}"#).unwrap();
    assert_eq!(md.get("/conf").body, b"ID=b\n");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn counted_faults_reset_then_500_then_429_then_serve() {
    let md = Metad::routed(&["-r", "1", "-e", "1", "-q", "1"]);
    let reset = md.get("/");
    assert_eq!(reset.status, 0, "{}", reset.head);
    assert_eq!(reset.error, Some(ErrorKind::ConnectionReset));
    assert_eq!(md.get("/").status, 500);
    assert_eq!(md.get("/").status, 429);
    assert_eq!(md.get("/").status, 200);
}

#[test]
fn path_filter_keeps_faults_off_other_paths() {
    let md = Metad::routed(&["-m", "/conf", "-e", "1"]);
    assert_eq!(md.request("PATCH", "/state", "{}").status, 200);
    assert_eq!(md.get("/conf?format=json").status, 500);
    assert_eq!(md.get("/conf?format=json").status, 200);
}

#[test]
fn patch_fails_while_get_works() {
    let md = Metad::routed(&["-p", "2"]);
    assert_eq!(md.request("PATCH", "/state", "{}").status, 500);
    assert_eq!(md.get("/conf?format=json").status, 200);
    assert_eq!(md.request("PATCH", "/state", "{}").status, 500);
    assert_eq!(md.request("PATCH", "/state", "{}").status, 200);
}

#[test]
fn patch_failures_answer_the_status_given() {
    for status in [302, 403, 503] {
        let md = Metad::routed(&["-p", "all", "-c", &status.to_string()]);
        for _ in 0..2 {
            assert_eq!(md.request("PATCH", "/state", "{}").status, status);
        }
        assert_eq!(md.get("/conf?format=json").status, 200);
    }
}

#[test]
fn hang_never_answers_and_logs_how_long_the_client_waited() {
    let md = Metad::routed(&["-w", "1"]);
    let mut s = md.send("GET", "/conf?format=json", "");
    s.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 64];
    let err = s.read(&mut buf).expect_err("a hung request gets no answer");
    assert!(matches!(
        err.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut
    ));
    drop(s);
    let end = Instant::now() + Duration::from_secs(5);
    while !md.log().contains("client went away after") && Instant::now() < end {
        thread::sleep(Duration::from_millis(50));
    }
    assert!(md.log().contains("client went away after"), "{}", md.log());
    assert_eq!(md.get("/conf?format=json").status, 200);
}

#[test]
fn truncated_body_is_shorter_than_its_content_length() {
    let md = Metad::routed(&["-t", "1"]);
    let cut = md.get("/conf?format=json");
    let full = fs::read(format!("{FIXTURES}{ROUTED}")).unwrap().len();
    assert_eq!(cut.status, 200);
    assert_eq!(cut.content_length(), Some(full));
    assert_eq!(cut.body.len(), full / 2);
    assert_eq!(md.get("/conf?format=json").body.len(), full);
}

#[test]
fn unusable_answers_come_in_turn_then_the_document() {
    let md = Metad::routed(&["-u", "5"]);
    let full = fs::read(format!("{FIXTURES}{ROUTED}")).unwrap();
    let no_content = md.get("/conf?format=json");
    assert_eq!((no_content.status, no_content.body.len()), (204, 0));
    let empty = md.get("/conf?format=json");
    assert_eq!((empty.status, empty.content_length()), (200, Some(0)));
    let html = md.get("/conf?format=json");
    assert_eq!(html.status, 200);
    assert!(html.body.starts_with(b"<html>"), "{}", html.head);
    let cut = md.get("/conf?format=json");
    assert_eq!(cut.status, 200);
    assert_eq!(cut.content_length(), Some(full.len() / 2));
    assert_eq!(cut.body, full[..full.len() / 2]);
    // The fifth is a 204 again, the sixth the document.
    assert_eq!(md.get("/conf?format=json").status, 204);
    assert_eq!(md.get("/conf?format=json").body, full);
    let log = md.log();
    for outcome in [
        "-> 204 unusable",
        "-> 200 unusable empty",
        "-> 200 unusable html",
        "-> 200 unusable cut",
    ] {
        assert!(log.contains(outcome), "{outcome}\n{log}");
    }
}

#[test]
fn huge_body_is_streamed_not_held() {
    for unframed in [false, true] {
        let flags: &[&str] = if unframed {
            &["-B", "64M", "-n"]
        } else {
            &["-B", "64M"]
        };
        let md = Metad::routed(flags);
        let big = md.get("/conf?format=json");
        assert_eq!(big.status, 200);
        assert_eq!(big.body.len(), 64 << 20);
        assert_eq!(
            big.content_length(),
            (!unframed).then_some(64 << 20),
            "{}",
            big.head
        );
        assert!(big.body.starts_with(br#"{"pad":"xxx"#) && big.body.ends_with(br#"xx"}"#));
        let hwm = md.vm_hwm_kib();
        assert!(hwm < 16 * 1024, "scwd-metad peaked at {hwm} KiB");
    }
}

#[test]
fn slow_drip_sends_the_body_a_byte_at_a_time() {
    let dir = std::env::temp_dir().join(format!("scwd-metad-drip-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let file = dir.join("conf.json");
    fs::write(&file, r#"{"id": "drip"}"#).unwrap();
    let md = Metad::start(file.to_str().unwrap(), &["-s", "40", "-S", "1"]);
    let start = Instant::now();
    let slow = md.get("/conf?format=json");
    let took = start.elapsed();
    assert_eq!(slow.body, br#"{"id": "drip"}"#);
    // 14 bytes, 40 ms each.
    assert!(took >= Duration::from_millis(500), "{took:?}");
    let start = Instant::now();
    md.get("/conf?format=json");
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "only the first drips"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn down_refuses_connections_until_it_comes_up() {
    let fixture = format!("{FIXTURES}{ROUTED}");
    // Find a free port, then let scwd-metad take it after 1 s.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = std::env::temp_dir().join(format!("scwd-metad-down-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let mut child = Command::new(METAD)
        .args(["-a", &addr, "-f", &fixture, "-D", "1", "-l"])
        .arg(&log)
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(300));
    let early = TcpStream::connect(&addr).map(|_| ()).map_err(|e| e.kind());
    thread::sleep(Duration::from_millis(1200));
    let late = TcpStream::connect(&addr).map(|_| ());
    let _ = child.kill();
    let _ = child.wait();
    let text = fs::read_to_string(&log).unwrap_or_default();
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(early, Err(ErrorKind::ConnectionRefused), "{text}");
    assert!(late.is_ok(), "{text}");
    assert!(text.starts_with("t=+0ms down for 1s\n"), "{text}");
}

#[test]
fn bad_usage_exits_1_with_the_usage_line() {
    for args in [
        &["-f"][..],
        &["-z", "1", "-f", "x"],
        &["-e", "many", "-f", "x"],
        &[],
    ] {
        let out = Command::new(METAD).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("usage: scwd-metad"), "{args:?}: {err}");
    }
    let out = Command::new(METAD)
        .args(["-f", "/nonexistent/conf.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "scwd-metad: /nonexistent/conf.json: No such file or directory\n"
    );
}
