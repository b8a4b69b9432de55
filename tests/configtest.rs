//! `scwd -n` (and so `rcctl configtest`) refuses everything a start
//! refuses before it signals "booted": the real binary, on real files and
//! the real password database. Needs no root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

const SCWD: &str = env!("CARGO_BIN_EXE_scwd");

/// A scratch directory of this test's own, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir =
            std::env::temp_dir().join(format!("scwd-configtest-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `scwd -n -f FILE` with `text` as FILE: exit code and stderr.
fn configtest(dir: &Scratch, text: &str) -> (Option<i32>, String) {
    let conf = dir.0.join("scwd.conf");
    fs::write(&conf, text).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(SCWD)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A user that exists and is not root, from this machine's database:
/// `nobody` where there is one.
fn unprivileged_user() -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let users: Vec<String> = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] != "0").then(|| f[0].to_string())
        })
        .collect();
    users
        .iter()
        .find(|u| *u == "nobody")
        .or(users.first())
        .cloned()
        .expect("a non-root user in /etc/passwd")
}

/// Every user named in /etc/passwd with uid 0 (root, and toor-like aliases).
fn uid_zero_users() -> Vec<String> {
    fs::read_to_string("/etc/passwd")
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() > 2 && f[2] == "0").then(|| f[0].to_string())
        })
        .collect()
}

#[test]
fn configtest_refuses_what_a_start_refuses() {
    let dir = Scratch::new("refuses");
    let user = unprivileged_user();
    let chroot = dir.0.join("empty");
    fs::create_dir(&chroot).unwrap();
    let file = dir.0.join("a-file");
    fs::write(&file, "").unwrap();
    let ok = format!("user {user}\nchroot \"{}\"\n", chroot.display());
    let (code, err) = configtest(&dir, &ok);
    assert_eq!(code, Some(0), "{ok}: {err}");
    assert!(err.contains("configuration OK"), "{err}");

    let mut bad: Vec<(String, String)> = vec![
        (
            "user nosuchuser-scwd\n".into(),
            "unknown user nosuchuser-scwd".into(),
        ),
        ("user \"no such\"\n".into(), "unknown user no such".into()),
        (
            "user \"_scwd\u{1b}[2J\"\n".into(),
            "unknown user _scwd\\u{1b}[2J".into(),
        ),
        (
            format!(
                "user {user}\nchroot \"{}\"\n",
                dir.0.join("absent").display()
            ),
            "No such file or directory".into(),
        ),
        (
            format!("user {user}\nchroot \"{}\"\n", file.display()),
            "not a directory".into(),
        ),
        (
            format!("user {user}\nchroot \"{}/below\"\n", file.display()),
            "Not a directory".into(),
        ),
    ];
    for root in uid_zero_users() {
        bad.push((
            format!("user {root}\nchroot \"{}\"\n", chroot.display()),
            format!("user {root} is root"),
        ));
    }
    for (text, want) in bad {
        let (code, err) = configtest(&dir, &text);
        assert_eq!(code, Some(1), "{text:?} passed: {err}");
        assert!(
            err.lines().count() == 1 && err.starts_with("scwd: ") && err.contains(&want),
            "{text:?}: want one line with {want:?}, got {err:?}"
        );
        assert!(!err.contains("configuration OK"), "{err}");
    }
}
