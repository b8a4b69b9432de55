//! End to end: the whole daemon in the namespace lab (`tests/lab/lab.sh`),
//! against scwd-metad on a real socket and the kernel of a network
//! namespace. Every case asserts on kernel state (`ip -6 addr`,
//! `ip -6 route`, `ip -6 route get`), on what the metadata service logged,
//! and, for the fault matrix, on scwd's own log line.
//!
//! Needs root and `ip netns`; otherwise each test prints
//! `SKIPPED: <test>: needs root` and returns. Each test has its own lab,
//! named after the process and a counter, so tests run in parallel; a
//! guard deletes the lab however the test ends.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

const SCWD: &str = env!("CARGO_BIN_EXE_scwd");
const SCWCTL: &str = env!("CARGO_BIN_EXE_scwctl");
const LAB_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/lab.sh");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Routed /64 with a link-local gateway (Talos v4 fixture).
const ROUTED: &str = "scaleway/conf-json_talos-v4_routed_dual-stack_dhcp-v4_slaac-v6.json";
const ROUTED_ADDR: &str = "2001:bc8:1234:5678:dc00:1ff:fe14:a73b/64";
/// The same instance after a move to another /64 (for SIGHUP).
const RENUMBERED: &str = "lab/routed-64-renumbered.json";
const RENUMBERED_ADDR: &str = "2001:bc8:1234:9abc:dc00:1ff:fe14:a73b/64";
/// IPv6-only routed instance (Talos v3 fixture).
const IPV6_ONLY: &str = "scaleway/conf-json_talos-v3_routed_ipv6-only.json";
const IPV6_ONLY_ADDR: &str = "2001:111:222:3333::1/64";
/// The link-local gateway the lab's peer holds in `link-local` mode.
const LL_GATEWAY: &str = "fe80::dc00:ff:fe12:3456";
/// Legacy `ipv6` object, /127 with a global gateway.
const LEGACY: &str = "lab/legacy-127.json";
const LEGACY_ADDR: &str = "2001:bc8:4700:2100::302d/127";
const LEGACY_GATEWAY: &str = "2001:bc8:4700:2100::302c";
/// A legacy NAT instance without IPv6.
const NO_IPV6: &str = "scaleway/conf-json_legacy-nat_no-ipv6_vc1s-par1.json";
/// One good entry and one with netmask "64; reboot".
const BAD_PREFIX: &str = "lab/bad-prefix.json";
/// The routed document with its entry's family spelled "INET6".
const FAMILY_UPPERCASE: &str = "lab/routed-64-family-uppercase.json";
/// Routed document cut in half, correctly framed.
const TRUNCATED_JSON: &str = "lab/truncated.json";

/// Somewhere beyond the gateway: only a default route reaches it.
const FAR: &str = "2001:db8:ffff::1";

/// The boot signal as the service logs it.
const BOOTED: &str = r#"PATCH /state {"state_detail":"booted"} -> 200"#;

/// Longest a `-o` run may take: its own deadline is 60 s.
const ONCE_LIMIT: Duration = Duration::from_secs(90);

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// Why the lab cannot run here, if it cannot.
fn lab_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<&'static str>> = OnceLock::new();
    *WHY.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .unwrap_or("");
        if euid != "0" {
            return Some("needs root");
        }
        let netns = Command::new("ip")
            .args(["netns", "list"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !netns.is_ok_and(|s| s.success()) {
            return Some("needs root and ip netns (iproute2)");
        }
        sweep_orphan_labs();
        None
    })
}

/// Deletes labs left by a test process that died of a signal (no Drop
/// ran): lab names start with the pid of the process that made them,
/// and a lab whose process is gone belongs to nobody.
fn sweep_orphan_labs() {
    let mut names: Vec<String> = fs::read_dir(lab_run_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let netns = Command::new("ip").args(["netns", "list"]).output();
    let netns = netns.map(|o| text(&o.stdout)).unwrap_or_default();
    names.extend(netns.lines().filter_map(|l| {
        let ns = l.split_whitespace().next()?.strip_prefix("scwd-")?;
        Some(ns.strip_suffix("-md").unwrap_or(ns).to_string())
    }));
    names.sort();
    names.dedup();
    for name in names {
        let Some((pid, _)) = name.strip_prefix('t').and_then(|r| r.split_once('-')) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            eprintln!("deleting lab {name}: its test process {pid} is gone");
            let _ = lab_sh().args(["down", &name]).output();
        }
    }
}

fn lab_run_dir() -> PathBuf {
    std::env::temp_dir().join("scwd-lab")
}

/// The lab's metadata service: a workspace member (`tests/lab/metad`),
/// so cargo gives this package no `CARGO_BIN_EXE_` for it. `$SCWD_METAD`,
/// or the binary next to scwd's in the same profile directory, which
/// `cargo test --workspace` (make test) builds before any test runs.
fn metad() -> &'static Path {
    static METAD: OnceLock<PathBuf> = OnceLock::new();
    METAD.get_or_init(|| {
        let path = std::env::var_os("SCWD_METAD")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(SCWD).with_file_name("scwd-metad"));
        assert!(
            path.is_file(),
            "{}: not built; run `cargo build -p scwd-metad` or \
             `cargo test --workspace` (make test does), or set SCWD_METAD",
            path.display()
        );
        path
    })
}

