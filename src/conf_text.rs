//! The metadata document under the names the text `/conf` endpoint gives
//! its keys (`scaleway-metadata.md` §3.1), for `scwctl get`: the JSON path
//! upper-cased and joined with `_`, lists as a count then `KEY_<i>`,
//! objects as their upper-cased sub-key names then `KEY_<SUB>`.
//!
//! Pure: bytes in, a table out. The document is read as any JSON, not
//! as the plan reads it, so a key scwd does not use for IPv6 stays
//! answerable whatever shape the IPv6 keys have. Values are kept as the
//! service sent them, unquoted; whether one is fit to print is decided
//! when it is asked for ([`Table::get`]).

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use crate::metadata::MAX_BODY;

/// Longest key name kept; longer ones cannot be asked for.
pub const MAX_KEY: usize = 256;

/// Most bytes of names and values a table holds: a deeply nested
/// document repeats its path in every key, so the table of a 1 MiB
/// document could otherwise be far larger than the document.
pub const MAX_TABLE: usize = 4 * MAX_BODY;

/// Why a document has no table.
#[derive(Debug, PartialEq, Eq)]
pub enum TableError {
    /// Not JSON, or not a JSON object at the top.
    Json(String),
    /// The flattened names and values exceed [`MAX_TABLE`] bytes.
    TooLarge,
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableError::Json(e) => write!(f, "invalid JSON: {e}"),
            TableError::TooLarge => write!(f, "more than {MAX_TABLE} bytes once flattened"),
        }
    }
}

impl std::error::Error for TableError {}

/// Why a key has no printable value.
#[derive(Debug, PartialEq, Eq)]
pub enum GetError {
    /// The document has no such key.
    Unknown,
    /// Two paths of the document flatten to this name (`a_b.c` and
    /// `a.b_c`): which one the caller means cannot be known.
    Ambiguous,
    /// The value holds a newline or another control character; printing
    /// it could make a script read a line scwd did not send.
    Unprintable,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GetError::Unknown => "no such key in the metadata",
            GetError::Ambiguous => "ambiguous: two metadata keys have this name",
            GetError::Unprintable => "value holds a control character, not printed",
        })
    }
}

impl std::error::Error for GetError {}

#[derive(Debug)]
enum Slot {
    Value(String),
    Ambiguous,
}

/// The flattened document: name → value.
#[derive(Debug, Default)]
pub struct Table {
    slots: HashMap<String, Slot>,
    bytes: usize,
}

impl Table {
    /// Flattens a `/conf?format=json` body.
    pub fn from_json(body: &[u8]) -> Result<Table, TableError> {
        let doc: Json =
            serde_json::from_slice(body).map_err(|e| TableError::Json(e.to_string()))?;
        let Json::Object(entries) = doc else {
            return Err(TableError::Json("not an object".to_string()));
        };
        let mut table = Table::default();
        for (k, v) in &entries {
            table.flatten(&k.to_uppercase(), v)?;
        }
        Ok(table)
    }

    /// The value of `key`, fit to be printed on one line.
    pub fn get(&self, key: &str) -> Result<&str, GetError> {
        match self.slots.get(key) {
            None => Err(GetError::Unknown),
            Some(Slot::Ambiguous) => Err(GetError::Ambiguous),
            Some(Slot::Value(v)) if v.chars().any(char::is_control) => Err(GetError::Unprintable),
            Some(Slot::Value(v)) => Ok(v),
        }
    }

