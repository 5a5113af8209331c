//! What a stranger can make a responder hold or compute before it has
//! authenticated, and the bookkeeping that keeps it small. Nothing here is
//! specific to IKEv1: the half-open limits, the cookie secret, the rate
//! limiter and the message-ID set serve IKEv2 the same way.
//!
//! * **Half-open exchanges** (responder exchanges not yet authenticated)
//!   are bounded in all (1,024) and time out (30 s). A first message never
//!   displaces an exchange that has shown it receives at its address, an
//!   exchange we initiated or an established SA. The room is shared
//!   max-min fairly among sources: one source may fill all of it while no
//!   other needs it, and when it is full the source holding the most
//!   gives way with its oldest first message still waiting for its
//!   second; a source holding at most its share (`per_source`, 32) is
//!   never displaced by another. A spoofed flood from a peer's own
//!   address then cycles through all the room there is: at 1,000 spoofs a
//!   second the real peer's message 3 has a second to arrive, not the
//!   32 ms a fixed share of 32 gave it (too little on a loaded machine).
//!   The anchor is strongSwan 5.9's charon: `block_threshold` (5
//!   half-open IKE SAs per source address, then new ones are dropped),
//!   `cookie_threshold` (30 half-open in all, 10 before 5.9; with
//!   `cookie_threshold_ip` 3 per source, then IKEv2 COOKIEs are demanded)
//!   and `init_limit_half_open` (0: no limit in all), with
//!   `half_open_timeout` 30 s. esprit keeps the 30 s; it displaces
//!   instead of dropping (dropping would let a flood from the peer's own
//!   address lock the peer out, the attack), and it bounds the whole
//!   because IKEv1 has no COOKIE exchange to fall back on: every entry
//!   holds an SA payload of at most 4 KiB, so at most about 5 MiB are held
//!   for strangers.
//! * **Responder cookies** are derived from a secret, the initiator cookie
//!   and both addresses (RFC 2408 §2.5.3, RFC 2522 §2.1.1): message 3 of a
//!   Main Mode is checked before any table is searched or any
//!   Diffie-Hellman is computed, and an answer to a retransmitted first
//!   message carries the same cookie.
//! * **Aggressive Mode** costs a Diffie-Hellman before any proof of
//!   address: new ones are rate-limited (a token bucket).
//! * **Message IDs** seen under an ISAKMP SA are remembered (bounded), so
//!   a replayed Quick Mode or Informational message is dropped.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

/// Bounds on what unauthenticated peers can make a responder hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HalfOpenLimits {
    /// Half-open responder exchanges in all (per [`crate::Peer`]; the
    /// owner of several peers applies it across them too).
    pub global: usize,
    /// Half-open responder exchanges a source keeps when the table is full
    /// and another source's newcomer needs room (its guaranteed share).
    pub per_source: usize,
    /// A half-open exchange is forgotten after this long.
    pub timeout: Duration,
    /// New Aggressive Mode exchanges per second (each costs a DH).
    pub aggressive_per_second: u32,
    /// Burst of new Aggressive Mode exchanges.
    pub aggressive_burst: u32,
    /// The largest SA payload a first message may carry (its body is
    /// kept until message 5 for HASH_I, RFC 2409 §5).
    pub max_sa_bytes: usize,
}

impl Default for HalfOpenLimits {
    /// 1,024 in all, 32 per source, 30 s, 10 new Aggressive Modes a
    /// second (burst 20), SA payloads up to 4 KiB: at most about 5 MiB
    /// held for strangers.
    fn default() -> Self {
        HalfOpenLimits {
            global: 1024,
            per_source: 32,
            timeout: Duration::from_secs(30),
            aggressive_per_second: 10,
            aggressive_burst: 20,
            max_sa_bytes: 4096,
        }
    }
}

/// The secret responder cookies are derived from.
pub(crate) struct CookieSecret(Zeroizing<[u8; 32]>);

