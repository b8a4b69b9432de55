//! scwd(8): signal "booted" to the Scaleway metadata service and configure
//! the instance's IPv6 address and default route.
//!
//! The startup sequence, top to bottom: inherited descriptors closed and
//! SIGHUP/SIGINT/SIGTERM held, flags, configuration and the checks a
//! start makes of it (`-n` stops there), root check, logging, detach,
//! fork the fetcher; in the parent, everything privileged opened, then
//! narrowed to `stdio route wroute`, serve.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use scwd::config::{self, Config};
use scwd::control::{self, FetcherEnd};
use scwd::net::Applier;
use scwd::parent::{Exit, Parent, SignalPipe};
use scwd::privsep::{self, Channel, Forked};
use scwd::{daemon, fetcher, logger, sandbox, startup};

#[cfg(target_os = "linux")]
use scwd::net::linux::LinuxBackend as SystemBackend;
#[cfg(target_os = "openbsd")]
use scwd::net::openbsd::SystemBackend;

/// How long the process rc(8) started waits for the first configuration.
const READY_BUDGET: Duration = Duration::from_secs(15);

const USAGE: &str = "usage: scwd [-dnov] [-f file] [-s socket]";

/// The command line.
#[derive(Debug, Default)]
struct Flags {
    debug: bool,
    check: bool,
    once: bool,
    verbose: u8,
    file: Option<PathBuf>,
    socket: Option<PathBuf>,
}

impl Flags {
    /// getopt(3) with "dnof:s:v": grouped flags, `-f file` or `-ffile`, `--`.
    fn parse(args: impl IntoIterator<Item = OsString>) -> Option<Flags> {
        let mut flags = Flags::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let arg = arg.into_string().ok()?;
            if arg == "--" {
                break;
            }
            let opts = arg.strip_prefix('-').filter(|o| !o.is_empty())?;
            for (i, c) in opts.char_indices() {
                match c {
                    'd' => flags.debug = true,
                    'n' => flags.check = true,
                    'o' => flags.once = true,
                    'v' => flags.verbose = flags.verbose.saturating_add(1),
                    'f' | 's' => {
                        let rest = &opts[i + 1..];
                        let value = if rest.is_empty() {
                            args.next()?.into_string().ok()?
                        } else {
                            rest.to_string()
                        };
                        let slot = if c == 'f' {
                            &mut flags.file
                        } else {
                            &mut flags.socket
                        };
                        *slot = Some(PathBuf::from(value));
                        break;
                    }
                    _ => return None,
                }
            }
        }
        // No operands.
        args.next().is_none().then_some(flags)
    }
}

