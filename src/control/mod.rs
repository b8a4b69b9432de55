//! The control process: the unprivileged third process that answers
//! `scwctl` on the control socket (as slaacd's frontend does for
//! `slaacctl`).
//!
//! Why a process of its own rather than the fetcher or the parent: the
//! root parent never parses a client's bytes, and a slow, flooding or
//! hostile client can stall nothing that matters — the fetcher's boot
//! signal and fetches, and the parent's applies, never wait for it. It
//! runs as the fetcher's user in the fetcher's chroot under
//! `pledge("stdio unix")` (accept(2) needs "unix", getpeereid(2) is
//! getsockopt SO_PEERCRED which "unix" allows), and knows only what the
//! other two tell it: the fetcher's reports (boot signal, fetches, the
//! document itself) on a stream socket, the parent's status (plan, what
//! scwd owns) on a SOCK_SEQPACKET pair, over which it asks the parent,
//! in five fixed bytes, for a refresh that a root client requested.
//!
//! Everything a client can make it hold is bounded: [`MAX_CLIENTS`]
//! connections (the oldest is dropped for a new one), a request line of
//! [`proto::MAX_REQUEST`] bytes, an answer of [`proto::MAX_REPLY`], and
//! [`CLIENT_TIMEOUT`] from accept to the last byte of the answer.

pub mod proto;
pub mod socket;
pub mod state;

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant, SystemTime};

use crate::privsep::{self, Identity};
use crate::{proctitle, sandbox};
use proto::{MAX_REQUEST, MAX_STATUS, Report, Request};
use state::{Settings, State};

/// Most clients served at once.
pub const MAX_CLIENTS: usize = 64;

/// How long a client has from its connection to the end of the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the fetcher waits for the control process to take a report
/// before it stops reporting: the fetcher's jobs come first.
const REPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// The parent's end of its link to the control process.
#[derive(Debug)]
pub struct ParentEnd {
    fd: OwnedFd,
}

impl ParentEnd {
    /// The descriptor, for the parent's poll loop.
    pub fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends the status text of [`state::status_text`]. Never blocks: a
    /// control process that does not read loses the update, not the
    /// parent its time.
    pub fn status(&self, text: &str) {
        match socket::send_packet(self.fd.as_raw_fd(), text.as_bytes()) {
            Ok(true) => {}
            Ok(false) => log::debug!("control: busy, status update dropped"),
            Err(e) => log::debug!("control: send: {e}"),
        }
    }

    /// The refresh requests waiting (the uid that asked, each), or why
    /// the link is unusable: the control process exited or sent what is
    /// not a refresh request.
    pub fn take(&self) -> Result<Vec<u32>, String> {
        let mut uids = Vec::new();
        let mut buf = [0u8; 16];
        // A few at most: each is a root client's request.
        for _ in 0..16 {
            match socket::recv_packet(self.fd.as_raw_fd(), &mut buf) {
                Ok(None) => break,
                Ok(Some(0)) => return Err("control process exited".to_string()),
                Ok(Some(n)) => uids.push(proto::parse_refresh(&buf[..n])?),
                Err(e) => return Err(format!("control: recv: {e}")),
            }
        }
        Ok(uids)
    }
}

/// The fetcher's end: where it reports, if there is a control process.
#[derive(Debug, Default)]
pub struct FetcherEnd {
    sock: Option<UnixStream>,
}

impl FetcherEnd {
    /// No control process (`-o`): reports go nowhere.
    pub fn none() -> FetcherEnd {
        FetcherEnd { sock: None }
    }

    /// Sends a report, waiting at most [`REPORT_TIMEOUT`]; a control
    /// process that does not take it is reported to no more.
    pub fn send(&mut self, report: &Report) {
        let Some(sock) = &mut self.sock else {
            return;
        };
        if let Err(e) = sock.write_all(&report.frame()) {
            log::warn!("control: {}; reports stopped", crate::strerror(&e));
            self.sock = None;
        }
    }
}

/// The control process's ends of both links.
#[derive(Debug)]
pub struct ControlEnds {
    parent: OwnedFd,
    reports: UnixStream,
}

/// Creates the links: the parent's end, the fetcher's, the control
/// process's.
pub fn links() -> io::Result<(ParentEnd, FetcherEnd, ControlEnds)> {
    let (parent, control) = socket::seqpacket_pair()?;
    let (fetcher, reports) = UnixStream::pair()?;
    fetcher.set_write_timeout(Some(REPORT_TIMEOUT))?;
    reports.set_nonblocking(true)?;
    Ok((
        ParentEnd { fd: parent },
        FetcherEnd {
            sock: Some(fetcher),
        },
        ControlEnds {
            parent: control,
            reports,
        },
    ))
}

