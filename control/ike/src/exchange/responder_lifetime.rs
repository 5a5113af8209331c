//! RESPONDER-LIFETIME (RFC 2407 §4.6.3.1), as initiator: a responder
//! whose policy allows less than we proposed answers with its lifetime
//! and may say so in a notification naming the SA. We adopt a shorter
//! lifetime, seconds and kilobytes each on its own, and never a longer
//! one: the SA must not outlive what we asked for, whatever the peer
//! says. What is not adopted is counted ([`Discard::LifetimeLonger`],
//! [`Discard::LifetimeNotifyMalformed`]) and told in words
//! ([`Event::LifetimeIgnored`]); it never ends the exchange, since
//! notifications are informational (RFC 2408 §3.14).
//!
//! Where it is read: Quick Mode message 2 (protected by HASH(2)), and
//! Main Mode message 6 (encrypted under the new ISAKMP SA, read once
//! HASH_R has verified). An Aggressive Mode answer is in the clear and
//! its notifications unauthenticated: not read there.

use crate::config::Lifetime;
use crate::discard::Discard;
use crate::event::{Event, Exchange};
use crate::peer::Peer;
use crate::wire::{
    LifeAttributes, LifeDurations, NotifyPayload, NotifyType, DOI_IPSEC, LIFE_IPSEC, LIFE_ISAKMP,
};
use crate::Random;

const PROTO_ISAKMP: u8 = 1;
const PROTO_ESP: u8 = 3;

/// The SA a notification must name to be ours.
#[derive(Debug, Clone, Copy)]
pub(crate) enum NamedSa {
    /// An ESP SA pair: either SPI of the exchange (RFC 2407 §4.6.3.1 says
    /// the responder's inbound one; some name the pair by ours).
    Esp { spis: [u32; 2] },
    /// The ISAKMP SA: the cookie pair, or no SPI (RFC 2408 §3.14: the
    /// cookies are in the header).
    Isakmp { cookies: [u8; 16] },
}

impl NamedSa {
    fn protocol(self) -> u8 {
        match self {
            NamedSa::Esp { .. } => PROTO_ESP,
            NamedSa::Isakmp { .. } => PROTO_ISAKMP,
        }
    }

    /// The attribute numbers of the life pair: RFC 2407 §4.5's for ESP;
    /// for the ISAKMP SA both RFC 2409 Appendix A's and RFC 2407's, as
    /// §4.6.3.1 does not say which and neither means anything else in
    /// this list.
    fn numbering(self) -> &'static [LifeAttributes] {
        match self {
            NamedSa::Esp { .. } => &[LIFE_IPSEC],
            NamedSa::Isakmp { .. } => &[LIFE_ISAKMP, LIFE_IPSEC],
        }
    }
}

/// The notification type of a Notification payload body, read even when
/// the rest of it is malformed.
pub(crate) fn notify_type(body: &[u8]) -> Option<NotifyType> {
    body.get(6..8).map(|t| NotifyType::from_value(u16::from_be_bytes([t[0], t[1]])))
}

/// Reads a RESPONDER-LIFETIME body for `sa`; Err says why it is not ours
/// or not well formed.
fn read(body: &[u8], sa: NamedSa) -> Result<LifeDurations, String> {
    let n = NotifyPayload::parse(body).map_err(|e| e.to_string())?;
    if n.doi != DOI_IPSEC {
        return Err(format!("DOI {} (RESPONDER-LIFETIME is the IPsec DOI's, 1)", n.doi));
    }
    if n.protocol != sa.protocol() {
        return Err(format!("protocol {} where the SA is protocol {}", n.protocol, sa.protocol()));
    }
    match sa {
        NamedSa::Esp { spis } => {
            let spi = <[u8; 4]>::try_from(n.spi)
                .map_err(|_| format!("SPI size {} (an ESP SPI has 4 bytes)", n.spi.len()))?;
            let spi = u32::from_be_bytes(spi);
            if !spis.contains(&spi) {
                return Err(format!("names SPI {spi:08x}, not one of this exchange"));
            }
        }
        NamedSa::Isakmp { cookies } => {
            if !n.spi.is_empty() && n.spi != cookies {
                return Err(format!("SPI of {} bytes that is not this ISAKMP SA's cookie pair", n.spi.len()));
            }
        }
    }
    let mut d = LifeDurations::parse(n.data, sa.numbering()).map_err(|e| e.to_string())?;
    if matches!(sa, NamedSa::Isakmp { .. }) {
        // The ISAKMP SA is kept by time only.
        d.kilobytes = None;
    }
    Ok(d)
}

/// `agreed` shortened by what the responder told, measure by measure,
/// where that is not longer than `proposed` (0: no limit proposed, so
/// any limit is shorter). Returns the lifetime and the measures refused
/// as longer, in words.
pub(crate) fn shorten(agreed: Lifetime, proposed: Lifetime, told: LifeDurations) -> (Lifetime, Vec<String>) {
    let mut out = agreed;
    let mut longer = Vec::new();
    if let Some(v) = told.seconds {
        if proposed.seconds != 0 && v > proposed.seconds {
            longer.push(format!("{v} s where {} s was proposed", proposed.seconds));
        } else {
            out = out.min(Lifetime { seconds: v, kilobytes: 0 });
        }
    }
    if let Some(v) = told.kilobytes {
        if proposed.kilobytes != 0 && v > proposed.kilobytes {
            longer.push(format!("{v} KB where {} KB was proposed", proposed.kilobytes));
        } else {
            out = out.min(Lifetime { seconds: 0, kilobytes: v });
        }
    }
    (out, longer)
}