fn lab_sh() -> Command {
    let mut cmd = Command::new(LAB_SH);
    cmd.env("SCWD_METAD", metad())
        .env("SCWD_LAB_RUN", lab_run_dir());
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Polls `f` until it holds or `limit` passes; says whether it held.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// One lab: instance namespace `scwd-NAME` with vio0, its peer with the
/// metadata service and the gateway. Dropping it deletes both.
struct Lab {
    name: String,
    ns: String,
    dir: PathBuf,
    runs: AtomicU32,
}

impl Lab {
    /// Brings a lab up, or prints SKIPPED and returns None.
    fn up(test: &str, gateway: &str, fixture: &str, metad_flags: &[&str]) -> Option<Lab> {
        if let Some(why) = lab_unavailable() {
            // Straight to fd 2: libtest captures print! and eprint!, and
            // a skipped test must not look like a passed one.
            let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
            return None;
        }
        let name = format!(
            "t{}-{}",
            std::process::id(),
            NEXT_LAB.fetch_add(1, Ordering::SeqCst)
        );
        // The guard exists before the lab does: a half-made lab is deleted too.
        let lab = Lab {
            ns: format!("scwd-{name}"),
            dir: lab_run_dir().join(&name),
            name,
            runs: AtomicU32::new(0),
        };
        let out = lab_sh()
            .args(["up", &lab.name, "--gateway", gateway, "--fixture"])
            .arg(Path::new(FIXTURES).join(fixture))
            .arg("--")
            .args(metad_flags)
            .output()
            .expect("run lab.sh");
        assert!(
            out.status.success(),
            "lab.sh up {}: {}{}",
            lab.name,
            text(&out.stdout),
            text(&out.stderr)
        );
        Some(lab)
    }

    fn conf(&self) -> PathBuf {
        self.dir.join("scwd.conf")
    }

    fn sock(&self) -> PathBuf {
        self.dir.join("scwd.sock")
    }

    /// Runs `scwctl -s <lab socket> ARGS` as `uid` (root: 0): exit
    /// status, stdout, stderr.
    fn scwctl(&self, uid: u32, args: &[&str]) -> (Option<i32>, String, String) {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(SCWCTL);
        cmd.arg("-s").arg(self.sock()).args(args);
        if uid != 0 {
            cmd.uid(uid).gid(uid);
        }
        let out = cmd.output().expect("run scwctl");
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    /// `ip -n NS ARGS`: stdout on success, stderr as the error.
    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("ip")
            .args(["-n", &self.ns])
            .args(args)
            .output()
            .expect("run ip");
        if out.status.success() {
            Ok(text(&out.stdout))
        } else {
            Err(text(&out.stderr).trim().to_string())
        }
    }

    fn ip_ok(&self, args: &[&str]) -> String {
        self.ip(args)
            .unwrap_or_else(|e| panic!("ip -n {} {}: {e}", self.ns, args.join(" ")))
    }

    /// vio0's global IPv6 addresses as `addr/len`, sorted.
    fn global_addrs(&self) -> Vec<String> {
        let out = self.ip_ok(&["-6", "-o", "addr", "show", "dev", "vio0", "scope", "global"]);
        let mut addrs: Vec<String> = out
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet6")?;
                words.next().map(str::to_string)
            })
            .collect();
        addrs.sort();
        addrs
    }

    fn default_routes(&self) -> Vec<String> {
        self.ip_ok(&["-6", "route", "show", "default"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Everything a run could have changed: vio0's addresses of both
    /// families and every route of both families in every table.
    fn snapshot(&self) -> String {
        [
            self.ip_ok(&["addr", "show", "dev", "vio0"]),
            self.ip_ok(&["-4", "route", "show", "table", "all"]),
            self.ip_ok(&["-6", "route", "show", "table", "all"]),
        ]
        .join("\n")
    }

    fn metad_log(&self) -> String {
        fs::read_to_string(self.dir.join("metad.log")).unwrap_or_default()
    }

    /// The service's log once it holds `needle`: a request the client
    /// dropped is logged when the service next writes to it, which may be
    /// after scwd has exited.
    fn metad_log_with(&self, needle: &str) -> String {
        wait_until(Duration::from_secs(5), || self.metad_log().contains(needle));
        self.metad_log()
    }

    /// Serves `fixture` from now on.
    fn set_fixture(&self, fixture: &str) {
        let out = lab_sh()
            .args(["fixture", &self.name])
            .arg(Path::new(FIXTURES).join(fixture))
            .output()
            .expect("run lab.sh");
        assert!(
            out.status.success(),
            "lab.sh fixture: {}",
            text(&out.stderr)
        );
    }

    /// The default route via `gateway` on vio0 is the only one, and a far
    /// destination leaves through it from `src`.
    fn assert_routed(&self, gateway: &str, src: &str, why: &str) {
        let routes = self.default_routes();
        assert!(
            routes.len() == 1 && routes[0].contains(&format!("default via {gateway} dev vio0")),
            "default routes {routes:?}, want one via {gateway} dev vio0\n{why}"
        );
        let src = src.split('/').next().unwrap_or(src);
        let got = self
            .ip(&["-6", "route", "get", FAR])
            .unwrap_or_else(|e| panic!("route get {FAR}: {e}\n{why}"));
        assert!(
            got.contains(&format!("via {gateway} dev vio0")) && got.contains(&format!("src {src}")),
            "route get {FAR}: {got}want via {gateway} dev vio0 src {src}\n{why}"
        );
    }

    /// Nothing IPv6 beyond the kernel's own: no global address, no
    /// default route, no way out.
    fn assert_unconfigured(&self, why: &str) {
        assert_eq!(self.global_addrs(), Vec::<String>::new(), "{why}");
        assert_eq!(self.default_routes(), Vec::<String>::new(), "{why}");
        assert!(self.ip(&["-6", "route", "get", FAR]).is_err(), "{why}");
    }

    fn assert_booted(&self, why: &str) {
        assert!(
            self.metad_log().contains(BOOTED),
            "no boot signal received\n{why}"
        );
    }

    fn scwd(&self, args: &[&str], wrapper: &[&str]) -> (Command, PathBuf) {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let log = self.dir.join(format!("scwd-{n}.err"));
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns])
            .args(wrapper)
            .arg(SCWD)
            .args(args)
            .arg("-f")
            .arg(self.conf())
            // Each lab its own control socket, so labs run side by side.
            .arg("-s")
            .arg(self.sock())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // A file, not a pipe: a lingering child must not hold the
            // test up, and the log can be read while scwd runs.
            .stderr(fs::File::create(&log).expect("create scwd log"));
        (cmd, log)
    }

    /// Runs `scwd -o -f <lab conf>` to the end.
    fn once(&self) -> Run {
        self.once_wrapped(&[])
    }

    /// Runs `scwd -o` under `wrapper` (e.g. /usr/bin/time).
    fn once_wrapped(&self, wrapper: &[&str]) -> Run {
        self.once_with(&["-o"], wrapper)
    }

    /// Runs scwd with `args` (which include `-o`) under `wrapper`.
    fn once_with(&self, args: &[&str], wrapper: &[&str]) -> Run {
        let (mut cmd, log) = self.scwd(args, wrapper);
        let start = Instant::now();
        let mut child = cmd.spawn().expect("spawn scwd");
        let status = wait_child(&mut child, ONCE_LIMIT);
        let elapsed = start.elapsed();
        let stderr = fs::read_to_string(&log).unwrap_or_default();
        let metad = self.metad_log();
        let status = status.unwrap_or_else(|| {
            panic!("scwd -o still running after {ONCE_LIMIT:?}\n{stderr}\n{metad}")
        });
        let run = Run {
            status,
            stderr,
            elapsed,
            metad,
        };
        assert!(!run.stderr.contains("panicked"), "scwd panicked\n{run}");
        run
    }

    /// Starts a resident `scwd -d`.
    fn daemon(&self) -> Daemon {
        let (mut cmd, log) = self.scwd(&["-d"], &[]);
        Daemon {
            child: cmd.spawn().expect("spawn scwd -d"),
            log,
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        match lab_sh().args(["down", &self.name]).output() {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("lab.sh down {}: {}", self.name, text(&out.stderr)),
            Err(e) => eprintln!("lab.sh down {}: {e}", self.name),
        }
    }
}

/// Waits for `child` at most `limit`; kills it (our own child) after that.
fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let mut status = None;
    wait_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// One finished `scwd -o`.
struct Run {
    status: ExitStatus,
    stderr: String,
    elapsed: Duration,
    metad: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scwd -o: {} after {:?}\n--- scwd stderr\n{}--- scwd-metad log\n{}",
            self.status, self.elapsed, self.stderr, self.metad
        )
    }
}

impl Run {
    fn assert_exit(&self, code: i32) {
        assert_eq!(self.status.code(), Some(code), "{self}");
    }

    /// Some line of scwd's log holds every one of `words` (any case).
    fn assert_logged(&self, words: &[&str]) {
        let found = self.stderr.lines().any(|l| {
            let l = l.to_lowercase();
            words.iter().all(|w| l.contains(&w.to_lowercase()))
        });
        assert!(found, "no scwd log line with all of {words:?}\n{self}");
    }

    /// Lines of scwd's log holding `word`.
    fn lines_with(&self, word: &str) -> Vec<&str> {
        self.stderr.lines().filter(|l| l.contains(word)).collect()
    }
}

/// A resident `scwd -d`; killed if the test leaves it running.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {sig}");
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status 0 scwd owes it within `limit`.
    fn terminate(&mut self, limit: Duration, what: &str) {
        self.signal("TERM");
        let status = wait_child(&mut self.child, limit);
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "{what} after SIGTERM\n{}",
            self.log()
        );
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("scwd -d exited: {status}\n{}", self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Parses `t=+1234ms REST` lines of the service's log.
fn metad_events(log: &str) -> Vec<(u64, &str)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("t=+")?;
            let (ms, rest) = rest.split_once("ms ")?;
            Some((ms.parse().ok()?, rest))
        })
        .collect()
}

/// "client went away after N ms" from the service's log: how long a
/// client waited before it gave up on a request.
fn gave_up_after_ms(log: &str) -> Vec<u64> {
    metad_events(log)
        .into_iter()
        .filter_map(|(_, rest)| {
            let after = rest.split_once("client went away after ")?.1;
            after.split_once(" ms")?.0.parse().ok()
        })
        .collect()
}

/// "N body bytes sent" from the service's log.
fn body_bytes_sent(log: &str) -> Vec<u64> {
    log.lines()
        .filter_map(|l| {
            let before = l.split_once(" body bytes sent")?.0;
            before.rsplit(' ').next()?.parse().ok()
        })
        .collect()
}

fn configures(test: &str, gateway_mode: &str, fixture: &str, addr: &str, gateway: &str) {
    let Some(lab) = Lab::up(test, gateway_mode, fixture, &[]) else {
        return;
    };
    lab.assert_unconfigured("before scwd ran");
    let run = lab.once();
    run.assert_exit(0);
    assert_eq!(lab.global_addrs(), [addr], "{run}");
    lab.assert_routed(gateway, addr, &run.to_string());
    lab.assert_booted(&run.to_string());
    let events = metad_events(&run.metad);
    let patch = events
        .iter()
        .position(|(_, r)| r.starts_with("PATCH /state"));
    let get = events.iter().position(|(_, r)| r.starts_with("GET /conf"));
    assert!(patch < get, "boot signal must come first\n{run}");
}

#[test]
fn legacy_127_object_with_global_gateway() {
    configures(
        "legacy_127_object_with_global_gateway",
        "global",
        LEGACY,
        LEGACY_ADDR,
        LEGACY_GATEWAY,
    );
}

#[test]
fn routed_64_with_link_local_gateway() {
    configures(
        "routed_64_with_link_local_gateway",
        "link-local",
        ROUTED,
        ROUTED_ADDR,
        LL_GATEWAY,
    );
}

#[test]
fn ipv6_only_routed() {
    configures(
        "ipv6_only_routed",
        "link-local",
        IPV6_ONLY,
        IPV6_ONLY_ADDR,
        LL_GATEWAY,
    );
}

/// Runs `scwd -o` in a lab serving `fixture` from a service started
/// with `flags`; wants exit `code`, the boot signal sent, and vio0 and
/// every route exactly as they were: nothing half-applied.
fn leaves_vio0_alone(
    test: &str,
    gateway_mode: &str,
    fixture: &str,
    flags: &[&str],
    code: i32,
) -> Option<(Lab, Run)> {
    let lab = Lab::up(test, gateway_mode, fixture, flags)?;
    let before = lab.snapshot();
    let run = lab.once();
    run.assert_exit(code);
    assert_eq!(lab.snapshot(), before, "vio0 or routes changed\n{run}");
    lab.assert_booted(&run.to_string());
    Some((lab, run))
}

#[test]
fn no_ipv6_configures_nothing_and_signals_booted() {
    let test = "no_ipv6_configures_nothing_and_signals_booted";
    let Some((lab, run)) = leaves_vio0_alone(test, "none", NO_IPV6, &[], 0) else {
        return;
    };
    lab.assert_unconfigured(&run.to_string());
    run.assert_logged(&["no IPv6 in metadata"]);
}

/// An entry that is skipped (its family is "INET6") is logged as skipped,
/// and scwd does not then claim there is no IPv6 in the metadata.
#[test]
fn a_skipped_entry_is_logged_and_no_ipv6_is_not_claimed() {
    let test = "a_skipped_entry_is_logged_and_no_ipv6_is_not_claimed";
    let Some((lab, run)) = leaves_vio0_alone(test, "link-local", FAMILY_UPPERCASE, &[], 0) else {
        return;
    };
    lab.assert_unconfigured(&run.to_string());
    run.assert_logged(&["public_ips_v6[0]", "INET6", "entry skipped"]);
    run.assert_logged(&["no usable IPv6", "1 entry skipped"]);
    assert!(run.lines_with("no IPv6 in metadata").is_empty(), "{run}");
}

