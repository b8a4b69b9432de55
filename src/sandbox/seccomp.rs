//! pledge(2) on Linux x86_64: a seccomp-bpf filter built from the promise
//! string.
//!
//! Each promise is a list of [`Rule`]s, written out below with the
//! OpenBSD rule it mirrors (sys/kern/kern_pledge.c 1.333: the
//! `pledge_syscalls` table and the `pledge_ioctl`, `pledge_sockopt`,
//! `pledge_socket`, `pledge_sendit`, `pledge_fcntl`, `pledge_kill` and
//! `pledge_protexec` checks). Calls Linux needs and OpenBSD does not have
//! say so where they are ("Linux-only"). A call no held promise allows
//! kills the whole process (`SECCOMP_RET_KILL_PROCESS`: SIGSYS, where
//! OpenBSD sends an uncatchable SIGABRT). A few calls fail with an errno
//! instead, each with its reason.
//!
//! The filter is a straight line: check the architecture (and refuse the
//! x32 numbers), then one `jeq` per allowed call; a call with argument
//! checks jumps into a short block that returns on its own. Filters stack
//! in the kernel and the most restrictive answer wins, so a later pledge
//! can only narrow; the promises held are also remembered here so that
//! asking for more fails with `EPERM` up front, as on OpenBSD.
//!
//! What scwd's processes really call after their pledge is recorded in
//! `syscalls.record` beside this file (`tests/lab/strace-record.sh`:
//! strace in the namespace lab). A unit test below fails when the record
//! holds a call these lists do not allow; the lab test
//! `strace_record_holds_every_call` fails when a fresh run makes a call
//! the record lacks. `tests/sandbox.rs` shows the filter bites.

use std::collections::BTreeMap;
use std::io;
use std::sync::Mutex;

/// What a matching call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The call runs.
    Allow,
    /// The call fails with this errno and the process goes on.
    Errno(u16),
}

/// A value an argument is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A constant.
    K(u32),
    /// The pid of the process at pledge time (kill(2) of self).
    Pid,
}

/// `half(args[arg]) & mask == value`, on one 32-bit half of a 64-bit
/// argument: int arguments live in the low half, and the kernel ignores
/// the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cond {
    /// Argument index, 0 to 5.
    pub arg: u8,
    /// The upper 32 bits rather than the lower.
    pub high: bool,
    /// Bits compared.
    pub mask: u32,
    /// What they must equal.
    pub value: Value,
}

/// One way a call may pass: every condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Alt {
    /// All must hold; none means any arguments.
    pub conds: &'static [Cond],
    /// What the call gets then.
    pub action: Action,
}

/// A system call a promise allows, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// `SYS_` and the name strace(1) prints.
    sys: &'static str,
    /// The x86_64 syscall number.
    pub nr: i64,
    /// The ways it passes; a call matching none kills the process.
    pub alts: &'static [Alt],
}

impl Rule {
    /// The call's name as strace(1) prints it.
    pub fn name(&self) -> &'static str {
        &self.sys[4..]
    }
}

const ANY: &[Alt] = &[allow(&[])];

const fn allow(conds: &'static [Cond]) -> Alt {
    Alt {
        conds,
        action: Action::Allow,
    }
}

const fn eq(arg: u8, value: i64) -> Cond {
    masked(arg, u32::MAX, value)
}

const fn masked(arg: u8, mask: u32, value: i64) -> Cond {
    Cond {
        arg,
        high: false,
        mask,
        value: Value::K(value as u32),
    }
}

const fn high_zero(arg: u8) -> Cond {
    Cond {
        arg,
        high: true,
        mask: u32::MAX,
        value: Value::K(0),
    }
}

macro_rules! r {
    ($sys:ident) => {
        r!($sys, ANY)
    };
    ($sys:ident, $alts:expr) => {
        Rule {
            sys: stringify!($sys),
            nr: libc::$sys,
            alts: $alts,
        }
    };
}

/// Alternatives: argument `arg` is one of the values.
macro_rules! one_of {
    ($arg:expr; $($value:expr),+ $(,)?) => {
        &[$(allow(&[eq($arg, $value as i64)])),+]
    };
}

const fn pid(arg: u8) -> Cond {
    Cond {
        arg,
        high: false,
        mask: u32::MAX,
        value: Value::Pid,
    }
}

/// `socket(2)`'s type argument without SOCK_NONBLOCK and SOCK_CLOEXEC.
const SOCK_TYPE: u32 = !((libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) as u32);

/// The namespace flags of clone(2): a thread stays in its process's.
const CLONE_NEW: i64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as i64;

/// Calls pledge(2) allows whatever the promises (PLEDGE_ALWAYS).
const ALWAYS: &[Rule] = &[
    // exit; Linux splits it into one thread's exit and the process's.
    r!(SYS_exit),
    r!(SYS_exit_group),
    // Linux-only: the return from a signal handler goes through the
    // kernel (OpenBSD: sigreturn, in stdio), and so does the restart of
    // a sleep a signal interrupted.
    r!(SYS_rt_sigreturn),
    r!(SYS_restart_syscall),
    // thrkill "raise, abort, stack protector": a signal to this process
    // (glibc's raise(3) and abort(3) use tgkill with its own pid).
    r!(SYS_tgkill, &[allow(&[pid(0)])]),
    // pledge itself: a second filter can only narrow the first.
    r!(
        SYS_prctl,
        &[allow(&[eq(0, libc::PR_SET_NO_NEW_PRIVS as i64)])]
    ),
    r!(
        SYS_seccomp,
        &[allow(&[eq(0, libc::SECCOMP_SET_MODE_FILTER as i64)])]
    ),
];

