//! The control socket's system calls: the root parent's bind (with the
//! "already running" check), peer credentials for the control process,
//! and the SOCK_SEQPACKET pair between the parent and it.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// The default control socket.
pub const DEFAULT_PATH: &str = "/var/run/scwd.sock";

/// Longest socket path: `sun_path` is 104 bytes on OpenBSD, with its NUL.
pub const MAX_PATH: usize = 103;

/// Why the control socket could not be set up.
#[derive(Debug)]
pub enum SocketError {
    /// Another scwd answers on the socket.
    AlreadyRunning,
    /// The path is too long for `sun_path`.
    PathTooLong,
    /// Something other than a socket is in the way; scwd removes only
    /// what it made.
    NotASocket,
    /// A system call failed.
    Io(&'static str, io::Error),
}

impl fmt::Display for SocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketError::AlreadyRunning => f.write_str("already running"),
            SocketError::PathTooLong => write!(f, "longer than {MAX_PATH} bytes"),
            SocketError::NotASocket => f.write_str("exists and is not a socket"),
            SocketError::Io(call, e) => write!(f, "{call}: {}", crate::strerror(e)),
        }
    }
}

impl std::error::Error for SocketError {}

/// Fails with [`SocketError::AlreadyRunning`] when a daemon answers on
/// `path` (ntpd's control_check); removes a socket nobody answers on,
/// left by a scwd that was killed.
pub fn check(path: &Path) -> Result<(), SocketError> {
    if path.as_os_str().len() > MAX_PATH {
        return Err(SocketError::PathTooLong);
    }
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SocketError::Io("lstat", e)),
        Ok(m) if !m.file_type().is_socket() => return Err(SocketError::NotASocket),
        Ok(_) => {}
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(SocketError::AlreadyRunning),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            std::fs::remove_file(path).map_err(|e| SocketError::Io("unlink", e))
        }
        Err(e) => Err(SocketError::Io("connect", e)),
    }
}

/// Checks, then binds and listens on `path`, mode 0666: every local user
/// may ask (`show`, `get`, and `ssh-keys` as sshd's unprivileged
/// AuthorizedKeysCommandUser); what changes something is checked
/// against the peer's uid. Call as root, before any privilege is dropped.
pub fn listen(path: &Path) -> Result<UnixListener, SocketError> {
    check(path)?;
    let listener = UnixListener::bind(path).map_err(|e| SocketError::Io("bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| SocketError::Io("chmod", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| SocketError::Io("fcntl", e))?;
    Ok(listener)
}

/// The effective uid of the process at the other end of `sock`:
/// getpeereid(2) on OpenBSD (getsockopt SO_PEERCRED, allowed by "unix").
#[cfg(target_os = "openbsd")]
pub fn peer_uid(sock: &UnixStream) -> io::Result<libc::uid_t> {
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: the fd is open; uid and gid are valid out-pointers.
    if unsafe { libc::getpeereid(sock.as_raw_fd(), &mut uid, &mut gid) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}

/// The effective uid of the process at the other end of `sock`:
/// SO_PEERCRED on Linux.
#[cfg(not(target_os = "openbsd"))]
pub fn peer_uid(sock: &UnixStream) -> io::Result<libc::uid_t> {
    // SAFETY: ucred is plain integers; all zero is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: cred is a valid buffer of len bytes for getsockopt to fill.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// A connected SOCK_SEQPACKET pair: each message arrives whole or not at
/// all, so a non-blocking send can never leave half a message behind.
pub fn seqpacket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid array of two ints for socketpair(2) to fill.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socketpair(2) returned two fresh descriptors nobody owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Sends one message without blocking; `Ok(false)` when the peer's
/// buffer is full and the message was dropped.
pub fn send_packet(fd: RawFd, msg: &[u8]) -> io::Result<bool> {
    // SAFETY: msg is valid for msg.len() bytes.
    let n = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), libc::MSG_DONTWAIT) };
    if n >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        return Ok(false);
    }
    Err(e)
}

/// Receives one message without blocking into `buf`: `Ok(None)` when
/// none is waiting, `Ok(Some(0))` when the peer has closed its end.
/// A message longer than `buf` comes back cut (and is then refused by
/// its decoder, which checks exact lengths).
pub fn recv_packet(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
        return Ok(None);
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("scwd-sock-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("scwd.sock")
    }

    #[test]
    fn a_live_socket_means_already_running_and_a_dead_one_is_replaced() {
        let path = tmp("live");
        let first = listen(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o666);
        assert!(matches!(listen(&path), Err(SocketError::AlreadyRunning)));
        drop(first);
        // Nobody answers now: the stale socket is replaced.
        let again = listen(&path).unwrap();
        let client = UnixStream::connect(&path).unwrap();
        let (served, _) = loop {
            match again.accept() {
                Ok(pair) => break pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("accept: {e}"),
            }
        };
        // SAFETY: geteuid has no preconditions.
        assert_eq!(peer_uid(&served).unwrap(), unsafe { libc::geteuid() });
        drop(client);
    }

    #[test]
    fn what_is_not_a_socket_is_left_alone() {
        let path = tmp("file");
        std::fs::write(&path, "precious").unwrap();
        assert!(matches!(listen(&path), Err(SocketError::NotASocket)));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
        let long = std::path::PathBuf::from(format!("/tmp/{}", "x".repeat(MAX_PATH)));
        assert!(matches!(check(&long), Err(SocketError::PathTooLong)));
    }

    #[test]
    fn seqpacket_keeps_messages_whole_and_reports_the_close() {
        let (a, b) = seqpacket_pair().unwrap();
        assert!(send_packet(a.as_raw_fd(), b"one").unwrap());
        assert!(send_packet(a.as_raw_fd(), b"two!").unwrap());
        let mut buf = [0u8; 16];
        assert_eq!(recv_packet(b.as_raw_fd(), &mut buf).unwrap(), Some(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(recv_packet(b.as_raw_fd(), &mut buf).unwrap(), Some(4));
        assert_eq!(recv_packet(b.as_raw_fd(), &mut buf).unwrap(), None);
        // A full peer drops messages instead of blocking the sender.
        let mut sent = 0;
        while send_packet(a.as_raw_fd(), &[0u8; 1024]).unwrap() {
            sent += 1;
            assert!(sent < 1_000_000);
        }
        drop(a);
        while recv_packet(b.as_raw_fd(), &mut buf).unwrap() != Some(0) {}
    }
}