#[test]
fn second_run_is_idempotent() {
    let Some(lab) = Lab::up("second_run_is_idempotent", "link-local", ROUTED, &[]) else {
        return;
    };
    let first = lab.once();
    first.assert_exit(0);
    let after_first = lab.snapshot();
    let second = lab.once();
    second.assert_exit(0);
    assert_eq!(lab.snapshot(), after_first, "{second}");
    assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{second}");
    lab.assert_routed(LL_GATEWAY, ROUTED_ADDR, &second.to_string());
}

#[test]
fn bad_metadata_leaves_vio0_as_it_was() {
    let test = "bad_metadata_leaves_vio0_as_it_was";
    let Some((_lab, run)) = leaves_vio0_alone(test, "link-local", BAD_PREFIX, &[], 1) else {
        return;
    };
    let errors = run.lines_with("64; reboot");
    assert_eq!(
        errors.len(),
        1,
        "want one error line naming the netmask\n{run}"
    );
    run.assert_logged(&["netmask", "64; reboot"]);
    assert!(
        run.elapsed < Duration::from_secs(10),
        "bad metadata is final\n{run}"
    );
}

/// Cut-off JSON is no document: retried for -o's whole minute like a
/// 5xx, then reported once, with vio0 untouched.
#[test]
fn unparseable_metadata_is_retried_for_a_minute_then_reported() {
    let test = "unparseable_metadata_is_retried_for_a_minute_then_reported";
    let Some((_lab, run)) = leaves_vio0_alone(test, "link-local", TRUNCATED_JSON, &[], 1) else {
        return;
    };
    run.assert_logged(&["invalid JSON", "retrying"]);
    run.assert_logged(&["invalid JSON", "gave up after 60 s"]);
    assert!(run.elapsed >= Duration::from_secs(55), "{run}");
    let gets = run.metad.matches("GET /conf?format=json -> 200").count();
    assert!(gets > 10, "{gets} fetches in a minute: not retried\n{run}");
}

/// Times (ms) of the service's `GET /conf` requests.
fn conf_gets(log: &str) -> Vec<u64> {
    metad_events(log)
        .into_iter()
        .filter(|(_, r)| r.starts_with("GET /conf?format=json"))
        .map(|(t, _)| t)
        .collect()
}

/// An answer that is no document (204, an empty 200, an HTML page,
/// cut-off JSON: scwd-metad -u) is retried as a 500 is, on the same
/// backoff, and the document that follows is applied.
#[test]
fn unusable_answers_are_retried_on_the_5xx_backoff() {
    let mut gaps = Vec::new();
    let cases: [(&[&str], &str); 2] = [
        (&["-u", "4"], "unusable"),
        (&["-e", "4", "-m", "/conf"], "-> 500"),
    ];
    for (flags, answer) in cases {
        let Some((_lab, run)) = survives("unusable_answers_are_retried_on_the_5xx_backoff", flags)
        else {
            return;
        };
        assert_eq!(run.metad.matches(answer).count(), 4, "{run}");
        run.assert_logged(&["metadata", "retrying"]);
        assert!(run.lines_with("gave up").is_empty(), "{run}");
        let gets = conf_gets(&run.metad);
        assert_eq!(gets.len(), 5, "{run}");
        // Backoff::INITIAL doubling, each delay in the upper half of its
        // ceiling; a fetch takes some milliseconds of its own.
        for (k, w) in gets.windows(2).enumerate() {
            let ceiling = 100u64 << k;
            let gap = w[1] - w[0];
            assert!(
                (ceiling / 2..=ceiling + 400).contains(&gap),
                "retry {k} after {gap} ms, want {}..{ceiling} ms\n{run}",
                ceiling / 2
            );
        }
        gaps.push(gets[4] - gets[0]);
    }
    assert!(gaps.iter().all(|&g| g < 3000), "{gaps:?}");
}

/// The resident daemon retries an unusable answer within seconds instead
/// of waiting for the next refresh (300 s).
#[test]
fn resident_daemon_retries_an_unusable_answer() {
    let test = "resident_daemon_retries_an_unusable_answer";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &["-u", "3"]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    assert_eq!(lab.metad_log().matches("unusable").count(), 3);
    assert!(daemon.log().contains("retrying"), "{}", daemon.log());
}

/// In -o, a final answer to the boot signal (403, 302) is reported once,
/// never first as "retrying", and asked no second time.
#[test]
fn final_boot_refusal_is_reported_not_retried() {
    for status in ["403", "302"] {
        let test = "final_boot_refusal_is_reported_not_retried";
        let Some(lab) = Lab::up(test, "link-local", ROUTED, &["-p", "all", "-c", status]) else {
            return;
        };
        let run = lab.once();
        run.assert_exit(1);
        assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{run}");
        assert_eq!(run.metad.matches("PATCH /state").count(), 1, "{run}");
        assert!(run.lines_with("retrying").is_empty(), "{run}");
        let lines = run.lines_with(&format!("HTTP {status}"));
        assert!(
            lines.len() == 1 && lines[0].contains("boot signal"),
            "want one boot signal line with HTTP {status}\n{run}"
        );
    }
}

/// Waits until vio0 holds exactly `addr` and routes via the lab gateway.
fn wait_configured(lab: &Lab, daemon: &mut Daemon, addr: &str) {
    let ok = wait_until(Duration::from_secs(15), || {
        lab.global_addrs() == [addr]
            && lab.default_routes().len() == 1
            && lab.ip(&["-6", "route", "get", FAR]).is_ok()
    });
    daemon.assert_running();
    assert!(
        ok,
        "vio0 not configured with {addr}: {:?} {:?}\n{}\n{}",
        lab.global_addrs(),
        lab.default_routes(),
        daemon.log(),
        lab.metad_log()
    );
}

#[test]
fn sighup_refetches_and_reconciles() {
    let test = "sighup_refetches_and_reconciles";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    let gets = |log: &str| log.matches("GET /conf?format=json -> 200").count();
    assert_eq!(gets(&lab.metad_log()), 1);

    lab.set_fixture(RENUMBERED);
    daemon.signal("HUP");
    wait_configured(&lab, &mut daemon, RENUMBERED_ADDR);
    lab.assert_routed(LL_GATEWAY, RENUMBERED_ADDR, &daemon.log());
    assert_eq!(gets(&lab.metad_log()), 2, "{}", lab.metad_log());
    assert_eq!(
        lab.metad_log().matches(BOOTED).count(),
        1,
        "a refresh is not a reboot"
    );
}

#[test]
fn sigterm_exits_0_leaving_the_configuration() {
    let test = "sigterm_exits_0_leaving_the_configuration";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    let configured = lab.snapshot();
    daemon.terminate(Duration::from_secs(5), "scwd -d");
    assert_eq!(lab.snapshot(), configured, "{}", daemon.log());
}

/// Without -d or -o scwd daemonizes, and the foreground process returns
/// once the first configuration is in place, so rc(8) goes on with IPv6.
#[test]
fn daemonized_start_returns_once_configured() {
    let test = "daemonized_start_returns_once_configured";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let (mut cmd, log) = lab.scwd(&[], &[]);
    let mut child = cmd.spawn().expect("spawn scwd");
    let status = wait_child(&mut child, Duration::from_secs(20));
    let why = format!(
        "{}\n{}",
        fs::read_to_string(&log).unwrap_or_default(),
        lab.metad_log()
    );
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{why}");
    assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{why}");
    lab.assert_routed(LL_GATEWAY, ROUTED_ADDR, &why);
    lab.assert_booted(&why);
}

/// pgrep(1) with `args`: the pids it prints, sorted.
fn pgrep(args: &[&str]) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(args)
        .output()
        .expect("run pgrep");
    let mut pids: Vec<u32> = text(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    pids.sort_unstable();
    pids
}