/// pledge_sockopt's "always allow these, which are too common to reject",
/// for getsockopt and setsockopt (level is argument 1, name argument 2).
const SOCKOPT_STDIO: &[Alt] = &[
    allow(&[
        eq(1, libc::SOL_SOCKET as i64),
        eq(2, libc::SO_RCVBUF as i64),
    ]),
    allow(&[eq(1, libc::SOL_SOCKET as i64), eq(2, libc::SO_ERROR as i64)]),
    allow(&[
        eq(1, libc::IPPROTO_TCP as i64),
        eq(2, libc::TCP_NODELAY as i64),
    ]),
    allow(&[eq(1, libc::IPPROTO_IP as i64), eq(2, libc::IP_TOS as i64)]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_TCLASS as i64),
    ]),
];

/// `stdio`.
const STDIO: &[Rule] = &[
    // "getting" information about self is considered safe.
    r!(SYS_getuid),
    r!(SYS_geteuid),
    r!(SYS_getresuid),
    r!(SYS_getgid),
    r!(SYS_getegid),
    r!(SYS_getresgid),
    r!(SYS_getgroups),
    r!(SYS_getpgrp),
    r!(SYS_getpgid),
    r!(SYS_getppid),
    r!(SYS_getsid),
    r!(SYS_gettid),
    r!(SYS_getpid),
    r!(SYS_getrlimit),
    r!(SYS_getrusage),
    // Linux-only: glibc's getrlimit(3) is prlimit64 of self (pid 0)
    // with no new limit; setting one needs "proc" or "id".
    r!(SYS_prlimit64, &[allow(&[eq(0, 0), eq(2, 0), high_zero(2)])]),
    // clock_gettime, clock_getres, gettimeofday. Linux-only: these (and
    // time) are normally answered by the vDSO without entering the
    // kernel, and are real calls when the clock source cannot be read
    // from user space (some hypervisors).
    r!(SYS_clock_gettime),
    r!(SYS_clock_getres),
    r!(SYS_gettimeofday),
    r!(SYS_time),
    // sysctl: "almost exclusively read-only, very narrow subset"
    // (kern.ostype, hw.pagesize ...): uname(2) here.
    r!(SYS_uname),
    // hw.ncpu is among them. Linux-only: glibc's malloc and Rust's
    // available_parallelism count CPUs with sched_getaffinity.
    r!(SYS_sched_getaffinity),
    // Support for malloc(3): getentropy is getrandom, break is brk.
    r!(SYS_getrandom),
    r!(SYS_madvise),
    r!(SYS_munmap),
    r!(SYS_msync),
    r!(SYS_brk),
    // Linux-only: glibc's realloc of large blocks.
    r!(SYS_mremap),
    // pledge_protexec: no executable mapping without "prot_exec".
    r!(SYS_mmap, &[allow(&[masked(2, libc::PROT_EXEC as u32, 0)])]),
    r!(
        SYS_mprotect,
        &[allow(&[masked(2, libc::PROT_EXEC as u32, 0)])]
    ),
    r!(SYS_umask),
    // read/write operations.
    r!(SYS_read),
    r!(SYS_readv),
    r!(SYS_pread64),
    r!(SYS_preadv),
    r!(SYS_write),
    r!(SYS_writev),
    r!(SYS_pwrite64),
    r!(SYS_pwritev),
    r!(SYS_recvmsg),
    r!(SYS_recvmmsg),
    r!(SYS_recvfrom),
    r!(SYS_ftruncate),
    r!(SYS_lseek),
    // pledge_sendit: sendto(2) with an address needs a network promise;
    // without one it "behaves just like write".
    r!(SYS_sendto, &[allow(&[eq(4, 0), high_zero(4)])]),
    // sendmsg/sendmmsg: the address is inside the msghdr, where BPF
    // cannot look (OpenBSD checks it). Under stdio alone the process
    // has no way to make a socket, so it can only reach the peers of
    // the sockets it already holds.
    r!(SYS_sendmsg),
    r!(SYS_sendmmsg),
    // Common signal operations.
    r!(SYS_nanosleep),
    r!(SYS_clock_nanosleep),
    r!(SYS_sigaltstack),
    r!(SYS_rt_sigprocmask),
    r!(SYS_rt_sigsuspend),
    r!(SYS_rt_sigaction),
    r!(SYS_rt_sigpending),
    r!(SYS_getitimer),
    r!(SYS_setitimer),
    // To support event driven programming: poll, ppoll, select,
    // pselect, and kqueue/kevent, which is epoll here. Linux-only:
    // eventfd, mio's waker, where OpenBSD's mio uses an EVFILT_USER
    // kevent (or a pipe).
    r!(SYS_poll),
    r!(SYS_ppoll),
    r!(SYS_select),
    r!(SYS_pselect6),
    r!(SYS_epoll_create1),
    r!(SYS_epoll_ctl),
    r!(SYS_epoll_wait),
    r!(SYS_epoll_pwait),
    r!(SYS_epoll_pwait2),
    r!(SYS_eventfd2),
    r!(SYS_fstat),
    // Linux-only: glibc's fstat(2) is newfstatat(fd, "", buf,
    // AT_EMPTY_PATH). BPF cannot see that the path is empty, so a caller
    // passing a path with that flag could stat (not open) it: Landlock
    // has no right for stat. Rust's File::metadata tries statx first;
    // ENOSYS there makes it fall back to fstat, as Cosmopolitan does.
    r!(
        SYS_newfstatat,
        &[allow(&[eq(3, libc::AT_EMPTY_PATH as i64)])]
    ),
    r!(
        SYS_statx,
        &[Alt {
            conds: &[],
            action: Action::Errno(libc::ENOSYS as u16),
        }]
    ),
    r!(SYS_fsync),
    r!(SYS_fdatasync),
    // setsockopt/getsockopt: "narrow whitelist".
    r!(SYS_getsockopt, SOCKOPT_STDIO),
    r!(SYS_setsockopt, SOCKOPT_STDIO),
    // pledge_fcntl: F_SETOWN requires "proc"; locks require "flock".
    r!(
        SYS_fcntl,
        one_of!(1; libc::F_DUPFD, libc::F_DUPFD_CLOEXEC, libc::F_GETFD,
            libc::F_SETFD, libc::F_GETFL, libc::F_SETFL)
    ),
    r!(SYS_close),
    r!(SYS_dup),
    r!(SYS_dup2),
    r!(SYS_dup3),
    // closefrom.
    r!(SYS_close_range),
    r!(SYS_shutdown),
    r!(SYS_fchdir),
    r!(SYS_pipe),
    r!(SYS_pipe2),
    r!(SYS_socketpair),
    r!(SYS_wait4),
    r!(SYS_waitid),
    // pledge_kill: "can kill self with stdio"; pid 0 is its own group.
    r!(SYS_kill, &[allow(&[pid(0)]), allow(&[eq(0, 0)])]),
    // pledge_ioctl: "the ioctl's which are always allowed".
    r!(
        SYS_ioctl,
        one_of!(1; libc::FIONREAD, libc::FIONBIO, libc::FIOCLEX, libc::FIONCLEX)
    ),
    // "Needed by threaded programs": __tfork is clone(2) with
    // CLONE_THREAD and no new namespace; fork(2) needs "proc".
    r!(
        SYS_clone,
        &[allow(&[masked(
            0,
            (libc::CLONE_THREAD as i64 | CLONE_NEW) as u32,
            libc::CLONE_THREAD as i64
        )])]
    ),
    // Linux-only: clone3 passes its flags in memory, out of BPF's
    // reach; ENOSYS makes glibc fall back to clone(2), checked above.
    r!(
        SYS_clone3,
        &[Alt {
            conds: &[],
            action: Action::Errno(libc::ENOSYS as u16),
        }]
    ),
    r!(SYS_sched_yield),
    r!(SYS_futex),
    // Linux-only: glibc registers each new thread's robust futex list
    // and restartable sequence area.
    r!(SYS_set_robust_list),
    r!(SYS_rseq),
    // getthrname, setthrname.
    r!(SYS_prctl, one_of!(0; libc::PR_SET_NAME, libc::PR_GET_NAME)),
    r!(SYS_getsockname),
    r!(SYS_getpeername),
    // sendsyslog is PLEDGE_ALWAYS. Linux-only: glibc's syslog(3) opens
    // a datagram socket to /dev/log again for each line while it is not
    // connected (no syslogd, or syslogd restarted). A log line must
    // never kill the daemon, so that socket fails with EACCES and the
    // line is lost, as sendsyslog(2) loses it with syslogd down.
    r!(
        SYS_socket,
        &[Alt {
            conds: &[
                eq(0, libc::AF_UNIX as i64),
                masked(1, SOCK_TYPE, libc::SOCK_DGRAM as i64),
            ],
            action: Action::Errno(libc::EACCES as u16),
        }]
    ),
];

