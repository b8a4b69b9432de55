//! The `/conf?format=json` document, as much of it as scwd reads.
//!
//! Only the IPv6 sources are looked at: the legacy `ipv6` object and the
//! `public_ips` and `public_ips_v6` lists. Everything else is skipped
//! without being interpreted, so a malformed `private_ip` or a key added
//! next year cannot stop IPv6 configuration. The fields of an IP object
//! are kept as raw JSON values; [`crate::plan`] decides what they mean.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;
use serde_json::error::Category;

/// Largest metadata document accepted; real ones are a few KiB.
pub const MAX_BODY: usize = 1024 * 1024;

/// The parts of the metadata document scwd reads.
#[derive(Debug, Default, PartialEq)]
pub struct Metadata {
    /// The legacy `ipv6` object; `None` when absent or null.
    pub ipv6: Option<IpEntry>,
    /// `public_ips`, all families; `None` when absent or null.
    pub public_ips: Option<Vec<IpEntry>>,
    /// `public_ips_v6`; `None` when absent or null.
    pub public_ips_v6: Option<Vec<IpEntry>>,
}

/// One IP object. A list element that is not an object at all is kept as
/// [`IpEntry::NotObject`] so that an odd IPv4 entry stays harmless.
#[derive(Debug, PartialEq)]
pub enum IpEntry {
    /// A JSON object; the fields scwd knows, uninterpreted.
    Object(IpFields),
    /// Anything else: string, number, list, boolean.
    NotObject,
}

/// The fields of an IP object that scwd may use.
#[derive(Debug, Default, PartialEq)]
pub struct IpFields {
    /// `family`: `"inet"` or `"inet6"`.
    pub family: Option<Value>,
    /// `address`: the instance's address.
    pub address: Option<Value>,
    /// `netmask`: a prefix length, as a decimal string.
    pub netmask: Option<Value>,
    /// `gateway`: the default gateway for this address.
    pub gateway: Option<Value>,
}

/// Why a metadata document was refused.
#[derive(Debug)]
pub enum MetadataError {
    /// Larger than [`MAX_BODY`].
    TooLarge(usize),
    /// Not UTF-8, which JSON must be (RFC 8259 §8.1); the offset of the
    /// first bad byte.
    NotUtf8(usize),
    /// Not one complete JSON text (empty, cut off, an HTML page), or a
    /// complete one of the wrong shape: not an object, a known key given
    /// twice or of the wrong type (the message names the key).
    Json(serde_json::Error),
}

impl MetadataError {
    /// Whether the answer could not be parsed at all, as a cut-off body,
    /// an empty one or an error page from something in the way: asking
    /// again may get the document. A complete JSON document that is
    /// refused was written that way and stays final.
    pub fn is_transient(&self) -> bool {
        match self {
            MetadataError::NotUtf8(_) => true,
            MetadataError::Json(e) => e.classify() != Category::Data,
            MetadataError::TooLarge(_) => false,
        }
    }
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataError::TooLarge(n) => {
                write!(
                    f,
                    "metadata: {n} bytes, larger than the {MAX_BODY} byte limit"
                )
            }
            MetadataError::NotUtf8(at) => {
                write!(f, "metadata: invalid UTF-8 at byte {at}")
            }
            MetadataError::Json(e) if e.classify() == Category::Data => {
                write!(f, "metadata: {e}")
            }
            MetadataError::Json(e) => write!(f, "metadata: invalid JSON: {e}"),
        }
    }
}

impl std::error::Error for MetadataError {}

/// Parses a `/conf?format=json` body.
pub fn parse(body: &[u8]) -> Result<Metadata, MetadataError> {
    if body.len() > MAX_BODY {
        return Err(MetadataError::TooLarge(body.len()));
    }
    // serde_json skips unused strings without checking them; a document
    // that is not text at all is refused whole rather than half-read.
    let text = std::str::from_utf8(body).map_err(|e| MetadataError::NotUtf8(e.valid_up_to()))?;
    serde_json::from_str(text).map_err(MetadataError::Json)
}

/// A known key seen twice is refused: which of the two values the
/// service meant cannot be known. A value of the wrong type is refused
/// naming its key: "invalid type: map, expected a sequence" alone does
/// not say which of the document's lists is wrong.
fn set_once<'de, T, A>(
    slot: &mut Option<T>,
    name: &'static str,
    map: &mut A,
) -> Result<(), A::Error>
where
    T: Deserialize<'de>,
    A: MapAccess<'de>,
{
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    let value = map.next_value().map_err(|e: A::Error| {
        let msg = e.to_string();
        // Only a type error in this value is named after the key; a
        // syntax error stays what it is, so that it stays transient.
        if msg.starts_with("invalid type") || msg.starts_with("invalid value") {
            de::Error::custom(format_args!("{name}: {}", without_position(&msg)))
        } else {
            e
        }
    })?;
    *slot = Some(value);
    Ok(())
}

