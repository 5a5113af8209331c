//! Golden tests of every `get` command, text and JSON, on one known state:
//! the seed's gateway 1 (AutoKey VPN `test` with HEX ID 1, four proxy-IDs
//! on tunnel.1 with tunnel IDs 1 to 4, proxy-id check, two of them
//! negotiated), a manual-key VPN `lab` on
//! tunnel.2, an empty tunnel.3, fixed fastpathd counters, a fixed IKE view
//! and events at a fixed time.
//!
//! The expected outputs are the files in `control/controld/tests/golden/`.
//! After an intended change of an output, regenerate them and review the
//! difference:
//!
//! ```text
//! ESPRIT_BLESS=1 cargo test -p esprit-controld golden
//! git diff control/controld/tests/golden/
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use esprit_config::Config;
use esprit_fastpath_api::{Direction, FastPathEvent, SaStatsView, Stats, WorkerCounters, WorkerStatsView};
use esprit_ike::{ChildSa, DirectionKeys, Lifetime, Suite, UdpEncap};
use esprit_policy::ProxyId;
use zeroize::Zeroizing;

use super::{ike_update, monitor_tick, offline, sync, FakeFastPath};
use crate::core::controller::Controller;
use crate::core::events::{EventKind, Severity};
use crate::core::state::State;
use crate::core::translate::sa_id;
use crate::ike::{child_sa_pair, ChildSaView, IkeView, IkeVpn, IsakmpSaView, IsakmpState};

/// 2026-11-27T15:43:38Z.
fn fixed_clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_794_218)
}

const LAB_KEY: &str = "000102030405060708090a0b0c0d0e0f";
const LAB_AUTH_KEY: &str = "c3c3c3c3c4c4c4c4c5c5c5c5c6c6c6c6c7c7c7c7c8c8c8c8c9c9c9c9cacacaca";

fn config_text() -> String {
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/tests/data/seed-gateway1.conf"
    ))
    .unwrap()
    .replace("port lan0", "port lan1");
    format!(
        "{seed}
set interface ethernet0/3 zone Trust
set interface ethernet0/3 ip 10.1.2.1/24
set interface ethernet0/3 port lan2
set interface tunnel.2 zone Untrust
set interface tunnel.2 ip unnumbered interface ethernet0/2
set interface tunnel.2 mtu 1380
set interface tunnel.3 zone Untrust
set interface tunnel.3 ip unnumbered interface ethernet0/2
set vpn lab manual 3001 4001 gateway 203.0.113.3 outgoing-interface ethernet0/2 esp aes128 key {LAB_KEY} auth sha2-256 key {LAB_AUTH_KEY} replay window 256 esn
set vpn lab id 0x10 bind interface tunnel.2
set vpn lab proxy-id local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16 any
set route 10.3.0.0/16 interface tunnel.2
set vpnmonitor interval 2 threshold 3
set vpn test monitor source-interface ethernet0/1 destination-ip 10.2.1.10 rekey
"
    )
}

fn pid(l: u8, r: u8) -> ProxyId {
    format!("local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 ANY").parse().unwrap()
}

fn child(proxy_id: ProxyId, n: u32, encap: bool, kilobytes: u32) -> ChildSa {
    let keys = |b: u8| DirectionKeys {
        encryption: Zeroizing::new(vec![b; 16]),
        integrity: Zeroizing::new(vec![b; 20]),
    };
    ChildSa {
        proxy_id,
        suite: Suite::Aes128CbcSha1,
        spi_in: 0xc100_0000 + n,
        spi_out: 0xc200_0000 + n,
        keys_in: keys(0xa1),
        keys_out: keys(0xb2),
        lifetime: Lifetime { seconds: 3600, kilobytes },
        encap: encap.then_some(UdpEncap { local_port: 4500, remote_port: 4500 }),
        local: if encap { "198.51.100.1:4500" } else { "198.51.100.1:500" }.parse().unwrap(),
        remote: if encap { "203.0.113.2:4500" } else { "203.0.113.2:500" }.parse().unwrap(),
        initiator: true,
        message_id: n,
        pfs: false,
        esn: false,
    }
}