/// Runs the control process in the child after the fork; returns its
/// exit status. Ends when the parent closes its end.
pub fn run(settings: Settings, id: &Identity, listener: UnixListener, ends: ControlEnds) -> i32 {
    // The parent decides when to stop: rc.d(8) signals every process
    // whose command line matches.
    for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
        // SAFETY: SIG_IGN installs no handler code; always sound.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
    // Held since main; pending ones are discarded now that they are ignored.
    let _ = crate::startup::release_signals();
    // Before the chroot: on Linux it reads /proc/self/stat.
    if let Err(e) = proctitle::set("control") {
        log::warn!("control: process title: {e}");
    }
    let sandboxed = privsep::drop_privileges(id)
        .map_err(|e| e.to_string())
        .and_then(|()| sandbox::unveil_lock().map_err(|e| format!("unveil: {e}")))
        // unix: accept(2) and getsockopt(SO_PEERCRED) on the control
        // socket; stdio: everything else.
        .and_then(|()| sandbox::pledge("stdio unix").map_err(|e| format!("pledge: {e}")));
    if let Err(e) = sandboxed {
        log::error!("control: {e}");
        return 1;
    }
    let mut server = Server {
        state: State::new(settings),
        listener,
        parent: ends.parent,
        reports: Some(ends.reports),
        report_buf: Vec::new(),
        clients: Vec::new(),
        accept_paused: None,
    };
    match server.serve() {
        Ok(()) => 0,
        Err(e) => {
            log::error!("control: {e}");
            1
        }
    }
}

struct Client {
    sock: UnixStream,
    uid: u32,
    request: Vec<u8>,
    /// The answer, and how much of it is written.
    answer: Option<(Vec<u8>, usize)>,
    deadline: Instant,
}

struct Server {
    state: State,
    listener: UnixListener,
    parent: OwnedFd,
    reports: Option<UnixStream>,
    report_buf: Vec<u8>,
    clients: Vec<Client>,
    accept_paused: Option<Instant>,
}

impl Server {
    fn serve(&mut self) -> Result<(), String> {
        loop {
            let now = Instant::now();
            if self.accept_paused.is_some_and(|t| now >= t) {
                self.accept_paused = None;
            }
            let mut fds = vec![pollfd(self.parent.as_raw_fd(), libc::POLLIN)];
            let listen_at = fds.len();
            if self.accept_paused.is_none() {
                fds.push(pollfd(self.listener.as_raw_fd(), libc::POLLIN));
            }
            let reports_at = fds.len();
            if let Some(r) = &self.reports {
                fds.push(pollfd(r.as_raw_fd(), libc::POLLIN));
            }
            let clients_at = fds.len();
            for c in &self.clients {
                let ev = if c.answer.is_some() {
                    libc::POLLOUT
                } else {
                    libc::POLLIN
                };
                fds.push(pollfd(c.sock.as_raw_fd(), ev));
            }
            let wake = self
                .clients
                .iter()
                .map(|c| c.deadline)
                .chain(self.accept_paused)
                .min();
            let timeout = wake.map_or(-1, |w| {
                w.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1
            });
            // SAFETY: fds is a valid array of fds.len() pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(format!("poll: {e}"));
            }
            let ready = |i: usize| fds[i].revents != 0;
            if ready(0) && !self.read_parent()? {
                return Ok(());
            }
            if self.reports.is_some() && ready(reports_at) {
                self.read_reports();
            }
            // Clients first, so that the list still matches fds.
            for (i, c) in self.clients.iter_mut().enumerate() {
                if ready(clients_at + i) {
                    serve_client(c, &self.state, &self.parent);
                }
            }
            let now = Instant::now();
            self.clients.retain(|c| {
                c.deadline > now && !matches!(&c.answer, Some((a, n)) if *n == a.len())
            });
            if self.accept_paused.is_none() && ready(listen_at) {
                self.accept();
            }
        }
    }

    /// The parent's status updates; `false` once it has closed its end.
    fn read_parent(&mut self) -> Result<bool, String> {
        let mut buf = vec![0u8; MAX_STATUS + 1];
        loop {
            match socket::recv_packet(self.parent.as_raw_fd(), &mut buf) {
                Ok(None) => return Ok(true),
                Ok(Some(0)) => return Ok(false),
                Ok(Some(n)) if n > MAX_STATUS => return Err("status from parent too long".into()),
                Ok(Some(n)) => {
                    let text = String::from_utf8(buf[..n].to_vec())
                        .map_err(|_| "status from parent not UTF-8".to_string())?;
                    self.state.status(text, SystemTime::now());
                }
                Err(e) => return Err(format!("recv from parent: {e}")),
            }
        }
    }

    /// Reads what the fetcher sent. A fetcher that is gone or speaks
    /// nonsense is heard no more; the parent deals with the fetcher.
    fn read_reports(&mut self) {
        let Some(r) = &mut self.reports else { return };
        let mut chunk = [0u8; 64 * 1024];
        let gone = loop {
            match r.read(&mut chunk) {
                Ok(0) => break Some("fetcher closed its end".to_string()),
                Ok(n) => {
                    self.report_buf.extend_from_slice(&chunk[..n]);
                    match proto::take_frames(&mut self.report_buf) {
                        Ok(reports) => {
                            for report in reports {
                                self.state.report(report, SystemTime::now());
                            }
                        }
                        Err(e) => break Some(e),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Some(format!("read: {e}")),
            }
        };
        if let Some(why) = gone {
            log::debug!("control: fetcher reports: {why}");
            self.reports = None;
            self.report_buf = Vec::new();
        }
    }

    fn accept(&mut self) {
        for _ in 0..MAX_CLIENTS {
            let sock = match self.listener.accept() {
                Ok((sock, _)) => sock,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors: stop accepting for a second
                    // rather than spin (slaacd's control_accept).
                    if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
                        self.accept_paused = Some(Instant::now() + Duration::from_secs(1));
                    } else if e.kind() != io::ErrorKind::Interrupted
                        && e.kind() != io::ErrorKind::ConnectionAborted
                    {
                        log::warn!("control: accept: {e}");
                    }
                    return;
                }
            };
            let Ok(uid) = socket::peer_uid(&sock) else {
                continue;
            };
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            if self.clients.len() == MAX_CLIENTS {
                // The oldest goes: a flood cannot lock everyone out.
                self.clients.remove(0);
            }
            self.clients.push(Client {
                sock,
                uid,
                request: Vec::new(),
                answer: None,
                deadline: Instant::now() + CLIENT_TIMEOUT,
            });
        }
    }
}

