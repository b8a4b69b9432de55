//! Every metadata document and fragment in tests/fixtures/scaleway maps to
//! the plan written out here by hand.

use std::fs;
use std::net::Ipv6Addr;
use std::path::Path;

use scwd::metadata;
use scwd::plan::{self, Ipv6Net, Plan, PlanError};

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/scaleway")
        .join(name);
    fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn plan_of(body: &[u8]) -> Result<Plan, String> {
    let meta = metadata::parse(body).map_err(|e| e.to_string())?;
    plan::from_metadata(&meta, "vio0")
        .map(|b| b.plan)
        .map_err(|e| e.to_string())
}

fn net(addr: &str, prefixlen: u8) -> Ipv6Net {
    Ipv6Net {
        addr: addr.parse().unwrap(),
        prefixlen,
    }
}

fn gw(addr: &str) -> Option<Ipv6Addr> {
    Some(addr.parse().unwrap())
}

fn configure(addresses: Vec<Ipv6Net>, default_gateway: Option<Ipv6Addr>) -> Plan {
    Plan {
        interface: "vio0".to_string(),
        addresses,
        default_gateway,
    }
}

fn nothing() -> Plan {
    configure(vec![], None)
}

#[test]
fn full_documents() {
    let routed_talos = configure(
        vec![net("2001:111:222:3333::1", 64)],
        gw("fe80::dc00:ff:fe12:3456"),
    );
    let cases: Vec<(&str, Result<Plan, String>)> = vec![
        (
            "conf-json_afterburn-test_legacy-fields.json",
            Err("ipv6: no netmask".to_string()),
        ),
        ("conf-json_api-doc-2017_minimal.json", Ok(nothing())),
        (
            "conf-json_cloud-init-test_FAKE_METADATA.json",
            Ok(nothing()),
        ),
        ("conf-json_legacy-nat_no-ipv6_vc1s-par1.json", Ok(nothing())),
        (
            "conf-json_talos-v2_routed_dual-stack.json",
            Ok(routed_talos.clone()),
        ),
        ("conf-json_talos-v3_routed_ipv6-only.json", Ok(routed_talos)),
        (
            "conf-json_talos-v4_routed_dual-stack_dhcp-v4_slaac-v6.json",
            Ok(configure(
                vec![net("2001:bc8:1234:5678:dc00:1ff:fe14:a73b", 64)],
                gw("fe80::dc00:ff:fe12:3456"),
            )),
        ),
        (
            "conf-json_talos_legacy-ipv6-object.json",
            Ok(configure(
                vec![net("2001:111:222:3333::1", 64)],
                gw("2001:111:222:3333::"),
            )),
        ),
        ("conf-json_talos_routed-ipv4-only_dhcp.json", Ok(nothing())),
    ];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/scaleway");
    let on_disk = fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("conf-json_") && n.ends_with(".json"))
        .count();
    assert_eq!(
        on_disk,
        cases.len(),
        "a conf-json fixture has no expected plan here"
    );
    for (name, want) in cases {
        assert_eq!(plan_of(&fixture(name)), want, "{name}");
    }
}