/// The known state (see the module documentation).
pub(super) fn golden_controller() -> Controller {
    let (config, _) = Config::load(&config_text()).unwrap_or_else(|e| panic!("{e}"));
    let mut c = Controller::new(config, None, BTreeMap::new(), State::default()).unwrap();
    c.set_clock(fixed_clock);
    let mut fp = FakeFastPath::new();
    sync(&mut c, &mut fp).unwrap();

    // IKE negotiated proxy-IDs 1-1 (plain ESP) and 2-2 (NAT-T, 100 MB).
    let vpn = IkeVpn {
        name: "test".into(),
        hex_id: 1,
        tunnel: 1,
        proxy_ids: vec![pid(1, 1), pid(1, 2), pid(2, 1), pid(2, 2)],
        replay_window: 0,
        idle_secs: 0,
    };
    let mut add = Vec::new();
    add.extend(child_sa_pair(&vpn, &child(pid(1, 1), 1, false, 0), 1).unwrap());
    add.extend(child_sa_pair(&vpn, &child(pid(2, 2), 2, true, 102_400), 2).unwrap());
    ike_update(&mut c, add, &[], Some(&mut fp)).unwrap();

    let id = |hex, dir, serial| sa_id(hex, dir, serial);
    let sa = |id: u64, spi: u32, worker: u16, packets: u64, errors: u64, seq: u64| SaStatsView {
        id,
        spi,
        direction: Some(if id & (1 << 31) != 0 { Direction::Outbound } else { Direction::Inbound }),
        worker,
        packets,
        bytes: packets * 100,
        errors,
        seq,
        ..SaStatsView::default()
    };
    c.observe(Stats {
        workers: vec![
            WorkerStatsView {
                worker: 0,
                core: Some(1),
                counters: WorkerCounters {
                    rx_packets: 5000,
                    rx_bytes: 600_000,
                    tx_packets: 4900,
                    tx_bytes: 650_000,
                    forwarded: 100,
                    encrypted: 2400,
                    decrypted: 2300,
                    held: 4,
                    released: 3,
                    acquires: 2,
                    ..WorkerCounters::default()
                },
                drops: vec![("no-sa".into(), 1), ("proxy-id-mismatch".into(), 7)],
                ..WorkerStatsView::default()
            },
            WorkerStatsView {
                worker: 1,
                core: Some(2),
                counters: WorkerCounters {
                    rx_packets: 3000,
                    rx_bytes: 360_000,
                    tx_packets: 2990,
                    tx_bytes: 390_000,
                    encrypted: 1500,
                    decrypted: 1490,
                    ..WorkerCounters::default()
                },
                drops: vec![("replay".into(), 2)],
                ..WorkerStatsView::default()
            },
        ],
        sas: vec![
            sa(id(1, Direction::Inbound, 1), 0xc100_0001, 0, 1200, 0, 1200),
            sa(id(1, Direction::Outbound, 1), 0xc200_0001, 0, 1300, 0, 1300),
            sa(id(1, Direction::Inbound, 2), 0xc100_0002, 1, 900, 2, 905),
            sa(id(1, Direction::Outbound, 2), 0xc200_0002, 1, 950, 0, 950),
            sa(id(0x10, Direction::Inbound, 0), 0x3001, 0, 40, 0, 40),
            sa(id(0x10, Direction::Outbound, 0), 0x4001, 1, 50, 0, 50),
        ],
        ..Stats::default()
    });

    let addr = |s: &str| s.parse().unwrap();
    c.set_ike_view(IkeView {
        gateways: vec![IsakmpSaView {
            version: "IKEv1",
            gateway: "test".into(),
            local: addr("198.51.100.1:4500"),
            remote: addr("203.0.113.2:4500"),
            state: IsakmpState::Established,
            initiator_cookie: Some("0102030405060708".into()),
            responder_cookie: Some("a1a2a3a4a5a6a7a8".into()),
            initiator: Some(true),
            proposal: Some("aes128-sha1-modp2048".into()),
            nat_t: Some(true),
            lifetime_secs: 28800,
            remaining_secs: Some(27000),
            children: 2,
        }],
        children: vec![
            ChildSaView {
                gateway: "test".into(),
                vpn: "test".into(),
                proxy_id: pid(1, 1).to_string(),
                ids: [id(1, Direction::Inbound, 1), id(1, Direction::Outbound, 1)],
                remaining_secs: Some(3000),
            },
            ChildSaView {
                gateway: "test".into(),
                vpn: "test".into(),
                proxy_id: pid(2, 2).to_string(),
                ids: [id(1, Direction::Inbound, 2), id(1, Direction::Outbound, 2)],
                remaining_secs: Some(3300),
            },
        ],
        negotiating: vec![("test".into(), pid(1, 2).to_string())],
        discards: {
            let mut d = esprit_ike::Discards::default();
            for _ in 0..3 {
                d.add(esprit_ike::Discard::HalfOpenLimitSource);
            }
            d.add(esprit_ike::Discard::ReplayedMessageId);
            d
        },
        v2_dropped: {
            let mut d = esprit_ike::v2::dropped::DroppedCounts::default();
            d.add(esprit_ike::v2::dropped::Dropped::ReplayedRequest);
            d
        },
    });

    c.note_event(Severity::Info, EventKind::FastPath, "fastpathd connected");
    c.record_ike_log("gateway test: phase 1 up (we initiated, aes128-sha1-modp2048, NAT-T on: ESP in UDP 4500, 198.51.100.1:4500 <-> 203.0.113.2:4500)");
    c.record_ike_log(&format!(
        "gateway test vpn test proxy-id {}: child SA up (we initiated, Quick Mode 00000001): SPI in c1000001 out c2000001, aes128-sha1, ESP, lifetime 3600 s",
        pid(1, 1)
    ));
    c.record_ike_log(&format!(
        "gateway test: Quick Mode 0000beef: the peer asked for proxy-id local-ip 10.1.9.0/24 remote-ip 10.2.9.0/24 ANY, which is not configured (configured: {}; {}; {}; {}): refused with INVALID-ID-INFORMATION",
        pid(1, 1),
        pid(1, 2),
        pid(2, 1),
        pid(2, 2)
    ));
    c.record_fastpath_event(&FastPathEvent::SoftExpire {
        sa: id(1, Direction::Outbound, 2),
        reason: "volume".into(),
    });
    // The VPN monitor's first probe went out through pair 1-1 and came back.
    monitor_tick(&mut c, std::time::Instant::now(), &mut fp).unwrap();
    c.record_fastpath_event(&FastPathEvent::ProbeReply {
        vpn: 1,
        tunnel: 1,
        sa: id(1, Direction::Inbound, 1),
        src: "10.2.1.10".parse().unwrap(),
        dst: "10.1.1.1".parse().unwrap(),
        ident: crate::core::monitor::MONITOR_IDENT,
        seq: 1,
    });
    c
}