/// rc.subr finds the daemon with `pgrep -xf "${daemon} ${daemon_flags}"`
/// and signals it with `pkill -xf` on the same pattern: an exact match on
/// the whole command line. The fetcher retitles itself `scwd: fetcher`
/// and the control process `scwd: control` (setproctitle(3) on OpenBSD,
/// the command line the kernel reports here), so rcctl check and stop
/// see the parent alone (and a HUP, for who sends one that way).
#[test]
fn rc_subr_pattern_matches_the_parent_alone() {
    let test = "rc_subr_pattern_matches_the_parent_alone";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    let parent = daemon.child.id();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);

    // rc.subr's default: pexp="${daemon}${daemon_flags:+ ${daemon_flags}}".
    let pexp = format!(
        "{SCWD} -d -f {} -s {}",
        lab.conf().display(),
        lab.sock().display()
    );
    assert_eq!(pgrep(&["-xf", &pexp]), [parent], "{}", daemon.log());

    // The children: the fetcher and the control process, each retitled.
    let mut titles: Vec<(String, String, u32)> = fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| uid_and_ppid(pid).is_some_and(|(_, ppid)| ppid == parent))
        .map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).expect("child cmdline");
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).expect("child comm");
            assert!(pgrep(&["-xf", text(&cmdline).trim_end_matches('\0')]).contains(&pid));
            (text(&cmdline), comm, pid)
        })
        .collect();
    titles.sort();
    let names: Vec<(&str, &str)> = titles
        .iter()
        .map(|(c, n, _)| (c.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("scwd: control\0", "scwd: control\n"),
            ("scwd: fetcher\0", "scwd: fetcher\n"),
        ],
        "ps shows the children as"
    );

    // What still reaches a child, ^C or a hangup to the foreground
    // process group under -d or -o, is ignored: the parent decides.
    for &(_, _, child) in &titles {
        for sig in ["INT", "HUP", "TERM"] {
            let status = Command::new("kill")
                .args(["-s", sig, &child.to_string()])
                .status()
                .expect("run kill");
            assert!(status.success(), "kill -s {sig} {child}");
        }
    }
    thread::sleep(Duration::from_millis(300));
    daemon.assert_running();
    for &(_, _, child) in &titles {
        assert_eq!(
            uid_and_ppid(child).map(|(_, ppid)| ppid),
            Some(parent),
            "child {child} died of a signal sent to it\n{}",
            daemon.log()
        );
    }

    // rcctl reload: HUP through the pattern reaches the parent, which
    // has the fetcher fetch again.
    let gets = |log: &str| log.matches("GET /conf?format=json -> 200").count();
    let status = Command::new("pkill")
        .args(["-HUP", "-xf", &pexp])
        .status()
        .expect("run pkill");
    assert!(status.success(), "pkill -HUP found nothing");
    let refetched = wait_until(Duration::from_secs(5), || gets(&lab.metad_log()) == 2);
    assert!(refetched, "{}\n{}", daemon.log(), lab.metad_log());

    // rcctl stop: TERM through the pattern; the parent exits 0, which it
    // does only when the fetcher was still alive.
    let status = Command::new("pkill")
        .args(["-TERM", "-xf", &pexp])
        .status()
        .expect("run pkill");
    assert!(status.success(), "pkill -TERM found nothing");
    let status = wait_child(&mut daemon.child, Duration::from_secs(5));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", daemon.log());
}

// The fault matrix: the service misbehaves (scwd-metad flags), scwd
// copes, and says so in one log line.

/// A routed lab whose service misbehaves as `flags` say; runs `scwd -o`
/// and checks that it still configured vio0 and signalled booted.
fn survives(test: &str, flags: &[&str]) -> Option<(Lab, Run)> {
    let lab = Lab::up(test, "link-local", ROUTED, flags)?;
    let run = lab.once();
    run.assert_exit(0);
    assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{run}");
    lab.assert_routed(LL_GATEWAY, ROUTED_ADDR, &run.to_string());
    lab.assert_booted(&run.to_string());
    Some((lab, run))
}

#[test]
fn fault_service_down_for_3s() {
    let Some((_lab, run)) = survives("fault_service_down_for_3s", &["-D", "3"]) else {
        return;
    };
    run.assert_logged(&["boot signal", "connect", "refused"]);
    let events = metad_events(&run.metad);
    let up = events
        .iter()
        .find(|(_, r)| r.starts_with("listening on"))
        .map(|(t, _)| *t)
        .expect("service came up");
    let first = |what: &str| {
        events
            .iter()
            .find(|(_, r)| r.starts_with(what))
            .map(|(t, _)| *t)
            .unwrap_or_else(|| panic!("no {what}\n{run}"))
    };
    assert!(up >= 3000, "{run}");
    for what in ["PATCH /state", "GET /conf?format=json"] {
        let at = first(what);
        assert!(
            at - up <= 1500,
            "service up at {up} ms, first {what} at {at} ms: want within about 1 s\n{run}"
        );
    }
}

#[test]
fn fault_first_3_requests_500() {
    let Some((_lab, run)) = survives("fault_first_3_requests_500", &["-e", "3"]) else {
        return;
    };
    run.assert_logged(&["HTTP 500"]);
    assert_eq!(run.metad.matches("-> 500").count(), 3, "{run}");
}

/// In the foreground each log line, however it was formatted, reaches
/// standard error in one write(2), from either process.
#[test]
fn foreground_log_lines_are_one_write_each() {
    let test = "foreground_log_lines_are_one_write_each";
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED: {test}: needs strace");
        return;
    }
    // Retries and -v make lines of every kind: warnings, debug, info.
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &["-e", "2"]) else {
        return;
    };
    let trace = lab.dir.join("writes.strace");
    let trace_arg = trace.to_string_lossy().into_owned();
    let run = lab.once_with(
        &["-o", "-v"],
        &[
            "strace",
            "-f",
            "-qq",
            "-s",
            "4096",
            "-e",
            "trace=write,writev",
            "-e",
            "signal=none",
            "-o",
            &trace_arg,
        ],
    );
    run.assert_exit(0);
    let trace = fs::read_to_string(&trace).expect("strace output");
    // "PID write(2, \"text\\n\", N) = N"
    let writes: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains(" write(2, ") || l.contains(" writev(2, "))
        .collect();
    let lines = run.stderr.lines().count();
    assert!(lines >= 5, "too few log lines to tell\n{run}");
    assert_eq!(
        writes.len(),
        lines,
        "writes to fd 2:\n{}\n{run}",
        writes.join("\n")
    );
    for w in &writes {
        assert!(
            w.contains(" write(2, \"") && w.contains("\\n\", "),
            "not one whole line: {w}"
        );
    }
}

#[test]
fn fault_429_then_success() {
    let Some((_lab, run)) = survives("fault_429_then_success", &["-q", "1"]) else {
        return;
    };
    run.assert_logged(&["boot signal", "HTTP 429"]);
    assert_eq!(run.metad.matches("-> 429").count(), 1, "{run}");
}

#[test]
fn fault_connection_reset() {
    let Some((_lab, run)) = survives("fault_connection_reset", &["-r", "2"]) else {
        return;
    };
    assert_eq!(run.metad.matches("-> reset").count(), 2, "{run}");
    let reported = run.stderr.lines().any(|l| {
        let l = l.to_lowercase();
        l.contains("169.254.42.42") && (l.contains("reset") || l.contains("closed"))
    });
    assert!(reported, "no log line about the reset\n{run}");
}

#[test]
fn fault_request_hangs_until_the_timeout() {
    let Some((lab, run)) = survives("fault_request_hangs_until_the_timeout", &["-w", "1"]) else {
        return;
    };
    run.assert_logged(&["boot signal", "no complete answer"]);
    let waited = gave_up_after_ms(&lab.metad_log_with("client went away"));
    assert!(
        waited.len() == 1 && (4500..=7000).contains(&waited[0]),
        "the hung request should be dropped by the 5 s request timeout: {waited:?}\n{run}"
    );
}

#[test]
fn fault_truncated_body_is_retried() {
    let Some((_lab, run)) = survives("fault_truncated_body_is_retried", &["-t", "2"]) else {
        return;
    };
    run.assert_logged(&["metadata", "response body"]);
    assert_eq!(run.metad.matches("-> 200 truncated").count(), 2, "{run}");
}

/// A body that always breaks off: -o keeps trying for its minute, then
/// exits 1 with vio0 untouched.
#[test]
fn fault_truncated_body_always_gives_up() {
    let test = "fault_truncated_body_always_gives_up";
    let Some((_lab, run)) = leaves_vio0_alone(test, "link-local", ROUTED, &["-t", "all"], 1) else {
        return;
    };
    run.assert_logged(&["response body"]);
    run.assert_logged(&["gave up"]);
    assert!(run.elapsed >= Duration::from_secs(55), "{run}");
}

/// Highest VmHWM (KiB) of the processes in the lab's instance namespace,
/// sampled while `done` is false.
fn sample_hwm(ns: String, done: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u64 {
    let mut max = 0;
    while !done.load(Ordering::SeqCst) {
        let pids = Command::new("ip")
            .args(["netns", "pids", &ns])
            .output()
            .map(|o| text(&o.stdout))
            .unwrap_or_default();
        for pid in pids.split_whitespace() {
            let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let hwm = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0);
            max = max.max(hwm);
        }
        thread::sleep(Duration::from_millis(10));
    }
    max
}

/// Peak memory of scwd (either process) must stay far below the body:
/// about 8 MiB is measured (debug build), holding the body would be 100.
const MEMORY_LIMIT_KIB: u64 = 24 * 1024;

fn huge_body_refused(test: &str, flags: &[&str]) {
    let Some(lab) = Lab::up(test, "link-local", ROUTED, flags) else {
        return;
    };
    let before = lab.snapshot();
    let time_out = lab.dir.join("time.out");
    let time_out_arg = time_out.to_string_lossy().into_owned();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (ns, done) = (lab.ns.clone(), done.clone());
        thread::spawn(move || sample_hwm(ns, done))
    };
    // GNU time's %M is the peak RSS of scwd and the children it reaped.
    let run = lab.once_wrapped(&["/usr/bin/time", "-f", "%M", "-o", &time_out_arg]);
    done.store(true, Ordering::SeqCst);
    let sampled = sampler.join().expect("sampler");
    // The last line: a failing command gets "Command exited with
    // non-zero status 1" before it.
    let timed: u64 = fs::read_to_string(&time_out)
        .unwrap_or_default()
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("/usr/bin/time -f %M gave nothing\n{run}"));
    run.assert_exit(1);
    run.assert_logged(&["larger than 1048576 bytes"]);
    assert_eq!(lab.snapshot(), before, "{run}");
    lab.assert_booted(&run.to_string());
    let peak = timed.max(sampled);
    assert!(
        peak < MEMORY_LIMIT_KIB,
        "scwd peaked at {peak} KiB reading a 100 MiB body\n{run}"
    );
    // scwd stopped reading: the service could not hand over much more
    // than 1 MiB plus what the sockets buffer.
    let sent = body_bytes_sent(&lab.metad_log_with(" body bytes sent"));
    assert!(
        !sent.is_empty() && sent.iter().all(|&n| n < 16 << 20),
        "body bytes sent before scwd hung up: {sent:?}\n{run}"
    );
    println!("{test}: scwd peak RSS {peak} KiB, service sent {sent:?} bytes");
}