/// pledge_sockopt under "inet": any SOL_SOCKET option, and these.
const SOCKOPT_INET: &[Alt] = &[
    allow(&[eq(1, libc::SOL_SOCKET as i64)]),
    allow(&[
        eq(1, libc::IPPROTO_TCP as i64),
        eq(2, libc::TCP_MAXSEG as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_TCP as i64),
        eq(2, libc::TCP_INFO as i64),
    ]),
    // Linux-only: keepalive and retransmission timing are per socket
    // here (hyper through socket2), sysctls on OpenBSD.
    allow(&[
        eq(1, libc::IPPROTO_TCP as i64),
        eq(2, libc::TCP_KEEPIDLE as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_TCP as i64),
        eq(2, libc::TCP_KEEPINTVL as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_TCP as i64),
        eq(2, libc::TCP_KEEPCNT as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_TCP as i64),
        eq(2, libc::TCP_USER_TIMEOUT as i64),
    ]),
    allow(&[eq(1, libc::IPPROTO_IP as i64), eq(2, libc::IP_TTL as i64)]),
    allow(&[
        eq(1, libc::IPPROTO_IP as i64),
        eq(2, libc::IP_MINTTL as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_DONTFRAG as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_UNICAST_HOPS as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_MINHOPCOUNT as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_RECVHOPLIMIT as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_RECVPKTINFO as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_RECVTCLASS as i64),
    ]),
    allow(&[
        eq(1, libc::IPPROTO_IPV6 as i64),
        eq(2, libc::IPV6_V6ONLY as i64),
    ]),
];

