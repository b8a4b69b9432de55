//! What the control process knows, from the fetcher's reports and the
//! parent's status, and the answers it gives from that. Pure: time is
//! passed in.

use std::net::Ipv6Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::proto::{MAX_REPLY, Report, Request};
use crate::conf_text::Table;
use crate::plan::{Ipv6Net, Plan};
use crate::ssh_keys;

/// The parts of the configuration the answers depend on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `boot-signal`.
    pub boot_signal: bool,
    /// `ipv6`: without it the fetcher fetches nothing.
    pub ipv6: bool,
    /// `refresh`, seconds; 0: no timer.
    pub refresh: u64,
    /// `ssh-keys-user`.
    pub ssh_keys_user: Option<String>,
}

impl From<&crate::config::Config> for Settings {
    fn from(c: &crate::config::Config) -> Settings {
        Settings {
            boot_signal: c.boot_signal,
            ipv6: c.ipv6,
            refresh: c.refresh,
            ssh_keys_user: c.ssh_keys_user.clone(),
        }
    }
}

#[derive(Debug)]
enum Boot {
    Pending,
    Sent(SystemTime),
    Failing { since: SystemTime, last: String },
}

/// The last document fetched, flattened; what `get` and `ssh-keys` read.
#[derive(Debug)]
struct Document {
    at: SystemTime,
    url: String,
    size: usize,
    table: Result<Table, String>,
    keys: Vec<String>,
}

/// Everything `show`, `get` and `ssh-keys` answer from.
#[derive(Debug)]
pub struct State {
    settings: Settings,
    boot: Boot,
    doc: Option<Document>,
    /// The last failed fetch after the document, and whether it is retried.
    fetch_failed: Option<(SystemTime, String, bool)>,
    next_refresh: Option<SystemTime>,
    /// The parent's last status: the plan and what scwd owns.
    status: Option<(SystemTime, String)>,
}

impl State {
    /// Nothing known yet.
    pub fn new(settings: Settings) -> State {
        State {
            settings,
            boot: Boot::Pending,
            doc: None,
            fetch_failed: None,
            next_refresh: None,
            status: None,
        }
    }

    /// Takes in one report of the fetcher, at `now`. Keys the document
    /// holds that sshd must not see are logged here, once a document.
    pub fn report(&mut self, r: Report, now: SystemTime) {
        match r {
            Report::BootSent => self.boot = Boot::Sent(now),
            Report::BootFailing(last) => {
                let since = match self.boot {
                    Boot::Failing { since, .. } => since,
                    _ => now,
                };
                self.boot = Boot::Failing { since, last };
            }
            Report::Fetched(url, body) => {
                let table = Table::from_json(&body).map_err(|e| e.to_string());
                let mut keys = Vec::new();
                if let Ok(t) = &table {
                    for (i, k) in ssh_keys::from_table(t).into_iter().enumerate() {
                        match k {
                            Ok(k) => keys.push(k),
                            Err(e) => log::warn!("metadata: SSH key {i} refused: {e}"),
                        }
                    }
                }
                if let Err(e) = &table {
                    log::warn!("control: metadata document: {e}");
                }
                self.doc = Some(Document {
                    at: now,
                    url,
                    size: body.len(),
                    table,
                    keys,
                });
                self.fetch_failed = None;
                self.settled(now);
            }
            Report::FetchFailed(why, retried) => {
                self.fetch_failed = Some((now, why, retried));
                if !retried {
                    self.settled(now);
                }
            }
        }
    }

    /// A fetch is over: the fetcher's timer starts again.
    fn settled(&mut self, now: SystemTime) {
        self.next_refresh =
            (self.settings.refresh > 0).then(|| now + Duration::from_secs(self.settings.refresh));
    }

    /// The parent's latest account of the plan and of what it owns.
    pub fn status(&mut self, text: String, now: SystemTime) {
        self.status = Some((now, text));
    }

    /// The answer to a request other than `refresh` (which the caller
    /// forwards): `Ok(body)` or `Err(one line)`.
    pub fn answer(&self, req: &Request, now: SystemTime) -> Result<String, String> {
        let out = match req {
            Request::Show => Ok(self.show(now)),
            Request::Get(keys) => self.get(keys),
            Request::SshKeys(user) => Ok(self.ssh_keys(user)),
            Request::Refresh => Err("refresh: not answered here".to_string()),
        }?;
        if out.len() > MAX_REPLY {
            return Err(format!("answer larger than {MAX_REPLY} bytes"));
        }
        Ok(out)
    }

    fn table(&self) -> Result<&Table, String> {
        match &self.doc {
            Some(Document { table: Ok(t), .. }) => Ok(t),
            Some(Document { table: Err(e), .. }) => Err(format!("metadata: {e}")),
            None if !self.settings.ipv6 => {
                Err("no metadata: scwd fetches none with \"ipv6 no\"".to_string())
            }
            None => Err(match &self.fetch_failed {
                Some((_, why, _)) => format!("no metadata fetched yet: {why}"),
                None => "no metadata fetched yet".to_string(),
            }),
        }
    }