    /// How many names the table holds.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn put(&mut self, key: &str, value: String) -> Result<(), TableError> {
        if key.len() > MAX_KEY {
            return Ok(());
        }
        self.bytes += key.len() + value.len();
        if self.bytes > MAX_TABLE {
            return Err(TableError::TooLarge);
        }
        self.slots
            .entry(key.to_string())
            .and_modify(|s| *s = Slot::Ambiguous)
            .or_insert(Slot::Value(value));
        Ok(())
    }

    fn flatten(&mut self, key: &str, value: &Json) -> Result<(), TableError> {
        match value {
            Json::Null => self.put(key, String::new()),
            // Python's repr, as the service prints booleans.
            Json::Bool(b) => self.put(key, if *b { "True" } else { "False" }.to_string()),
            Json::Number(n) => self.put(key, n.clone()),
            Json::String(s) => self.put(key, s.clone()),
            Json::Array(items) => {
                self.put(key, items.len().to_string())?;
                for (i, item) in items.iter().enumerate() {
                    self.flatten(&format!("{key}_{i}"), item)?;
                }
                Ok(())
            }
            Json::Object(entries) => {
                let subs: Vec<String> = entries.iter().map(|(k, _)| k.to_uppercase()).collect();
                self.put(key, subs.join(" "))?;
                for ((_, v), sub) in entries.iter().zip(&subs) {
                    self.flatten(&format!("{key}_{sub}"), v)?;
                }
                Ok(())
            }
        }
    }
}

