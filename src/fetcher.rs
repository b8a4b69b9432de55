//! The fetcher: the unprivileged process that speaks HTTP.
//!
//! It signals "booted", fetches the metadata, turns it into a plan and
//! sends the plan to the parent. It never dies on bad input: every
//! failure becomes a message, and only the parent closing the socketpair
//! ends it.

use std::fmt;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::control::FetcherEnd;
use crate::control::proto::Report;
use crate::fetch::{Backoff, Client, FetchError};
use crate::metadata::{self, MetadataError};
use crate::privsep::{self, Channel, Identity, Message, RecvError};
use crate::{plan, proctitle, sandbox};

/// How long `-o` keeps retrying before it reports failure (DESIGN §6).
pub const ONCE_DEADLINE: Duration = Duration::from_secs(60);

/// The state of one of the fetcher's two jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    /// Still to be done, or to be retried.
    Pending,
    /// Done, or reported as failed for good.
    Settled,
}

/// Runs the fetcher in the child after the fork; returns its exit status.
/// `control`: where the control process hears of each attempt, for
/// `scwctl show` and `scwctl get`.
pub fn run(
    conf: &Config,
    id: &Identity,
    mut chan: Channel,
    mut control: FetcherEnd,
    once: bool,
    start: Instant,
) -> i32 {
    ignore_signals();
    // Held since main; pending ones are discarded now that they are ignored.
    let _ = crate::startup::release_signals();
    // Before the chroot: on Linux it reads /proc/self/stat.
    if let Err(e) = proctitle::set("fetcher") {
        log::warn!("fetcher: process title: {e}");
    }
    let client = match setup(conf, id) {
        Ok(c) => c,
        Err(why) => {
            let _ = chan.send(&Message::Failed(why));
            return 1;
        }
    };

    let mut boot = if conf.boot_signal {
        Job::Pending
    } else {
        Job::Settled
    };
    let mut fetch = if conf.ipv6 {
        Job::Pending
    } else {
        Job::Settled
    };
    let mut boot_err: Option<FetchError> = None;
    let mut fetch_err: Option<ConfError> = None;
    let mut backoff = Backoff::new(start);
    let mut next_refresh: Option<Instant> = None;

    loop {
        if boot == Job::Pending {
            match client.signal_booted() {
                Ok(()) => {
                    log::info!("boot signal sent");
                    boot = Job::Settled;
                    send(&mut chan, &Message::Booted);
                    control.send(&Report::BootSent);
                }
                // A final refusal will not change in -o's minute: reported
                // once, never as "retrying".
                Err(e) if once && !e.is_retryable() => {
                    boot = Job::Settled;
                    send(&mut chan, &Message::BootFailed(e.to_string()));
                }
                Err(e) => {
                    retrying(&format_args!("boot signal: {e}"), boot_err.is_none());
                    control.send(&Report::BootFailing(e.to_string()));
                    boot_err = Some(e);
                }
            }
        }
        if fetch == Job::Pending {
            match fetch_plan(&client, &conf.interface) {
                Ok((msg, doc)) => {
                    fetch = Job::Settled;
                    fetch_err = None;
                    send(&mut chan, &msg);
                    control.send(&doc);
                }
                Err(e) if e.is_retryable() => {
                    retrying(&e, fetch_err.is_none());
                    control.send(&Report::FetchFailed(e.to_string(), true));
                    fetch_err = Some(e);
                }
                Err(e) => {
                    fetch = Job::Settled;
                    control.send(&Report::FetchFailed(e.to_string(), false));
                    send(&mut chan, &Message::Failed(e.to_string()));
                }
            }
            if fetch == Job::Settled && conf.refresh > 0 {
                next_refresh = Some(Instant::now() + Duration::from_secs(conf.refresh));
            }
        }

        let mut busy = boot == Job::Pending || fetch == Job::Pending;
        if busy && once && start.elapsed() >= ONCE_DEADLINE {
            let gave_up = |e: Option<String>| {
                let why = e.unwrap_or_else(|| "no answer".to_string());
                format!("{why} (gave up after {} s)", ONCE_DEADLINE.as_secs())
            };
            if boot == Job::Pending {
                let why = boot_err.as_ref().map(ToString::to_string);
                send(&mut chan, &Message::BootFailed(gave_up(why)));
                boot = Job::Settled;
            }
            if fetch == Job::Pending {
                let why = fetch_err.as_ref().map(ToString::to_string);
                send(&mut chan, &Message::Failed(gave_up(why)));
                fetch = Job::Settled;
            }
            busy = false;
        }

        let now = Instant::now();
        let timeout = if busy {
            Some(backoff.next_delay(now))
        } else {
            backoff.reset();
            boot_err = None;
            match next_refresh {
                Some(at) if !once => Some(at.saturating_duration_since(now)),
                _ => None,
            }
        };
        match wait_for_parent(&mut chan, timeout) {
            Wake::Refresh => {
                fetch = if conf.ipv6 {
                    Job::Pending
                } else {
                    Job::Settled
                };
                fetch_err = None;
            }
            Wake::Timeout if !busy && next_refresh.is_some_and(|at| Instant::now() >= at) => {
                log::debug!("refresh timer");
                fetch = Job::Pending;
            }
            Wake::Timeout => {}
            Wake::Exit(status) => return status,
        }
    }
}