    fn get(&self, keys: &[String]) -> Result<String, String> {
        let table = self.table()?;
        let mut out = String::new();
        for k in keys {
            let v = table.get(k).map_err(|e| format!("{k}: {e}"))?;
            out.push_str(v);
            out.push('\n');
        }
        Ok(out)
    }

    fn ssh_keys(&self, user: &str) -> String {
        if self.settings.ssh_keys_user.as_deref() != Some(user) {
            return String::new();
        }
        let Some(doc) = &self.doc else {
            return String::new();
        };
        let mut out = String::new();
        for k in &doc.keys {
            if out.len() + k.len() + 1 > MAX_REPLY {
                log::warn!("ssh-keys: more keys than fit in {MAX_REPLY} bytes");
                break;
            }
            out.push_str(k);
            out.push('\n');
        }
        out
    }

    fn show(&self, now: SystemTime) -> String {
        let mut s = String::new();
        let boot = if !self.settings.boot_signal {
            "off (boot-signal no)".to_string()
        } else {
            match &self.boot {
                Boot::Pending => "not sent yet".to_string(),
                Boot::Sent(at) => format!("sent {}", utc(*at)),
                Boot::Failing { since, last } => {
                    format!("failing since {}: {last}", utc(*since))
                }
            }
        };
        s.push_str(&format!("boot signal: {boot}\n"));
        let fetch = match (&self.doc, &self.fetch_failed) {
            _ if !self.settings.ipv6 => "none (ipv6 no)".to_string(),
            (None, None) => "not fetched yet".to_string(),
            (None, Some((at, why, retry))) => failed(*at, why, *retry),
            (Some(d), f) => {
                let mut t = format!("fetched {} from {}, {} bytes", utc(d.at), d.url, d.size);
                if let Err(e) = &d.table {
                    t.push_str(&format!(" ({e})"));
                }
                if let Some((at, why, retry)) = f {
                    t.push_str(&format!("; then {}", failed(*at, why, *retry)));
                }
                t
            }
        };
        s.push_str(&format!("metadata: {fetch}\n"));
        match &self.status {
            Some((_, text)) => s.push_str(text),
            None => s.push_str("plan: none yet\n"),
        }
        if let Some(at) = self.next_refresh {
            let left = at.duration_since(now).unwrap_or_default().as_secs();
            s.push_str(&format!("next refresh: {} (in {left} s)\n", utc(at)));
        } else if self.settings.ipv6 && self.settings.refresh == 0 {
            s.push_str("next refresh: none (refresh 0)\n");
        }
        s
    }
}

fn failed(at: SystemTime, why: &str, retry: bool) -> String {
    let retry = if retry { ", retrying" } else { "" };
    format!("failed {}{retry}: {why}", utc(at))
}

