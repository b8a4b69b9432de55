//! What crosses the control socket, and what the fetcher and the parent
//! tell the control process. Pure: bytes in, values out.
//!
//! A client sends one request line and reads one answer until the
//! server closes: `ok\n` and the body, or `error MESSAGE\n`. Words are
//! plain ASCII, so nothing a client sends needs unquoting.

use std::fmt;

use crate::conf_text::MAX_KEY;
use crate::config::valid_user_name;
use crate::metadata::MAX_BODY;

/// Longest request line, newline included.
pub const MAX_REQUEST: usize = 4096;

/// Most keys one `get` may ask for.
pub const MAX_GET_KEYS: usize = 64;

/// Longest answer the server sends, and a client reads.
pub const MAX_REPLY: usize = 64 * 1024;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// What scwd did and does.
    Show,
    /// Values of the last metadata document, by text `/conf` name.
    Get(Vec<String>),
    /// Fetch and reconcile now (root only).
    Refresh,
    /// sshd's AuthorizedKeysCommand for this user.
    SshKeys(String),
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Show => f.write_str("show"),
            Request::Get(keys) => write!(f, "get {}", keys.join(" ")),
            Request::Refresh => f.write_str("refresh"),
            Request::SshKeys(user) => write!(f, "ssh-keys {user}"),
        }
    }
}

/// A key as the text form names it: upper case, digits, `_`.
fn valid_key(k: &str) -> bool {
    (1..=MAX_KEY).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

impl Request {
    /// Parses a request from its words (scwctl's operands).
    pub fn from_words<S: AsRef<str>>(words: &[S]) -> Result<Request, String> {
        let words: Vec<&str> = words.iter().map(AsRef::as_ref).collect();
        match words.as_slice() {
            ["show"] => Ok(Request::Show),
            ["refresh"] => Ok(Request::Refresh),
            ["get"] => Err("get: no key".to_string()),
            ["get", keys @ ..] if keys.len() > MAX_GET_KEYS => {
                Err(format!("get: more than {MAX_GET_KEYS} keys"))
            }
            ["get", keys @ ..] => match keys.iter().find(|k| !valid_key(k)) {
                Some(k) => Err(format!("get: {}: not a metadata key name", printable(k))),
                None => Ok(Request::Get(keys.iter().map(|k| k.to_string()).collect())),
            },
            ["ssh-keys", user] if valid_user_name(user) => Ok(Request::SshKeys(user.to_string())),
            ["ssh-keys", user] => Err(format!("ssh-keys: {}: invalid user name", printable(user))),
            [cmd, ..] if ["show", "refresh", "ssh-keys"].contains(cmd) => {
                Err(format!("{cmd}: wrong number of arguments"))
            }
            [cmd, ..] => Err(format!("unknown command \"{}\"", printable(cmd))),
            [] => Err("no command".to_string()),
        }
    }

    /// Parses one request line as received, newline included.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        let line = line
            .strip_suffix(b"\n")
            .ok_or_else(|| "request not terminated by a newline".to_string())?;
        if !line.iter().all(|&b| b == b' ' || b.is_ascii_graphic()) {
            return Err("request is not printable ASCII".to_string());
        }
        // ASCII checked above.
        let text = std::str::from_utf8(line).map_err(|_| "invalid request".to_string())?;
        let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
        Request::from_words(&words)
    }

    /// The request line a client sends.
    pub fn to_line(&self) -> String {
        format!("{self}\n")
    }
}

/// A word quoted in an error, cut and stripped of what a terminal could
/// take for a command.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A successful answer.
pub fn ok(body: &str) -> Vec<u8> {
    let mut v = b"ok\n".to_vec();
    v.extend_from_slice(body.as_bytes());
    v
}

/// A refusal: one line.
pub fn error(msg: &str) -> Vec<u8> {
    format!("error {}\n", printable_line(msg)).into_bytes()
}

fn printable_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A client's reading of an answer: the body, or the server's refusal.
pub fn parse_reply(reply: &[u8]) -> Result<&str, String> {
    let text = std::str::from_utf8(reply).map_err(|_| "answer is not UTF-8".to_string())?;
    if let Some(body) = text.strip_prefix("ok\n") {
        return Ok(body);
    }
    match text
        .strip_prefix("error ")
        .and_then(|m| m.strip_suffix('\n'))
    {
        Some(msg) if !msg.contains('\n') => Err(msg.to_string()),
        _ => Err("malformed answer".to_string()),
    }
}