/// Drops privileges and builds the HTTP client. With an `https://`
/// endpoint the CA roots are read first, while the file is still visible.
fn setup(conf: &Config, id: &Identity) -> Result<Client, String> {
    let https = conf.metadata_urls.iter().any(|u| u.starts_with("https:"));
    let early = if https {
        Some(Client::new(&conf.metadata_urls))
    } else {
        None
    };
    privsep::drop_privileges(id).map_err(|e| format!("fetcher: {e}"))?;
    // Nothing on the file system is needed from here on.
    sandbox::unveil_lock().map_err(|e| format!("fetcher: unveil: {e}"))?;
    // stdio: the socketpair, poll, clocks; inet: TCP to the metadata service.
    sandbox::pledge("stdio inet").map_err(|e| format!("fetcher: pledge: {e}"))?;
    let client = match early {
        Some(c) => c,
        None => Client::new(&conf.metadata_urls),
    };
    client.map_err(|e| e.to_string())
}

/// Why one metadata attempt gave no plan.
#[derive(Debug)]
pub enum ConfError {
    /// No usable HTTP answer ([`FetchError::is_retryable`] decides).
    Fetch(FetchError),
    /// An answer that is not a document at all: empty, cut off, an HTML
    /// page, not UTF-8 ([`MetadataError::is_transient`]). Retried as a
    /// 5xx is: what sent it (a restarting service, something in the
    /// way) may send the document next time.
    Unparsed(MetadataError),
}

impl ConfError {
    /// Whether to ask again, with the same backoff and budget as a 5xx.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConfError::Fetch(e) => e.is_retryable(),
            ConfError::Unparsed(_) => true,
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfError::Fetch(e) => write!(f, "metadata: {e}"),
            // MetadataError says "metadata: " itself.
            ConfError::Unparsed(e) => e.fmt(f),
        }
    }
}

/// One attempt at the metadata: fetched and parsed, then the message for
/// the parent (a plan, or why a document that parsed was refused) and
/// the document for the control process, or why there is no document
/// to judge.
pub fn fetch_plan(client: &Client, interface: &str) -> Result<(Message, Report), ConfError> {
    let (url, body) = client.get_conf_from().map_err(ConfError::Fetch)?;
    let msg = match metadata::parse(&body) {
        Ok(meta) => make_plan(&meta, interface),
        Err(e) if e.is_transient() => return Err(ConfError::Unparsed(e)),
        Err(e) => Message::Failed(e.to_string()),
    };
    Ok((msg, Report::Fetched(url, body)))
}

/// A parsed document to the message for the parent: a plan, or why not.
/// Validation refusals are final: the same document gets the same answer.
fn make_plan(meta: &metadata::Metadata, interface: &str) -> Message {
    match plan::from_metadata(meta, interface) {
        Ok(built) => {
            for note in &built.notes {
                log::warn!("metadata: {note}");
            }
            if built.plan.addresses.is_empty() {
                if built.skipped == 0 {
                    log::info!("no IPv6 in metadata");
                } else {
                    let entries = if built.skipped == 1 {
                        "entry"
                    } else {
                        "entries"
                    };
                    log::warn!(
                        "no usable IPv6 in metadata: {} {entries} skipped",
                        built.skipped
                    );
                }
            }
            Message::Plan(built.plan)
        }
        Err(e) => Message::Failed(format!("metadata: {e}")),
    }
}

/// Logs a failed attempt: the first at warning, the rest at debug, so a
/// service that is down for a minute costs one line, not sixty.
fn retrying(line: &dyn fmt::Display, first: bool) {
    if first {
        log::warn!("{line}; retrying");
    } else {
        log::debug!("{line}; retrying");
    }
}

/// A message the parent can no longer receive means it is gone; the
/// next wait sees the socketpair closed and ends this process.
fn send(chan: &mut Channel, msg: &Message) {
    if let Err(e) = chan.send(msg) {
        log::debug!("fetcher: send: {e}");
    }
}

enum Wake {
    Refresh,
    Timeout,
    Exit(i32),
}

/// Waits up to `timeout` for the parent. Its exit closes the socketpair.
fn wait_for_parent(chan: &mut Channel, timeout: Option<Duration>) -> Wake {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        match chan.wait(left) {
            Ok(true) => {}
            Ok(false) if deadline.is_some_and(|d| Instant::now() >= d) => return Wake::Timeout,
            Ok(false) => continue,
            Err(e) => {
                log::error!("fetcher: poll: {e}");
                return Wake::Exit(1);
            }
        }
        return match chan.recv() {
            Ok(Message::Refresh) => Wake::Refresh,
            Ok(other) => {
                log::debug!("fetcher: unexpected {other:?} from parent");
                continue;
            }
            Err(RecvError::Closed) => Wake::Exit(0),
            Err(e) => {
                log::error!("fetcher: invalid message from parent: {e}");
                Wake::Exit(1)
            }
        };
    }
}

/// The parent decides when to refresh or stop. rc.d(8) no longer
/// signals the fetcher (its title no longer matches the rc.d script's
/// pattern), but a terminal still does: with `-d` or `-o`, ^C and a
/// hangup go to the whole foreground process group, and a fetcher that
/// died of them would turn the parent's clean exit into "fetcher killed".
fn ignore_signals() {
    for sig in [libc::SIGHUP, libc::SIGINT, libc::SIGTERM] {
        // SAFETY: SIG_IGN installs no handler code; always sound.
        unsafe { libc::signal(sig, libc::SIG_IGN) };
    }
}