/// `msg` without serde_json's " at line L column C" suffix, which the
/// error made from it gets again.
fn without_position(msg: &str) -> &str {
    let Some(at) = msg.rfind(" at line ") else {
        return msg;
    };
    let tail = &msg[at + " at line ".len()..];
    let well_formed = tail.split_once(" column ").is_some_and(|(l, c)| {
        !l.is_empty()
            && !c.is_empty()
            && l.bytes().all(|b| b.is_ascii_digit())
            && c.bytes().all(|b| b.is_ascii_digit())
    });
    if well_formed { &msg[..at] } else { msg }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                // Option<Option<_>>: outer = key seen, inner = JSON null.
                let mut ipv6: Option<Option<IpEntry>> = None;
                let mut public_ips: Option<Option<Vec<IpEntry>>> = None;
                let mut public_ips_v6: Option<Option<Vec<IpEntry>>> = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "ipv6" => set_once(&mut ipv6, "ipv6", &mut map)?,
                        "public_ips" => set_once(&mut public_ips, "public_ips", &mut map)?,
                        "public_ips_v6" => set_once(&mut public_ips_v6, "public_ips_v6", &mut map)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Metadata {
                    ipv6: ipv6.flatten(),
                    public_ips: public_ips.flatten(),
                    public_ips_v6: public_ips_v6.flatten(),
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for IpEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IpEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an IP object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<IpEntry, A::Error> {
                let mut f = IpFields::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "family" => set_once(&mut f.family, "family", &mut map)?,
                        "address" => set_once(&mut f.address, "address", &mut map)?,
                        "netmask" => set_once(&mut f.netmask, "netmask", &mut map)?,
                        "gateway" => set_once(&mut f.gateway, "gateway", &mut map)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(IpEntry::Object(f))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<IpEntry, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(IpEntry::NotObject)
            }
            fn visit_bool<E>(self, _: bool) -> Result<IpEntry, E> {
                Ok(IpEntry::NotObject)
            }
            fn visit_i64<E>(self, _: i64) -> Result<IpEntry, E> {
                Ok(IpEntry::NotObject)
            }
            fn visit_u64<E>(self, _: u64) -> Result<IpEntry, E> {
                Ok(IpEntry::NotObject)
            }
            fn visit_f64<E>(self, _: f64) -> Result<IpEntry, E> {
                Ok(IpEntry::NotObject)
            }
            fn visit_str<E>(self, _: &str) -> Result<IpEntry, E> {
                Ok(IpEntry::NotObject)
            }
            fn visit_unit<E>(self) -> Result<IpEntry, E> {
                Ok(IpEntry::NotObject)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> IpEntry {
        let get = |k: &str| v.get(k).cloned();
        IpEntry::Object(IpFields {
            family: get("family"),
            address: get("address"),
            netmask: get("netmask"),
            gateway: get("gateway"),
        })
    }

    #[test]
    fn unknown_and_malformed_unused_keys_are_skipped() {
        let m = parse(
            br#"{"private_ip": {"weird": [1, 2]}, "id": 7, "zone": null,
                 "ipv6": {"address": "2001:db8::1", "netmask": "64", "extra": {}},
                 "public_ips": [{"family": "inet", "address": 12}, "junk", null, 5, [1]],
                 "public_ips_v6": null}"#,
        )
        .unwrap();
        assert_eq!(
            m.ipv6,
            Some(fields(json!({"address": "2001:db8::1", "netmask": "64"})))
        );
        let ips = m.public_ips.unwrap();
        assert_eq!(ips[0], fields(json!({"family": "inet", "address": 12})));
        assert_eq!(
            ips[1..],
            [
                IpEntry::NotObject,
                IpEntry::NotObject,
                IpEntry::NotObject,
                IpEntry::NotObject
            ]
        );
        assert_eq!(m.public_ips_v6, None);
    }

    #[test]
    fn absent_and_null_are_none() {
        assert_eq!(parse(b"{}").unwrap(), Metadata::default());
        assert_eq!(
            parse(br#"{"ipv6": null, "public_ips": null}"#).unwrap(),
            Metadata::default()
        );
    }

    #[test]
    fn refusals() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "EOF while parsing"),
            (b"[]", "expected a JSON object"),
            (b"\"x\"", "expected a JSON object"),
            (
                b"{\"ipv6\": null, \"ipv6\": null}",
                "duplicate field `ipv6`",
            ),
            (
                b"{\"public_ips\": [{\"address\": \"a\", \"address\": \"b\"}]}",
                "duplicate field `address`",
            ),
            (b"{\"public_ips\": {}}", "expected a sequence"),
            (b"{\"id\": \"\xff\"}", "invalid UTF-8 at byte 8"),
            (b"{\"ipv6\": {\"address\": \"x\"}", "EOF while parsing"),
            (b"{} {}", "trailing characters"),
        ];
        for (body, want) in cases {
            let err = parse(body).unwrap_err().to_string();
            assert!(
                err.contains(want),
                "{:?}: {err:?} lacks {want:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        let nested = |n| {
            let mut v = vec![b'['; n];
            v.extend(vec![b']'; n]);
            v
        };
        // An unused key is skipped without recursion, however deep.
        let mut body = b"{\"x\": ".to_vec();
        body.extend(nested(100_000));
        body.push(b'}');
        assert_eq!(parse(&body).unwrap(), Metadata::default());
        // A used one is built, and serde_json stops at depth 128.
        let mut body = b"{\"ipv6\": {\"address\": ".to_vec();
        body.extend(nested(100_000));
        body.extend(b"}}");
        let err = parse(&body).unwrap_err().to_string();
        assert!(err.contains("recursion limit"), "{err}");
    }

    #[test]
    fn a_non_object_ipv6_is_kept_for_the_plan_to_refuse() {
        let m = parse(br#"{"ipv6": "2001:db8::1"}"#).unwrap();
        assert_eq!(m.ipv6, Some(IpEntry::NotObject));
    }

    #[test]
    fn body_over_one_mib_is_refused() {
        let mut body = b"{\"x\": \"".to_vec();
        body.resize(MAX_BODY + 1, b'a');
        assert!(matches!(parse(&body), Err(MetadataError::TooLarge(n)) if n == MAX_BODY + 1));
    }

    #[test]
    fn answers_that_are_no_document_are_transient() {
        let doc = br#"{"public_ips_v6": [{"address": "2001:db8::1", "netmask": "64"}]}"#;
        let mut cases: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"   \r\n".to_vec(),
            b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
            b"Service Unavailable".to_vec(),
            b"\xff\xfe{\x00}\x00".to_vec(),
            b"{\"ipv6\": nul".to_vec(),
            [doc.as_slice(), b" trailing"].concat(),
        ];
        // Every cut of a real document, as a connection that drops would
        // leave it.
        cases.extend((0..doc.len()).map(|n| doc[..n].to_vec()));
        for body in cases {
            let err = parse(&body).expect_err(&String::from_utf8_lossy(&body));
            assert!(
                err.is_transient(),
                "{:?}: {err} is final",
                String::from_utf8_lossy(&body)
            );
        }
    }

    #[test]
    fn complete_documents_that_are_refused_stay_final_and_name_the_key() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"[]",
                "metadata: invalid type: sequence, expected a JSON object",
            ),
            (b"null", "metadata: invalid type: null"),
            (
                b"{\"ipv6\": 1, \"ipv6\": 2}",
                "metadata: duplicate field `ipv6`",
            ),
            (
                b"{\"public_ips_v6\": {}}",
                "metadata: public_ips_v6: invalid type: map",
            ),
            (
                b"{\"public_ips\": \"x\"}",
                "metadata: public_ips: invalid type: string",
            ),
            (
                b"{\"public_ips\": true}",
                "metadata: public_ips: invalid type: boolean",
            ),
            (
                b"{\"id\": 1,\n \"public_ips_v6\": 7}",
                "metadata: public_ips_v6: invalid type: integer `7`",
            ),
        ];
        for (body, want) in cases {
            let err = parse(body).unwrap_err();
            let line = err.to_string();
            assert!(!err.is_transient(), "{line} is transient");
            assert!(
                line.starts_with(want),
                "{line:?} does not start with {want:?}"
            );
            assert!(!line.contains("invalid JSON"), "{line}");
            // One position, where the value ends.
            assert_eq!(line.matches(" at line ").count(), 1, "{line}");
        }
    }

    #[test]
    fn without_position_strips_only_serde_json_s_suffix() {
        assert_eq!(without_position("bad at line 1 column 20"), "bad");
        assert_eq!(
            without_position("bad at line x column 2"),
            "bad at line x column 2"
        );
        assert_eq!(
            without_position("bad at line 1 column "),
            "bad at line 1 column "
        );
        assert_eq!(without_position("plain"), "plain");
    }
}
