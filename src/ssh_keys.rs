//! The metadata's SSH public keys, for sshd's `AuthorizedKeysCommand`
//! (`scwctl ssh-keys USER`). Pure.
//!
//! sshd trusts every line it is handed, options included, so a key is
//! passed on only in the one shape an upload through Scaleway's console
//! has: `TYPE BASE64 [COMMENT]` on one line, a type OpenSSH knows, a
//! body that is base64 of a blob naming that same type. Anything else —
//! an options prefix (`command="…"`, `from=…`), a second line, a
//! certificate, a truncated body — is refused, and the caller logs it.

use std::fmt;

use crate::conf_text::{GetError, Table};

/// Longest key line accepted; an RSA 16384 key is under 3 kB.
pub const MAX_KEY_LINE: usize = 8192;

/// Most keys passed on; the rest are refused.
pub const MAX_KEYS: usize = 100;

/// Key types OpenSSH 10 (OpenBSD 7.8) accepts in authorized_keys,
/// certificates and the removed `ssh-dss` aside.
const TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// Why a key was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// Longer than [`MAX_KEY_LINE`].
    TooLong(usize),
    /// A newline or another control character.
    ControlCharacter,
    /// The first word is no key type sshd takes without options.
    UnknownType(String),
    /// No body after the type.
    NoBody,
    /// The body is not base64.
    NotBase64,
    /// The body's blob does not start with the key type.
    TypeMismatch,
    /// More than [`MAX_KEYS`] keys before this one.
    TooMany,
    /// The list names a key the document does not hold (or holds twice).
    Missing,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::TooLong(n) => write!(f, "{n} bytes, longer than {MAX_KEY_LINE}"),
            KeyError::ControlCharacter => f.write_str("holds a newline or control character"),
            KeyError::UnknownType(t) => {
                let mut t: String = t.chars().take(40).collect();
                t.retain(|c| !c.is_control());
                write!(f, "unknown key type or options prefix \"{t}\"")
            }
            KeyError::NoBody => f.write_str("no key after the type"),
            KeyError::NotBase64 => f.write_str("key is not base64"),
            KeyError::TypeMismatch => f.write_str("key does not hold the type it names"),
            KeyError::TooMany => write!(f, "more than {MAX_KEYS} keys"),
            KeyError::Missing => f.write_str("no key in the list entry"),
        }
    }
}

impl std::error::Error for KeyError {}

/// One key checked: the line to give sshd, rebuilt with single spaces.
pub fn check(line: &str) -> Result<String, KeyError> {
    if line.len() > MAX_KEY_LINE {
        return Err(KeyError::TooLong(line.len()));
    }
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(KeyError::ControlCharacter);
    }
    let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
    let ty = words.next().unwrap_or("");
    if !TYPES.contains(&ty) {
        return Err(KeyError::UnknownType(ty.to_string()));
    }
    let body = words.next().ok_or(KeyError::NoBody)?;
    let blob = base64_decode(body).ok_or(KeyError::NotBase64)?;
    // The blob is an SSH string (u32 length, bytes) naming the type.
    let named = blob
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| blob.get(4..4 + n));
    if named != Some(ty.as_bytes()) || blob.len() <= 4 + ty.len() {
        return Err(KeyError::TypeMismatch);
    }
    let comment: Vec<&str> = words.collect();
    let mut out = format!("{ty} {body}");
    if !comment.is_empty() {
        out.push(' ');
        out.push_str(&comment.join(" "));
    }
    Ok(out)
}

/// The keys of a flattened document, in order: `SSH_PUBLIC_KEYS_<i>_KEY`
/// for the objects current metadata has, `SSH_PUBLIC_KEYS_<i>` for the
/// plain strings of the 2017 form. Each comes back checked or refused.
pub fn from_table(table: &Table) -> Vec<Result<String, KeyError>> {
    let count = table
        .get("SSH_PUBLIC_KEYS")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let mut keys = Vec::new();
    for i in 0..count {
        if i == MAX_KEYS {
            keys.push(Err(KeyError::TooMany));
            break;
        }
        let line = match table.get(&format!("SSH_PUBLIC_KEYS_{i}_KEY")) {
            Err(GetError::Unknown) => table.get(&format!("SSH_PUBLIC_KEYS_{i}")),
            other => other,
        };
        keys.push(match line {
            Ok(l) => check(l),
            Err(GetError::Unprintable) => Err(KeyError::ControlCharacter),
            Err(_) => Err(KeyError::Missing),
        });
    }
    keys
}