fn pollfd(fd: RawFd, events: libc::c_short) -> libc::pollfd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// Reads the request, answers it, writes the answer, as far as the
/// socket goes without blocking. A client that is done or gone is
/// marked so (its answer fully written) and dropped by the caller.
fn serve_client(c: &mut Client, state: &State, parent: &OwnedFd) {
    let done = |c: &mut Client| c.answer = Some((Vec::new(), 0));
    if c.answer.is_none() {
        let mut buf = [0u8; MAX_REQUEST];
        match c.sock.read(&mut buf) {
            Ok(0) => return done(c),
            Ok(n) => {
                let room = MAX_REQUEST - c.request.len();
                c.request.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => return done(c),
        }
        let answer = match c.request.iter().position(|&b| b == b'\n') {
            Some(nl) => answer(&c.request[..=nl], c.uid, state, parent),
            None if c.request.len() == MAX_REQUEST => {
                proto::error(&format!("request longer than {MAX_REQUEST} bytes"))
            }
            None => return,
        };
        c.answer = Some((answer, 0));
    }
    let Some((answer, written)) = &mut c.answer else {
        return;
    };
    while *written < answer.len() {
        match c.sock.write(&answer[*written..]) {
            Ok(n) => *written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                *written = answer.len();
                return;
            }
        }
    }
}

/// The answer to one request line from the client with `uid`.
fn answer(line: &[u8], uid: u32, state: &State, parent: &OwnedFd) -> Vec<u8> {
    let req = match Request::parse(line) {
        Ok(r) => r,
        Err(e) => {
            log::debug!("control: uid {uid}: {e}");
            return proto::error(&e);
        }
    };
    log::debug!("control: uid {uid}: {req}");
    if req == Request::Refresh {
        if uid != 0 {
            return proto::error("refresh: permission denied: root only");
        }
        return match socket::send_packet(parent.as_raw_fd(), &proto::refresh_message(uid)) {
            Ok(true) => proto::ok(""),
            Ok(false) => proto::error("refresh: the daemon is busy, try again"),
            Err(e) => proto::error(&format!("refresh: {e}")),
        };
    }
    match state.answer(&req, SystemTime::now()) {
        Ok(body) => proto::ok(&body),
        Err(e) => proto::error(&e),
    }
}