/// `inet`.
const INET: &[Rule] = &[
    // pledge_socket: AF_INET and AF_INET6, any type.
    r!(SYS_socket, one_of!(0; libc::AF_INET, libc::AF_INET6)),
    r!(SYS_connect),
    r!(SYS_bind),
    r!(SYS_listen),
    r!(SYS_accept),
    r!(SYS_accept4),
    // pledge_sendit: "may use address".
    r!(SYS_sendto),
    r!(SYS_getsockopt, SOCKOPT_INET),
    r!(SYS_setsockopt, SOCKOPT_INET),
];

/// `unix`.
const UNIX: &[Rule] = &[
    // pledge_socket: AF_UNIX, any type.
    r!(SYS_socket, &[allow(&[eq(0, libc::AF_UNIX as i64)])]),
    r!(SYS_connect),
    r!(SYS_bind),
    r!(SYS_listen),
    r!(SYS_accept),
    r!(SYS_accept4),
    r!(SYS_sendto),
    // pledge_sockopt under "unix": any SOL_SOCKET option (SO_PEERCRED,
    // which is getpeereid(3) on OpenBSD).
    r!(SYS_getsockopt, &[allow(&[eq(1, libc::SOL_SOCKET as i64)])]),
    r!(SYS_setsockopt, &[allow(&[eq(1, libc::SOL_SOCKET as i64)])]),
];

/// `route`.
const ROUTE: &[Rule] = &[
    // pledge_ioctl under "route": the SIOCGIF* reads, on sockets.
    r!(
        SYS_ioctl,
        one_of!(1; libc::SIOCGIFFLAGS, libc::SIOCGIFADDR, libc::SIOCGIFNETMASK,
            libc::SIOCGIFMTU, libc::SIOCGIFINDEX, libc::SIOCGIFNAME)
    ),
    // Linux-only: interface and route tables are read with netlink
    // requests addressed to the kernel (OpenBSD: sysctl NET_RT_*).
    r!(SYS_sendto),
];

/// `wroute`.
const WROUTE: &[Rule] = &[
    // pledge_ioctl under "wroute": SIOCAIFADDR_IN6/SIOCDIFADDR_IN6.
    // Linux-only: the same changes are RTM_NEWADDR/RTM_DELADDR (and
    // RTM_NEWROUTE/RTM_DELROUTE, a route-socket write on OpenBSD) on the
    // netlink socket opened before the pledge, sent with sendto(2) to
    // the kernel's netlink address; the answers come back through
    // recvfrom(2), which stdio allows.
    r!(SYS_sendto),
];

/// The promises this filter knows, in a fixed order (bit i of a set).
const PROMISES: [(&str, &[Rule]); 5] = [
    ("stdio", STDIO),
    ("inet", INET),
    ("unix", UNIX),
    ("route", ROUTE),
    ("wroute", WROUTE),
];

/// OpenBSD promises that mean nothing to this filter yet: a pledge
/// naming one fails rather than quietly allowing less or more.
const NOT_HERE: &[&str] = &[
    "audio",
    "bpf",
    "chown",
    "cpath",
    "disklabel",
    "dns",
    "dpath",
    "drm",
    "error",
    "exec",
    "fattr",
    "flock",
    "getpw",
    "id",
    "mcast",
    "pf",
    "proc",
    "prot_exec",
    "ps",
    "recvfd",
    "rpath",
    "sendfd",
    "settime",
    "tape",
    "tmppath",
    "tty",
    "unveil",
    "video",
    "vminfo",
    "vmm",
    "wpath",
];

/// Parses a promise string into a set (bit i = `PROMISES[i]`).
pub fn parse(promises: &str) -> io::Result<u32> {
    let mut set = 0;
    for word in promises.split(' ').filter(|w| !w.is_empty()) {
        match PROMISES.iter().position(|(name, _)| *name == word) {
            Some(i) => set |= 1 << i,
            None if NOT_HERE.contains(&word) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("promise \"{word}\" is not enforced on Linux"),
                ));
            }
            // parsepledges: an unknown word is EINVAL.
            None => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
        }
    }
    Ok(set)
}

/// Every rule a promise set brings, PLEDGE_ALWAYS first.
pub fn rules(set: u32) -> impl Iterator<Item = &'static Rule> {
    let chosen = PROMISES
        .iter()
        .enumerate()
        .filter(move |(i, _)| set & (1 << i) != 0)
        .flat_map(|(_, (_, rules))| rules.iter());
    ALWAYS.iter().chain(chosen)
}