impl core::fmt::Debug for CookieSecret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CookieSecret(..)")
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

impl CookieSecret {
    pub(crate) fn new(bytes: [u8; 32]) -> CookieSecret {
        CookieSecret(Zeroizing::new(bytes))
    }

    /// The responder cookie for this initiator cookie and addresses
    /// (ports left out: an initiator may float to 4500 mid-exchange).
    /// Never zero.
    pub(crate) fn cookie(&self, icookie: &[u8; 8], local: SocketAddr, remote: SocketAddr) -> [u8; 8] {
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&self.0[..]) else { return [1; 8] };
        m.update(icookie);
        m.update(&ip_bytes(local.ip()));
        m.update(&ip_bytes(remote.ip()));
        let out = m.finalize().into_bytes();
        let mut c = [0u8; 8];
        c.copy_from_slice(&out[..8]);
        if c == [0; 8] {
            c[7] = 1;
        }
        c
    }
}

/// A token bucket: `rate` per second, up to `burst`.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    /// Tokens in thousandths.
    milli: u64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn new() -> TokenBucket {
        TokenBucket { milli: u64::MAX, last: None }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant, rate: u32, burst: u32) -> bool {
        let cap = u64::from(burst.max(1)) * 1000;
        let refill = self.last.map_or(cap, |t| {
            (now.saturating_duration_since(t).as_millis() as u64).saturating_mul(u64::from(rate))
        });
        self.milli = self.milli.saturating_add(refill).min(cap);
        self.last = Some(now);
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// Message IDs seen under one ISAKMP SA (ours and the peer's), the
/// oldest forgotten beyond `CAPACITY` (RFC 2408 §3.1: a message ID is
/// unique per exchange within the SA).
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageIds {
    set: HashSet<u32>,
    order: VecDeque<u32>,
}

impl MessageIds {
    /// 8,192 IDs (32 KiB at most): an ISAKMP SA of 8 hours with a DPD
    /// exchange every 10 s uses 2,880.
    pub(crate) const CAPACITY: usize = 8192;

    pub(crate) fn contains(&self, id: u32) -> bool {
        self.set.contains(&id)
    }

    /// The IDs remembered, oldest first (newest first reversed: what
    /// was added since a given ID is a walk from the back).
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = u32> + '_ {
        self.order.iter().copied()
    }

    pub(crate) fn insert(&mut self, id: u32) {
        if !self.set.insert(id) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > Self::CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_depends_on_secret_icookie_and_addresses_not_ports() {
        let s = CookieSecret::new([7; 32]);
        let l: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let r: SocketAddr = "198.51.100.1:500".parse().unwrap();
        let r2: SocketAddr = "198.51.100.2:500".parse().unwrap();
        let r_natt: SocketAddr = "198.51.100.1:4500".parse().unwrap();
        let c = s.cookie(&[1; 8], l, r);
        assert_eq!(c, s.cookie(&[1; 8], l, r_natt));
        assert_ne!(c, s.cookie(&[2; 8], l, r));
        assert_ne!(c, s.cookie(&[1; 8], l, r2));
        assert_ne!(c, CookieSecret::new([8; 32]).cookie(&[1; 8], l, r));
    }

    #[test]
    fn token_bucket_bursts_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new();
        assert_eq!((0..30).filter(|_| b.take(t0, 10, 20)).count(), 20);
        assert!(!b.take(t0 + Duration::from_millis(50), 10, 20));
        assert!(b.take(t0 + Duration::from_millis(150), 10, 20));
        assert!(!b.take(t0 + Duration::from_millis(150), 10, 20));
    }

    #[test]
    fn message_ids_forget_the_oldest_beyond_capacity() {
        let mut m = MessageIds::default();
        for i in 0..(MessageIds::CAPACITY as u32 + 1) {
            m.insert(i);
        }
        assert!(!m.contains(0));
        assert!(m.contains(1));
        assert!(m.contains(MessageIds::CAPACITY as u32));
    }
}