/// What the fetcher reports to the control process, for `show` and `get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The boot signal was answered.
    BootSent,
    /// A boot signal attempt failed; it will be retried.
    BootFailing(String),
    /// A metadata document, as fetched, and the URL that served it.
    Fetched(String, Vec<u8>),
    /// A fetch failed; `true` when it will be retried.
    FetchFailed(String, bool),
}

/// Largest report frame: a whole metadata document, its URL, the tag.
pub const MAX_REPORT: usize = MAX_BODY + MAX_REPORT_TEXT + 3;

/// Longest text carried in a report; longer text is cut.
const MAX_REPORT_TEXT: usize = 1024;

const R_BOOT_SENT: u8 = 1;
const R_BOOT_FAILING: u8 = 2;
const R_FETCHED: u8 = 4;
const R_FETCH_RETRY: u8 = 5;
const R_FETCH_FAILED: u8 = 6;

fn cut(s: &str, max: usize) -> &str {
    let mut n = s.len().min(max);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

impl Report {
    /// One frame: a big-endian u32 length, a tag, the payload.
    pub fn frame(&self) -> Vec<u8> {
        let fetched;
        let (tag, payload): (u8, &[u8]) = match self {
            Report::BootSent => (R_BOOT_SENT, b""),
            Report::BootFailing(s) => (R_BOOT_FAILING, cut(s, MAX_REPORT_TEXT).as_bytes()),
            Report::Fetched(url, body) => {
                // The URL's length (u16), the URL, the document.
                let url = cut(url, MAX_REPORT_TEXT).as_bytes();
                let mut v = (url.len() as u16).to_be_bytes().to_vec();
                v.extend_from_slice(url);
                v.extend_from_slice(&body[..body.len().min(MAX_BODY)]);
                fetched = v;
                (R_FETCHED, &fetched[..])
            }
            Report::FetchFailed(s, true) => (R_FETCH_RETRY, cut(s, MAX_REPORT_TEXT).as_bytes()),
            Report::FetchFailed(s, false) => (R_FETCH_FAILED, cut(s, MAX_REPORT_TEXT).as_bytes()),
        };
        let mut v = Vec::with_capacity(5 + payload.len());
        v.extend_from_slice(&(payload.len() as u32 + 1).to_be_bytes());
        v.push(tag);
        v.extend_from_slice(payload);
        v
    }

    /// Decodes a frame's contents (after the length).
    pub fn decode(buf: &[u8]) -> Result<Report, String> {
        let (&tag, body) = buf.split_first().ok_or("empty report")?;
        let text = || {
            if body.len() > MAX_REPORT_TEXT {
                return Err(format!("report text of {} bytes", body.len()));
            }
            String::from_utf8(body.to_vec()).map_err(|_| "report text not UTF-8".to_string())
        };
        match tag {
            R_BOOT_SENT if body.is_empty() => Ok(Report::BootSent),
            R_BOOT_FAILING => text().map(Report::BootFailing),
            R_FETCHED => {
                let bad = || format!("invalid document report, {} bytes", body.len());
                let n = body.get(..2).ok_or_else(bad)?;
                let n = usize::from(u16::from_be_bytes([n[0], n[1]]));
                let url = body.get(2..2 + n).filter(|_| n <= MAX_REPORT_TEXT);
                let url = url.ok_or_else(bad)?;
                let url = String::from_utf8(url.to_vec()).map_err(|_| bad())?;
                let doc = &body[2 + n..];
                if doc.len() > MAX_BODY {
                    return Err(bad());
                }
                Ok(Report::Fetched(url, doc.to_vec()))
            }
            R_FETCH_RETRY => text().map(|t| Report::FetchFailed(t, true)),
            R_FETCH_FAILED => text().map(|t| Report::FetchFailed(t, false)),
            t => Err(format!("invalid report type {t}, {} bytes", body.len())),
        }
    }
}

/// Splits complete frames off the front of `buf`; leaves a partial one.
/// A frame announcing more than [`MAX_REPORT`] is an error: the stream
/// cannot be resynchronised.
pub fn take_frames(buf: &mut Vec<u8>) -> Result<Vec<Report>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = buf.get(at..at + 4) {
        let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_REPORT {
            return Err(format!("report frame of {len} bytes"));
        }
        let Some(frame) = buf.get(at + 4..at + 4 + len) else {
            break;
        };
        out.push(Report::decode(frame)?);
        at += 4 + len;
    }
    buf.drain(..at);
    Ok(out)
}

/// Control process → parent: a root client asked for a refresh.
pub const REFRESH: u8 = 1;

