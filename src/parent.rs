//! The parent: the root process that holds the kernel sockets and applies
//! plans. Its whole privileged surface is one `match` over the messages
//! the fetcher may send.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::net::{Applier, Backend, Changes};
use crate::privsep::{self, Channel, Message, RecvError};

/// How the parent's loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// `-o` finished with every job done, or SIGTERM/SIGINT.
    Success,
    /// `-o` finished and something failed; it was logged.
    Failure,
    /// The daemon cannot go on (fetcher gone, corrupt message), and why.
    Fatal(String),
}

/// What `-o` waits for, and whether it went well.
#[derive(Debug, Default)]
struct Progress {
    booted: Option<bool>,
    configured: Option<bool>,
}

/// The parent's state.
pub struct Parent<B> {
    applier: Applier<B>,
    chan: Channel,
    fetcher: libc::pid_t,
    once: bool,
    /// Written to and closed once the first plan is settled, so the
    /// process that started the daemon can return to rc(8).
    ready: Option<OwnedFd>,
    progress: Progress,
    ipv6: bool,
}

impl<B: Backend> Parent<B> {
    /// `boot_signal`/`ipv6`: whether the fetcher will report on each job.
    pub fn new(
        applier: Applier<B>,
        chan: Channel,
        fetcher: libc::pid_t,
        once: bool,
        ready: Option<OwnedFd>,
        boot_signal: bool,
        ipv6: bool,
    ) -> Self {
        let progress = Progress {
            booted: (!boot_signal).then_some(true),
            configured: (!ipv6).then_some(true),
        };
        Parent {
            applier,
            chan,
            fetcher,
            once,
            ready,
            progress,
            ipv6,
        }
    }

    /// Serves the fetcher's messages and the signals until done.
    pub fn run(&mut self, signals: &SignalPipe) -> Exit {
        loop {
            if let Some(exit) = self.finished() {
                return exit;
            }
            let ready = match privsep::wait_readable(&[self.chan.as_raw_fd(), signals.fd()], -1) {
                Ok(r) => r,
                Err(e) => return Exit::Fatal(format!("poll: {e}")),
            };
            if ready[1] {
                match signals.take() {
                    Some(libc::SIGHUP) => {
                        log::info!("SIGHUP: fetching metadata again");
                        if let Err(e) = self.chan.send(&Message::Refresh) {
                            return Exit::Fatal(format!("fetcher: send: {e}"));
                        }
                    }
                    Some(sig) => {
                        log::info!("exiting on signal {sig}, configuration left in place");
                        return Exit::Success;
                    }
                    None => {}
                }
            }
            if ready[0] {
                match self.chan.recv() {
                    Ok(msg) => {
                        self.dispatch(msg);
                        self.release_when_ready();
                    }
                    Err(RecvError::Closed) => {
                        return Exit::Fatal(format!("fetcher {}", privsep::reap(self.fetcher)));
                    }
                    Err(e) => return Exit::Fatal(format!("invalid message from fetcher: {e}")),
                }
            }
        }
    }

    fn dispatch(&mut self, msg: Message) {
        match msg {
            Message::Booted => self.progress.booted = Some(true),
            Message::BootFailed(why) => {
                log::error!("boot signal: {why}");
                self.progress.booted = Some(false);
            }
            Message::Failed(why) => {
                log::error!("{why}");
                self.settle(false);
            }
            Message::Plan(plan) => {
                let iface = self.applier.backend().interface().to_string();
                let checked = plan.validate().map_err(|e| e.to_string()).and_then(|()| {
                    if plan.interface == iface {
                        Ok(())
                    } else {
                        Err(format!("interface {} is not {iface}", plan.interface))
                    }
                });
                if let Err(e) = checked {
                    log::error!("refused plan from fetcher: {e}");
                    self.settle(false);
                    return;
                }
                match self.applier.apply(&plan) {
                    Ok(changes) => {
                        report(&iface, &changes, plan.addresses.is_empty());
                        self.settle(true);
                    }
                    Err(e) => {
                        log::error!("{e}");
                        self.settle(false);
                    }
                }
            }
            Message::Refresh => log::debug!("ignoring REFRESH from fetcher"),
        }
    }

