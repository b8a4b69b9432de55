//! The sandbox bites: each case forks, pledges or unveils in the child,
//! then does one thing. What the promises forbid kills the child with
//! SIGSYS; what they allow works. Not the product: scwd's own processes
//! are checked in the lab (tests/lab.rs).
//!
//! `harness = false`: the cases fork, which is only sound while the
//! process has one thread, and libtest runs tests on threads of its own.

use std::process::ExitCode;

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn main() -> ExitCode {
    bites::main()
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn main() -> ExitCode {
    eprintln!("SKIPPED: sandbox: these cases are for the Linux x86_64 sandbox");
    ExitCode::SUCCESS
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
mod bites {
    use std::io::{Read, Write};
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::process::ExitCode;

    use scwd::sandbox;

    /// How a case's child must end.
    #[derive(Debug, PartialEq, Eq)]
    enum End {
        /// exit(0): everything it tried worked.
        Works,
        /// Killed by SIGSYS: the filter caught it.
        Killed,
    }

    /// A child's way out without unwinding or running atexit handlers.
    fn exit(code: i32) -> ! {
        // SAFETY: _exit ends the process; always sound.
        unsafe { libc::_exit(code) }
    }

    /// Fails the child with a message on stderr (exit 1: neither outcome).
    fn fail(what: &str, e: impl std::fmt::Display) -> ! {
        let _ = writeln!(std::io::stderr(), "    child: {what}: {e}");
        exit(1)
    }

    fn pledge(promises: &str) {
        if let Err(e) = sandbox::pledge(promises) {
            fail(&format!("pledge {promises:?}"), e);
        }
    }

    fn check(what: &str, ret: libc::c_long) {
        if ret < 0 {
            fail(what, std::io::Error::last_os_error());
        }
    }

    fn socket(domain: i32, ty: i32) -> libc::c_long {
        // SAFETY: socket(2) with integer arguments only.
        libc::c_long::from(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0) })
    }

    /// Runs `body` in a forked child and reports whether it ended as `want`.
    fn case(name: &str, want: End, body: impl FnOnce()) -> bool {
        // SAFETY: this process has a single thread (no libtest harness), so
        // the child may run arbitrary code.
        let pid = unsafe { libc::fork() };
        if pid == -1 {
            panic!("fork: {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            body();
            exit(0);
        }
        let mut status = 0;
        // SAFETY: waiting for our own child with a valid status pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
            panic!("waitpid: {}", std::io::Error::last_os_error());
        }
        let got = if libc::WIFSIGNALED(status) {
            format!("killed by signal {}", libc::WTERMSIG(status))
        } else {
            format!("exit {}", libc::WEXITSTATUS(status))
        };
        let ok = match want {
            End::Works => libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            End::Killed => libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS,
        };
        let verdict = if ok { "ok" } else { "FAILED" };
        println!("test {name} ... {verdict}");
        if !ok {
            println!("    wanted {want:?}, got {got}");
        }
        ok
    }

    /// The cases. Each returns whether it passed; `skip` notes a case that
    /// cannot run here.
    fn cases(skip: &mut Vec<String>) -> Vec<bool> {
        let mut results = Vec::new();
        let mut t = |name: &str, want: End, body: Box<dyn FnOnce()>| {
            results.push(case(name, want, body));
        };

        t(
            "stdio_allows_io_threads_clocks_and_signals_to_self",
            End::Works,
            Box::new(|| {
                // /proc/self/status is generated when read: opened now, read
                // after the pledge it tells what the kernel enforces.
                let mut status = std::fs::File::open("/proc/self/status").unwrap();
                pledge("stdio");
                let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
                (&a).write_all(b"ping").unwrap();
                let mut buf = [0u8; 4];
                (&b).read_exact(&mut buf).unwrap();
                let t0 = std::time::Instant::now();
                let answer = std::thread::spawn(|| 6 * 7).join().unwrap();
                assert_eq!(answer, 42);
                assert!(t0.elapsed().as_secs() < 5);
                let v: Vec<u8> = vec![7; 1 << 20];
                assert_eq!(v.len(), 1 << 20);
                let mut seed = [0u8; 16];
                // SAFETY: getrandom into a live buffer of its length.
                check("getrandom", unsafe {
                    libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) as libc::c_long
                });
                // SAFETY: signal 0 to our own pid sends nothing.
                check(
                    "kill self",
                    libc::c_long::from(unsafe { libc::kill(libc::getpid(), 0) }),
                );
                let mut text = String::new();
                std::io::Seek::rewind(&mut status).unwrap();
                status.read_to_string(&mut text).unwrap();
                let seccomp = text.lines().find(|l| l.starts_with("Seccomp:"));
                if seccomp != Some("Seccomp:\t2") {
                    fail("/proc/self/status", format!("{seccomp:?}"));
                }
            }),
        );
        t(
            "stdio_open_a_file_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                let _ = std::fs::File::open("/etc/hostname");
            }),
        );
        t(
            "stdio_unix_stream_socket_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                socket(libc::AF_UNIX, libc::SOCK_STREAM);
            }),
        );
        t(
            "stdio_inet_unix_socket_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio inet");
                socket(libc::AF_UNIX, libc::SOCK_STREAM);
            }),
        );
        t(
            "stdio_inet_packet_socket_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio inet");
                socket(libc::AF_PACKET, libc::SOCK_RAW);
            }),
        );
        t(
            "stdio_inet_socket_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                socket(libc::AF_INET, libc::SOCK_STREAM);
            }),
        );
        t(
            "stdio_execve_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                let argv = [c"/bin/true".as_ptr(), std::ptr::null()];
                // SAFETY: a NUL-terminated path and a NULL-terminated argv.
                unsafe { libc::execv(argv[0], argv.as_ptr()) };
            }),
        );
        t(
            "stdio_fork_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                // SAFETY: a single-threaded child; a grandchild would _exit.
                if unsafe { libc::fork() } == 0 {
                    exit(0);
                }
            }),
        );
        t(
            "stdio_ptrace_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                // SAFETY: PTRACE_TRACEME takes no pointers.
                unsafe { libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) };
            }),
        );
        t(
            "stdio_setuid_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                // SAFETY: setuid(2) with an integer.
                unsafe { libc::setuid(0) };
            }),
        );
        t(
            "stdio_executable_mapping_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                // SAFETY: a fresh anonymous mapping; nothing is run from it.
                unsafe {
                    libc::mmap(
                        std::ptr::null_mut(),
                        4096,
                        libc::PROT_READ | libc::PROT_EXEC,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
            }),
        );
        t(
            "stdio_kill_of_another_process_is_killed",
            End::Killed,
            Box::new(|| {
                pledge("stdio");
                // SAFETY: signal 0 only probes.
                unsafe { libc::kill(libc::getppid(), 0) };
            }),
        );
        t(
            "stdio_syslog_reconnect_fails_without_killing",
            End::Works,
            Box::new(|| {
                pledge("stdio");
                let ret = socket(libc::AF_UNIX, libc::SOCK_DGRAM);
                let err = std::io::Error::last_os_error();
                if ret != -1 || err.raw_os_error() != Some(libc::EACCES) {
                    fail("socket(AF_UNIX, SOCK_DGRAM)", format!("{ret}: {err}"));
                }
            }),
        );
        t(
            "a_thread_started_before_the_pledge_is_covered",
            End::Killed,
            Box::new(|| {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let early = std::thread::spawn(move || {
                    rx.recv().unwrap();
                    let _ = std::fs::File::open("/etc/hostname");
                });
                pledge("stdio");
                tx.send(()).unwrap();
                let _ = early.join();
            }),
        );
        t(
            "pledge_only_narrows",
            End::Works,
            Box::new(|| {
                pledge("stdio inet");
                pledge("stdio");
                match sandbox::pledge("stdio inet") {
                    Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
                    other => fail("widening pledge", format!("{other:?}")),
                }
                // The narrower filter holds: inet is gone.
                pledge("stdio");
            }),
        );
        t(
            "narrowed_pledge_kills_what_it_dropped",
            End::Killed,
            Box::new(|| {
                pledge("stdio inet");
                pledge("stdio");
                socket(libc::AF_INET, libc::SOCK_STREAM);
            }),
        );

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        t(
            "stdio_inet_allows_tcp",
            End::Works,
            Box::new(move || {
                pledge("stdio inet");
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                s.write_all(b"hello").unwrap();
            }),
        );
        drop(listener);
        t(
            "stdio_unix_allows_unix_sockets",
            End::Works,
            Box::new(|| {
                pledge("stdio unix");
                check("socket(AF_UNIX)", socket(libc::AF_UNIX, libc::SOCK_STREAM));
            }),
        );

        // A netlink request addressed to the kernel: wroute's work on Linux.
        let netlink_request = |promises: &'static str| {
            Box::new(move || {
                // SAFETY: socket(2) with integer arguments only.
                let fd = unsafe {
                    libc::socket(
                        libc::AF_NETLINK,
                        libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                        libc::NETLINK_ROUTE,
                    )
                };
                check("socket(AF_NETLINK)", libc::c_long::from(fd));
                // SAFETY: the kernel just returned fd; nothing else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                pledge(promises);
                // RTM_GETLINK dump request: nlmsghdr + ifinfomsg.
                let mut msg = [0u8; 32];
                msg[0..4].copy_from_slice(&32u32.to_ne_bytes());
                msg[4..6].copy_from_slice(&libc::RTM_GETLINK.to_ne_bytes());
                let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
                msg[6..8].copy_from_slice(&flags.to_ne_bytes());
                // SAFETY: sockaddr_nl is plain data; zero is the kernel.
                let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
                kernel.nl_family = libc::AF_NETLINK as u16;
                // SAFETY: msg and kernel are live for the call, lengths match.
                let sent = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        msg.as_ptr().cast(),
                        msg.len(),
                        0,
                        (&kernel as *const libc::sockaddr_nl).cast(),
                        std::mem::size_of::<libc::sockaddr_nl>() as u32,
                    )
                };
                check("sendto(netlink)", sent as libc::c_long);
            }) as Box<dyn FnOnce()>
        };
        t(
            "stdio_wroute_allows_netlink_requests_to_the_kernel",
            End::Works,
            netlink_request("stdio wroute"),
        );
        t(
            "stdio_netlink_request_is_killed",
            End::Killed,
            netlink_request("stdio"),
        );

        match sandbox::landlock::abi() {
            Ok(_) => {
                t(
                    "unveil_lock_hides_the_file_system",
                    End::Works,
                    Box::new(|| {
                        let mut kept = std::fs::File::open("/proc/self/status").unwrap();
                        sandbox::unveil_lock().unwrap();
                        match std::fs::File::open("/etc/hostname") {
                            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
                            other => fail("open after unveil_lock", format!("{other:?}")),
                        }
                        let tmp = std::env::temp_dir().join("scwd-sandbox-unveil");
                        if std::fs::write(&tmp, b"x").is_ok() {
                            fail("create after unveil_lock", tmp.display());
                        }
                        // What was open before stays usable.
                        let mut text = String::new();
                        kept.read_to_string(&mut text).unwrap();
                    }),
                );
                t(
                    "unveil_lock_then_pledge_kills_on_open",
                    End::Killed,
                    Box::new(|| {
                        sandbox::unveil_lock().unwrap();
                        pledge("stdio");
                        let _ = std::fs::File::open("/etc/hostname");
                    }),
                );
            }
            Err(e) => skip.push(format!("unveil_lock cases: no Landlock here ({e})")),
        }
        results
    }

    pub fn main() -> ExitCode {
        let mut skipped = Vec::new();
        let results = cases(&mut skipped);
        for why in &skipped {
            eprintln!("SKIPPED: {why}");
        }
        let passed = results.iter().filter(|&&ok| ok).count();
        let failed = results.len() - passed;
        let verdict = if failed == 0 { "ok" } else { "FAILED" };
        println!(
            "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out\n"
        );
        if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}
