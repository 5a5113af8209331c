//! IKE's I/O: kernel UDP sockets on ports 500 and 4500 of each gateway's
//! local address, and the system random generator.
//!
//! fastpathd's XDP program passes IKE (UDP 500, and UDP 4500 with the zero
//! non-ESP marker) to the kernel, so ordinary sockets receive it. On 4500
//! the 4-byte non-ESP marker (RFC 3948 §2.2) is stripped on receive and
//! added on send; a datagram on 4500 without it is ESP, which belongs to
//! the fast path, or a NAT-keepalive (RFC 3948 §2.3, one 0xFF octet, sent
//! by a peer behind a NAT to keep its mapping): both are ignored here,
//! uncounted (fastpathd's XDP program counts the keepalives it passes as
//! `pass-ike-natt`). Our own keepalives leave from the 4500 socket as they
//! are, without the marker.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::rc::Rc;

use esprit_ike::{Transmit, IKE_PORT, NATT_PORT};

use crate::core::ingest::IkeSender;
use crate::ike::RandomFill;
use ring::rand::{SecureRandom, SystemRandom};

/// The RFC 3948 §2.2 non-ESP marker.
const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// One received IKE message (marker stripped).
#[derive(Debug, Clone)]
pub struct Datagram {
    /// The address it arrived on.
    pub local: SocketAddr,
    /// Its source.
    pub remote: SocketAddr,
    /// The ISAKMP message.
    pub bytes: Vec<u8>,
}

/// The IKE sockets, by local address.
#[derive(Debug, Default)]
pub struct IkeSockets {
    by_local: BTreeMap<SocketAddr, UdpSocket>,
}

impl IkeSockets {
    /// Binds ports 500 and 4500 of every address and starts one receiving
    /// thread per socket, which hands datagrams to `tx` (the bounded IKE
    /// queue: it never waits). Addresses that cannot be bound are
    /// reported, not fatal.
    pub fn bind(addrs: &BTreeSet<IpAddr>, tx: &IkeSender) -> (IkeSockets, Vec<String>) {
        let mut s = IkeSockets::default();
        let errors = s.add(addrs, tx);
        (s, errors)
    }

    /// Binds the addresses not bound yet (see [`IkeSockets::bind`]); the
    /// sockets of addresses no longer used stay open.
    pub fn add(&mut self, addrs: &BTreeSet<IpAddr>, tx: &IkeSender) -> Vec<String> {
        let s = self;
        let mut errors = Vec::new();
        for ip in addrs {
            for port in [IKE_PORT, NATT_PORT] {
                let local = SocketAddr::new(*ip, port);
                if s.by_local.contains_key(&local) {
                    continue;
                }
                let sock = match UdpSocket::bind(local) {
                    Ok(x) => x,
                    Err(e) => {
                        errors.push(format!("IKE socket {local}: {e}"));
                        continue;
                    }
                };
                let rx = match sock.try_clone() {
                    Ok(x) => x,
                    Err(e) => {
                        errors.push(format!("IKE socket {local}: {e}"));
                        continue;
                    }
                };
                let tx = tx.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("ike-{port}"))
                    .spawn(move || receive(rx, local, tx));
                if let Err(e) = spawned {
                    errors.push(format!("IKE socket {local}: thread: {e}"));
                    continue;
                }
                s.by_local.insert(local, sock);
            }
        }
        errors
    }

    /// Sends one datagram from its local address (on 4500 with the marker,
    /// except a NAT-keepalive).
    pub fn send(&self, t: &Transmit) -> Result<(), String> {
        let sock = self
            .by_local
            .get(&t.local)
            .ok_or_else(|| format!("IKE: no socket on {} to send to {}", t.local, t.remote))?;
        let r = if t.is_nat_keepalive() {
            sock.send_to(&t.bytes, t.remote)
        } else if t.local.port() == NATT_PORT {
            let mut m = Vec::with_capacity(t.bytes.len() + 4);
            m.extend_from_slice(&NON_ESP_MARKER);
            m.extend_from_slice(&t.bytes);
            sock.send_to(&m, t.remote)
        } else {
            sock.send_to(&t.bytes, t.remote)
        };
        r.map(|_| ()).map_err(|e| format!("IKE: send {} -> {}: {e}", t.local, t.remote))
    }
}

/// One socket's thread: every datagram goes to the bounded queue, which
/// drops and counts what it cannot take (see `ingest`).
pub fn receive(sock: UdpSocket, local: SocketAddr, tx: IkeSender) {
    let mut buf = vec![0u8; 65536];
    loop {
        let Ok((n, remote)) = sock.recv_from(&mut buf) else { continue };
        let data = &buf[..n];
        let bytes = if local.port() == NATT_PORT {
            match data.get(..4) {
                Some(m) if m == NON_ESP_MARKER => data[4..].to_vec(),
                // ESP in UDP (or a NAT-T keepalive): not IKE's.
                _ => continue,
            }
        } else {
            data.to_vec()
        };
        if !tx.deliver(Datagram { local, remote, bytes }) {
            return;
        }
    }
}

/// The system random generator as the IKE peers' source of bytes.
pub fn system_random() -> RandomFill {
    let rng = SystemRandom::new();
    Rc::new(move |dest: &mut [u8]| {
        if rng.fill(dest).is_err() {
            // No randomness: refuse to continue rather than use weak bytes.
            eprintln!("controld: the system random generator failed: stopping");
            std::process::abort();
        }
    })
}