#[test]
fn fault_huge_body_with_content_length() {
    huge_body_refused("fault_huge_body_with_content_length", &["-B", "100M"]);
}

#[test]
fn fault_huge_body_without_content_length() {
    huge_body_refused(
        "fault_huge_body_without_content_length",
        &["-B", "100M", "-n"],
    );
}

#[test]
fn fault_slow_drip_body_hits_the_total_timeout() {
    // The first metadata answer drips a byte every 50 ms (about a minute
    // in all): only a total timeout, not an idle one, gets scwd out.
    let flags = ["-m", "/conf", "-s", "50", "-S", "1"];
    let Some((lab, run)) = survives("fault_slow_drip_body_hits_the_total_timeout", &flags) else {
        return;
    };
    run.assert_logged(&["metadata", "no complete answer"]);
    let waited = gave_up_after_ms(&lab.metad_log_with("client went away"));
    assert!(
        waited.len() == 1 && (4500..=7000).contains(&waited[0]),
        "the dripped answer should be cut by the 5 s request timeout: {waited:?}\n{run}"
    );
    assert!(run.elapsed < Duration::from_secs(20), "{run}");
}

#[test]
fn fault_patch_fails_while_get_works() {
    let Some((_lab, run)) = survives("fault_patch_fails_while_get_works", &["-p", "3"]) else {
        return;
    };
    run.assert_logged(&["boot signal", "HTTP 500"]);
    let patches: Vec<&str> = run
        .metad
        .lines()
        .filter(|l| l.contains("PATCH /state"))
        .collect();
    assert_eq!(patches.len(), 4, "{run}");
    assert!(
        patches[..3]
            .iter()
            .all(|l| l.ends_with("-> 500 (patch failure)")),
        "{run}"
    );
    assert!(patches[3].ends_with(BOOTED), "{run}");
}

/// `(uid, parent pid)` of a process, from /proc/PID/status.
fn uid_and_ppid(pid: u32) -> Option<(u32, u32)> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    Some((field("Uid:")?, field("PPid:")?))
}

/// While scwd runs resident, the process holding the TCP connection to the
/// metadata service is the fetcher: a child of the parent, not root, its
/// root directory the chroot. SIGTERM to the parent ends both.
#[test]
fn the_process_speaking_http_is_unprivileged_and_chrooted() {
    let test = "the_process_speaking_http_is_unprivileged_and_chrooted";
    // The first request hangs, so the fetcher's connection stays open
    // long enough to be looked at (the per-request timeout is 5 s).
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &["-w", "1"]) else {
        return;
    };
    let mut daemon = lab.daemon();
    let parent = daemon.child.id();
    let mut owner = None;
    let seen = wait_until(Duration::from_secs(4), || {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &lab.ns,
                "ss",
                "-tnpH",
                "state",
                "established",
                "dst",
                "169.254.42.42",
            ])
            .output()
            .expect("run ss");
        // users:(("scwd",pid=1234,fd=5))
        owner = text(&out.stdout)
            .split("pid=")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|p| p.parse::<u32>().ok());
        owner.is_some()
    });
    assert!(
        seen,
        "no connection to the metadata service seen\n{}",
        daemon.log()
    );
    let fetcher = owner.expect("seen");
    assert_ne!(fetcher, parent, "the root parent itself speaks HTTP");

    let (uid, ppid) = uid_and_ppid(fetcher).expect("fetcher status");
    assert_ne!(uid, 0, "the fetcher runs as root");
    assert_eq!(ppid, parent, "the HTTP process is not scwd's fetcher");
    assert_eq!(
        uid_and_ppid(parent).expect("parent status").0,
        0,
        "parent not root"
    );
    let root = fs::read_link(format!("/proc/{fetcher}/root")).expect("fetcher root");
    assert_eq!(root, lab.dir.join("empty"), "the fetcher is not chrooted");
    // Its HTTP client runs on the fetcher's own thread (src/fetch.rs).
    let threads = fs::read_to_string(format!("/proc/{fetcher}/status"))
        .expect("fetcher status")
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_string()));
    assert_eq!(
        threads.as_deref(),
        Some("1"),
        "fetcher threads, mid-request"
    );

    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    daemon.terminate(Duration::from_secs(5), "parent");
    let gone = wait_until(Duration::from_secs(3), || {
        !Path::new(&format!("/proc/{fetcher}")).exists()
    });
    assert!(
        gone,
        "fetcher {fetcher} still there after the parent exited\n{}",
        daemon.log()
    );
}

/// A `Name:\tvalue` field of /proc/PID/status.
fn status_field(pid: u32, name: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// While scwd runs resident, every one of its processes is under a
/// seccomp filter (mode 2) with no_new_privs: the lab runs the daemon sandboxed, and a
/// call outside its promises would have killed it.
#[test]
fn every_process_runs_under_the_seccomp_filter() {
    let test = "every_process_runs_under_the_seccomp_filter";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    let parent = daemon.child.id();
    let pids = Command::new("ip")
        .args(["netns", "pids", &lab.ns])
        .output()
        .map(|o| text(&o.stdout))
        .unwrap_or_default();
    // The fetcher and, resident, the control process.
    let children: Vec<u32> = pids
        .split_whitespace()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|&p| uid_and_ppid(p).is_some_and(|(_, ppid)| ppid == parent))
        .collect();
    assert!(
        !children.is_empty(),
        "no child of the parent\n{}",
        daemon.log()
    );
    for pid in std::iter::once(parent).chain(children) {
        let who = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let who = who.trim();
        assert_eq!(
            status_field(pid, "Seccomp").as_deref(),
            Some("2"),
            "{who} {pid} not under a seccomp filter\n{}",
            daemon.log()
        );
        assert_eq!(
            status_field(pid, "NoNewPrivs").as_deref(),
            Some("1"),
            "{who} {pid}"
        );
    }
    daemon.assert_running();
    daemon.terminate(Duration::from_secs(5), "scwd -d");
}

/// The strace record beside the allow-lists (src/sandbox/syscalls.record)
/// holds every call scwd makes after its pledge today: a dependency or
/// code change that needs a new call fails here, naming it, rather than
/// as a daemon killed at boot. The record itself is checked against the
/// promises by a unit test in src/sandbox/seccomp.rs.
#[test]
fn strace_record_holds_every_call() {
    let test = "strace_record_holds_every_call";
    let has_strace = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_strace {
        let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: needs strace");
        return;
    }
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lab/strace-record.sh");
    let record = include_str!("../src/sandbox/syscalls.record");
    let known: Vec<&str> = record.lines().filter(|l| !l.starts_with('#')).collect();
    let mut missing = Vec::new();
    let mut calls = 0;
    // Configure, find it configured, then resident with SIGHUP/SIGTERM.
    for mode in ["", "", "daemon"] {
        let out = Command::new(script)
            .args(["run", &lab.ns])
            .arg(lab.conf())
            .args((!mode.is_empty()).then_some(mode))
            .env("SCWD", SCWD)
            .output()
            .expect("run strace-record.sh");
        assert!(
            out.status.success(),
            "strace-record.sh: {}",
            text(&out.stderr)
        );
        for line in text(&out.stdout).lines() {
            calls += 1;
            if !known.contains(&line) && !missing.iter().any(|m| m == line) {
                missing.push(line.to_string());
            }
        }
    }
    lab.assert_routed(LL_GATEWAY, ROUTED_ADDR, "after the record");
    assert!(calls > 20, "strace recorded almost nothing");
    assert!(
        missing.is_empty(),
        "calls after pledge missing from src/sandbox/syscalls.record \
         (KILLED: the filter refused it). Allow each in the promise whose \
         OpenBSD rule allows it (src/sandbox/seccomp.rs), then regenerate \
         the record with tests/lab/strace-record.sh:\n{}",
        missing.join("\n")
    );
}

// Restarts, readiness, an interface that comes late or is recreated,
// and default routes scwd did not add.

/// The routed fixture with its gateway moved to another link-local address.
const NEW_GATEWAY: &str = "lab/routed-64-new-gateway.json";
const NEW_LL_GATEWAY: &str = "fe80::dc00:ff:fe12:3457";

/// A new scwd after the metadata changed gateway: exactly one default
/// route, the new one and scwd's (protocol 83), and the address kept.
#[test]
fn restart_replaces_scwds_route_and_keeps_the_address() {
    let test = "restart_replaces_scwds_route_and_keeps_the_address";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    lab.once().assert_exit(0);
    lab.assert_routed(LL_GATEWAY, ROUTED_ADDR, "first run");
    lab.set_fixture(NEW_GATEWAY);
    let run = lab.once();
    run.assert_exit(0);
    lab.assert_routed(NEW_LL_GATEWAY, ROUTED_ADDR, &run.to_string());
    assert!(
        lab.default_routes()[0].contains("proto 83"),
        "{:?}\n{run}",
        lab.default_routes()
    );
    assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{run}");
    run.assert_logged(&["removed default route via", LL_GATEWAY]);
}

