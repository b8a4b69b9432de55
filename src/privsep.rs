//! Privilege separation: the message protocol between the root parent and
//! the unprivileged fetcher, its framing, the fork, and the privilege drop.
//!
//! As in slaacd, the protocol is one closed enum; the parent checks the
//! exact length of every payload and refuses what does not decode.

use std::ffi::CString;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use crate::plan::{Ipv6Net, MAX_ADDRESSES, Plan};

/// Largest frame either side sends or accepts.
pub const MAX_FRAME: usize = 2048;

/// Longest text carried in a message; longer text is cut.
const MAX_TEXT: usize = 1024;

/// Everything that crosses the socketpair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Fetcher → parent: the service accepted the boot signal.
    Booted,
    /// Fetcher → parent: the boot signal was given up on, and why.
    BootFailed(String),
    /// Fetcher → parent: a plan built from fresh metadata.
    Plan(Plan),
    /// Fetcher → parent: no plan this time, and why (one line).
    Failed(String),
    /// Parent → fetcher: fetch again (SIGHUP).
    Refresh,
}

const T_BOOTED: u8 = 1;
const T_BOOT_FAILED: u8 = 2;
const T_PLAN: u8 = 3;
const T_FAILED: u8 = 4;
const T_REFRESH: u8 = 5;

/// Why a frame was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A tag this protocol does not have.
    UnknownType(u8),
    /// The payload length is not what the type requires.
    BadLength(&'static str, usize),
    /// Text that is not UTF-8.
    BadText(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnknownType(t) => write!(f, "unknown message type {t}"),
            DecodeError::BadLength(what, n) => write!(f, "invalid {what}: length {n}"),
            DecodeError::BadText(what) => write!(f, "invalid {what}: not UTF-8"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl Message {
    /// The payload of one frame: a type byte and its fields.
    pub fn encode(&self) -> Vec<u8> {
        let text = |tag: u8, s: &str| {
            let mut cut = s.len().min(MAX_TEXT);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            let mut v = vec![tag];
            v.extend_from_slice(&s.as_bytes()[..cut]);
            v
        };
        match self {
            Message::Booted => vec![T_BOOTED],
            Message::Refresh => vec![T_REFRESH],
            Message::BootFailed(s) => text(T_BOOT_FAILED, s),
            Message::Failed(s) => text(T_FAILED, s),
            Message::Plan(p) => {
                let mut v = vec![T_PLAN, p.interface.len() as u8];
                v.extend_from_slice(p.interface.as_bytes());
                v.push(p.addresses.len() as u8);
                for n in &p.addresses {
                    v.extend_from_slice(&n.addr.octets());
                    v.push(n.prefixlen);
                }
                match p.default_gateway {
                    Some(gw) => {
                        v.push(1);
                        v.extend_from_slice(&gw.octets());
                    }
                    None => v.push(0),
                }
                v
            }
        }
    }

    /// Decodes one payload, requiring the exact length of its type. A
    /// decoded plan still has to pass [`Plan::validate`].
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        let (&tag, body) = buf
            .split_first()
            .ok_or(DecodeError::BadLength("message", 0))?;
        let text = |what| {
            if body.len() > MAX_TEXT {
                return Err(DecodeError::BadLength(what, body.len()));
            }
            String::from_utf8(body.to_vec()).map_err(|_| DecodeError::BadText(what))
        };
        match tag {
            T_BOOTED if body.is_empty() => Ok(Message::Booted),
            T_BOOTED => Err(DecodeError::BadLength("BOOTED", body.len())),
            T_REFRESH if body.is_empty() => Ok(Message::Refresh),
            T_REFRESH => Err(DecodeError::BadLength("REFRESH", body.len())),
            T_BOOT_FAILED => text("BOOT_FAILED").map(Message::BootFailed),
            T_FAILED => text("FAILED").map(Message::Failed),
            T_PLAN => decode_plan(body).map(Message::Plan),
            t => Err(DecodeError::UnknownType(t)),
        }
    }
}

fn decode_plan(body: &[u8]) -> Result<Plan, DecodeError> {
    let bad = || DecodeError::BadLength("PLAN", body.len());
    let iflen = usize::from(*body.first().ok_or_else(bad)?);
    let name = body.get(1..1 + iflen).ok_or_else(bad)?;
    let interface = String::from_utf8(name.to_vec()).map_err(|_| DecodeError::BadText("PLAN"))?;
    let rest = &body[1 + iflen..];
    let count = usize::from(*rest.first().ok_or_else(bad)?);
    if count > MAX_ADDRESSES {
        return Err(bad());
    }
    let (nets, tail) = rest[1..].split_at_checked(count * 17).ok_or_else(bad)?;
    let addresses = nets
        .chunks_exact(17)
        .map(|c| Ipv6Net {
            addr: Ipv6Addr::from(<[u8; 16]>::try_from(&c[..16]).expect("chunk of 17")),
            prefixlen: c[16],
        })
        .collect();
    let default_gateway = match tail {
        [0] => None,
        [1, gw @ ..] if gw.len() == 16 => Some(Ipv6Addr::from(
            <[u8; 16]>::try_from(gw).expect("length checked"),
        )),
        _ => return Err(bad()),
    };
    Ok(Plan {
        interface,
        addresses,
        default_gateway,
    })
}

/// One end of the socketpair, sending and receiving length-framed messages.
#[derive(Debug)]
pub struct Channel {
    sock: UnixStream,
}

/// Why receiving failed.
#[derive(Debug)]
pub enum RecvError {
    /// The other process closed its end: it exited.
    Closed,
    /// A read failed.
    Io(io::Error),
    /// A frame announced a size over [`MAX_FRAME`].
    TooLarge(usize),
    /// A frame did not decode.
    Decode(DecodeError),
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Closed => f.write_str("connection closed"),
            RecvError::Io(e) => write!(f, "read: {e}"),
            RecvError::TooLarge(n) => write!(f, "frame of {n} bytes"),
            RecvError::Decode(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RecvError {}

impl Channel {
    /// Creates both ends (before the fork).
    pub fn pair() -> io::Result<(Channel, Channel)> {
        let (a, b) = UnixStream::pair()?;
        Ok((Channel { sock: a }, Channel { sock: b }))
    }

    /// Sends one message as a frame: a big-endian u32 length, then the payload.
    pub fn send(&mut self, msg: &Message) -> io::Result<()> {
        let payload = msg.encode();
        let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&payload);
        self.sock.write_all(&frame)
    }

    /// Receives one message, blocking until a whole frame has arrived.
    pub fn recv(&mut self) -> Result<Message, RecvError> {
        let mut len = [0u8; 4];
        match self.sock.read_exact(&mut len) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(RecvError::Closed),
            r => r.map_err(RecvError::Io)?,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(RecvError::TooLarge(len));
        }
        let mut payload = vec![0u8; len];
        match self.sock.read_exact(&mut payload) {
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(RecvError::Closed),
            r => r.map_err(RecvError::Io)?,
        }
        Message::decode(&payload).map_err(RecvError::Decode)
    }

    /// Waits until a message (or end of file) can be read, up to
    /// `timeout` (`None`: forever). Returns `false` on timeout or when a
    /// signal interrupted the wait.
    pub fn wait(&self, timeout: Option<std::time::Duration>) -> io::Result<bool> {
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
        wait_readable(&[self.sock.as_raw_fd()], ms).map(|r| r[0])
    }

    /// The descriptor, for the parent's poll loop.
    pub fn as_raw_fd(&self) -> i32 {
        self.sock.as_raw_fd()
    }
}

/// poll(2) on `fds` for input; which became readable. An interrupted wait
/// reports none, so the caller can look at its signal flags.
pub fn wait_readable(fds: &[i32], timeout_ms: i32) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: pfds is a valid, initialised array of pfds.len() pollfds.
    let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(vec![false; fds.len()]);
        }
        return Err(e);
    }
    Ok(pfds.iter().map(|p| p.revents != 0).collect())
}

