//! A thin I/O shell around the sans-IO core, for interop tests: UDP
//! sockets on 500 and 4500 (RFC 3948 non-ESP marker added/stripped here),
//! the OS random generator, the system clock. Initiates Main Mode and one
//! Quick Mode per `--proxy`, or responds; prints the child SAs' SPIs
//! (never keys) and exits once `--expect` children are up.
//!
//! ```text
//! ike_peer --local 198.51.100.1 --remote 203.0.113.1 --psk KEY \
//!          [--esp aes128-sha1] [--pfs modp2048] [--initiate] [--expect N] \
//!          [--timeout SECS] [--parallel N] --proxy "local-ip 10.1.1.0/24 remote-ip 10.2.1.0/24 ANY" ...
//! ```

use std::io::Read;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use esprit_ike::{DhGroup, Event, Peer, PeerConfig, Random, Suite, IKE_PORT, NATT_PORT};
use esprit_policy::ProxyId;

struct OsRandom(std::fs::File);

impl Random for OsRandom {
    fn fill(&mut self, dest: &mut [u8]) {
        if self.0.read_exact(dest).is_err() {
            // No randomness: refuse to continue rather than use weak bytes.
            std::process::exit(3);
        }
    }
}

struct Args {
    local: IpAddr,
    remote: IpAddr,
    psk: String,
    esp: Vec<Suite>,
    pfs: Option<DhGroup>,
    initiate: bool,
    expect: usize,
    timeout: u64,
    parallel: usize,
    proxies: Vec<ProxyId>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        local: IpAddr::from([0, 0, 0, 0]),
        remote: IpAddr::from([0, 0, 0, 0]),
        psk: String::new(),
        esp: vec![Suite::Aes128Gcm16, Suite::Aes128CbcSha1],
        pfs: None,
        initiate: false,
        expect: 0,
        timeout: 30,
        parallel: 1,
        proxies: Vec::new(),
    };
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        match k.as_str() {
            "--local" => a.local = v()?.parse().map_err(|e| format!("--local: {e}"))?,
            "--remote" => a.remote = v()?.parse().map_err(|e| format!("--remote: {e}"))?,
            "--psk" => a.psk = v()?,
            "--esp" => {
                a.esp = v()?
                    .split(',')
                    .map(|s| s.parse::<Suite>().map_err(|e| e.to_string()))
                    .collect::<Result<_, _>>()?
            }
            "--pfs" => {
                let g = v()?;
                a.pfs = Some(
                    [
                        DhGroup::Modp1024,
                        DhGroup::Modp1536,
                        DhGroup::Modp2048,
                        DhGroup::Ecp256,
                        DhGroup::Ecp384,
                    ]
                    .into_iter()
                    .find(|x| esprit_ike::group_name(*x) == g)
                    .ok_or(format!("unknown group {g}"))?,
                )
            }
            "--initiate" => a.initiate = true,
            "--expect" => a.expect = v()?.parse().map_err(|e| format!("--expect: {e}"))?,
            "--timeout" => a.timeout = v()?.parse().map_err(|e| format!("--timeout: {e}"))?,
            "--parallel" => a.parallel = v()?.parse().map_err(|e| format!("--parallel: {e}"))?,
            "--proxy" => a.proxies.push(v()?.parse().map_err(|e| format!("--proxy: {e}"))?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.expect == 0 {
        a.expect = a.proxies.len();
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ike_peer: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ike_peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let local = SocketAddr::new(args.local, IKE_PORT);
    let remote = SocketAddr::new(args.remote, IKE_PORT);
    let s500 = UdpSocket::bind(local).map_err(|e| format!("bind {local}: {e}"))?;
    let local4500 = SocketAddr::new(args.local, NATT_PORT);
    let s4500 = UdpSocket::bind(local4500).map_err(|e| format!("bind {local4500}: {e}"))?;
    for s in [&s500, &s4500] {
        s.set_read_timeout(Some(Duration::from_millis(20))).map_err(|e| e.to_string())?;
    }
    let mut cfg = PeerConfig::new("strongswan", local, remote, args.psk.as_bytes());
    cfg.esp_suites = args.esp.clone();
    cfg.pfs = args.pfs;
    cfg.proxy_ids = args.proxies.clone();
    cfg.dpd_delay = Some(Duration::from_secs(30));
    cfg.max_quick_modes = args.parallel;
    let rng = OsRandom(std::fs::File::open("/dev/urandom").map_err(|e| e.to_string())?);
    let mut peer = Peer::new(cfg, rng);
    let start = Instant::now();
    if args.initiate {
        for p in &args.proxies {
            peer.initiate_child(start, *p).map_err(|e| e.to_string())?;
        }
    }
    let deadline = start + Duration::from_secs(args.timeout);
    let mut up = 0usize;
    let mut done_at: Option<Instant> = None;
    let mut buf = vec![0u8; 65536];
    loop {
        let now = Instant::now();
        if now > deadline {
            return Err(format!("timeout: {up} of {} child SAs up", args.expect));
        }
        // Linger a little after the last child so that repeats are answered.
        if done_at.is_some_and(|t| now > t + Duration::from_millis(1500)) {
            return Ok(());
        }
        while let Some(t) = peer.poll_transmit() {
            // A NAT-keepalive goes as it is (RFC 3948 §2.3), IKE on 4500
            // behind the non-ESP marker (§2.2).
            let r = if t.is_nat_keepalive() {
                s4500.send_to(&t.bytes, t.remote)
            } else if t.local.port() == NATT_PORT {
                let mut m = vec![0u8; 4];
                m.extend_from_slice(&t.bytes);
                s4500.send_to(&m, t.remote)
            } else {
                s500.send_to(&t.bytes, t.remote)
            };
            if let Err(e) = r {
                eprintln!("send to {}: {e}", t.remote);
            }
        }
        while let Some(ev) = peer.poll_event() {
            match ev {
                Event::IkeSaUp { icookie, rcookie, proposal, nat, behind_nat, local, remote, initiator } => println!(
                    "IKE_SA up {}_i {}_r {proposal} nat={nat} behind_nat={behind_nat} {local} <-> {remote} initiator={initiator}",
                    hex(&icookie),
                    hex(&rcookie)
                ),
                Event::ChildSaUp(c) => {
                    up += 1;
                    println!(
                        "CHILD_SA up spi_in={:08x} spi_out={:08x} suite={} lifetime={}s encap={} proxy-id=\"{}\"",
                        c.spi_in,
                        c.spi_out,
                        c.suite.name(),
                        c.lifetime.seconds,
                        c.encap.map_or("none".to_owned(), |e| format!("{}/{}", e.local_port, e.remote_port)),
                        c.proxy_id
                    );
                    if up >= args.expect {
                        done_at = Some(Instant::now());
                    }
                }
                other => println!("event {other:?}"),
            }
        }
        if let Some(t) = peer.poll_timeout() {
            if t <= Instant::now() {
                peer.handle_timeout(Instant::now());
                continue;
            }
        }
        for (s, natt) in [(&s500, false), (&s4500, true)] {
            match s.recv_from(&mut buf) {
                Ok((n, from)) => {
                    let to = if natt { local4500 } else { local };
                    let data = &buf[..n];
                    let ike = if natt {
                        // RFC 3948 §2.2: IKE on 4500 starts with a zero non-ESP marker.
                        match data.get(..4) {
                            Some([0, 0, 0, 0]) => &data[4..],
                            _ => continue, // ESP: the fast path's business
                        }
                    } else {
                        data
                    };
                    if let Err(e) = peer.handle_datagram(Instant::now(), to, from, ike) {
                        eprintln!("dropped datagram from {from}: {e}");
                    }
                }
                Err(e)
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(format!("recv: {e}")),
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