/// Runs scwd without -d or -o and returns the exit status of the process
/// that started it, with its stderr and the service's log.
fn daemonized_start(lab: &Lab) -> (Option<i32>, String) {
    let (mut cmd, log) = lab.scwd(&[], &[]);
    let mut child = cmd.spawn().expect("spawn scwd");
    let status = wait_child(&mut child, Duration::from_secs(25));
    let why = format!(
        "{}\n{}",
        fs::read_to_string(&log).unwrap_or_default(),
        lab.metad_log()
    );
    (status.and_then(|s| s.code()), why)
}

/// Refused metadata: rc(8) hears of it (exit 1), vio0 is untouched and
/// the boot signal went out all the same.
#[test]
fn daemonized_start_with_refused_metadata_exits_1() {
    let test = "daemonized_start_with_refused_metadata_exits_1";
    let Some(lab) = Lab::up(test, "link-local", BAD_PREFIX, &[]) else {
        return;
    };
    let before = lab.snapshot();
    let (code, why) = daemonized_start(&lab);
    assert_eq!(code, Some(1), "{why}");
    assert!(why.contains("first configuration failed"), "{why}");
    assert_eq!(lab.snapshot(), before, "{why}");
    lab.assert_booted(&why);
}

/// A service down for longer than the readiness budget: the starting
/// process says "still trying" (exit 2) and the daemon configures vio0
/// once the service is up.
#[test]
fn daemonized_start_out_of_time_exits_2_and_configures_later() {
    let test = "daemonized_start_out_of_time_exits_2_and_configures_later";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &["-D", "18"]) else {
        return;
    };
    let started = Instant::now();
    let (code, why) = daemonized_start(&lab);
    assert_eq!(code, Some(2), "{why}");
    assert!(why.contains("still trying"), "{why}");
    let waited = started.elapsed();
    assert!(
        (Duration::from_secs(14)..Duration::from_secs(18)).contains(&waited),
        "returned after {waited:?}\n{why}"
    );
    lab.assert_unconfigured(&why);
    let configured = wait_until(Duration::from_secs(15), || {
        lab.global_addrs() == [ROUTED_ADDR]
    });
    assert!(configured, "{}", lab.metad_log());
    lab.assert_routed(LL_GATEWAY, ROUTED_ADDR, &lab.metad_log());
    lab.assert_booted(&lab.metad_log());
}

/// The lab's scwd.conf, configuring `interface` instead of vio0; the
/// metadata service stays reachable through vio0.
fn configure_interface(lab: &Lab, interface: &str) {
    let conf = fs::read_to_string(lab.conf()).expect("read scwd.conf");
    let conf = conf.replace("interface vio0", &format!("interface {interface}"));
    fs::write(lab.conf(), conf).expect("write scwd.conf");
}

/// `interface` (a veth whose peer stays in the namespace) created and up.
fn create_link(lab: &Lab, interface: &str) {
    let peer = format!("{interface}p");
    lab.ip_ok(&[
        "link", "add", interface, "type", "veth", "peer", "name", &peer,
    ]);
    lab.ip_ok(&["link", "set", &peer, "up"]);
    lab.ip_ok(&["link", "set", interface, "up"]);
}

/// Whether `interface` holds `addr` and the one default route via the
/// lab's gateway goes through it.
fn link_configured(lab: &Lab, interface: &str, addr: &str) -> bool {
    let addrs = lab
        .ip(&[
            "-6", "-o", "addr", "show", "dev", interface, "scope", "global",
        ])
        .unwrap_or_default();
    let routes = lab.default_routes();
    addrs.contains(addr)
        && routes.len() == 1
        && routes[0].contains(&format!("via {LL_GATEWAY} dev {interface}"))
}

/// Interface missing at start: the boot signal and the metadata request
/// go out first, the interface is configured when it appears, and again
/// when it is deleted and created anew; each absence is logged once.
#[test]
fn interface_created_late_then_recreated_is_configured_each_time() {
    let test = "interface_created_late_then_recreated_is_configured_each_time";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    configure_interface(&lab, "vio1");
    let mut daemon = lab.daemon();
    let asked = wait_until(Duration::from_secs(10), || {
        let log = lab.metad_log();
        log.contains(BOOTED) && log.contains("GET /conf?format=json -> 200")
    });
    assert!(asked, "{}\n{}", daemon.log(), lab.metad_log());
    let logged = wait_until(Duration::from_secs(5), || {
        daemon.log().contains("no such interface")
    });
    assert!(logged, "{}", daemon.log());
    daemon.assert_running();
    assert_eq!(lab.default_routes(), Vec::<String>::new());

    for round in ["created", "recreated"] {
        create_link(&lab, "vio1");
        let ok = wait_until(Duration::from_secs(10), || {
            link_configured(&lab, "vio1", ROUTED_ADDR)
        });
        daemon.assert_running();
        assert!(
            ok,
            "vio1 {round}: {:?}\n{}",
            lab.default_routes(),
            daemon.log()
        );
        lab.ip_ok(&["link", "del", "vio1"]);
        let logged = wait_until(Duration::from_secs(5), || {
            daemon.log().matches("no such interface").count() >= 2
        });
        assert!(logged, "vio1 deleted after {round}\n{}", daemon.log());
    }
    daemon.assert_running();
    assert_eq!(
        daemon.log().matches("no such interface").count(),
        3,
        "one line per absence\n{}",
        daemon.log()
    );
    assert_eq!(lab.metad_log().matches(BOOTED).count(), 1);
}

/// `-o` with the interface missing: it signals booted, waits, and
/// configures the interface once it appears, then exits 0.
#[test]
fn once_waits_for_a_late_interface() {
    let test = "once_waits_for_a_late_interface";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    configure_interface(&lab, "vio1");
    let (mut cmd, log) = lab.scwd(&["-o"], &[]);
    let mut child = cmd.spawn().expect("spawn scwd -o");
    let asked = wait_until(Duration::from_secs(10), || {
        lab.metad_log().contains("GET /conf?format=json -> 200")
    });
    let stderr = || fs::read_to_string(&log).unwrap_or_default();
    assert!(asked, "{}\n{}", stderr(), lab.metad_log());
    lab.assert_booted(&stderr());
    thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "-o gave up on a missing interface at once\n{}",
        stderr()
    );
    create_link(&lab, "vio1");
    let status = wait_child(&mut child, Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", stderr());
    assert!(link_configured(&lab, "vio1", ROUTED_ADDR), "{}", stderr());
}

/// A router advertisement's route via the same gateway: scwd neither
/// replaces nor rewrites it (its expiry and protocol stay).
#[test]
fn a_foreign_route_via_the_same_gateway_keeps_its_expiry() {
    let test = "a_foreign_route_via_the_same_gateway_keeps_its_expiry";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    lab.ip_ok(&[
        "-6", "route", "add", "default", "via", LL_GATEWAY, "dev", "vio0", "proto", "ra",
        "expires", "600",
    ]);
    let run = lab.once();
    run.assert_exit(0);
    assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{run}");
    lab.assert_routed(LL_GATEWAY, ROUTED_ADDR, &run.to_string());
    let route = &lab.default_routes()[0];
    assert!(
        route.contains("proto ra") && route.contains("expires"),
        "the router's route was modified: {route}\n{run}"
    );
    run.assert_logged(&["not scwd's", LL_GATEWAY]);
}

/// An administrator's default route via another gateway: left exactly as
/// it is, not joined as a multipath sibling, and said once.
#[test]
fn a_foreign_default_route_via_another_gateway_is_left_alone() {
    let test = "a_foreign_default_route_via_another_gateway_is_left_alone";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let theirs = "fe80::99";
    lab.ip_ok(&[
        "-6", "route", "add", "default", "via", theirs, "dev", "vio0", "proto", "static",
    ]);
    let before = lab.default_routes();
    let run = lab.once();
    run.assert_exit(0);
    assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{run}");
    assert_eq!(lab.default_routes(), before, "{run}");
    assert_eq!(run.lines_with("not scwd's").len(), 1, "{run}");
    run.assert_logged(&["not scwd's", theirs, LL_GATEWAY]);
}

/// A default route through another interface: scwd's would become its
/// multipath sibling, so it adds none, and says so once.
#[test]
fn a_foreign_default_route_through_another_interface_is_not_joined() {
    let test = "a_foreign_default_route_through_another_interface_is_not_joined";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    create_link(&lab, "eth1");
    let theirs = "fe80::98";
    lab.ip_ok(&[
        "-6", "route", "add", "default", "via", theirs, "dev", "eth1",
    ]);
    let before = lab.default_routes();
    let run = lab.once();
    run.assert_exit(0);
    assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{run}");
    assert_eq!(lab.default_routes(), before, "{run}");
    run.assert_logged(&["not scwd's", theirs, "another interface"]);
}

/// Startup hygiene: signals in the first milliseconds, inherited
/// descriptors. Linux only, as the lab is (inotify, /proc).
#[cfg(target_os = "linux")]
mod startup {
    use super::*;

    /// Waits (at most 5 s) until something opens `path`: inotify, so that a
    /// test can act the moment scwd's main has begun (it opens its
    /// configuration first), whatever exec and the dynamic loader took.
    struct OpenWatch {
        fd: std::os::fd::OwnedFd,
    }