/// The unprivileged identity the fetcher takes, resolved while /etc/passwd
/// is still visible.
#[derive(Debug, Clone)]
pub struct Identity {
    /// User name, for messages.
    pub user: String,
    /// Its uid.
    pub uid: libc::uid_t,
    /// Its primary gid.
    pub gid: libc::gid_t,
    /// Directory to chroot into.
    pub chroot: String,
}

/// Looks up `user` in the password database.
pub fn lookup_user(user: &str, chroot: &str) -> io::Result<Identity> {
    let name = CString::new(user).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: name is NUL-terminated; getpwnam returns NULL or a pointer to
    // static storage, read at once before any other getpw* call.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("unknown user {}", crate::config::quote(user)),
        ));
    }
    // SAFETY: pw is non-null and points to a valid passwd struct.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if uid == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("user {} is root", crate::config::quote(user)),
        ));
    }
    Ok(Identity {
        user: user.to_string(),
        uid,
        gid,
        chroot: chroot.to_string(),
    })
}

/// Turns a -1 return into the errno it set, named after the call.
fn check(ret: libc::c_int, call: &str) -> io::Result<()> {
    if ret == -1 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{call}: {}", crate::strerror(&e)),
        ));
    }
    Ok(())
}

/// Drops root for good, in slaacd's order: chroot, then groups, gid, uid.
/// Must run in the child before anything reads the network.
pub fn drop_privileges(id: &Identity) -> io::Result<()> {
    let dir = CString::new(id.chroot.as_str())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: dir is NUL-terminated and outlives the call.
    check(
        unsafe { libc::chroot(dir.as_ptr()) },
        &format!("chroot {}", id.chroot),
    )?;
    // SAFETY: a static NUL-terminated path.
    check(unsafe { libc::chdir(c"/".as_ptr()) }, "chdir /")?;
    let groups = [id.gid];
    // SAFETY: groups is a valid array of one gid_t.
    check(unsafe { libc::setgroups(1, groups.as_ptr()) }, "setgroups")?;
    // SAFETY: plain integer arguments.
    check(
        unsafe { libc::setresgid(id.gid, id.gid, id.gid) },
        "setresgid",
    )?;
    // SAFETY: plain integer arguments.
    check(
        unsafe { libc::setresuid(id.uid, id.uid, id.uid) },
        "setresuid",
    )?;
    Ok(())
}

