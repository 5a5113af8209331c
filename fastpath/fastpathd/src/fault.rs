//! Fault injection for tests of the watchdog (built only with the
//! `fault-injection` feature: a release build has no such code, so no
//! stranger can reach it). `ESPRIT_FASTPATHD_FAULT=KIND:WORKER:MS` makes
//! worker WORKER panic (`panic`) or stop polling (`stall`) MS milliseconds
//! after it started.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Panic,
    Stall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    kind: FaultKind,
    worker: u16,
    after: Duration,
}

impl Fault {
    /// The fault named by `ESPRIT_FASTPATHD_FAULT`, if any.
    pub(crate) fn from_env() -> Result<Option<Fault>, String> {
        match std::env::var("ESPRIT_FASTPATHD_FAULT") {
            Ok(v) => Fault::parse(&v).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn parse(text: &str) -> Result<Fault, String> {
        let bad = || format!("ESPRIT_FASTPATHD_FAULT={text:?}: expected panic|stall:WORKER:MS");
        let mut parts = text.split(':');
        let kind = match parts.next() {
            Some("panic") => FaultKind::Panic,
            Some("stall") => FaultKind::Stall,
            _ => return Err(bad()),
        };
        let worker = parts.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let ms: u64 = parts.next().and_then(|m| m.parse().ok()).ok_or_else(bad)?;
        Ok(Fault { kind, worker, after: Duration::from_millis(ms) })
    }

    /// Called by worker `index` on every turn of its loop.
    pub(crate) fn play(self, index: u16, elapsed: Duration) {
        if index != self.worker || elapsed < self.after {
            return;
        }
        match self.kind {
            FaultKind::Panic => panic!("injected fault: ESPRIT_FASTPATHD_FAULT=panic"),
            FaultKind::Stall => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            Fault::parse("stall:1:250"),
            Ok(Fault { kind: FaultKind::Stall, worker: 1, after: Duration::from_millis(250) })
        );
        assert!(Fault::parse("explode:0:1").is_err());
    }
}