/// Every `get` of the golden state, with the file its output is kept in.
pub(super) const COMMANDS: &[(&str, &str)] = &[
    ("get sa", "get-sa"),
    ("get sa active", "get-sa-active"),
    ("get sa stat", "get-sa-stat"),
    ("get sa id 1", "get-sa-id-1"),
    ("get sa id 2", "get-sa-id-2"),
    ("get sa id 4", "get-sa-id-4"),
    ("get sa id 10", "get-sa-id-10"),
    ("get ike cookies", "get-ike-cookies"),
    ("get vpn", "get-vpn"),
    ("get vpn lab", "get-vpn-lab"),
    ("get vpn test", "get-vpn-test"),
    ("get interface", "get-interface"),
    ("get interface tunnel.1", "get-interface-tunnel.1"),
    ("get interface tunnel.3", "get-interface-tunnel.3"),
    ("get route", "get-route"),
    ("get counter", "get-counter"),
    ("get event", "get-event"),
    ("get config", "get-config"),
];

fn golden_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

#[test]
fn golden_outputs_of_every_get_in_text_and_json() {
    let bless = std::env::var_os("ESPRIT_BLESS").is_some_and(|v| v == "1");
    let mut c = golden_controller();
    let mut failures = Vec::new();
    for (command, file) in COMMANDS {
        for (line, ext) in [(command.to_string(), "txt"), (format!("{command} --json"), "json")] {
            let r = offline(&mut c, &line);
            assert_eq!(r.result, Ok(()), "{line}");
            let mut got = r.output.join("\n");
            got.push('\n');
            if ext == "json" {
                serde_json::from_str::<serde_json::Value>(&got).unwrap_or_else(|e| panic!("{line}: {e}"));
            }
            for secret in ["#ABC123", LAB_KEY, LAB_AUTH_KEY, "a1a1a1a1", "b2b2b2b2"] {
                assert!(!got.contains(secret), "{line} shows a secret");
            }
            let path = golden_dir().join(format!("{file}.{ext}"));
            if bless {
                std::fs::create_dir_all(golden_dir()).unwrap();
                std::fs::write(&path, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != got {
                failures.push(format!("{line}: differs from {}:\n{got}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "regenerate with ESPRIT_BLESS=1 if intended:\n{}", failures.join("\n"));
}

#[test]
fn get_sa_keeps_the_format_scripts_parse() {
    // scripts/interop.sh counts ' A/U ' rows and reads the SPI as field 5.
    let mut c = golden_controller();
    let out = offline(&mut c, "get sa").output;
    assert_eq!(out[0], "total configured sa: 5");
    let up: Vec<&String> = out.iter().filter(|l| l.contains(" A/U ")).collect();
    assert_eq!(up.len(), 4);
    let spis: Vec<&str> = up.iter().map(|l| l.split_whitespace().nth(4).unwrap()).collect();
    // One HEX ID per proxy-ID's pair, its inbound row before its
    // outbound row (as ScreenOS, KB16008).
    assert_eq!(spis, ["c1000001", "c2000001", "c1000002", "c2000002"]);
    assert_eq!(out.iter().filter(|l| l.contains(" A/- ")).count(), 2);
}

#[test]
fn bad_get_and_clear_commands_answer_an_error_naming_the_word() {
    let mut c = golden_controller();
    for (line, want) in [
        ("get", "get: what? expected sa, ike cookies, vpn, interface, route, counter, event, config"),
        (
            "get frob",
            "get frob: unknown word \"frob\": expected sa, ike cookies, vpn, interface, route, counter, event, config",
        ),
        ("get sa frob", "get sa frob: unknown word \"frob\": expected active, stat, or id HEX-ID"),
        ("get sa id", "get sa id: give a HEX ID (the first column of get sa)"),
        (
            "get sa id zz",
            "get sa id zz: \"zz\" is not a HEX ID (hexadecimal, as the first column of get sa: 00000001 or 0x1)",
        ),
        ("get sa id 99", "get sa id 99: no SA with HEX ID 00000099 (see get sa)"),
        ("get sa id 1 2", "get sa id 1 2: unknown word \"2\": expected nothing after the HEX ID"),
        ("get ike", "get ike: expected cookies"),
        ("get ike frob", "get ike frob: unknown word \"frob\": expected cookies"),
        ("get vpn nope", "get vpn nope: no vpn \"nope\" (configured: lab, test)"),
        ("get vpn lab x --json", "get vpn lab x: unknown word \"x\": expected nothing more"),
        (
            "get interface tunnel.9",
            "get interface tunnel.9: no interface \"tunnel.9\" (configured: ethernet0/1, ethernet0/2, ethernet0/3, tunnel.1, tunnel.2, tunnel.3)",
        ),
        ("get route x", "get route x: unknown word \"x\": expected nothing more"),
        ("clear", "clear: what? expected sa [HEX-ID]"),
        ("clear ike", "clear ike: unknown word \"ike\": expected sa [HEX-ID]"),
        (
            "clear sa 10",
            "clear sa 10: HEX ID 00000010 is vpn \"lab\"'s manual-key SA pair: manual-key SAs cannot be cleared (change or unset the vpn instead)",
        ),
        ("clear sa 77", "clear sa 77: no SA with HEX ID 00000077 (see get sa)"),
        (
            "clear sa -1",
            "clear sa -1: \"-1\" is not a HEX ID (hexadecimal, as the first column of get sa: 00000001 or 0x1)",
        ),
    ] {
        let r = offline(&mut c, line);
        assert_eq!(r.result, Err(want.to_owned()), "{line}");
        assert!(r.output.is_empty(), "{line}");
    }
    assert!(c.take_clears().is_empty(), "a refused clear asks nothing of IKE");
}

#[test]
fn clear_sa_asks_ike_for_the_pair_of_its_hex_id_or_all() {
    let mut c = golden_controller();
    let words = |l: u8, r: u8| pid(l, r).to_string();
    let r = offline(&mut c, "clear sa 1");
    assert_eq!(
        r.output,
        [format!("HEX ID 00000001 (vpn \"test\" proxy-id {}): clearing its IKE SA pair", words(1, 1))]
    );
    // A full SA id (as in the log) names its proxy-ID's HEX ID: 2-2's is 4.
    let r = offline(&mut c, "clear sa 0x180000002");
    assert_eq!(
        r.output,
        [format!("HEX ID 00000004 (vpn \"test\" proxy-id {}): clearing its IKE SA pair", words(2, 2))]
    );
    let r = offline(&mut c, "clear sa 2");
    assert_eq!(
        r.output,
        [format!(
            "HEX ID 00000002 (vpn \"test\" proxy-id {}): no IKE SA pair is up, nothing to clear",
            words(1, 2)
        )]
    );
    let r = offline(&mut c, "clear sa");
    assert_eq!(
        r.output,
        [
            "clearing 2 IKE SA pair(s)",
            "1 manual-key SA pair(s) left as they are: manual-key SAs cannot be cleared"
        ]
    );
    // IKE is asked for one proxy-ID of the VPN (HEX ID 1) at a time.
    assert_eq!(
        c.take_clears(),
        [Some((1, words(1, 1))), Some((1, words(2, 2))), Some((1, words(1, 2))), None]
    );
    let last = c.events().iter().last().unwrap();
    assert_eq!((last.kind, last.message.as_str()), (EventKind::Config, "operator: clear sa"));
}

/// `get sa`: one HEX ID per proxy-ID's pair (the VPN's own for the first,
/// 2, 3, 4 for the others), and every label of the header over its column
/// whatever the algorithm's name.
#[test]
fn get_sa_gives_each_proxy_id_its_own_hex_id_in_aligned_columns() {
    let mut c = golden_controller();
    let out = offline(&mut c, "get sa").output;
    assert_eq!(super::hex_id_column(&out), super::hex_id_rows(&[1, 2, 3, 4, 0x10]));
    // Each row of one proxy-ID: 2-2 (NAT-T) under 4, 1-1 under 1.
    assert!(out.iter().any(|l| l.starts_with("00000004< 203.0.113.2      4500 esp:aes128/sha1   c1000002")));
    assert!(out.iter().any(|l| l.starts_with("00000001> 203.0.113.2       500 esp:aes128/sha1   c2000001")));
    // Columns: a label's first character is where its left-aligned
    // field starts, its last where a right-aligned field ends.
    let header = &out[1];
    let starts = |l: &str| -> Vec<usize> {
        let b = l.as_bytes();
        (0..b.len()).filter(|&i| b[i] != b' ' && (i == 0 || b[i - 1] == b' ')).collect()
    };
    let ends = |l: &str| -> Vec<usize> {
        let b = l.as_bytes();
        (0..b.len()).filter(|&i| b[i] != b' ' && (i + 1 == b.len() || b[i + 1] == b' ')).collect()
    };
    let (hs, he) = (starts(header), ends(header));
    // HEX ID is two words: drop "ID"'s start and "HEX"'s end.
    let hs: Vec<usize> = hs.into_iter().filter(|&i| i != 4).collect();
    let he: Vec<usize> = he.into_iter().filter(|&i| i != 2).collect();
    for row in &out[2..] {
        let (rs, re) = (starts(row), ends(row));
        assert_eq!(rs.len(), 10, "{row}");
        // Left-aligned: HEX ID, Gateway, Algorithm, SPI, Sta, vsys.
        for k in [0, 1, 3, 4, 7, 9] {
            assert_eq!(rs[k], hs[k], "column {k} of {row:?} under {header:?}");
        }
        // Right-aligned: Port, Life:sec, kb, PID.
        for k in [2, 5, 6, 8] {
            assert_eq!(re[k], he[k], "column {k} of {row:?} under {header:?}");
        }
    }
    // The longest algorithm name fits its column.
    let row = crate::core::sa::SaRow {
        hex_id: 0x7,
        id: None,
        direction: Direction::Inbound,
        gateway: "203.0.113.254".into(),
        port: 4500,
        algorithm: "esp:aes256/sha256".into(),
        spi: 0xdead_beef,
        life: "28800".into(),
        sta: "A/U",
        vpn: "v".into(),
        proxy_id: String::new(),
        manual: false,
    };
    assert_eq!(starts(&row.line())[4], hs[4], "{}", row.line());
}

/// A proxy-ID keeps its HEX ID across a change that does not remove it
/// (one removed, one added before the others) and across a restart of
/// controld (the state directory holds the numbers).
#[test]
fn hex_ids_of_proxy_ids_survive_reloads_and_restarts() {
    let mut c = golden_controller();
    let pid = |l: u8, r: u8| format!("local-ip 10.1.{l}.0/24 remote-ip 10.2.{r}.0/24 any");
    assert_eq!(offline(&mut c, &format!("unset vpn test proxy-id {}", pid(1, 2))).result, Ok(()));
    assert_eq!(offline(&mut c, &format!("set vpn test proxy-id {}", pid(2, 3))).result, Ok(()));
    let stat = |c: &mut Controller| -> Vec<String> {
        offline(c, "get sa stat").output[2..]
            .iter()
            .take_while(|l| !l.is_empty())
            .map(|l| l.split_whitespace().take(6).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let ids = stat(&mut c);
    assert_eq!(
        ids,
        [
            "00000001 203.0.113.2 local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24",
            // The removed proxy-ID's number goes to the new one.
            "00000002 203.0.113.2 local-ip 10.1.2.0/24 remote-ip 10.2.3.0/24",
            "00000003 203.0.113.2 local-ip 10.1.2.0/24 remote-ip 10.2.1.0/24",
            "00000004 203.0.113.2 local-ip 10.1.2.0/24 remote-ip 10.2.2.0/24",
            "00000010 203.0.113.3 local-ip 10.1.3.0/24 remote-ip 10.3.0.0/16",
        ]
    );
    // A restart from the state written (its configuration file lists the
    // proxy-IDs in another order): the same numbers.
    let state = c.state();
    let mut lines = c.config().to_lines();
    let at: Vec<usize> =
        (0..lines.len()).filter(|i| lines[*i].starts_with("set vpn \"test\" proxy-id local-ip")).collect();
    let reversed: Vec<String> = at.iter().rev().map(|i| lines[*i].clone()).collect();
    for (i, l) in at.iter().zip(reversed) {
        lines[*i] = l;
    }
    let (config, _) = Config::load(&lines.join("\n")).unwrap_or_else(|e| panic!("{e}"));
    let mut restarted = Controller::new(config, None, BTreeMap::new(), state).unwrap();
    restarted.set_clock(fixed_clock);
    let mut again = stat(&mut restarted);
    again.sort();
    assert_eq!(again, ids);
}

/// `get sa id N` shows one proxy-ID's pair with the status word of `get
/// vpn`; a proxy-ID never negotiated is READY (inactive), as under the
/// first rule set its tunnel interface would be.
#[test]
fn get_sa_id_is_one_pair_and_its_word_is_get_vpns() {
    let mut c = golden_controller();
    let out = offline(&mut c, "get sa id 2").output;
    assert_eq!(
        out,
        [
            "HEX ID 00000002: vpn \"test\", AutoKey IKE, gateway test (peer 203.0.113.2), tunnel.1"
                .to_owned(),
            format!("  proxy-id {}: READY", pid(1, 2)),
            "    no SA: negotiated when traffic matches the proxy-id".to_owned(),
        ]
    );
    let vpn = offline(&mut c, "get vpn test").output.join("\n");
    assert!(vpn.contains(&format!("00000002  {} READY", pid(1, 2))), "{vpn}");
}

/// A restarted fastpathd gets the IKE SAs back with their windows
/// resumed, and controld is told which to rekey at once (not the manual
/// ones: they cannot be).
#[test]
fn a_fastpathd_restart_lists_the_ike_sas_to_rekey() {
    let mut c = golden_controller();
    c.fastpath_lost();
    let mut fresh = FakeFastPath::new();
    let r = sync(&mut c, &mut fresh).unwrap();
    let mut ike: Vec<u64> = r.resumed_ike.clone();
    ike.sort_unstable();
    let want: Vec<u64> = [(1, 1), (1, 2)]
        .iter()
        .flat_map(|&(hex, serial)| {
            [sa_id(hex, Direction::Inbound, serial), sa_id(hex, Direction::Outbound, serial)]
        })
        .collect::<std::collections::BTreeSet<u64>>()
        .into_iter()
        .collect();
    assert_eq!(ike, want);
    assert_eq!(r.added, 6, "the manual pair too, without a rekey");
}

/// The keys appear only when the operator names them.
#[test]
fn secrets_show_only_in_get_config_secrets() {
    let mut c = golden_controller();
    let secrets = ["#ABC123", LAB_KEY, LAB_AUTH_KEY];
    for line in ["get config", "get config --json"] {
        let text = offline(&mut c, line).output.join("\n");
        for s in secrets {
            assert!(!text.contains(s), "{line} shows a secret: {text}");
        }
        assert!(
            text.contains(r#"preshare \"********\""#) || text.contains(r#"preshare "********""#),
            "{text}"
        );
    }
    let masked = offline(&mut c, "get config").output;
    assert!(
        masked.iter().any(|l| l.contains(r#"esp aes128 key "********" auth sha2-256 key "********" replay"#)),
        "{masked:?}"
    );
    for line in ["get config secrets", "get config secrets --json"] {
        let text = offline(&mut c, line).output.join("\n");
        for s in secrets {
            assert!(text.contains(s), "{line} lacks {s}");
        }
    }
    assert_eq!(
        offline(&mut c, "get config secret").result,
        Err(r#"get config secret: unknown word "secret": expected secrets, or nothing"#.into())
    );
    // Every other get, in text and JSON, and the event log: no secret.
    for (command, _) in COMMANDS {
        for line in [command.to_string(), format!("{command} --json")] {
            let text = offline(&mut c, &line).output.join("\n");
            for s in secrets {
                assert!(!text.contains(s), "{line} shows a secret");
            }
        }
    }
    let line = "set ike gateway test address 203.0.113.2 Main outgoing-interface ethernet0/2 preshare \"s3cr3t-psk\" sec-level standard";
    assert_eq!(offline(&mut c, line).result, Ok(()));
    let events = offline(&mut c, "get event --json").output.join("\n");
    assert!(!events.contains("s3cr3t-psk"), "{events}");
}

#[test]
fn configuration_changes_are_events_without_secrets() {
    let mut c = golden_controller();
    let line = format!("set vpn lab manual 3001 4001 gateway 203.0.113.3 outgoing-interface ethernet0/2 esp aes128 key {} auth sha2-256 key {}", "ff".repeat(16), "ee".repeat(32));
    assert_eq!(offline(&mut c, &line).result, Ok(()));
    let e = c.events().iter().last().unwrap();
    assert_eq!(e.kind, EventKind::Config);
    assert!(e.message.starts_with("configuration changed: set vpn lab manual"), "{}", e.message);
    assert!(!e.message.contains("ffff"), "{}", e.message);
    // A refused change is no event.
    let n = c.events().len();
    assert!(offline(&mut c, "unset vpn nothere").result.is_err());
    assert_eq!(c.events().len(), n);
}

#[test]
fn the_proxy_id_mismatch_event_carries_its_fields() {
    let c = golden_controller();
    let e = c.events().iter().find(|e| e.kind == EventKind::ProxyIdMismatch).unwrap();
    assert_eq!(e.severity, Severity::Warning);
    assert_eq!(e.time, "2026-11-27T15:43:38Z");
    assert_eq!((e.gateway.as_deref(), e.peer.as_deref()), (Some("test"), Some("203.0.113.2")));
    assert_eq!(e.proposed.as_deref(), Some("local-ip 10.1.9.0/24 remote-ip 10.2.9.0/24 ANY"));
    assert_eq!(e.configured.len(), 4);
    assert_eq!(e.configured[3], pid(2, 2).to_string());
}
