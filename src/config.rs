//! Parser for scwd.conf(5): one statement a line, `#` comments,
//! values optionally in double quotes.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::{fetch, plan};

/// The configuration file read when `-f` is not given.
pub const DEFAULT_PATH: &str = "/etc/scwd.conf";

/// Longest refresh interval accepted, one week: longer is a typo.
const MAX_REFRESH: u64 = 7 * 24 * 3600;

/// The daemon's configuration, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Interface to configure.
    pub interface: String,
    /// Base URLs of the metadata service, tried in order.
    pub metadata_urls: Vec<String>,
    /// Whether to PATCH `{"state_detail":"booted"}` to `/state`.
    pub boot_signal: bool,
    /// Whether to configure IPv6 at all.
    pub ipv6: bool,
    /// Seconds between re-fetches when resident; 0 turns the timer off.
    pub refresh: u64,
    /// Unprivileged user the fetcher runs as.
    pub user: String,
    /// Directory the fetcher is chrooted into.
    pub chroot: String,
    /// The one account `scwctl ssh-keys` answers for; `None`: nobody
    /// (`ssh-keys-user none`).
    pub ssh_keys_user: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interface: "vio0".to_string(),
            metadata_urls: vec![
                "http://169.254.42.42".to_string(),
                "http://[fd00:42::42]".to_string(),
            ],
            boot_signal: true,
            ipv6: true,
            refresh: 300,
            user: "_scwd".to_string(),
            chroot: "/var/empty".to_string(),
            ssh_keys_user: Some("root".to_string()),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be opened or read.
    Read(PathBuf, io::Error),
    /// The file is writable by group or others.
    Permissions(PathBuf),
    /// A line is wrong; the line number counts from 1.
    Line(PathBuf, usize, String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Read(p, e) => write!(f, "{}: {}", p.display(), e),
            ConfigError::Permissions(p) => {
                write!(
                    f,
                    "{}: bad permissions: writable by group or others",
                    p.display()
                )
            }
            ConfigError::Line(p, n, msg) => write!(f, "{}:{}: {}", p.display(), n, msg),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Loads the configuration from `path`. A missing file is an error unless
/// `missing_ok` is set, which is how the default path is read.
pub fn load(path: &Path, missing_ok: bool) -> Result<Config, ConfigError> {
    let text = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if missing_ok && e.kind() == io::ErrorKind::NotFound => {
            return Ok(Config::default());
        }
        Err(e) => return Err(ConfigError::Read(path.to_path_buf(), e)),
    };
    check_permissions(path)?;
    let text = String::from_utf8(text).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        ConfigError::Line(path.to_path_buf(), line, "invalid UTF-8".to_string())
    })?;
    parse(&text).map_err(|(n, msg)| ConfigError::Line(path.to_path_buf(), n, msg))
}

/// Like dhcpleased's check_file_secrecy: a file others can write could
/// point the daemon at another metadata service.
fn check_permissions(path: &Path) -> Result<(), ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::metadata(path).map_err(|e| ConfigError::Read(path.to_path_buf(), e))?;
    if meta.permissions().mode() & 0o022 != 0 {
        return Err(ConfigError::Permissions(path.to_path_buf()));
    }
    Ok(())
}

/// Parses configuration text; an error carries its line number.
pub fn parse(text: &str) -> Result<Config, (usize, String)> {
    let mut conf = Config::default();
    let mut urls: Vec<String> = Vec::new();
    let mut seen: Vec<&'static str> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let words = split_line(line).map_err(|e| (n, e))?;
        let Some((keyword, args)) = words.split_first() else {
            continue;
        };
        let key = KEYWORDS
            .iter()
            .copied()
            .find(|k| *k == keyword.as_str())
            .ok_or_else(|| (n, format!("unknown keyword \"{}\"", quote(keyword))))?;
        let [value] = args else {
            return Err((n, format!("{key}: expected one value, got {}", args.len())));
        };
        if key != "metadata-url" {
            if seen.contains(&key) {
                return Err((n, format!("{key}: given twice")));
            }
            seen.push(key);
        }
        let bad = |why: &str| (n, format!("{key}: {why}: \"{}\"", quote(value)));
        match key {
            "interface" => {
                if !plan::valid_interface(value) {
                    return Err(bad("invalid interface name"));
                }
                conf.interface = value.clone();
            }
            "metadata-url" => {
                // The fetcher's own check, so -n refuses what it would;
                // and no control character, which URL parsing would drop
                // silently (a trailing NUL or ESC).
                match fetch::check_base(value) {
                    Ok(base) if !value.chars().any(char::is_control) => urls.push(base),
                    _ => {
                        return Err(bad(
                            "expected http://address[:port] or https://address[:port]",
                        ));
                    }
                }
            }
            "boot-signal" => {
                conf.boot_signal = yes_no(value).ok_or_else(|| bad("expected yes or no"))?
            }
            "ipv6" => conf.ipv6 = yes_no(value).ok_or_else(|| bad("expected yes or no"))?,
            "refresh" => {
                conf.refresh = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| value.bytes().all(|b| b.is_ascii_digit()) && *s <= MAX_REFRESH)
                    .ok_or_else(|| bad("expected seconds, 0 to 604800"))?;
            }
            "user" => {
                if value.is_empty() || value.contains(['/', ':']) {
                    return Err(bad("invalid user name"));
                }
                conf.user = value.clone();
            }
            "chroot" => {
                if !value.starts_with('/') {
                    return Err(bad("expected an absolute path"));
                }
                conf.chroot = value.clone();
            }
            "ssh-keys-user" => {
                conf.ssh_keys_user = match value.as_str() {
                    "none" => None,
                    v if valid_user_name(v) => Some(v.to_string()),
                    _ => return Err(bad("invalid user name")),
                };
            }
            _ => unreachable!("every entry of KEYWORDS has an arm"),
        }
    }
    if !urls.is_empty() {
        conf.metadata_urls = urls;
    }
    Ok(conf)
}