/// The cloud-init test cases, each a metadata fragment.
#[test]
fn cloud_init_fragments() {
    let routed = configure(
        vec![net("2001:aaa:aaaa:a:aaaa:aaaa:aaaa:1", 64)],
        gw("fe80::ffff:ffff:ffff:fff1"),
    );
    let want: Vec<(&str, Result<Plan, String>)> = vec![
        ("04eacd06ee60:test_primary_ipv4_config_ok", Ok(nothing())),
        ("04eacd06ee60:test_additional_ipv4_config_ok", Ok(nothing())),
        (
            "04eacd06ee60:test_primary_ipv6_config_ok",
            Ok(routed.clone()),
        ),
        (
            "04eacd06ee60:test_primary_ipv4_v6_config_ok",
            Ok(routed.clone()),
        ),
        ("04eacd06ee60:test_primary_ipv6_v4_config_ok", Ok(routed)),
        ("fcb98b03498c:test_legacy_network_config_ok", Ok(nothing())),
        // cloud-init's synthetic /127 puts the gateway outside the
        // address's /127: it could never be reached on-link.
        (
            "fcb98b03498c:test_legacy_network_config_ipv6_ok",
            Err(
                "ipv6: gateway 2000:abc:4444:9876::42:0: neither link-local nor inside \
                 2000:abc:4444:9876::42:999/127"
                    .to_string(),
            ),
        ),
        (
            "fcb98b03498c:test_legacy_network_config_unset",
            Ok(nothing()),
        ),
        (
            "fcb98b03498c:test_legacy_network_config_cached_none",
            Ok(nothing()),
        ),
        (
            "fcb98b03498c:test_ipmob_primary_ipv4_config_ok",
            Ok(nothing()),
        ),
        (
            "fcb98b03498c:test_ipmob_additional_ipv4_config_ok",
            Ok(nothing()),
        ),
        (
            "fcb98b03498c:test_ipmob_primary_ipv6_config_ok",
            Ok(nothing()),
        ),
        (
            "fcb98b03498c:test_ipmob_primary_ipv4_v6_config_ok",
            Ok(nothing()),
        ),
        (
            "fcb98b03498c:test_ipmob_primary_ipv6_v4_config_ok",
            Ok(nothing()),
        ),
    ];
    let all: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&fixture(
        "fragments_cloud-init-tests_public_ips-and-legacy-ipv6.json",
    ))
    .unwrap();
    assert_eq!(
        all.len(),
        want.len(),
        "a fragment has no expected plan here"
    );
    for (case, expected) in want {
        let body = serde_json::to_vec(&all[case]).unwrap();
        assert_eq!(plan_of(&body), expected, "{case}");
    }
}

/// The Instance API examples from Scaleway's documentation, as metadata.
#[test]
fn scaleway_docs_fragments() {
    let all: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&fixture(
        "fragments_scaleway-docs_instance-api_public_ips_dhcp-manual-slaac.json",
    ))
    .unwrap();
    let routed = configure(
        vec![net("2001:bc8:4e10:6:dc00:ff:fe01:c4b7", 64)],
        gw("fe80::dc00:ff:fe01:c4b8"),
    );
    let mut seen = 0;
    for (case, value) in &all {
        let body = if value.is_array() {
            serde_json::to_vec(&serde_json::json!({ "public_ips": value })).unwrap()
        } else {
            serde_json::to_vec(value).unwrap()
        };
        let want = if case.starts_with("use-flexips") {
            configure(
                vec![net("2025:bd8:911:46:dc00:ff:fe08:ab0c", 64)],
                gw("fe80::dc00:ff:fe08:ab0c"),
            )
        } else if case.contains("IPv4 only") {
            nothing()
        } else {
            routed.clone()
        };
        assert_eq!(plan_of(&body), Ok(want), "{case}");
        seen += 1;
    }
    assert_eq!(seen, 4);
}

#[test]
fn every_source_is_read_and_merged() {
    let body = br#"{
        "public_ips": [
            {"family": "inet", "address": "51.15.0.1", "netmask": "32", "gateway": "62.210.0.1"},
            {"family": "inet6", "address": "2001:db8:1::10", "netmask": "64", "gateway": "fe80::1"}
        ],
        "public_ips_v6": [
            {"address": "2001:db8:1::10", "netmask": "64", "gateway": "fe80::1"},
            {"family": "inet6", "address": "2001:db8:2::10", "netmask": 64, "gateway": "fe80::2"}
        ],
        "ipv6": {"address": "2001:bc8:4700:2100::302d", "netmask": "127", "gateway": "2001:bc8:4700:2100::302c"}
    }"#;
    let meta = metadata::parse(body).unwrap();
    let built = plan::from_metadata(&meta, "vio0").unwrap();
    assert_eq!(
        built.plan,
        configure(
            vec![
                net("2001:db8:1::10", 64),
                net("2001:db8:2::10", 64),
                net("2001:bc8:4700:2100::302d", 127)
            ],
            gw("fe80::1")
        )
    );
    assert_eq!(
        built.notes,
        vec![
            "public_ips_v6[1]: gateway fe80::2 ignored, default route via fe80::1",
            "ipv6: gateway 2001:bc8:4700:2100::302c ignored, default route via fe80::1",
        ]
    );
}