/// The refresh request message, with the asking uid for the log.
pub fn refresh_message(uid: u32) -> [u8; 5] {
    let u = uid.to_be_bytes();
    [REFRESH, u[0], u[1], u[2], u[3]]
}

/// The parent's reading of a message from the control process: the uid
/// of a refresh request, or why the message is refused.
pub fn parse_refresh(msg: &[u8]) -> Result<u32, String> {
    match msg {
        [REFRESH, a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(format!("invalid message of {} bytes", msg.len())),
    }
}

/// Longest status text the parent sends the control process.
pub const MAX_STATUS: usize = 2048;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_hostile_ones_are_refused() {
        for r in [
            Request::Show,
            Request::Refresh,
            Request::Get(vec!["IPV6_ADDRESS".into(), "HOSTNAME".into()]),
            Request::SshKeys("root".into()),
        ] {
            assert_eq!(Request::parse(r.to_line().as_bytes()), Ok(r));
        }
        assert_eq!(
            Request::parse(b"get  ID   NAME\n"),
            Ok(Request::Get(vec!["ID".into(), "NAME".into()]))
        );
        let long_get = format!("get {}\n", vec!["ID"; MAX_GET_KEYS + 1].join(" "));
        for (line, why) in [
            (&b"show"[..], "newline"),
            (b"show\r\n", "printable"),
            (b"show\tx\n", "printable"),
            (b"\xff\n", "printable"),
            (b"\n", "no command"),
            (b"show x\n", "wrong number"),
            (b"get\n", "no key"),
            (b"get ipv6_address\n", "not a metadata key"),
            (b"get ../x\n", "not a metadata key"),
            (long_get.as_bytes(), "more than"),
            (b"ssh-keys\n", "wrong number"),
            (b"ssh-keys a b\n", "wrong number"),
            (b"ssh-keys -oops\n", "invalid user name"),
            (b"rm -rf\n", "unknown command"),
        ] {
            let err = Request::parse(line).unwrap_err();
            assert!(err.contains(why), "{line:?}: {err}");
        }
    }

    #[test]
    fn replies_parse_back() {
        assert_eq!(parse_reply(&ok("a\nb\n")), Ok("a\nb\n"));
        assert_eq!(parse_reply(&ok("")), Ok(""));
        assert_eq!(
            parse_reply(&error("refresh: root only\nfake")),
            Err("refresh: root only fake".to_string())
        );
        assert!(parse_reply(b"okay").is_err());
        assert!(parse_reply(b"error x\ny\n").is_err());
        assert!(parse_reply(b"").is_err());
    }

    #[test]
    fn reports_cross_as_frames_however_they_are_cut() {
        let reports = [
            Report::BootFailing("http://169.254.42.42/state: connection refused".into()),
            Report::BootSent,
            Report::Fetched(
                "http://169.254.42.42/conf?format=json".into(),
                br#"{"id": "x"}"#.to_vec(),
            ),
            Report::FetchFailed("timeout".into(), true),
            Report::FetchFailed("HTTP 403".into(), false),
        ];
        let stream: Vec<u8> = reports.iter().flat_map(|r| r.frame()).collect();
        for step in [1, 3, 7, stream.len()] {
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for chunk in stream.chunks(step) {
                buf.extend_from_slice(chunk);
                got.extend(take_frames(&mut buf).unwrap());
            }
            assert_eq!(got, reports, "chunks of {step}");
            assert!(buf.is_empty());
        }
        let mut huge = ((MAX_REPORT + 1) as u32).to_be_bytes().to_vec();
        assert!(take_frames(&mut huge).is_err());
        let mut bad = vec![0, 0, 0, 2, R_BOOT_SENT, 0];
        assert!(take_frames(&mut bad).is_err());
        let mut unknown = vec![0, 0, 0, 1, 99];
        assert!(take_frames(&mut unknown).is_err());
        // A URL length beyond the frame.
        let mut lying = vec![0, 0, 0, 4, R_FETCHED, 0, 9, b'h'];
        assert!(take_frames(&mut lying).is_err());
    }

    #[test]
    fn the_parent_reads_only_a_refresh() {
        assert_eq!(parse_refresh(&refresh_message(0)), Ok(0));
        assert_eq!(parse_refresh(&refresh_message(1000)), Ok(1000));
        assert!(parse_refresh(&[REFRESH, 0, 0, 0]).is_err());
        assert!(parse_refresh(&[2, 0, 0, 0, 0]).is_err());
        assert!(parse_refresh(b"show\n").is_err());
    }
}
