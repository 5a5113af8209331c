//! A ScreenOS configuration pasted into the shell, line by line.
//!
//! controld checks each `set` line against the configuration it has, but
//! a saved configuration does not always define a thing before the line
//! that names it: the seed's order (KB16008) binds `vpn "test"` to
//! tunnel.1 before `set interface "tunnel.1" ...`. Such a line **waits**:
//! the shell says so, keeps it (in memory only), and sends it again after
//! each line that succeeds, until it succeeds too; what still waits when
//! the paste ends (Ctrl-D, `quit`, the end of standard input) is reported
//! as failed. Only a `set` line whose error says that something it names
//! is not defined yet waits ([`waits_for_definition`]); every other error
//! is an error at once.
//!
//! ScreenOS's sub-contexts: `set policy id N` alone and `set vrouter NAME`
//! alone open one, and ScreenOS closes it with `exit`. While one is open,
//! `exit` goes to controld (which closes the policy's context, see
//! `esprit_config::kept`) instead of leaving the shell; `quit` always
//! leaves.

use esprit_config::lexer::lex;

/// True when controld refused a `set` line only because something it
/// names is not defined yet (an interface, a gateway, a VPN, the address
/// of the port a tunnel interface borrows): the texts of
/// `esprit_config::ErrorKind`'s `UnknownReference`, `NoSuchObject` and
/// that `WrongReference`.
pub fn waits_for_definition(line: &str, error: &str) -> bool {
    let set = line.split_whitespace().next().is_some_and(|w| w.eq_ignore_ascii_case("set"));
    set && (error.contains(" names unknown ")
        || error.contains(" does not exist")
        || (error.contains(" names ") && error.ends_with("but it has no IP address")))
}

/// True for `set policy id N` and `set vrouter NAME` alone: ScreenOS
/// enters a sub-context that `exit` closes.
pub fn opens_context(line: &str) -> bool {
    let Ok(tokens) = lex(line) else { return false };
    let w: Vec<String> = tokens.iter().map(|t| t.text.to_ascii_lowercase()).collect();
    matches!(
        w.iter().map(String::as_str).collect::<Vec<_>>().as_slice(),
        ["set", "policy", "id", _] | ["set", "vrouter", _]
    )
}

/// What the shell keeps between the lines of a paste.
#[derive(Debug, Default)]
pub struct Paste {
    /// Lines waiting for what they name, in their order, with the last
    /// error.
    pub waiting: Vec<(String, String)>,
    /// A ScreenOS sub-context is open.
    pub context: bool,
}

impl Paste {
    /// A line succeeded.
    pub fn succeeded(&mut self, line: &str) {
        if opens_context(line) {
            self.context = true;
        }
    }

    /// `exit`: true when it closes a sub-context (send it to controld),
    /// false when it leaves the shell.
    pub fn exit_closes_context(&mut self) -> bool {
        std::mem::take(&mut self.context)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use esprit_config::Config;

    const PORT: &str = "set interface ethernet0/2 ip 198.51.100.1/24";
    const GATEWAY: &str = r#"set ike gateway "g" address 203.0.113.2 Main outgoing-interface "ethernet0/2" preshare "a-pre-shared-key-long-enough" sec-level standard"#;
    const VPN: &str = r#"set vpn "v" gateway "g" no-replay tunnel idletime 0 sec-level standard"#;

    /// The error controld answers for `line` on a configuration of `before`.
    fn error(before: &[&str], line: &str) -> String {
        let mut c = Config::new();
        for l in before {
            c.apply(l).unwrap();
        }
        c.apply(line).unwrap_err().to_string()
    }

    #[test]
    fn the_errors_of_forward_references_wait_and_no_other() {
        // The configuration crate's own texts: if one changes, this fails.
        for (before, line) in [
            (&[PORT, GATEWAY, VPN][..], r#"set vpn "v" id 0x1 bind interface tunnel.1"#),
            (&[PORT][..], VPN),
            (&[][..], "set interface tunnel.1 ip unnumbered interface ethernet0/2"),
            (
                &["set interface ethernet0/2 zone Untrust"][..],
                "set interface tunnel.1 ip unnumbered interface ethernet0/2",
            ),
            (&[PORT][..], "set route 10.2.1.0/24 interface tunnel.1"),
            (&[][..], r#"set vpn "v" proxy-id local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 any"#),
        ] {
            let e = error(before, line);
            assert!(waits_for_definition(line, &e), "{line}: {e}");
        }
        for (before, line) in [
            (&[][..], "set interface ethernet0/2 mtu 99999"),
            (&[PORT][..], "set interface tunnel.1 ip unnumbered interface tunnel.2"),
            (&[][..], "set nonsense"),
        ] {
            let e = error(before, line);
            assert!(!waits_for_definition(line, &e), "{line}: {e}");
        }
        // An unset never waits.
        let e = error(&[], "unset vpn v");
        assert!(!waits_for_definition("unset vpn v", &e), "{e}");
    }

    #[test]
    fn policy_and_vrouter_contexts_take_exit() {
        let mut p = Paste::default();
        assert!(!p.exit_closes_context(), "no context: exit leaves");
        p.succeeded(r#"set policy id 1 from "Trust" to "Untrust" "Any" "Any" "ANY" permit"#);
        assert!(!p.exit_closes_context());
        p.succeeded("set policy id 1");
        assert!(p.exit_closes_context());
        assert!(!p.exit_closes_context(), "closed once");
        p.succeeded(r#"set vrouter "trust-vr""#);
        assert!(p.exit_closes_context());
        p.succeeded("set vrouter trust-vr sharable");
        assert!(!p.exit_closes_context());
    }
}