/// pipe(2), both ends owned.
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for pipe(2) to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe(2) returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Which side of the fork this process is.
#[derive(Debug)]
pub enum Forked {
    /// The parent, with the child's pid.
    Parent(libc::pid_t),
    /// The child.
    Child,
}

/// fork(2). The caller must not have started any thread: the child of a
/// multi-threaded process may only call async-signal-safe functions.
pub fn fork() -> io::Result<Forked> {
    // SAFETY: scwd forks before it builds the HTTP client (the only thing
    // that starts threads), so the process is single-threaded here.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// How the fetcher ended, from waitpid(2), for the parent's last log line.
pub fn reap(pid: libc::pid_t) -> String {
    let mut status = 0;
    // SAFETY: status is a valid out-pointer; WNOHANG never blocks.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    if r != pid {
        "closed its end".to_string()
    } else if libc::WIFSIGNALED(status) {
        format!("terminated by signal {}", libc::WTERMSIG(status))
    } else {
        format!("exited with status {}", libc::WEXITSTATUS(status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan {
            interface: "vio0".into(),
            addresses: vec![
                Ipv6Net {
                    addr: "2001:bc8:4700:2100::302d".parse().unwrap(),
                    prefixlen: 127,
                },
                Ipv6Net {
                    addr: "2001:db8::1".parse().unwrap(),
                    prefixlen: 64,
                },
            ],
            default_gateway: Some("fe80::1".parse().unwrap()),
        }
    }

    #[test]
    fn every_message_round_trips() {
        let msgs = [
            Message::Booted,
            Message::BootFailed("http://169.254.42.42/state: HTTP 404 Not Found".into()),
            Message::Plan(plan()),
            Message::Plan(Plan {
                interface: "vio0".into(),
                addresses: vec![],
                default_gateway: None,
            }),
            Message::Failed("metadata: invalid JSON".into()),
            Message::Refresh,
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()), Ok(m.clone()));
        }
    }

    #[test]
    fn text_is_cut_on_a_char_boundary() {
        let long = "é".repeat(MAX_TEXT);
        let Ok(Message::Failed(s)) = Message::decode(&Message::Failed(long).encode()) else {
            panic!("did not decode");
        };
        assert!(s.len() <= MAX_TEXT && s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn wrong_lengths_and_types_are_refused() {
        let good = Message::Plan(plan()).encode();
        for cut in 0..good.len() {
            assert!(
                Message::decode(&good[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        let mut long = good.clone();
        long.push(0);
        assert!(Message::decode(&long).is_err());
        let mut lying = good.clone();
        lying[6] = 200; // address count beyond the payload
        assert!(Message::decode(&lying).is_err());
        assert_eq!(
            Message::decode(&[T_BOOTED, 0]),
            Err(DecodeError::BadLength("BOOTED", 1))
        );
        assert_eq!(Message::decode(&[99]), Err(DecodeError::UnknownType(99)));
        assert_eq!(
            Message::decode(&[T_FAILED, 0xff]),
            Err(DecodeError::BadText("FAILED"))
        );
    }

    #[test]
    fn frames_cross_a_socketpair() {
        let (mut a, mut b) = Channel::pair().unwrap();
        a.send(&Message::Plan(plan())).unwrap();
        a.send(&Message::Booted).unwrap();
        assert!(b.wait(Some(std::time::Duration::from_secs(1))).unwrap());
        assert_eq!(b.recv().unwrap(), Message::Plan(plan()));
        assert_eq!(b.recv().unwrap(), Message::Booted);
        drop(a);
        assert!(matches!(b.recv(), Err(RecvError::Closed)));
    }

    #[test]
    fn an_oversized_frame_is_refused_before_reading_it() {
        let (a, mut b) = Channel::pair().unwrap();
        (&a.sock).write_all(&u32::MAX.to_be_bytes()).unwrap();
        assert!(matches!(b.recv(), Err(RecvError::TooLarge(_))));
    }
}