/// A lifetime as durations (0: not stated).
pub(crate) fn durations(l: Lifetime) -> LifeDurations {
    LifeDurations {
        seconds: (l.seconds > 0).then_some(l.seconds),
        kilobytes: (l.kilobytes > 0).then_some(l.kilobytes),
    }
}

impl<R: Random> Peer<R> {
    /// Counts and tells what was not adopted.
    pub(crate) fn lifetime_ignored(&mut self, exchange: Exchange, why: Discard, detail: String) {
        self.discards.add(why);
        self.events.push_back(Event::LifetimeIgnored { exchange, detail });
    }

    /// Applies the RESPONDER-LIFETIME notifications among `notifies`
    /// (Notification payload bodies) to `agreed`; returns the lifetime
    /// the SA gets.
    pub(crate) fn responder_lifetimes<'a>(
        &mut self,
        exchange: Exchange,
        notifies: impl Iterator<Item = &'a [u8]>,
        sa: NamedSa,
        proposed: Lifetime,
        mut agreed: Lifetime,
    ) -> Lifetime {
        for body in notifies.filter(|b| notify_type(b) == Some(NotifyType::ResponderLifetime)) {
            match read(body, sa) {
                Err(why) => self.lifetime_ignored(
                    exchange,
                    Discard::LifetimeNotifyMalformed,
                    format!("RESPONDER-LIFETIME ignored: {why}"),
                ),
                Ok(told) => {
                    let (next, longer) = shorten(agreed, proposed, told);
                    for l in longer {
                        self.lifetime_ignored(
                            exchange,
                            Discard::LifetimeLonger,
                            format!("RESPONDER-LIFETIME of {l}: longer, not adopted"),
                        );
                    }
                    agreed = next;
                }
            }
        }
        agreed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn life(seconds: u32, kilobytes: u32) -> Lifetime {
        Lifetime { seconds, kilobytes }
    }

    #[test]
    fn shorter_adopted_longer_refused_per_measure() {
        let p = life(3600, 100_000);
        let told = |s, k| LifeDurations { seconds: s, kilobytes: k };
        assert_eq!(shorten(p, p, told(Some(600), None)), (life(600, 100_000), vec![]));
        assert_eq!(shorten(p, p, told(None, Some(5000))), (life(3600, 5000), vec![]));
        let (l, longer) = shorten(p, p, told(Some(7200), Some(5000)));
        assert_eq!(l, life(3600, 5000));
        assert_eq!(longer, ["7200 s where 3600 s was proposed"]);
        let (l, longer) = shorten(p, p, told(Some(600), Some(200_000)));
        assert_eq!(l, life(600, 100_000));
        assert_eq!(longer, ["200000 KB where 100000 KB was proposed"]);
        // No volume limit proposed: any is shorter.
        assert_eq!(shorten(life(3600, 0), life(3600, 0), told(None, Some(10))), (life(3600, 10), vec![]));
        // Between what the SA payload gave and what was proposed: kept.
        assert_eq!(shorten(life(1000, 0), life(3600, 0), told(Some(2000), None)), (life(1000, 0), vec![]));
    }

    fn body(protocol: u8, spi: &[u8], data: &[u8]) -> Vec<u8> {
        NotifyPayload { doi: 1, protocol, spi, kind: NotifyType::ResponderLifetime, data }.emit()
    }

    #[test]
    fn read_checks_the_named_sa() {
        let esp = NamedSa::Esp { spis: [0xc100_0001, 0xc200_0002] };
        let data = LifeDurations { seconds: Some(600), kilobytes: None }.emit(LIFE_IPSEC);
        assert_eq!(read(&body(3, &[0xc2, 0, 0, 2], &data), esp).unwrap().seconds, Some(600));
        assert_eq!(read(&body(3, &[0xc1, 0, 0, 1], &data), esp).unwrap().seconds, Some(600));
        let e = |b: &[u8], sa| read(b, sa).unwrap_err();
        assert_eq!(e(&body(3, &[0xc3, 0, 0, 3], &data), esp), "names SPI c3000003, not one of this exchange");
        assert_eq!(e(&body(3, &[0xc2, 0, 0], &data), esp), "SPI size 3 (an ESP SPI has 4 bytes)");
        assert_eq!(e(&body(2, &[0xc2, 0, 0, 2], &data), esp), "protocol 2 where the SA is protocol 3");
        let mut b = body(3, &[0xc2, 0, 0, 2], &data);
        b[3] = 0;
        assert_eq!(e(&b, esp), "DOI 0 (RESPONDER-LIFETIME is the IPsec DOI's, 1)");
        assert!(e(&body(3, &[0xc2, 0, 0, 2], &[]), esp).ends_with("no lifetime"));
        assert!(e(&b[..7], esp).contains("truncated"));

        let cookies = [7u8; 16];
        let isakmp = NamedSa::Isakmp { cookies };
        let data = LifeDurations { seconds: Some(600), kilobytes: Some(9) }.emit(LIFE_ISAKMP);
        let d = read(&body(1, &cookies, &data), isakmp).unwrap();
        assert_eq!((d.seconds, d.kilobytes), (Some(600), None));
        assert!(read(&body(1, &[], &data), isakmp).is_ok());
        assert!(read(&body(1, &[8; 16], &data), isakmp).is_err());
        assert_eq!(notify_type(&body(1, &[], &data)), Some(NotifyType::ResponderLifetime));
        assert_eq!(notify_type(&[0; 7]), None);
    }
}