fn main() -> ExitCode {
    // Before anything opens a descriptor or a signal could end scwd
    // without a log line; the parent releases the signals once its
    // handlers are installed.
    if let Err(e) = startup::begin() {
        eprintln!("scwd: startup: {}", scwd::strerror(&e));
        return ExitCode::FAILURE;
    }
    let Some(flags) = Flags::parse(std::env::args_os().skip(1)) else {
        eprintln!("{USAGE}");
        return ExitCode::FAILURE;
    };
    let path = flags
        .file
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let conf = match config::load(&path, flags.file.is_none()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("scwd: {e}");
            return ExitCode::FAILURE;
        }
    };
    if flags.check {
        if flags.verbose > 0 {
            println!("{conf}");
        }
        // Everything a start refuses before it signals "booted".
        if let Err(why) = startup::check(&conf) {
            eprintln!("scwd: {why}");
            return ExitCode::FAILURE;
        }
        eprintln!("configuration OK");
        return ExitCode::SUCCESS;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("scwd: need root privileges");
        return ExitCode::FAILURE;
    }
    let foreground = flags.debug || flags.once;
    let target = if foreground {
        logger::Target::Stderr
    } else {
        logger::Target::Syslog
    };
    logger::init(target, flags.verbose);

    match run(&conf, &flags, foreground) {
        Ok(Exit::Success) => ExitCode::SUCCESS,
        Ok(Exit::Failure) => ExitCode::FAILURE,
        Ok(Exit::Fatal(why)) | Err(why) => {
            if target == logger::Target::Syslog {
                log::error!("{why}");
            }
            eprintln!("scwd: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Everything after the configuration is known.
fn run(conf: &Config, flags: &Flags, foreground: bool) -> Result<Exit, String> {
    let id = startup::check(conf)?;
    // The control socket is bound as root before anything is dropped; a
    // daemon answering on it already stops this one here. -o serves no
    // one, but does not run beside a daemon either.
    let socket = flags
        .socket
        .clone()
        .unwrap_or_else(|| PathBuf::from(control::socket::DEFAULT_PATH));
    let listener = if flags.once {
        control::socket::check(&socket).map(|()| None)
    } else {
        control::socket::listen(&socket).map(Some)
    }
    .map_err(|e| format!("{}: {e}", socket.display()))?;

    let ready = if foreground {
        None
    } else {
        Some(daemon::detach(READY_BUDGET).map_err(|e| format!("daemon: {}", scwd::strerror(&e)))?)
    };
    let start = Instant::now();
    let (to_control, reports) = match listener {
        None => (None, FetcherEnd::none()),
        Some(listener) => {
            let (to_control, reports, ends) =
                control::links().map_err(|e| format!("socketpair: {e}"))?;
            match privsep::fork().map_err(|e| format!("fork: {e}"))? {
                Forked::Child => {
                    drop((ready, to_control, reports));
                    let settings = control::state::Settings::from(conf);
                    std::process::exit(control::run(settings, &id, listener, ends));
                }
                Forked::Parent(_) => (Some(to_control), reports),
            }
        }
    };
    let (parent_end, child_end) = Channel::pair().map_err(|e| format!("socketpair: {e}"))?;
    match privsep::fork().map_err(|e| format!("fork: {e}"))? {
        Forked::Child => {
            drop((parent_end, ready, to_control));
            std::process::exit(fetcher::run(
                conf, &id, child_end, reports, flags.once, start,
            ));
        }
        Forked::Parent(pid) => {
            drop((child_end, reports));
            let signals = SignalPipe::install().map_err(|e| format!("signals: {e}"))?;
            startup::release_signals().map_err(|e| format!("sigprocmask: {e}"))?;
            // The privileged descriptors are opened and the routing table
            // read here, still whole root: the fetcher never holds them,
            // and its boot signal does not wait for them. An interface
            // that does not exist yet is no error (the parent waits for it).
            let backend = SystemBackend::open(&conf.interface).map_err(|e| e.to_string())?;
            let applier = Applier::adopt(backend);
            // The parent needs no file at all from here on.
            sandbox::unveil_lock().map_err(|e| format!("unveil: {e}"))?;
            // stdio: the socketpair, the routing socket (written as root,
            // RTM_ADD/RTM_DELETE/RTM_GET need no promise), poll, wait4;
            // route: the routing table and the interface's addresses read
            // again, at every apply and after RTM_DESYNC (sysctl
            // NET_RT_DUMP and getifaddrs' NET_RT_IFLIST, kern_pledge.c
            // 813-817, 894-899); wroute: SIOCAIFADDR_IN6/SIOCDIFADDR_IN6.
            sandbox::pledge("stdio route wroute").map_err(|e| format!("pledge: {e}"))?;
            let mut parent = Parent::new(
                applier,
                parent_end,
                pid,
                // -o waits for a missing interface as long as for the service.
                flags.once.then(|| start + fetcher::ONCE_DEADLINE),
                ready,
                conf.boot_signal,
                conf.ipv6,
            )
            .with_control(to_control);
            Ok(parent.run(&signals))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<Flags> {
        Flags::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn flags_as_getopt_reads_them() {
        let f = parse(&["-dvv", "-f", "/tmp/x.conf"]).unwrap();
        assert!(f.debug && !f.once && !f.check);
        assert_eq!(f.verbose, 2);
        assert_eq!(f.file, Some(PathBuf::from("/tmp/x.conf")));
        let f = parse(&["-d", "-s", "/tmp/s.sock", "-vf/x.conf"]).unwrap();
        assert_eq!(f.socket, Some(PathBuf::from("/tmp/s.sock")));
        assert_eq!(f.file, Some(PathBuf::from("/x.conf")));
        let f = parse(&["-on", "-f/etc/other.conf"]).unwrap();
        assert!(f.once && f.check);
        assert_eq!(f.file, Some(PathBuf::from("/etc/other.conf")));
        assert!(parse(&[]).is_some());
        assert!(parse(&["--"]).is_some());
    }

    #[test]
    fn bad_command_lines_are_refused() {
        for args in [
            &["-x"][..],
            &["-f"],
            &["-s"],
            &["-d", "extra"],
            &["-"],
            &["--", "x"],
            &["-dq"],
        ] {
            assert!(parse(args).is_none(), "{args:?}");
        }
    }
}