/// Standard base64 with `=` padding, strict: no other character, a length
/// that is a multiple of four, padding only at the end.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() % 4 != 0 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(b.len() / 4 * 3);
    let last = b.len() / 4 - 1;
    for (i, q) in b.chunks_exact(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real key (the 2017 API documentation's first one).
    fn rsa() -> String {
        let doc = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/scaleway/conf-json_api-doc-2017_minimal.json"
        ))
        .unwrap();
        let t = Table::from_json(&doc).unwrap();
        t.get("SSH_PUBLIC_KEYS_0").unwrap().to_string()
    }

    const ED25519: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM+vlLYhGw7X7ENF3z+9Jvc3mril3C5NtGbHOCyt4eT/";

    #[test]
    fn good_keys_pass_rebuilt() {
        assert_eq!(check(&rsa()), Ok(rsa()));
        assert_eq!(check(ED25519), Ok(ED25519.to_string()));
        assert_eq!(
            check(&format!("{ED25519}  admin@laptop\tkey 2 ")),
            Ok(format!("{ED25519} admin@laptop key 2"))
        );
    }

    #[test]
    fn hostile_and_broken_keys_are_refused() {
        let body = ED25519.split(' ').nth(1).unwrap();
        let cases = [
            (format!("command=\"/bin/sh\" {ED25519}"), "options prefix"),
            (format!("from=\"10.0.0.1\" {ED25519}"), "options prefix"),
            (format!("{ED25519}\nssh-rsa AAAA"), "newline"),
            (format!("{ED25519} comment\r"), "newline"),
            (
                "ssh-dss AAAAB3NzaC1kc3MAAACBAP".to_string(),
                "unknown key type",
            ),
            ("ssh-ed25519".to_string(), "no key"),
            ("ssh-ed25519 AAAA!!!!".to_string(), "not base64"),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDnE=hLq".to_string(),
                "not base64",
            ),
            // The FAKE_METADATA key of cloud-init's tests: truncated.
            (
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABA".to_string(),
                "not base64",
            ),
            (format!("ssh-rsa {body}"), "does not hold"),
            (
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5".to_string(),
                "does not hold",
            ),
            (
                format!("ssh-ed25519 {}", "A".repeat(MAX_KEY_LINE)),
                "longer",
            ),
            (String::new(), "unknown key type"),
        ];
        for (line, why) in cases {
            let err = check(&line).unwrap_err().to_string();
            assert!(err.contains(why), "{line:?}: {err}");
        }
    }

    #[test]
    fn keys_come_from_both_metadata_shapes() {
        let t = Table::from_json(
            format!(
                r#"{{"ssh_public_keys": [{{"key": "{ED25519} a", "fingerprint": "x"}},
                    {{"key": "command=\"x\" {ED25519}"}}, {{"key": "{ED25519}\nssh-rsa x"}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap();
        let keys = from_table(&t);
        assert_eq!(keys[0], Ok(format!("{ED25519} a")));
        assert!(matches!(keys[1], Err(KeyError::UnknownType(_))));
        assert_eq!(keys[2], Err(KeyError::ControlCharacter));
        let plain = Table::from_json(format!(r#"{{"ssh_public_keys": ["{}"]}}"#, rsa()).as_bytes());
        assert_eq!(from_table(&plain.unwrap()), vec![Ok(rsa())]);
        assert!(from_table(&Table::from_json(b"{}").unwrap()).is_empty());
    }

    #[test]
    fn base64_is_strict() {
        assert_eq!(base64_decode("aGVsbG8="), Some(b"hello".to_vec()));
        assert_eq!(base64_decode("aGk="), Some(b"hi".to_vec()));
        assert_eq!(base64_decode("aGVsbA=="), Some(b"hell".to_vec()));
        for bad in ["", "aGk", "aG=k", "a===", "aGk=aGk=", "aGk\n"] {
            assert_eq!(base64_decode(bad), None, "{bad:?}");
        }
    }
}