    impl OpenWatch {
        fn new(path: &Path) -> OpenWatch {
            use std::os::fd::FromRawFd;
            use std::os::unix::ffi::OsStrExt;
            // SAFETY: plain flags; the result is checked.
            let raw = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
            assert!(
                raw >= 0,
                "inotify_init1: {}",
                std::io::Error::last_os_error()
            );
            // SAFETY: raw is a fresh descriptor nothing else owns.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
            let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
            // SAFETY: c is NUL-terminated and outlives the call.
            let wd = unsafe { libc::inotify_add_watch(raw, c.as_ptr(), libc::IN_OPEN) };
            assert!(
                wd >= 0,
                "inotify_add_watch: {}",
                std::io::Error::last_os_error()
            );
            OpenWatch { fd }
        }

        fn wait(&self) -> bool {
            use std::os::fd::AsRawFd;
            let mut p = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: p is one valid pollfd.
            unsafe { libc::poll(&mut p, 1, 5000) == 1 }
        }
    }

    fn kill(pid: u32, sig: libc::c_int) {
        // SAFETY: plain integers; the pid is our own child's.
        unsafe { libc::kill(pid as libc::pid_t, sig) };
    }

    /// Delays after scwd's main opened its configuration at which the tests
    /// below signal it: from at once to well after the fork, so that every
    /// step of the startup is hit on some run.
    const EARLY: [Duration; 8] = [
        Duration::ZERO,
        Duration::from_micros(100),
        Duration::from_micros(300),
        Duration::from_micros(700),
        Duration::from_millis(1),
        Duration::from_millis(2),
        Duration::from_millis(4),
        Duration::from_millis(8),
    ];