const KEYWORDS: [&str; 8] = [
    "interface",
    "metadata-url",
    "boot-signal",
    "ipv6",
    "refresh",
    "user",
    "chroot",
    "ssh-keys-user",
];

/// A login name as sshd passes it in `%u`: what useradd(8) accepts,
/// 1 to 31 bytes (`_PW_NAME_LEN`), so the control protocol can carry it.
pub fn valid_user_name(name: &str) -> bool {
    (1..=31).contains(&name.len())
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Splits a line into words: blanks separate, `#` starts a comment,
/// double quotes group (no escapes, as in pf.conf strings).
fn split_line(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some('"') => {
                chars.next();
                let mut word = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated quoted string".to_string()),
                    }
                }
                words.push(word);
            }
            Some(_) => {
                let mut word = String::new();
                while let Some(c) = chars.next_if(|c| !c.is_ascii_whitespace() && *c != '#') {
                    if c == '"' {
                        return Err("unexpected quote".to_string());
                    }
                    word.push(c);
                }
                words.push(word);
            }
        }
    }
}

/// A word from the file as an error line shows it: control bytes (NUL,
/// ESC, CR) and other unprintable characters escaped as metadata values
/// are, so a stray byte cannot rewrite the administrator's terminal.
pub fn quote(word: &str) -> String {
    plan::escape(word, 256)
}