#[test]
fn an_unused_malformed_field_does_not_stop_ipv6() {
    let body = br#"{"private_ip": {"bogus": true}, "public_ip": 42, "tags": "x",
        "public_ips": [{"family": "inet", "address": ["?"], "netmask": -1}, "junk"],
        "ipv6": {"address": "2001:db8::2", "netmask": "64", "gateway": "2001:db8::1"}}"#;
    assert_eq!(
        plan_of(body),
        Ok(configure(vec![net("2001:db8::2", 64)], gw("2001:db8::1")))
    );
}

// Hostile entries, one file each, are in tests/hostile/ (tests/hostile.rs).

#[test]
fn ten_thousand_entries() {
    let inet: Vec<String> = (0..10_000)
        .map(|i| {
            format!(
                r#"{{"family":"inet","address":"10.0.{}.{}","netmask":"32"}}"#,
                i / 256,
                i % 256
            )
        })
        .collect();
    let body = format!(r#"{{"public_ips": [{}]}}"#, inet.join(","));
    assert_eq!(plan_of(body.as_bytes()), Ok(nothing()));

    let same: Vec<&str> =
        vec![r#"{"family":"inet6","address":"2001:db8::1","netmask":"64"}"#; 10_000];
    let body = format!(r#"{{"public_ips": [{}]}}"#, same.join(","));
    assert_eq!(
        plan_of(body.as_bytes()),
        Ok(configure(vec![net("2001:db8::1", 64)], None))
    );

    let many: Vec<String> = (0..10_000)
        .map(|i| format!(r#"{{"family":"inet6","address":"2001:db8::{i:x}","netmask":"64"}}"#))
        .collect();
    let body = format!(r#"{{"public_ips": [{}]}}"#, many.join(","));
    assert_eq!(
        plan_of(body.as_bytes()),
        Err(PlanError::TooManyAddresses(10_000).to_string())
    );

    // One address, ten thousand gateways: the notes, logged on every
    // fetch, stay a handful.
    let gateways: Vec<String> = (1..=10_000)
        .map(|i| format!(r#"{{"family":"inet6","address":"2001:db8::1","netmask":"64","gateway":"fe80::{i:x}"}}"#))
        .collect();
    let body = format!(r#"{{"public_ips": [{}]}}"#, gateways.join(","));
    let built = plan::from_metadata(&metadata::parse(body.as_bytes()).unwrap(), "vio0").unwrap();
    assert_eq!(
        built.plan,
        configure(vec![net("2001:db8::1", 64)], gw("fe80::1"))
    );
    assert_eq!(built.notes.len(), plan::MAX_NOTES + 1);
    assert_eq!(
        built.notes[0],
        "public_ips[1]: gateway fe80::2 ignored, default route via fe80::1"
    );
    assert_eq!(built.notes[plan::MAX_NOTES], "and 9991 more such entries");
}

#[test]
fn validate_accepts_what_from_metadata_builds_and_refuses_the_rest() {
    let good = configure(
        vec![net("2001:bc8:4700:2100::302d", 127)],
        gw("2001:bc8:4700:2100::302c"),
    );
    assert_eq!(good.validate(), Ok(()));
    let bad = [
        Plan {
            interface: "vio0; reboot".into(),
            ..good.clone()
        },
        configure(vec![net("fe80::1", 64)], None),
        configure(vec![net("2001:db8::1", 0)], None),
        configure(vec![net("2001:db8::1", 129)], None),
        configure(vec![net("2001:db8::1", 64), net("2001:db8::1", 64)], None),
        configure(vec![], gw("fe80::1")),
        configure(vec![net("2001:db8::1", 64)], gw("2001:db9::1")),
        configure(vec![net("2001:db8::1", 64)], gw("ff02::1")),
        configure(
            (0..17)
                .map(|i| net(&format!("2001:db8::{i:x}"), 64))
                .collect(),
            None,
        ),
    ];
    for p in bad {
        assert!(p.validate().is_err(), "{p:?}");
    }
}

/// One entry with `netmask` given as the JSON text `netmask`.
fn with_netmask(netmask: &str) -> Result<Plan, String> {
    plan_of(
        format!(r#"{{"public_ips_v6": [{{"address": "2001:db8::1", "netmask": {netmask}}}]}}"#)
            .as_bytes(),
    )
}

#[test]
fn prefix_lengths_64_to_128_in_canonical_decimal_only() {
    for n in 0..=300u32 {
        let want = (64..=128).contains(&n);
        for text in [format!("\"{n}\""), n.to_string()] {
            let got = with_netmask(&text);
            assert_eq!(got.is_ok(), want, "netmask {text}: {got:?}");
            if want {
                assert_eq!(got.unwrap().addresses, [net("2001:db8::1", n as u8)]);
            }
        }
        // One rule for every other spelling of the same number.
        for text in [
            format!("\"0{n}\""),
            format!("\"+{n}\""),
            format!("\" {n}\""),
            format!("\"{n} \""),
            format!("\"{n}\\n\""),
            format!("{n}.0"),
        ] {
            assert!(with_netmask(&text).is_err(), "netmask {text} accepted");
        }
    }
    // The parent holds a plan to the same bounds.
    for n in 0..=255u8 {
        let p = configure(vec![net("2001:db8::1", n)], None);
        assert_eq!(p.validate().is_ok(), (64..=128).contains(&n), "/{n}");
    }
}

#[test]
fn ipv4_mapped_and_loopback_gateways_are_refused_whatever_the_prefix() {
    // ::1:2/64 holds ::ffff:0:0/96 and ::1: both would be on-link.
    for addr in ["::1:2", "2001:db8::1"] {
        for len in [64, 96, 127, 128] {
            for gateway in ["::ffff:192.0.2.1", "::ffff:0:0", "::1"] {
                let body = format!(
                    r#"{{"public_ips_v6": [{{"address": "{addr}", "netmask": "{len}", "gateway": "{gateway}"}}]}}"#
                );
                let got = plan_of(body.as_bytes());
                assert!(
                    got.as_ref()
                        .is_err_and(|e| e.contains("not a unicast address")),
                    "{addr}/{len} via {gateway}: {got:?}"
                );
                let p = configure(vec![net(addr, len)], gw(gateway));
                assert!(p.validate().is_err(), "{p:?}");
            }
        }
    }
}

#[test]
fn a_skipped_entry_is_noted_and_counted() {
    let families = [
        r#""INET6""#,
        r#""ipv6""#,
        r#""inet6 ""#,
        "6",
        "null",
        r#"["inet6"]"#,
    ];
    for family in families {
        for list in ["public_ips", "public_ips_v6"] {
            let body = format!(
                r#"{{"{list}": [{{"family": {family}, "address": "2001:db8::1", "netmask": "64"}}]}}"#
            );
            let meta = metadata::parse(body.as_bytes()).unwrap();
            let built = plan::from_metadata(&meta, "vio0").unwrap();
            // public_ips_v6 entries without a family (or a null one) are IPv6.
            if list == "public_ips_v6" && family == "null" {
                assert_eq!(built.skipped, 0, "{body}");
                continue;
            }
            assert_eq!(built.plan, nothing(), "{body}");
            assert_eq!(built.skipped, 1, "{body}");
            assert_eq!(built.notes.len(), 1, "{body}: {:?}", built.notes);
            assert!(
                built.notes[0].starts_with(&format!("{list}[0]: "))
                    && built.notes[0].ends_with("entry skipped"),
                "{body}: {:?}",
                built.notes
            );
        }
    }
    // IPv4 entries are not scwd's: neither noted nor counted.
    let body = br#"{"public_ips": [{"family": "inet", "address": "192.0.2.1", "netmask": "32"}]}"#;
    let built = plan::from_metadata(&metadata::parse(body).unwrap(), "vio0").unwrap();
    assert_eq!((built.skipped, built.notes.len()), (0, 0));
}