/// Any JSON value with its object keys in document order, which the text
/// form keeps in its sub-key lists and `serde_json::Value` does not.
enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Json, E> {
                Ok(Json::Number(n.to_string()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Json, E> {
                Ok(Json::Number(n.to_string()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Json, E> {
                Ok(Json::Number(n.to_string()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Json, E> {
                Ok(Json::String(s.to_string()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(Json::Array(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(Json::Object(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/scaleway/");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{name}")).unwrap()
    }

    /// A text `/conf` capture as name → value, quotes undone the POSIX
    /// way (`scaleway-metadata.md` §3.1).
    fn text_form(name: &str) -> Vec<(String, String)> {
        String::from_utf8(fixture(name))
            .unwrap()
            .lines()
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                let v = match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
                    Some(q) => q.replace(r#"'"'"'"#, "'"),
                    None => v.to_string(),
                };
                (k.trim_start_matches("-> ").to_string(), v)
            })
            .collect()
    }

    #[test]
    fn names_and_values_are_the_text_endpoints() {
        // The same instance, captured in both forms (APIDOC 2017).
        let table = Table::from_json(&fixture("conf-json_api-doc-2017_minimal.json")).unwrap();
        let text = text_form("conf-text_api-doc-2017_minimal.txt");
        for (k, v) in &text {
            assert_eq!(table.get(k), Ok(v.as_str()), "{k}");
        }
        assert_eq!(table.len(), text.len());
    }

    #[test]
    fn objects_lists_and_scalars_follow_the_2014_capture() {
        // The 2014 capture has no JSON twin: its JSON, rebuilt from the
        // rules, must give back every line of it.
        let json = br#"{"name": "myc1", "tags": ["test"], "state_detail": "booted",
            "public_ip": {"dynamic": true, "id": "9915ace8-2729-4289-b962-f6a2f94d44a0",
                          "address": "212.47.236.31"},
            "ssh_public_keys": [{"key": "ssh-rsa AAAA comment"}],
            "volumes": {"1": {"name": "data_vol", "size": 100000000000,
                              "server": {"id": "838271d7", "name": "myc1"}},
                        "0": {"name": "Ubuntu Trusty (14.04) on SSD 2014.07.15"}},
            "private_ip": null}"#;
        let t = Table::from_json(json).unwrap();
        for (k, v) in [
            ("NAME", "myc1"),
            ("TAGS", "1"),
            ("TAGS_0", "test"),
            ("PUBLIC_IP", "DYNAMIC ID ADDRESS"),
            ("PUBLIC_IP_DYNAMIC", "True"),
            ("PUBLIC_IP_ADDRESS", "212.47.236.31"),
            ("SSH_PUBLIC_KEYS", "1"),
            ("SSH_PUBLIC_KEYS_0", "KEY"),
            ("SSH_PUBLIC_KEYS_0_KEY", "ssh-rsa AAAA comment"),
            ("VOLUMES", "1 0"),
            ("VOLUMES_1", "NAME SIZE SERVER"),
            ("VOLUMES_1_SIZE", "100000000000"),
            ("VOLUMES_1_SERVER", "ID NAME"),
            ("VOLUMES_1_SERVER_NAME", "myc1"),
            ("VOLUMES_0_NAME", "Ubuntu Trusty (14.04) on SSD 2014.07.15"),
            ("PRIVATE_IP", ""),
        ] {
            assert_eq!(t.get(k), Ok(v), "{k}");
        }
        let capture = text_form("conf-text_online-labs-doc-2014_c1-volumes-sshkey-tag.txt");
        for k in [
            "NAME",
            "TAGS_0",
            "PUBLIC_IP",
            "PUBLIC_IP_ADDRESS",
            "VOLUMES",
        ] {
            let want = &capture.iter().find(|(n, _)| n == k).unwrap().1;
            assert_eq!(t.get(k), Ok(want.as_str()), "{k}");
        }
    }

    #[test]
    fn every_json_fixture_flattens_and_answers_the_ipv6_keys() {
        let t = Table::from_json(&fixture("conf-json_talos_legacy-ipv6-object.json")).unwrap();
        assert_eq!(t.get("IPV6"), Ok("ADDRESS GATEWAY NETMASK"));
        assert!(t.get("IPV6_ADDRESS").unwrap().contains(':'));
        for entry in std::fs::read_dir(FIXTURES).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.starts_with("conf-json_") && name.ends_with(".json") {
                let t = Table::from_json(&fixture(&name)).unwrap();
                assert!(t.get("ID").is_ok(), "{name}: no ID");
                assert!(t.get("HOSTNAME").is_ok() || t.get("NAME").is_ok(), "{name}");
            }
        }
    }

    #[test]
    fn unprintable_and_ambiguous_values_are_refused() {
        let t = Table::from_json(
            br#"{"hostname": "evil\nIPV6_ADDRESS=2001:db8::666", "bell": "a\u0007",
                 "c1": "a\u0085", "a_b": {"c": "1"}, "a": {"b_c": "2"}, "ok": "caf\u00e9 x"}"#,
        )
        .unwrap();
        assert_eq!(t.get("HOSTNAME"), Err(GetError::Unprintable));
        assert_eq!(t.get("BELL"), Err(GetError::Unprintable));
        assert_eq!(t.get("C1"), Err(GetError::Unprintable));
        assert_eq!(t.get("A_B_C"), Err(GetError::Ambiguous));
        assert_eq!(t.get("OK"), Ok("café x"));
        assert_eq!(t.get("IPV6_ADDRESS"), Err(GetError::Unknown));
        assert_eq!(t.get("hostname"), Err(GetError::Unknown));
    }

    #[test]
    fn a_strict_plan_failure_does_not_hide_other_keys() {
        // IPv6 keys of the wrong shape: the plan refuses them, get does not.
        let t = Table::from_json(br#"{"hostname": "h", "ipv6": "junk", "public_ips": 7}"#).unwrap();
        assert_eq!(t.get("HOSTNAME"), Ok("h"));
        assert_eq!(t.get("IPV6"), Ok("junk"));
    }

    #[test]
    fn bad_and_blown_up_documents_are_refused() {
        assert!(matches!(Table::from_json(b"[]"), Err(TableError::Json(_))));
        assert!(matches!(Table::from_json(b"{"), Err(TableError::Json(_))));
        // 20000 leaves under a path of 1000 bytes would be 20 MB of names
        // from a 40 kB document: names over MAX_KEY are not kept.
        let long = "k".repeat(250);
        let mut doc = String::new();
        for _ in 0..4 {
            doc.push_str(&format!("{{\"{long}\": "));
        }
        doc.push('[');
        doc.push_str(&vec!["0"; 20_000].join(","));
        doc.push(']');
        doc.push_str(&"}".repeat(4));
        let t = Table::from_json(doc.as_bytes()).unwrap();
        assert!(t.get(&long.to_uppercase()).is_ok());
        assert_eq!(t.len(), 1);
        // ...and a wide document with short names hits the byte limit.
        let wide = format!(
            "{{\"a\": [{}]}}",
            vec![format!("\"{}\"", "v".repeat(1000)); 5000].join(",")
        );
        assert_eq!(
            Table::from_json(wide.as_bytes()).unwrap_err(),
            TableError::TooLarge
        );
    }
}