/// The parent's status text for `show`: the plan it was given, how
/// applying it went, and what scwd owns now (addresses it added and has
/// not removed, its default route).
pub fn status_text(
    plan: Option<&Plan>,
    outcome: Result<(), &str>,
    owned: &[Ipv6Net],
    route: Option<Ipv6Addr>,
) -> String {
    let nets = |v: &[Ipv6Net]| {
        v.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = String::new();
    match plan {
        Some(p) if p.addresses.is_empty() => {
            s.push_str(&format!("plan: {}: no IPv6 in the metadata\n", p.interface))
        }
        Some(p) => {
            s.push_str(&format!("plan: {} {}", p.interface, nets(&p.addresses)));
            if let Some(gw) = p.default_gateway {
                s.push_str(&format!(", default route via {gw}"));
            }
            s.push('\n');
        }
        None => {}
    }
    if let Err(why) = outcome {
        s.push_str(&format!("last plan refused: {why}\n"));
    }
    s.push_str(&format!(
        "configured: {}\n",
        if owned.is_empty() {
            "no address".to_string()
        } else {
            nets(owned)
        }
    ));
    s.push_str(&format!(
        "default route: {}\n",
        route.map_or("none".to_string(), |gw| format!("via {gw}"))
    ));
    // Cut on a line: the message has a size limit.
    while s.len() > super::proto::MAX_STATUS {
        let end = s[..s.len() - 1].rfind('\n').map_or(0, |i| i + 1);
        s.truncate(end);
    }
    s
}

/// `2026-12-02 05:43:05 UTC`: the control process is chrooted, away
/// from the time zone files, and UTC reads the same everywhere.
pub fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rem) = (secs / 86400, secs % 86400);
    // Howard Hinnant's days_from_civil, inverted.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn settings() -> Settings {
        Settings {
            boot_signal: true,
            ipv6: true,
            refresh: 300,
            ssh_keys_user: Some("root".into()),
        }
    }

    const URL: &str = "http://169.254.42.42/conf?format=json";

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM+vlLYhGw7X7ENF3z+9Jvc3mril3C5NtGbHOCyt4eT/ me";

    #[test]
    fn utc_is_right_on_known_dates() {
        assert_eq!(utc(at(0)), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(at(951_782_400)), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(at(1_732_700_000)), "2024-11-27 09:33:20 UTC");
        assert_eq!(utc(at(4_107_542_399)), "2100-02-28 23:59:59 UTC");
    }

    #[test]
    fn show_tells_the_story() {
        let mut s = State::new(settings());
        assert!(s.show(at(0)).contains("boot signal: not sent yet"));
        s.report(Report::BootFailing("connection refused".into()), at(10));
        s.report(Report::BootFailing("timeout".into()), at(20));
        let show = s.show(at(20));
        assert!(
            show.contains("failing since 1970-01-01 00:00:10 UTC: timeout"),
            "{show}"
        );
        s.report(Report::BootSent, at(30));
        s.report(
            Report::Fetched(URL.into(), br#"{"id": "x"}"#.to_vec()),
            at(31),
        );
        s.status(
            status_text(
                Some(&Plan {
                    interface: "vio0".into(),
                    addresses: vec![Ipv6Net {
                        addr: "2001:db8::1".parse().unwrap(),
                        prefixlen: 64,
                    }],
                    default_gateway: Some("fe80::1".parse().unwrap()),
                }),
                Ok(()),
                &[Ipv6Net {
                    addr: "2001:db8::1".parse().unwrap(),
                    prefixlen: 64,
                }],
                Some("fe80::1".parse().unwrap()),
            ),
            at(31),
        );
        let show = s.show(at(100));
        for want in [
            "boot signal: sent 1970-01-01 00:00:30 UTC",
            "metadata: fetched 1970-01-01 00:00:31 UTC from http://169.254.42.42/conf?format=json, 11 bytes",
            "plan: vio0 2001:db8::1/64, default route via fe80::1",
            "configured: 2001:db8::1/64",
            "default route: via fe80::1",
            "next refresh: 1970-01-01 00:05:31 UTC (in 231 s)",
        ] {
            assert!(show.contains(want), "{want:?} not in\n{show}");
        }
        s.report(Report::FetchFailed("HTTP 500".into(), true), at(332));
        assert!(
            s.show(at(333))
                .contains("; then failed 1970-01-01 00:05:32 UTC, retrying: HTTP 500")
        );
        // The last good document still answers.
        assert_eq!(s.get(&["ID".into()]), Ok("x\n".into()));
    }

    #[test]
    fn get_is_all_or_nothing() {
        let mut s = State::new(settings());
        assert_eq!(
            s.answer(&Request::Get(vec!["ID".into()]), at(0)),
            Err("no metadata fetched yet".into())
        );
        s.report(
            Report::Fetched(
                URL.into(),
                br#"{"id": "x", "hostname": "h", "bad": "a\nb"}"#.to_vec(),
            ),
            at(1),
        );
        fn get(s: &State, k: &[&str]) -> Result<String, String> {
            s.answer(
                &Request::Get(k.iter().map(|k| k.to_string()).collect()),
                at(2),
            )
        }
        assert_eq!(get(&s, &["HOSTNAME", "ID"]), Ok("h\nx\n".into()));
        assert_eq!(
            get(&s, &["ID", "NOPE"]),
            Err("NOPE: no such key in the metadata".into())
        );
        assert!(get(&s, &["BAD"]).unwrap_err().contains("control character"));
        s.report(Report::Fetched(URL.into(), b"not json".to_vec()), at(3));
        assert!(
            get(&s, &["ID"])
                .unwrap_err()
                .starts_with("metadata: invalid JSON")
        );
    }

    #[test]
    fn ssh_keys_only_for_the_configured_user() {
        let mut s = State::new(settings());
        let doc = format!(
            r#"{{"ssh_public_keys": [{{"key": "{KEY}"}}, {{"key": "command=\"/bin/sh\" {KEY}"}}]}}"#
        );
        s.report(Report::Fetched(URL.into(), doc.into_bytes()), at(1));
        fn keys(s: &State, u: &str) -> String {
            s.answer(&Request::SshKeys(u.into()), at(2)).unwrap()
        }
        assert_eq!(keys(&s, "root"), format!("{KEY}\n"));
        assert_eq!(keys(&s, "admin"), "");
        s.report(
            Report::Fetched(URL.into(), br#"{"ssh_public_keys": []}"#.to_vec()),
            at(3),
        );
        assert_eq!(keys(&s, "root"), "", "a deleted key disappears");
        let mut off = State::new(Settings {
            ssh_keys_user: None,
            ..settings()
        });
        off.report(
            Report::Fetched(
                URL.into(),
                format!(r#"{{"ssh_public_keys": ["{KEY}"]}}"#).into_bytes(),
            ),
            at(1),
        );
        assert_eq!(
            off.answer(&Request::SshKeys("root".into()), at(2)),
            Ok(String::new())
        );
    }

    #[test]
    fn status_text_is_bounded() {
        let many: Vec<Ipv6Net> = (0..200)
            .map(|i| Ipv6Net {
                addr: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0xffff, i),
                prefixlen: 128,
            })
            .collect();
        let t = status_text(None, Err("x"), &many, None);
        assert!(t.len() <= super::super::proto::MAX_STATUS && t.ends_with('\n'));
    }
}