/// The ways each call passes under `set`, merged across promises; a call
/// some promise allows outright needs no argument check at all.
fn merged(set: u32) -> BTreeMap<i64, Vec<Alt>> {
    let mut calls: BTreeMap<i64, Vec<Alt>> = BTreeMap::new();
    for rule in rules(set) {
        calls.entry(rule.nr).or_default().extend(rule.alts);
    }
    for alts in calls.values_mut() {
        if alts
            .iter()
            .any(|a| a.conds.is_empty() && a.action == Action::Allow)
        {
            *alts = ANY.to_vec();
        } else {
            // Allowing alternatives first: "unix" allows what stdio's
            // syslog rule would refuse.
            alts.sort_by_key(|a| a.action != Action::Allow);
        }
    }
    calls
}

// Classic BPF, as seccomp runs it (linux/filter.h, linux/seccomp.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const BPF_JMP_JA: u16 = 0x05;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
// struct seccomp_data: nr, arch, instruction_pointer, args[6].
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARGS: u32 = 16;

const fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn ret(action: Action) -> libc::sock_filter {
    stmt(
        BPF_RET_K,
        match action {
            Action::Allow => libc::SECCOMP_RET_ALLOW,
            Action::Errno(e) => libc::SECCOMP_RET_ERRNO | u32::from(e),
        },
    )
}

fn jump_len(n: usize) -> io::Result<u8> {
    u8::try_from(n).map_err(|_| io::Error::other("seccomp: argument block too long"))
}

/// The block for one call with argument checks: each alternative in
/// turn, then kill. It always returns.
fn block(alts: &[Alt], pid: u32) -> io::Result<Vec<libc::sock_filter>> {
    let mut out = Vec::new();
    for alt in alts {
        let mut part = Vec::new();
        for cond in alt.conds {
            let half = if cond.high { 4 } else { 0 };
            part.push(stmt(
                BPF_LD_W_ABS,
                OFF_ARGS + 8 * u32::from(cond.arg) + half,
            ));
            if cond.mask != u32::MAX {
                part.push(stmt(BPF_ALU_AND_K, cond.mask));
            }
            let value = match cond.value {
                Value::K(k) => k,
                Value::Pid => pid,
            };
            // jf is patched below: to the end of this alternative.
            part.push(jump(BPF_JEQ_K, value, 0, 0));
        }
        part.push(ret(alt.action));
        let len = part.len();
        for (i, insn) in part.iter_mut().enumerate() {
            if insn.code == BPF_JEQ_K {
                insn.jf = jump_len(len - 1 - i)?;
            }
        }
        out.extend(part);
    }
    out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS));
    Ok(out)
}

/// The filter for a promise set; `pid` is this process's, for kill(2).
/// The calls are found by a binary search on the number, not a chain
/// of tests: the kernel walks the program once per system call number
/// when it installs it (seccomp_cache_prepare), and a chain of a
/// hundred calls made that walk, measured, 0.2 ms of every pledge.
pub fn program(set: u32, pid: u32) -> io::Result<Vec<libc::sock_filter>> {
    let kill = stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS);
    let mut prog = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        kill,
        stmt(BPF_LD_W_ABS, OFF_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        kill,
    ];
    let calls: Vec<(u32, Vec<Alt>)> = merged(set)
        .into_iter()
        .map(|(nr, alts)| (u32::try_from(nr).expect("syscall numbers are small"), alts))
        .collect();
    prog.extend(search(&calls, pid)?);
    Ok(prog)
}

/// Calls in a leaf of the search, tested one after the other.
const LEAF: usize = 4;

/// The search for the call number in the accumulator among `calls`
/// (sorted): halves split by a `>=` test, a few `==` tests in each
/// leaf, kill for a number not there. Every path ends in a return.
fn search(calls: &[(u32, Vec<Alt>)], pid: u32) -> io::Result<Vec<libc::sock_filter>> {
    if calls.len() <= LEAF {
        let mut out = Vec::new();
        for (nr, alts) in calls {
            if alts.len() == 1 && alts[0].conds.is_empty() {
                out.push(jump(BPF_JEQ_K, *nr, 0, 1));
                out.push(ret(alts[0].action));
            } else {
                // The block returns; skipping it keeps nr loaded.
                let body = block(alts, pid)?;
                out.push(jump(BPF_JEQ_K, *nr, 0, jump_len(body.len())?));
                out.extend(body);
            }
        }
        out.push(stmt(BPF_RET_K, libc::SECCOMP_RET_KILL_PROCESS));
        return Ok(out);
    }
    let (low, high) = calls.split_at(calls.len() / 2);
    let high_part = search(high, pid)?;
    let low_part = search(low, pid)?;
    let mut out = Vec::with_capacity(2 + high_part.len() + low_part.len());
    match u8::try_from(high_part.len()) {
        Ok(n) => out.push(jump(BPF_JGE_K, high[0].0, 0, n)),
        // Over a jump's 255: below goes through an unconditional jump.
        Err(_) => {
            out.push(jump(BPF_JGE_K, high[0].0, 1, 0));
            let n = u32::try_from(high_part.len())
                .map_err(|_| io::Error::other("seccomp: filter too long"))?;
            out.push(stmt(BPF_JMP_JA, n));
        }
    }
    out.extend(high_part);
    out.extend(low_part);
    Ok(out)
}