fn yes_no(value: &str) -> Option<bool> {
    match value {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

impl fmt::Display for Config {
    /// Prints the configuration in scwd.conf(5) syntax, for `-nv`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "interface {}", self.interface)?;
        for url in &self.metadata_urls {
            writeln!(f, "metadata-url \"{url}\"")?;
        }
        writeln!(f, "boot-signal {}", yn(self.boot_signal))?;
        writeln!(f, "ipv6 {}", yn(self.ipv6))?;
        writeln!(f, "refresh {}", self.refresh)?;
        writeln!(f, "user {}", self.user)?;
        writeln!(f, "chroot {}", self.chroot)?;
        write!(
            f,
            "ssh-keys-user {}",
            self.ssh_keys_user.as_deref().unwrap_or("none")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_text_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(
            parse("# only a comment\n\n   \n").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn design_example_parses() {
        let text = "interface vio0\n\
                    metadata-url \"http://169.254.42.42\"     # repeatable, tried in order\n\
                    metadata-url \"http://[fd00:42::42]\"\n\
                    boot-signal yes\n\
                    ipv6 yes\n\
                    refresh 300                              # seconds, 0 = off\n\
                    user _scwd\n\
                    chroot /var/empty\n\
                    ssh-keys-user root\n";
        assert_eq!(parse(text).unwrap(), Config::default());
    }

    #[test]
    fn values_are_read() {
        let c = parse(
            "interface em1\nmetadata-url http://127.0.0.1:8080/\nboot-signal no\nipv6 no\n\
             refresh 0\nuser nobody\nchroot \"/tmp/empty dir\"\nssh-keys-user none\n",
        )
        .unwrap();
        assert_eq!(c.ssh_keys_user, None);
        assert_eq!(
            parse("ssh-keys-user admin\n")
                .unwrap()
                .ssh_keys_user
                .as_deref(),
            Some("admin")
        );
        assert_eq!(c.interface, "em1");
        assert_eq!(c.metadata_urls, vec!["http://127.0.0.1:8080"]);
        assert!(!c.boot_signal && !c.ipv6);
        assert_eq!(c.refresh, 0);
        assert_eq!(c.user, "nobody");
        assert_eq!(c.chroot, "/tmp/empty dir");
    }

    #[test]
    fn printed_config_parses_back() {
        let c = parse("interface vio1\nmetadata-url \"https://[fd00:42::42]:8443\"\nrefresh 60\n")
            .unwrap();
        assert_eq!(parse(&c.to_string()).unwrap(), c);
        let c = parse("ssh-keys-user none\n").unwrap();
        assert_eq!(parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn bad_lines_name_line_and_reason() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "interface vio0\n\ninterfce vio0\n",
                3,
                "unknown keyword \"interfce\"",
            ),
            ("interface\n", 1, "interface: expected one value, got 0"),
            (
                "interface vio0 vio1\n",
                1,
                "interface: expected one value, got 2",
            ),
            (
                "interface vio0\ninterface vio1\n",
                2,
                "interface: given twice",
            ),
            (
                "interface \"vio0; reboot\"\n",
                1,
                "interface: invalid interface name",
            ),
            (
                "interface averyveryverylongname0\n",
                1,
                "invalid interface name",
            ),
            (
                "metadata-url ftp://169.254.42.42\n",
                1,
                "metadata-url: expected http",
            ),
            (
                "metadata-url http://169.254.42.42/conf\n",
                1,
                "metadata-url: expected http",
            ),
            (
                "metadata-url http://[fd00:42::zz]\n",
                1,
                "metadata-url: expected http",
            ),
            (
                "metadata-url http://[::1]/conf\n",
                1,
                "metadata-url: expected http",
            ),
            (
                "metadata-url http://host:99999\n",
                1,
                "metadata-url: expected http",
            ),
            ("boot-signal maybe\n", 1, "boot-signal: expected yes or no"),
            ("ipv6 1\n", 1, "ipv6: expected yes or no"),
            ("refresh -1\n", 1, "refresh: expected seconds"),
            ("refresh +5\n", 1, "refresh: expected seconds"),
            ("refresh 999999999\n", 1, "refresh: expected seconds"),
            ("user \"\"\n", 1, "user: invalid user name"),
            ("chroot var/empty\n", 1, "chroot: expected an absolute path"),
            ("ssh-keys-user -x\n", 1, "ssh-keys-user: invalid user name"),
            ("ssh-keys-user a:b\n", 1, "ssh-keys-user: invalid user name"),
            (
                "ssh-keys-user 0123456789012345678901234567890123\n",
                1,
                "ssh-keys-user: invalid user name",
            ),
            ("user \"_scwd\n", 1, "unterminated quoted string"),
            ("user _sc\"wd\"\n", 1, "unexpected quote"),
        ];
        for (text, line, msg) in cases {
            let (n, got) = parse(text).expect_err(text);
            assert_eq!(n, *line, "{text:?}");
            assert!(got.contains(msg), "{text:?}: {got:?} lacks {msg:?}");
        }
    }

    #[test]
    fn load_reports_path_and_line() {
        let dir = std::env::temp_dir().join(format!("scwd-config-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("scwd.conf");
        fs::write(&path, "interface vio0\nrefresh soon\n").unwrap();
        let mut perms = fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        fs::set_permissions(&path, perms.clone()).unwrap();
        let err = load(&path, false).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}:2: refresh: expected seconds, 0 to 604800: \"soon\"",
                path.display()
            )
        );

        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o666);
        fs::set_permissions(&path, perms).unwrap();
        let err = load(&path, false).unwrap_err();
        assert!(matches!(err, ConfigError::Permissions(_)), "{err}");

        let missing = dir.join("absent.conf");
        assert_eq!(load(&missing, true).unwrap(), Config::default());
        assert!(matches!(load(&missing, false), Err(ConfigError::Read(..))));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn control_bytes_in_bad_lines_are_escaped() {
        // Every byte a terminal or a log reader could act on, in each
        // place a line echoes text from the file.
        let bytes: Vec<char> = (0u8..0x20)
            .chain([0x7f])
            .map(char::from)
            .filter(|c| !c.is_ascii_whitespace())
            .chain(['\u{202e}', '\u{85}', '\u{2028}'])
            .collect();
        for c in bytes {
            for text in [
                format!("interf{c}ace vio0\n"),
                format!("interface vio{c}0\n"),
                format!("refresh 30{c}\n"),
                format!("boot-signal \"y{c}es\"\n"),
                format!("metadata-url http://169.254.42.42/{c}\n"),
            ] {
                let (_, msg) = parse(&text).expect_err(&text);
                assert!(
                    msg.chars().all(|m| m == ' ' || m.is_ascii_graphic()),
                    "{text:?}: {msg:?}"
                );
                assert!(msg.contains(&c.escape_default().to_string()), "{msg:?}");
            }
        }
        assert_eq!(
            parse("user _s\u{1b}[2Jcwd\ninterface \u{0}\n")
                .unwrap_err()
                .1,
            "interface: invalid interface name: \"\\u{0}\""
        );
    }
}
