//! `set flow tcp-mss [N]` / `unset flow tcp-mss`: what they set, how they
//! print back, and what is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use esprit_config::Config;

fn printed(c: &Config) -> Vec<String> {
    c.to_lines().into_iter().filter(|l| l.starts_with("set flow")).collect()
}

fn round_trip(c: &Config) {
    let (again, _) = Config::load(&c.to_lines().join("\n")).unwrap();
    assert_eq!(&again, c);
}

#[test]
fn tcp_mss_is_set_printed_and_unset() {
    let mut c = Config::default();
    assert_eq!(c.tcp_mss(), None);
    assert!(printed(&c).is_empty());
    // Without a number: ScreenOS's 1380.
    c.apply("set flow tcp-mss").unwrap();
    assert_eq!(c.tcp_mss(), Some(1380));
    assert_eq!(printed(&c), ["set flow tcp-mss 1380"]);
    round_trip(&c);
    c.apply("SET FLOW TCP-MSS 1200").unwrap();
    assert_eq!(c.tcp_mss(), Some(1200));
    assert_eq!(printed(&c), ["set flow tcp-mss 1200"]);
    round_trip(&c);
    for n in ["64", "65535"] {
        c.apply(&format!("set flow tcp-mss {n}")).unwrap();
        assert_eq!(c.tcp_mss().map(|m| m.to_string()).as_deref(), Some(n));
    }
    c.apply("unset flow tcp-mss").unwrap();
    assert_eq!(c.tcp_mss(), None);
    assert!(printed(&c).is_empty());
    // Unsetting what is not set is not an error (ScreenOS neither).
    c.apply("unset flow tcp-mss").unwrap();
}

#[test]
fn bad_tcp_mss_lines_are_refused_with_their_exact_message() {
    let cases = [
        ("set flow tcp-mss 63", r#""set flow tcp-mss 63": bad MSS "63": expected a number from 64 to 65535"#),
        (
            "set flow tcp-mss 65536",
            r#""set flow tcp-mss 65536": bad MSS "65536": expected a number from 64 to 65535"#,
        ),
        ("set flow tcp-mss big", r#""set flow tcp-mss big": bad MSS "big": not a decimal number"#),
        (
            "set flow tcp-mss 1380 1400",
            r#""set flow tcp-mss 1380 1400": unknown word "1400" after "set flow tcp-mss 1380": expected end of line"#,
        ),
        ("set flow", r#""set flow": missing argument after "set flow": expected tcp-mss"#),
        (
            "set flow tcp-syn-check",
            r#""set flow tcp-syn-check": unknown word "tcp-syn-check" after "set flow": expected tcp-mss"#,
        ),
        ("unset flow", r#""unset flow": missing argument after "unset flow": expected tcp-mss"#),
        (
            "unset flow tcp-mss 1380",
            r#""unset flow tcp-mss 1380": unknown word "1380" after "unset flow tcp-mss": expected end of line"#,
        ),
    ];
    let mut got = Vec::new();
    for (line, want) in cases {
        let mut c = Config::default();
        c.apply("set flow tcp-mss 1300").unwrap();
        let e = c.apply(line).expect_err(line).to_string();
        if e != want {
            got.push(format!("{line}\n   got:      {e}\n   expected: {want}"));
        }
        // Nothing changed.
        assert_eq!(c.tcp_mss(), Some(1300), "{line}");
    }
    assert!(got.is_empty(), "{}", got.join("\n"));
}