    fn settle(&mut self, ok: bool) {
        self.progress.configured = Some(ok);
    }

    /// Releases the process waiting for the daemon once the first plan is
    /// settled (or, with `ipv6 no`, the boot signal).
    fn release_when_ready(&mut self) {
        let settled = if self.ipv6 {
            self.progress.configured.is_some()
        } else {
            self.progress.booted.is_some()
        };
        if settled {
            if let Some(fd) = self.ready.take() {
                let _ = std::fs::File::from(fd).write_all(b"1");
            }
        }
    }

    fn finished(&self) -> Option<Exit> {
        if !self.once {
            return None;
        }
        match (self.progress.booted, self.progress.configured) {
            (Some(true), Some(true)) => Some(Exit::Success),
            (Some(_), Some(_)) => Some(Exit::Failure),
            _ => None,
        }
    }
}

/// One line per change; a plan with nothing new says so once at debug.
fn report(iface: &str, c: &Changes, no_ipv6: bool) {
    for net in &c.added {
        log::info!("{iface}: added {net}");
    }
    if let Some(gw) = c.route_added {
        log::info!("{iface}: default route via {gw}");
    }
    for gw in &c.route_removed {
        log::info!("{iface}: removed default route via {gw}");
    }
    for net in &c.removed {
        log::info!("{iface}: removed {net}");
    }
    if no_ipv6 && c.is_empty() {
        log::info!("no IPv6 in metadata, nothing to configure");
    } else if c.is_empty() {
        log::debug!("{iface}: already configured");
    }
}

/// The write end of the self-pipe, for the signal handler.
static SIGNAL_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_FD.load(Ordering::Relaxed);
    let byte = sig as u8;
    // SAFETY: write(2) is async-signal-safe; byte lives for the call. A
    // full pipe drops the byte, and a pending one is already queued.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

/// SIGHUP, SIGTERM and SIGINT turned into bytes on a pipe, so the parent
/// can wait for them and for the fetcher in one poll(2).
pub struct SignalPipe {
    read: OwnedFd,
    _write: OwnedFd,
}

impl SignalPipe {
    /// Creates the pipe and installs the handlers. Call once, in the parent.
    pub fn install() -> std::io::Result<SignalPipe> {
        let (read, write) = privsep::pipe()?;
        let fds = [read.as_raw_fd(), write.as_raw_fd()];
        for fd in fds {
            // SAFETY: fd is open; O_NONBLOCK keeps the handler from blocking
            // and take() from waiting.
            unsafe { libc::fcntl(fd, libc::F_SETFL, libc::O_NONBLOCK) };
        }
        SIGNAL_FD.store(fds[1], Ordering::Relaxed);
        for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            // SAFETY: a zeroed sigaction is a valid start; the handler only
            // calls write(2), which is async-signal-safe.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
                sa.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                if libc::sigaction(sig, &sa, std::ptr::null_mut()) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(SignalPipe {
            read,
            _write: write,
        })
    }

    fn fd(&self) -> i32 {
        self.read.as_raw_fd()
    }

    /// The next signal received, if any. Termination wins over SIGHUP.
    fn take(&self) -> Option<i32> {
        let mut buf = [0u8; 16];
        // SAFETY: buf is valid for buf.len() bytes; the fd is non-blocking.
        let n = unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        let got = &buf[..usize::try_from(n).unwrap_or(0)];
        got.iter()
            .map(|&b| i32::from(b))
            .find(|&s| s != libc::SIGHUP)
            .or_else(|| got.first().map(|&b| i32::from(b)))
    }
}