    /// A SIGHUP in the first milliseconds (rc.d's reload during a start) is
    /// acted on, never the end of scwd; so is a burst of them.
    #[test]
    fn early_sighup_is_handled_not_fatal() {
        let test = "early_sighup_is_handled_not_fatal";
        let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
            return;
        };
        for delay in EARLY {
            let watch = OpenWatch::new(&lab.conf());
            let mut daemon = lab.daemon();
            assert!(watch.wait(), "scwd never opened its configuration");
            thread::sleep(delay);
            for _ in 0..3 {
                kill(daemon.child.id(), libc::SIGHUP);
            }
            let handled = wait_until(Duration::from_secs(10), || {
                daemon.log().contains("SIGHUP: fetching metadata again")
                    || daemon.child.try_wait().ok().flatten().is_some()
            });
            daemon.assert_running();
            assert!(
                handled,
                "SIGHUP after {delay:?} not acted on\n{}",
                daemon.log()
            );
            wait_configured(&lab, &mut daemon, ROUTED_ADDR);
            daemon.terminate(Duration::from_secs(10), "scwd -d");
        }
    }

    /// A SIGTERM in the first milliseconds ends scwd as a later one does:
    /// exit 0, with its log line, the boot signal not lost when it was due.
    #[test]
    fn early_sigterm_exits_0_with_a_log_line() {
        let test = "early_sigterm_exits_0_with_a_log_line";
        let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
            return;
        };
        for delay in EARLY {
            let watch = OpenWatch::new(&lab.conf());
            let mut daemon = lab.daemon();
            assert!(watch.wait(), "scwd never opened its configuration");
            thread::sleep(delay);
            kill(daemon.child.id(), libc::SIGTERM);
            let status = wait_child(&mut daemon.child, Duration::from_secs(10));
            let log = daemon.log();
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(0),
                "SIGTERM after {delay:?}: {status:?}\n{log}"
            );
            assert!(
                log.contains("exiting on signal 15"),
                "after {delay:?}\n{log}"
            );
        }
    }

    /// The process rc(8) started (scwd without -d) is not ended by an early
    /// SIGHUP either: it returns 0 once the daemon has configured vio0.
    #[test]
    fn early_sighup_does_not_fail_a_daemonized_start() {
        let test = "early_sighup_does_not_fail_a_daemonized_start";
        let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
            return;
        };
        for delay in &EARLY[..4] {
            let watch = OpenWatch::new(&lab.conf());
            let (mut cmd, log) = lab.scwd(&[], &[]);
            let mut child = cmd.spawn().expect("spawn scwd");
            assert!(watch.wait(), "scwd never opened its configuration");
            thread::sleep(*delay);
            kill(child.id(), libc::SIGHUP);
            let status = wait_child(&mut child, Duration::from_secs(20));
            let why = fs::read_to_string(&log).unwrap_or_default();
            assert_eq!(
                status.and_then(|s| s.code()),
                Some(0),
                "SIGHUP after {delay:?}: {status:?}\n{why}"
            );
            assert_eq!(lab.global_addrs(), [ROUTED_ADDR], "{why}");
            stop_daemons(&lab);
        }
    }

    /// Ends the scwd processes this test started in its lab's namespace.
    fn stop_daemons(lab: &Lab) {
        let pids = Command::new("ip")
            .args(["netns", "pids", &lab.ns])
            .output()
            .expect("ip netns pids");
        for pid in text(&pids.stdout).split_whitespace() {
            let exe = fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
            if exe == Path::new(SCWD) {
                if let Ok(pid) = pid.parse() {
                    kill(pid, libc::SIGTERM);
                }
            }
        }
        wait_until(Duration::from_secs(10), || {
            let pids = Command::new("ip").args(["netns", "pids", &lab.ns]).output();
            let pids = pids.map(|o| text(&o.stdout)).unwrap_or_default();
            !pids.split_whitespace().any(|pid| {
                fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == Path::new(SCWD))
            })
        });
    }

    /// What each of a process's descriptors is, from /proc.
    fn open_files(pid: u32) -> Vec<(String, PathBuf)> {
        fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|dir| {
                dir.flatten()
                    .map(|e| {
                        let target = fs::read_link(e.path()).unwrap_or_default();
                        (e.file_name().to_string_lossy().into_owned(), target)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The children of `pid`.
    fn children(pid: u32) -> Vec<u32> {
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Descriptors left open by whatever started scwd (here: a file, a pipe
    /// and a socket at numbers 100, 150 and 200) reach neither the parent nor
    /// its chrooted children.
    #[test]
    fn inherited_descriptors_are_closed_at_startup() {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let test = "inherited_descriptors_are_closed_at_startup";
        let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
            return;
        };
        let marker = lab.dir.join("inherited-marker");
        let file = fs::File::create(&marker).unwrap();
        let (pipe_r, _pipe_w) = std::io::pipe().unwrap();
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let leaks = [
            (file.as_raw_fd(), 100),
            (pipe_r.as_raw_fd(), 150),
            (sock.as_raw_fd(), 200),
        ];
        let (mut cmd, log) = lab.scwd(&["-d"], &[]);
        // SAFETY: dup2 is async-signal-safe; the source descriptors stay open
        // in this process until the child has exec'd.
        unsafe {
            cmd.pre_exec(move || {
                for (from, to) in leaks {
                    if libc::dup2(from, to) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut daemon = Daemon {
            child: cmd.spawn().expect("spawn scwd -d"),
            log,
        };
        wait_configured(&lab, &mut daemon, ROUTED_ADDR);
        let parent = daemon.child.id();
        // The fetcher and the control process.
        let kids = children(parent);
        assert_eq!(kids.len(), 2, "want two children: {kids:?}");
        let inherited = |target: &Path| {
            let t = target.to_string_lossy();
            target == marker
                || t.starts_with("pipe:") && t.contains(&ino(pipe_r.as_raw_fd()))
                || t.starts_with("socket:") && t.contains(&ino(sock.as_raw_fd()))
        };
        for pid in [parent, kids[0], kids[1]] {
            let files = open_files(pid);
            assert!(!files.is_empty(), "no /proc/{pid}/fd");
            let leaked: Vec<_> = files.iter().filter(|(_, t)| inherited(t)).collect();
            assert!(
                leaked.is_empty(),
                "process {pid} holds {leaked:?}\n{files:?}"
            );
            // scwd's own descriptors are few and low: none up at 100.
            assert!(
                files
                    .iter()
                    .all(|(fd, _)| fd.parse::<u32>().is_ok_and(|n| n < 64)),
                "process {pid}: {files:?}"
            );
        }
    }

    /// The inode number of one of this process's descriptors, as /proc
    /// shows it in `pipe:[N]` and `socket:[N]`.
    fn ino(fd: i32) -> String {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(format!("/proc/self/fd/{fd}")).unwrap();
        format!("[{}]", meta.ino())
    }
}

/// `-o` whose interface never appears: it gives up with its 60 s, exit
/// 1, after the boot signal, having changed nothing.
#[test]
fn once_gives_up_on_an_interface_that_never_appears() {
    let test = "once_gives_up_on_an_interface_that_never_appears";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    configure_interface(&lab, "vio1");
    let before = lab.snapshot();
    let run = lab.once();
    run.assert_exit(1);
    run.assert_logged(&["vio1", "did not appear"]);
    assert!(run.elapsed >= Duration::from_secs(55), "{run}");
    assert_eq!(lab.snapshot(), before, "{run}");
    lab.assert_booted(&run.to_string());
}

/// The daemon killed before it was ready: the process rc(8) waits for
/// sees the readiness pipe close and exits 1 at once.
#[test]
fn daemonized_start_exits_1_when_the_daemon_dies_first() {
    let test = "daemonized_start_exits_1_when_the_daemon_dies_first";
    // The service stays down: the daemon cannot be ready before it dies.
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &["-D", "60"]) else {
        return;
    };
    let (mut cmd, log) = lab.scwd(&[], &[]);
    let mut child = cmd.spawn().expect("spawn scwd");
    let starter = child.id();
    // The daemon is the starting process's child.
    let mut daemon = None;
    let found = wait_until(Duration::from_secs(5), || {
        let pids = Command::new("ip")
            .args(["netns", "pids", &lab.ns])
            .output()
            .map(|o| text(&o.stdout))
            .unwrap_or_default();
        daemon = pids
            .split_whitespace()
            .filter_map(|p| p.parse::<u32>().ok())
            .find(|&p| uid_and_ppid(p).is_some_and(|(_, ppid)| ppid == starter));
        daemon.is_some()
    });
    assert!(found, "no daemon process under {starter}");
    let killed = Instant::now();
    let status = Command::new("kill")
        .args(["-KILL", &daemon.expect("found").to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let status = wait_child(&mut child, Duration::from_secs(10));
    let stderr = fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "waited for the budget instead\n{stderr}"
    );
    assert!(
        stderr.contains("exited before it was configured"),
        "{stderr}"
    );
}

// --- scwctl(8) against the real daemon ------------------------------------

/// `nobody` on Debian: the AuthorizedKeysCommandUser of the manual page.
const NOBODY: u32 = 65534;

/// The key `scwctl ssh-keys` prints for `lab/routed-64-ssh-keys.json`;
/// its second entry is the same key behind `command=`, which it must not.
const LAB_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM+vlLYhGw7X7ENF3z+9Jvc3mril3C5NtGbHOCyt4eT/ lab@scwd";

/// The fixture's own value at a JSON path, to compare `get` with.
fn fixture_value(fixture: &str, path: &[&str]) -> String {
    let doc: serde_json::Value =
        serde_json::from_slice(&fs::read(Path::new(FIXTURES).join(fixture)).unwrap()).unwrap();
    let v = path.iter().fold(&doc, |v, k| match k.parse::<usize>() {
        Ok(i) => &v[i],
        Err(_) => &v[*k],
    });
    v.as_str().expect("a string").to_string()
}

fn conf_requests(lab: &Lab) -> usize {
    lab.metad_log().matches("GET /conf").count()
}

/// `get` answers from the document scwd fetched, named as the text
/// /conf endpoint names them, without one HTTP request; `show` names
/// what scwd configured; `ssh-keys` serves sshd's unprivileged
/// AuthorizedKeysCommandUser the fixture's key for root only.
#[test]
fn scwctl_answers_from_memory() {
    let test = "scwctl_answers_from_memory";
    let Some(lab) = Lab::up(test, "global", LEGACY, &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, LEGACY_ADDR);
    let gets = conf_requests(&lab);

    let (code, out, err) = lab.scwctl(
        NOBODY,
        &[
            "get",
            "IPV6_ADDRESS",
            "IPV6_GATEWAY",
            "IPV6_NETMASK",
            "HOSTNAME",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let want: Vec<String> = [
        &["ipv6", "address"][..],
        &["ipv6", "gateway"],
        &["ipv6", "netmask"],
        &["hostname"],
    ]
    .iter()
    .map(|p| fixture_value(LEGACY, p))
    .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);

    let (code, out, err) = lab.scwctl(NOBODY, &["show"]);
    assert_eq!(code, Some(0), "{err}");
    for line in [
        format!("configured: {LEGACY_ADDR}"),
        format!("default route: via {LEGACY_GATEWAY}"),
        "boot signal: sent ".to_string(),
        "from http://169.254.42.42/conf?format=json, ".to_string(),
    ] {
        assert!(out.contains(&line), "show lacks {line:?}:\n{out}");
    }

    let (code, out, _) = lab.scwctl(NOBODY, &["ssh-keys", "root"]);
    assert_eq!(code, Some(0));
    let key = fixture_value(LEGACY, &["ssh_public_keys", "0", "key"]);
    assert_eq!(out, format!("{key}\n"));
    let (code, out, _) = lab.scwctl(NOBODY, &["ssh-keys", "admin"]);
    assert_eq!(
        (code, out.as_str()),
        (Some(0), ""),
        "another user gets nothing"
    );

    let (code, out, err) = lab.scwctl(NOBODY, &["get", "NO_SUCH_KEY"]);
    assert_eq!(code, Some(1));
    assert_eq!(out, "");
    assert_eq!(err, "scwctl: NO_SUCH_KEY: no such key in the metadata\n");

    assert_eq!(conf_requests(&lab), gets, "a query made an HTTP request");
    daemon.assert_running();
}

/// `refresh` is root's: refused for others with no fetch at all; for
/// root it fetches now, and keys deleted from the metadata are gone, an
/// options-prefixed key never printed.
#[test]
fn scwctl_refresh_is_root_only_and_keys_follow_the_metadata() {
    let test = "scwctl_refresh_is_root_only_and_keys_follow_the_metadata";
    let Some(lab) = Lab::up(test, "link-local", "lab/routed-64-ssh-keys.json", &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    let (_, out, _) = lab.scwctl(NOBODY, &["ssh-keys", "root"]);
    assert_eq!(out, format!("{LAB_KEY}\n"), "{}", daemon.log());
    assert!(
        daemon
            .log()
            .contains("SSH key 1 refused: unknown key type or options prefix"),
        "{}",
        daemon.log()
    );

    lab.set_fixture(RENUMBERED);
    let gets = conf_requests(&lab);
    let (code, _, err) = lab.scwctl(NOBODY, &["refresh"]);
    assert_eq!(code, Some(1));
    assert_eq!(err, "scwctl: refresh: permission denied: root only\n");
    thread::sleep(Duration::from_millis(500));
    assert_eq!(conf_requests(&lab), gets, "a refused refresh fetched");

    let (code, _, err) = lab.scwctl(0, &["refresh"]);
    assert_eq!(code, Some(0), "{err}");
    wait_configured(&lab, &mut daemon, RENUMBERED_ADDR);
    assert_eq!(conf_requests(&lab), gets + 1);
    let ok = wait_until(Duration::from_secs(5), || {
        lab.scwctl(NOBODY, &["ssh-keys", "root"]).1.is_empty()
    });
    assert!(ok, "a key deleted from the metadata is still printed");
    assert!(daemon.log().contains("refresh requested by uid 0"));
}

/// A second daemon on the same socket refuses to start and leaves the
/// first one alone.
#[test]
fn a_second_daemon_says_already_running() {
    let test = "a_second_daemon_says_already_running";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    let run = lab.once_with(&["-d"], &[]);
    run.assert_exit(1);
    assert_eq!(
        run.stderr,
        format!("scwd: {}: already running\n", lab.sock().display())
    );
    daemon.assert_running();
    assert_eq!(lab.scwctl(0, &["get", "ID"]).0, Some(0));
}

/// Garbage, a 10 MB request, 500 connections, clients that send nothing
/// or never read: the daemon keeps serving, stays configured, and still
/// fetches and reconciles on time. The control process is unprivileged
/// and chrooted like the fetcher.
#[test]
fn hostile_scwctl_clients_leave_the_daemon_serving() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    let test = "hostile_scwctl_clients_leave_the_daemon_serving";
    let Some(lab) = Lab::up(test, "link-local", ROUTED, &[]) else {
        return;
    };
    let mut daemon = lab.daemon();
    wait_configured(&lab, &mut daemon, ROUTED_ADDR);
    let parent = daemon.child.id();
    let sock = lab.sock();

    // Every child of the parent: not root, chrooted.
    let children: Vec<u32> = fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| uid_and_ppid(pid).is_some_and(|(_, ppid)| ppid == parent))
        .collect();
    assert_eq!(
        children.len(),
        2,
        "fetcher and control process: {children:?}"
    );
    for pid in children {
        assert_ne!(uid_and_ppid(pid).unwrap().0, 0, "child {pid} is root");
        let root = fs::read_link(format!("/proc/{pid}/root")).unwrap();
        assert_eq!(root, lab.dir.join("empty"), "child {pid} is not chrooted");
    }

    let answer = |request: &[u8]| {
        let mut c = UnixStream::connect(&sock).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = c.write_all(request);
        let mut out = Vec::new();
        let _ = c.read_to_end(&mut out);
        text(&out)
    };
    assert_eq!(
        answer(b"\x00\xff\x1b[2J\n"),
        "error request is not printable ASCII\n"
    );
    assert_eq!(
        answer(b"show\r\n"),
        "error request is not printable ASCII\n"
    );
    assert_eq!(
        answer(&vec![b'A'; 10 << 20]),
        "error request longer than 4096 bytes\n"
    );

    // Held open for the rest of the test: silent ones, ones that sent a
    // request and never read the answer.
    let mut held = Vec::new();
    for i in 0..500 {
        let mut c = UnixStream::connect(&sock).expect("connect");
        if i % 2 == 0 {
            c.write_all(b"ssh-keys root\n").unwrap();
        }
        held.push(c);
    }
    // scwctl gives up after 10 s: an answer means the flood did not stall.
    let (code, out, err) = lab.scwctl(NOBODY, &["show"]);
    assert_eq!(code, Some(0), "{err}\n{}", daemon.log());
    assert!(out.contains(&format!("configured: {ROUTED_ADDR}")), "{out}");

    // The fetcher and the parent never waited for any of it.
    lab.set_fixture(RENUMBERED);
    daemon.signal("HUP");
    wait_configured(&lab, &mut daemon, RENUMBERED_ADDR);
    drop(held);
    let (code, out, _) = lab.scwctl(NOBODY, &["get", "HOSTNAME"]);
    assert_eq!(code, Some(0));
    assert_eq!(out.trim_end(), fixture_value(RENUMBERED, &["hostname"]));
    daemon.assert_running();
    lab.assert_routed(LL_GATEWAY, RENUMBERED_ADDR, &daemon.log());
}
