//! The parent: the root process that holds the kernel sockets and applies
//! plans. Its whole privileged surface is one `match` over the messages
//! the fetcher may send.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Instant;

use crate::control::{self, ParentEnd};
use crate::net::{Applier, Backend, Changes};
use crate::plan::Plan;
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

impl Progress {
    /// The outcome the process that started the daemon reports: failed
    /// as soon as one job failed, done once both succeeded.
    fn outcome(&self) -> Option<bool> {
        match (self.booted, self.configured) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        }
    }
}

/// The parent's state.
pub struct Parent<B> {
    applier: Applier<B>,
    chan: Channel,
    fetcher: libc::pid_t,
    /// With `-o`: when to stop waiting for the interface.
    once: Option<Instant>,
    /// Written to and closed once the outcome of the first plan and the
    /// boot signal is known, so the process that started the daemon can
    /// return to rc(8) with it.
    ready: Option<OwnedFd>,
    progress: Progress,
    /// The latest valid plan: applied again when the interface appears,
    /// comes back or is recreated.
    plan: Option<Plan>,
    /// Whether the interface was missing when last looked at, so that is
    /// logged once, not on every refresh.
    missing: bool,
    /// The control process, while it runs.
    control: Option<ParentEnd>,
}

impl<B: Backend> Parent<B> {
    /// `once`: the `-o` deadline. `boot_signal`/`ipv6`: whether the
    /// fetcher will report on each job.
    pub fn new(
        applier: Applier<B>,
        chan: Channel,
        fetcher: libc::pid_t,
        once: Option<Instant>,
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
            plan: None,
            missing: false,
            control: None,
        }
    }

    /// Reports to, and takes refresh requests from, the control process.
    pub fn with_control(mut self, control: Option<ParentEnd>) -> Self {
        self.control = control;
        self
    }

    /// Serves the fetcher's messages, the interface's events, the control
    /// process's requests and the signals until done.
    pub fn run(&mut self, signals: &SignalPipe) -> Exit {
        loop {
            self.release_when_ready();
            if let Some(exit) = self.finished() {
                return exit;
            }
            let timeout = match self.once {
                Some(at) if self.waiting_for_link() => {
                    let left = at.saturating_duration_since(Instant::now());
                    i32::try_from(left.as_millis()).unwrap_or(i32::MAX)
                }
                _ => -1,
            };
            let mut fds = vec![
                self.chan.as_raw_fd(),
                signals.fd(),
                self.applier.events_fd(),
            ];
            fds.extend(self.control.as_ref().map(ParentEnd::as_raw_fd));
            let ready = match privsep::wait_readable(&fds, timeout) {
                Ok(r) => r,
                Err(e) => return Exit::Fatal(format!("poll: {e}")),
            };
            if ready.get(3) == Some(&true) {
                if let Err(e) = self.read_control() {
                    return Exit::Fatal(format!("fetcher: send: {e}"));
                }
            }
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
            if ready[2] && self.applier.take_events() {
                self.relink();
            }
            if ready[0] {
                match self.chan.recv() {
                    Ok(msg) => self.dispatch(msg),
                    Err(RecvError::Closed) => {
                        return Exit::Fatal(format!("fetcher {}", privsep::reap(self.fetcher)));
                    }
                    Err(e) => return Exit::Fatal(format!("invalid message from fetcher: {e}")),
                }
            }
            if self.waiting_for_link() && self.once.is_some_and(|at| Instant::now() >= at) {
                let iface = self.applier.backend().interface();
                log::error!("{iface}: interface did not appear in time, not configured");
                self.settle(false);
            }
        }
    }

    /// Whether a plan waits for the interface and nothing else.
    fn waiting_for_link(&self) -> bool {
        self.missing && self.plan.is_some() && self.progress.configured.is_none()
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
                self.tell_control(None, Err(&why));
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
                    self.tell_control(None, Err(&e));
                    self.settle(false);
                    return;
                }
                self.plan = Some(plan);
                if !self.applier.present() {
                    // An event may be pending still: look once more.
                    self.relink();
                    return;
                }
                self.apply();
            }
            Message::Refresh => log::debug!("ignoring REFRESH from fetcher"),
        }
    }

    /// The interface changed: looks it up again and, once it is there,
    /// applies the latest plan to it.
    fn relink(&mut self) {
        let iface = self.applier.backend().interface().to_string();
        match self.applier.relink() {
            Ok(true) => {
                if self.missing {
                    log::info!("{iface}: interface is there now");
                    self.missing = false;
                }
                self.apply();
            }
            Ok(false) => {
                if !self.missing {
                    log::warn!(
                        "{iface}: no such interface, or it is down; \
                         configuring it when it comes up"
                    );
                    self.missing = true;
                }
            }
            Err(e) => log::error!("{e}"),
        }
    }

    /// Applies the latest plan, if there is one.
    fn apply(&mut self) {
        let Some(plan) = &self.plan else {
            return;
        };
        let iface = self.applier.backend().interface().to_string();
        match self.applier.apply(plan) {
            Ok(changes) => {
                report(&iface, &changes, plan.addresses.is_empty());
                self.tell_control(Some(plan), Ok(()));
                self.settle(true);
            }
            Err(e) => {
                log::error!("{e}");
                self.tell_control(Some(plan), Err(&e.to_string()));
                self.settle(false);
            }
        }
    }

    /// The plan and what scwd owns now, for `scwctl show`.
    fn tell_control(&self, plan: Option<&Plan>, outcome: Result<(), &str>) {
        if let Some(c) = &self.control {
            let (owned, route) = self.applier.owned();
            c.status(&control::state::status_text(plan, outcome, owned, route));
        }
    }

    /// A root client's `scwctl refresh`, relayed: what SIGHUP does. The
    /// parent reads five fixed bytes from the control process, never a
    /// client's own. A control process that is gone is logged and
    /// forgotten: the daemon's jobs go on without it.
    fn read_control(&mut self) -> std::io::Result<()> {
        let Some(c) = &self.control else {
            return Ok(());
        };
        match c.take() {
            Ok(uids) => {
                for uid in uids {
                    log::info!("refresh requested by uid {uid}: fetching metadata again");
                    self.chan.send(&Message::Refresh)?;
                }
            }
            Err(e) => {
                log::warn!("{e}; scwctl is not answered");
                self.control = None;
            }
        }
        Ok(())
    }

    fn settle(&mut self, ok: bool) {
        self.progress.configured = Some(ok);
    }

    /// Hands the outcome to the process waiting for the daemon, once it
    /// is known: `0` when the first plan is applied (with `ipv6 no`: when
    /// the boot signal was answered), `1` when either failed.
    fn release_when_ready(&mut self) {
        let Some(ok) = self.progress.outcome() else {
            return;
        };
        if let Some(fd) = self.ready.take() {
            let byte = if ok { b'0' } else { b'1' };
            let _ = std::fs::File::from(fd).write_all(&[byte]);
        }
    }

    fn finished(&self) -> Option<Exit> {
        self.once?;
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
        // The fetcher has said why: no IPv6 in metadata, or entries skipped.
        log::info!("{iface}: no IPv6 address to configure");
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