#[cfg(target_env = "gnu")]
unsafe extern "C" {
    fn tzset();
}

/// Linux-only: glibc opens files on its own, lazily, where OpenBSD's
/// libc does not; make it do so now, or never.
fn prepare_libc() {
    #[cfg(target_env = "gnu")]
    // SAFETY: tzset and mallopt take no pointers; both only set libc
    // state, once, before the filter exists.
    unsafe {
        // syslog(3) stamps each line with the local time and reads
        // /etc/localtime at its first line (OpenBSD's syslog_r formats
        // no time). Loaded now, it is not read again; in the fetcher's
        // empty chroot there is none, and UTC is settled as well.
        tzset();
        // A thread's malloc arena, when it shrinks, reads
        // /proc/sys/vm/overcommit_memory once. -1 turns trimming off
        // (mallopt(3)); large blocks are still mmap'd and unmapped.
        libc::mallopt(libc::M_TRIM_THRESHOLD, -1);
    }
}

/// The promises held since the first pledge; None before it.
static HELD: Mutex<Option<u32>> = Mutex::new(None);

/// pledge(2): installs the filter for `promises` on every thread.
pub fn pledge(promises: &str) -> io::Result<()> {
    let set = parse(promises)?;
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    // sys_pledge: "only permit reductions".
    if held.is_some_and(|old| set & !old != 0) {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // Only before the first filter: tzset stats the zone file each call.
    if held.is_none() {
        prepare_libc();
    }
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() } as u32;
    let prog = program(set, pid)?;
    super::no_new_privs()?;
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::other("seccomp: filter too long"))?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, alive for the call; the kernel
    // copies the program. TSYNC puts it on every thread of the process
    // (reqwest's runtime thread may exist already).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    match ret {
        0 => {
            *held = Some(set);
            Ok(())
        }
        -1 => Err(io::Error::last_os_error()),
        tid => Err(io::Error::other(format!(
            "seccomp: thread {tid} cannot take the filter"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const PID: u32 = 4242;

    /// Runs `prog` as the kernel would on one call (classic BPF, only
    /// the instructions `program` emits).
    fn run(prog: &[libc::sock_filter], arch: u32, nr: i64, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
        data[4..8].copy_from_slice(&arch.to_ne_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0;
        loop {
            let insn = prog[pc];
            pc += 1;
            match insn.code {
                BPF_LD_W_ABS => {
                    let k = insn.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                BPF_ALU_AND_K => acc &= insn.k,
                BPF_JEQ_K | BPF_JGE_K => {
                    let hit = if insn.code == BPF_JEQ_K {
                        acc == insn.k
                    } else {
                        acc >= insn.k
                    };
                    pc += usize::from(if hit { insn.jt } else { insn.jf });
                }
                BPF_JMP_JA => pc += insn.k as usize,
                BPF_RET_K => return insn.k,
                other => panic!("unexpected BPF code {other:#x}"),
            }
        }
    }

    fn verdict(promises: &str, nr: i64, args: [u64; 6]) -> u32 {
        let prog = program(parse(promises).unwrap(), PID).unwrap();
        run(&prog, AUDIT_ARCH_X86_64, nr, args)
    }

    fn errno(e: i32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e as u32
    }

    const NONE: [u64; 6] = [0; 6];

    #[test]
    fn stdio_allows_io_on_what_is_open_and_nothing_on_paths() {
        assert_eq!(verdict("stdio", libc::SYS_read, NONE), ALLOW);
        assert_eq!(verdict("stdio", libc::SYS_write, NONE), ALLOW);
        assert_eq!(verdict("stdio", libc::SYS_poll, NONE), ALLOW);
        assert_eq!(verdict("stdio", libc::SYS_exit_group, NONE), ALLOW);
        for nr in [
            libc::SYS_open,
            libc::SYS_openat,
            libc::SYS_execve,
            libc::SYS_fork,
            libc::SYS_vfork,
            libc::SYS_ptrace,
            libc::SYS_setuid,
            libc::SYS_chroot,
            libc::SYS_unshare,
            libc::SYS_connect,
            libc::SYS_landlock_create_ruleset,
        ] {
            assert_eq!(verdict("stdio", nr, NONE), KILL, "syscall {nr}");
        }
    }

    #[test]
    fn other_architectures_and_x32_numbers_are_killed() {
        let prog = program(parse("stdio").unwrap(), PID).unwrap();
        // AUDIT_ARCH_I386: a 32-bit int 0x80 call from this process.
        assert_eq!(run(&prog, 0x4000_0003, libc::SYS_read, NONE), KILL);
        assert_eq!(
            run(&prog, AUDIT_ARCH_X86_64, 0x4000_0000 | libc::SYS_read, NONE),
            KILL
        );
    }

    #[test]
    fn sockets_follow_pledge_socket() {
        let sock = |domain: i32, ty: i32| [domain as u64, ty as u64, 0, 0, 0, 0];
        let tcp6 = sock(libc::AF_INET6, libc::SOCK_STREAM | libc::SOCK_CLOEXEC);
        assert_eq!(verdict("stdio", libc::SYS_socket, tcp6), KILL);
        assert_eq!(verdict("stdio inet", libc::SYS_socket, tcp6), ALLOW);
        let unix_stream = sock(libc::AF_UNIX, libc::SOCK_STREAM);
        assert_eq!(verdict("stdio inet", libc::SYS_socket, unix_stream), KILL);
        assert_eq!(verdict("stdio unix", libc::SYS_socket, unix_stream), ALLOW);
        let packet = sock(libc::AF_PACKET, libc::SOCK_RAW);
        assert_eq!(verdict("stdio inet unix", libc::SYS_socket, packet), KILL);
        let netlink = sock(libc::AF_NETLINK, libc::SOCK_RAW);
        assert_eq!(verdict("stdio wroute", libc::SYS_socket, netlink), KILL);
        // syslog(3) reconnecting to /dev/log fails, never kills.
        let syslog = sock(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC);
        assert_eq!(
            verdict("stdio", libc::SYS_socket, syslog),
            errno(libc::EACCES)
        );
        assert_eq!(verdict("stdio unix", libc::SYS_socket, syslog), ALLOW);
    }

    #[test]
    fn sendto_an_address_needs_a_network_or_route_promise() {
        let to = |addr: u64| [3, 0, 0, 0, addr, 12];
        assert_eq!(verdict("stdio", libc::SYS_sendto, to(0)), ALLOW);
        assert_eq!(verdict("stdio", libc::SYS_sendto, to(0x7fff_0000)), KILL);
        // A pointer above 4 GiB with a zero low half is not NULL.
        assert_eq!(verdict("stdio", libc::SYS_sendto, to(1 << 40)), KILL);
        assert_eq!(
            verdict("stdio wroute", libc::SYS_sendto, to(1 << 40)),
            ALLOW
        );
        assert_eq!(verdict("stdio inet", libc::SYS_sendto, to(1 << 40)), ALLOW);
    }

    #[test]
    fn argument_checks_mirror_openbsd() {
        let a = |x: u64, y: u64, z: u64| [x, y, z, 0, 0, 0];
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        assert_eq!(verdict("stdio", libc::SYS_clone, a(thread, 0, 0)), ALLOW);
        let fork = libc::SIGCHLD as u64;
        assert_eq!(verdict("stdio", libc::SYS_clone, a(fork, 0, 0)), KILL);
        let netns = thread | libc::CLONE_NEWNET as u64;
        assert_eq!(verdict("stdio", libc::SYS_clone, a(netns, 0, 0)), KILL);
        assert_eq!(
            verdict("stdio", libc::SYS_clone3, NONE),
            errno(libc::ENOSYS)
        );

        let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
        let rx = (libc::PROT_READ | libc::PROT_EXEC) as u64;
        assert_eq!(verdict("stdio", libc::SYS_mmap, a(0, 4096, rw)), ALLOW);
        assert_eq!(verdict("stdio", libc::SYS_mmap, a(0, 4096, rx)), KILL);
        assert_eq!(verdict("stdio", libc::SYS_mprotect, a(0, 4096, rx)), KILL);

        let pid = u64::from(PID);
        assert_eq!(verdict("stdio", libc::SYS_kill, a(pid, 15, 0)), ALLOW);
        assert_eq!(verdict("stdio", libc::SYS_kill, a(pid + 1, 15, 0)), KILL);
        assert_eq!(verdict("", libc::SYS_tgkill, a(pid, pid, 6)), ALLOW);
        assert_eq!(verdict("", libc::SYS_tgkill, a(1, 1, 9)), KILL);

        let ioctl = |req: u64| [1, req, 0, 0, 0, 0];
        assert_eq!(
            verdict("stdio", libc::SYS_ioctl, ioctl(libc::FIONBIO)),
            ALLOW
        );
        assert_eq!(
            verdict("stdio", libc::SYS_ioctl, ioctl(libc::TIOCSTI)),
            KILL
        );
        let index = ioctl(libc::SIOCGIFINDEX);
        assert_eq!(verdict("stdio wroute", libc::SYS_ioctl, index), KILL);
        assert_eq!(verdict("stdio route", libc::SYS_ioctl, index), ALLOW);

        let fcntl = |cmd: i32| [1, cmd as u64, 0, 0, 0, 0];
        assert_eq!(
            verdict("stdio", libc::SYS_fcntl, fcntl(libc::F_SETFL)),
            ALLOW
        );
        assert_eq!(
            verdict("stdio", libc::SYS_fcntl, fcntl(libc::F_SETOWN)),
            KILL
        );

        let opt = |level: i32, name: i32| [3, level as u64, name as u64, 0, 0, 0];
        let nodelay = opt(libc::IPPROTO_TCP, libc::TCP_NODELAY);
        assert_eq!(verdict("stdio", libc::SYS_setsockopt, nodelay), ALLOW);
        let keepalive = opt(libc::SOL_SOCKET, libc::SO_KEEPALIVE);
        assert_eq!(verdict("stdio", libc::SYS_setsockopt, keepalive), KILL);
        assert_eq!(
            verdict("stdio inet", libc::SYS_setsockopt, keepalive),
            ALLOW
        );
        let congestion = opt(libc::IPPROTO_TCP, libc::TCP_CONGESTION);
        assert_eq!(
            verdict("stdio inet", libc::SYS_setsockopt, congestion),
            KILL
        );

        let prctl = |op: i32| [op as u64, 0, 0, 0, 0, 0];
        assert_eq!(
            verdict("stdio", libc::SYS_prctl, prctl(libc::PR_SET_NAME)),
            ALLOW
        );
        assert_eq!(
            verdict("", libc::SYS_prctl, prctl(libc::PR_SET_NO_NEW_PRIVS)),
            ALLOW
        );
        assert_eq!(
            verdict("stdio", libc::SYS_prctl, prctl(libc::PR_SET_DUMPABLE)),
            KILL
        );
        assert_eq!(
            verdict("stdio", libc::SYS_prlimit64, [0, 7, 0, 0, 0, 0]),
            ALLOW
        );
        assert_eq!(
            verdict("stdio", libc::SYS_prlimit64, [0, 7, 1 << 33, 0, 0, 0]),
            KILL
        );
    }

    #[test]
    fn promise_strings_parse_as_openbsd_parses_them() {
        assert_eq!(parse("").unwrap(), 0);
        assert_eq!(parse("stdio  inet").unwrap(), parse("inet stdio").unwrap());
        let err = parse("stdio frobnicate").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        let err = parse("stdio rpath").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }

    /// Every rule's number is the kernel's for its name, read from the
    /// installed uapi header; a typo in the table cannot hide.
    #[test]
    fn syscall_numbers_match_the_kernel_headers() {
        let header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
        let Ok(text) = std::fs::read_to_string(header) else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: syscall_numbers_match_the_kernel_headers: no {header}"
            );
            return;
        };
        let numbers: BTreeMap<&str, i64> = text
            .lines()
            .filter_map(|l| {
                let mut words = l.strip_prefix("#define __NR_")?.split_whitespace();
                Some((words.next()?, words.next()?.parse().ok()?))
            })
            .collect();
        for rule in rules(u32::MAX) {
            assert_eq!(numbers.get(rule.name()), Some(&rule.nr), "{}", rule.name());
        }
    }

    /// The strace record beside this file: every call a process made
    /// after its pledge is one its promises allow.
    #[test]
    fn the_strace_record_is_within_the_promises() {
        let record = include_str!("syscalls.record");
        let mut calls = 0;
        for line in record.lines().filter(|l| !l.starts_with('#')) {
            let fields: Vec<&str> = line.split('\t').collect();
            let ["call", promises, call] = fields.as_slice() else {
                panic!("bad line in syscalls.record: {line:?}");
            };
            let set = parse(promises).unwrap();
            assert!(
                rules(set).any(|r| r.name() == *call),
                "a process pledged \"{promises}\" calls {call}, which its promises do not allow"
            );
            calls += 1;
        }
        assert!(calls > 20, "record too short");
    }

    /// The search finds every call the merged lists name, with the
    /// verdict its own block gives, and kills every other number.
    #[test]
    fn the_search_finds_each_call_and_only_those() {
        let args = [NONE, [3, 0, 0, 0, 0, 0], [u64::from(PID), 9, 0, 0, 0, 0]];
        for promises in [
            "stdio",
            "stdio inet",
            "stdio route wroute",
            "stdio unix",
            "inet",
        ] {
            let set = parse(promises).unwrap();
            let prog = program(set, PID).unwrap();
            let calls = merged(set);
            for nr in 0..1024 {
                for a in args {
                    let want = match calls.get(&nr) {
                        None => KILL,
                        Some(alts) if alts.len() == 1 && alts[0].conds.is_empty() => {
                            run(&[ret(alts[0].action)], AUDIT_ARCH_X86_64, nr, a)
                        }
                        Some(alts) => run(&block(alts, PID).unwrap(), AUDIT_ARCH_X86_64, nr, a),
                    };
                    let got = run(&prog, AUDIT_ARCH_X86_64, nr, a);
                    assert_eq!(got, want, "{promises}: call {nr} {a:?}");
                }
            }
        }
    }

    #[test]
    fn every_block_fits_its_jumps() {
        let all = parse("stdio inet unix route wroute").unwrap();
        let prog = program(all, PID).unwrap();
        assert!(prog.len() < 1000, "{} instructions", prog.len());
        for (i, insn) in prog.iter().enumerate() {
            if insn.code == BPF_JEQ_K || insn.code == BPF_JGE_K {
                let far = i + 1 + usize::from(insn.jt.max(insn.jf));
                assert!(far < prog.len(), "jump past the end at {i}");
            }
            if insn.code == BPF_JMP_JA {
                assert!(
                    i + 1 + (insn.k as usize) < prog.len(),
                    "jump past the end at {i}"
                );
            }
        }
        assert_eq!(prog.last().map(|i| i.k), Some(KILL));
    }
}
