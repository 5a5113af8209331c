//! Root integration tests: real frames through our XDP program and AF_XDP
//! sockets on veth pairs, in network namespaces this test creates.
//!
//! ```text
//!  host-a (a0 192.0.2.1)  <-veth->  gw (ga 192.0.2.254 | gb 198.51.100.254)  <-veth->  host-b (b0 198.51.100.1)
//! ```
//!
//! The gateway side runs a forwarder thread that enters the gw namespace with
//! `setns(CLONE_NEWNET)` (per thread, so the test process stays where it is),
//! opens both ports with our program, binds one worker (one UMEM) to them
//! and bridges: rx on one port -> rewrite Ethernet MACs -> tx on the other,
//! without copying the payload. ESP that reaches AF_XDP addressed to the gw
//! itself is counted and recycled. Commands (ping) run under `ip netns exec`.
//! Sockets for UDP checks are created in threads that enter a namespace and
//! are then used from the test thread.
//!
//! Skips (loudly) when not root. Namespaces carry the PID and a counter in
//! their name and are deleted by a Drop guard, also on failure.

// A test harness: failing loudly on the first surprise is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use esprit_xdp::{
    AttachMode, Burst, Error, Port, QueueCounters, SocketId, UmemFrame, Verdict, VerdictCounts, XdpSockets,
    XdpSocketsConfig, ESP_TAILROOM, ESP_UDP_ENCAP_HEADROOM, XDP_PACKET_HEADROOM,
};

const A_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const GA_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 254);
const GB_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
const B_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

macro_rules! require_root {
    () => {
        if !is_root() {
            // Straight to stderr: libtest's capture would hide an eprintln!
            // of a passing test.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED {}: needs root (network namespaces, XDP, AF_XDP); \
                 scripts/test.sh runs it as root ***",
                module_path!()
            );
            return;
        }
    };
}

/// Runs a command, panics with its output if it fails.
fn run(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        args,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run_ok(args: &[&str]) -> bool {
    Command::new(args[0]).args(&args[1..]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// Polls `f` until it returns `Some`, or panics with `what` after `limit`.
fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The three namespaces and two veth pairs; deleted on drop.
struct Lab {
    a: String,
    gw: String,
    b: String,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    fn new(queues: u32) -> Lab {
        let tag = format!("{}-{}", std::process::id(), LAB_SEQ.fetch_add(1, Ordering::Relaxed));
        let lab = Lab { a: format!("esx-a-{tag}"), gw: format!("esx-gw-{tag}"), b: format!("esx-b-{tag}") };
        for ns in [&lab.a, &lab.gw, &lab.b] {
            run(&["ip", "netns", "add", ns]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            // No IPv6 chatter: it would blur the exact counter checks.
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
        }
        let q = queues.to_string();
        for (gw_if, host_if, host_ns) in [("ga", "a0", &lab.a), ("gb", "b0", &lab.b)] {
            run(&[
                "ip",
                "-n",
                &lab.gw,
                "link",
                "add",
                gw_if,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "type",
                "veth",
                "peer",
                "name",
                host_if,
                "numtxqueues",
                &q,
                "numrxqueues",
                &q,
                "netns",
                host_ns,
            ]);
            run(&["ip", "-n", &lab.gw, "link", "set", gw_if, "up"]);
            run(&["ip", "-n", host_ns, "link", "set", host_if, "up"]);
            // veth tx checksum offload leaves partial checksums (FACTS.md).
            run(&["ip", "netns", "exec", host_ns, "ethtool", "-K", host_if, "tx", "off"]);
            run(&["ip", "netns", "exec", &lab.gw, "ethtool", "-K", gw_if, "tx", "off"]);
        }
        run(&["ip", "-n", &lab.a, "addr", "add", "192.0.2.1/24", "dev", "a0"]);
        run(&["ip", "-n", &lab.a, "route", "add", "default", "via", "192.0.2.254"]);
        run(&["ip", "-n", &lab.b, "addr", "add", "198.51.100.1/24", "dev", "b0"]);
        run(&["ip", "-n", &lab.b, "route", "add", "default", "via", "198.51.100.254"]);
        run(&["ip", "-n", &lab.gw, "addr", "add", "192.0.2.254/24", "dev", "ga"]);
        run(&["ip", "-n", &lab.gw, "addr", "add", "198.51.100.254/24", "dev", "gb"]);
        // The kernel must not forward: transit can only cross via AF_XDP.
        run(&["ip", "netns", "exec", &lab.gw, "sysctl", "-qw", "net.ipv4.ip_forward=0"]);
        lab
    }

    fn mac(ns: &str, dev: &str) -> [u8; 6] {
        let out = run(&["ip", "netns", "exec", ns, "cat", &format!("/sys/class/net/{dev}/address")]);
        let mut mac = [0u8; 6];
        for (i, part) in out.trim().split(':').enumerate() {
            mac[i] = u8::from_str_radix(part, 16).expect("mac");
        }
        mac
    }

    fn link_has_xdp(&self, dev: &str) -> bool {
        let out = run(&["ip", "-n", &self.gw, "link", "show", "dev", dev]);
        out.contains("xdp")
    }

    /// Waits (5 s at most) until no XDP program is attached to `devs`:
    /// the kernel releases a bpf_link when its last file goes, which the
    /// closing of the AF_XDP sockets can defer past `stop()`'s return.
    fn wait_xdp_detached(&self, devs: &[&str]) {
        wait_for("the XDP program detached", Duration::from_secs(5), || {
            devs.iter().all(|d| !self.link_has_xdp(d)).then_some(())
        })
    }

    fn ping(&self, ns: &str, dst: Ipv4Addr, count: u32) -> bool {
        let c = count.to_string();
        run_ok(&[
            "ip",
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-q",
            "-c",
            &c,
            "-i",
            "0.2",
            "-W",
            "2",
            "-w",
            "10",
            &dst.to_string(),
        ])
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in [&self.a, &self.gw, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Runs `f` in a new thread that has entered namespace `ns` and returns its
/// result (sockets created there stay in that namespace).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter_netns(&path);
        f()
    })
    .join()
    .expect("netns thread")
}

fn enter_netns(path: &str) {
    let file = File::open(path).expect("open netns");
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
}

// ---------------------------------------------------------------- forwarder

struct Macs {
    a0: [u8; 6],
    ga: [u8; 6],
    gb: [u8; 6],
    b0: [u8; 6],
}

#[derive(Debug, Clone, Default)]
struct Snapshot {
    verdicts_a: VerdictCounts,
    verdicts_b: VerdictCounts,
    /// (port name, queue, counters) per socket.
    sockets: Vec<(String, u32, QueueCounters)>,
    esp_to_local: u64,
    rx_chunk_offsets: Vec<usize>,
    lent: usize,
    zerocopy: Vec<bool>,
    /// Smallest headroom / tailroom seen on a received frame.
    min_headroom: usize,
    min_tailroom: usize,
}

impl Snapshot {
    fn sum(&self, port: &str, f: impl Fn(&QueueCounters) -> u64) -> u64 {
        self.sockets.iter().filter(|s| s.0 == port).map(|s| f(&s.2)).sum()
    }
}

enum Cmd {
    Snapshot(mpsc::Sender<Snapshot>),
    Stop,
}

struct Forwarder {
    cmd: mpsc::Sender<Cmd>,
    thread: Option<JoinHandle<()>>,
}

struct Ready {
    second_open: String,
}

impl Forwarder {
    fn start(lab: &Lab, mode: AttachMode, queues: u32) -> (Forwarder, Ready) {
        let macs = Macs {
            a0: Lab::mac(&lab.a, "a0"),
            ga: Lab::mac(&lab.gw, "ga"),
            gb: Lab::mac(&lab.gw, "gb"),
            b0: Lab::mac(&lab.b, "b0"),
        };
        let path = format!("/run/netns/{}", lab.gw);
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            enter_netns(&path);
            forward(mode, queues, macs, cmd_rx, ready_tx);
        });
        let fwd = Forwarder { cmd: cmd_tx, thread: Some(thread) };
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .expect("forwarder did not start")
            .unwrap_or_else(|e| panic!("forwarder setup failed: {e}"));
        (fwd, ready)
    }

    fn snapshot(&self) -> Snapshot {
        let (tx, rx) = mpsc::channel();
        self.cmd.send(Cmd::Snapshot(tx)).expect("forwarder gone");
        rx.recv_timeout(Duration::from_secs(5)).expect("forwarder did not answer")
    }

    fn stop(&mut self) {
        let _ = self.cmd.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            t.join().expect("forwarder panicked");
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.cmd.send(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ipv4_dst(f: &UmemFrame) -> Option<Ipv4Addr> {
    let d = f.data();
    if d.len() < 34 || d[12..14] != [0x08, 0x00] {
        return None;
    }
    Some(Ipv4Addr::new(d[30], d[31], d[32], d[33]))
}

fn forward(
    mode: AttachMode,
    queues: u32,
    macs: Macs,
    cmd: mpsc::Receiver<Cmd>,
    ready: mpsc::Sender<Result<Ready, String>>,
) {
    type Setup = (Port, Port, XdpSockets, Vec<(SocketId, SocketId)>, String);
    let setup = || -> Result<Setup, Error> {
        let mut pa = Port::open("ga", mode)?;
        let mut pb = Port::open("gb", mode)?;
        for p in [&mut pa, &mut pb] {
            p.add_local_addr(GA_IP.into())?;
            p.add_local_addr(GB_IP.into())?;
        }
        // A second program on a port that has one must be refused, by name.
        let second_open = match Port::open("ga", mode) {
            Err(e @ Error::PortBusy { .. }) => e.to_string(),
            Err(e) => format!("unexpected error: {e}"),
            Ok(_) => "second open succeeded".into(),
        };
        let mut w = XdpSockets::new(XdpSocketsConfig::default())?;
        let mut pairs = Vec::new();
        for q in 0..queues {
            let a = w.bind(&mut pa, q)?;
            let b = w.bind(&mut pb, q)?;
            pairs.push((a, b));
        }
        Ok((pa, pb, w, pairs, second_open))
    };
    let (pa, pb, mut w, pairs, second_open) = match setup() {
        Ok(v) => v,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let _ = ready.send(Ok(Ready { second_open }));

    let frame_size = w.config().umem.frame_size.bytes();
    let mut rx = Burst::new();
    let mut tx = Burst::new();
    let mut esp_to_local = 0u64;
    let mut offsets = Vec::new();
    let (mut min_headroom, mut min_tailroom) = (usize::MAX, usize::MAX);
    loop {
        let mut moved = 0;
        for &(a, b) in &pairs {
            for (from, to, dst_mac, src_mac) in [(a, b, macs.b0, macs.gb), (b, a, macs.a0, macs.ga)] {
                let n = w.rx_burst(from, &mut rx);
                moved += n;
                while let Some(mut f) = rx.pop() {
                    if offsets.len() < 8 {
                        if let Some(o) = w.umem_offset(&f) {
                            offsets.push(o % frame_size);
                        }
                    }
                    min_headroom = min_headroom.min(f.headroom());
                    min_tailroom = min_tailroom.min(f.tailroom());
                    // What ESP encapsulation will do, undone: the bytes that
                    // reach the wire must be the original ones.
                    let len = f.len();
                    f.prepend(ESP_UDP_ENCAP_HEADROOM).expect("headroom").fill(0xee);
                    f.append(ESP_TAILROOM).expect("tailroom").fill(0xee);
                    f.remove_front(ESP_UDP_ENCAP_HEADROOM).expect("strip");
                    f.truncate(len);
                    if matches!(ipv4_dst(&f), Some(d) if d == GA_IP || d == GB_IP) {
                        // ESP to the gateway itself: a real worker decrypts.
                        esp_to_local += 1;
                        w.recycle(f);
                        continue;
                    }
                    let d = f.data_mut();
                    if d.len() < 14 {
                        w.recycle(f);
                        continue;
                    }
                    d[0..6].copy_from_slice(&dst_mac);
                    d[6..12].copy_from_slice(&src_mac);
                    if let Err(f) = tx.push(f) {
                        w.recycle(f);
                    }
                }
                w.tx_burst(to, &mut tx);
                w.recycle_burst(&mut tx);
            }
        }
        w.poll();
        match cmd.try_recv() {
            Ok(Cmd::Stop) | Err(mpsc::TryRecvError::Disconnected) => break,
            Ok(Cmd::Snapshot(reply)) => {
                let sockets = w.sockets().map(|(id, info)| (info.port, info.queue, w.counters(id))).collect();
                let zerocopy = w.sockets().map(|(_, i)| i.zerocopy).collect();
                let _ = reply.send(Snapshot {
                    verdicts_a: pa.verdicts().unwrap_or_default(),
                    verdicts_b: pb.verdicts().unwrap_or_default(),
                    sockets,
                    esp_to_local,
                    rx_chunk_offsets: offsets.clone(),
                    lent: w.lent_frames(),
                    zerocopy,
                    min_headroom,
                    min_tailroom,
                });
            }
            Err(mpsc::TryRecvError::Empty) => {}
        }
        if moved == 0 {
            // Idle back-off so the test's own processes get the CPU.
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    drop(w);
    drop((pa, pb));
}

// ------------------------------------------------------------------- tests

fn udp_in(ns: &str, addr: SocketAddr) -> UdpSocket {
    let s = in_netns(ns, move || UdpSocket::bind(addr).expect("bind udp"));
    s.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    s
}

fn exercise(mode: AttachMode) {
    assert!(run_ok(&["ping", "-V"]), "`ping` is missing: apt-get install iputils-ping");
    let lab = Lab::new(1);
    let (mut fwd, ready) = Forwarder::start(&lab, mode, 1);
    assert!(
        ready.second_open.contains("ga") && ready.second_open.contains("already has an XDP program"),
        "second attach: {}",
        ready.second_open
    );
    assert!(lab.link_has_xdp("ga") && lab.link_has_xdp("gb"), "program not attached");

    // 1. Transit: host-a -> host-b crosses the AF_XDP path (the kernel does not forward).
    let s0 = fwd.snapshot();
    assert!(s0.zerocopy.iter().all(|z| !z), "veth cannot be zero-copy");
    if !lab.ping(&lab.a, B_IP, 3) {
        let s = fwd.snapshot();
        panic!(
            "ping host-a -> host-b through the forwarder failed\nga {:?}\ngb {:?}\n{:#?}",
            s.verdicts_a.since(&s0.verdicts_a),
            s.verdicts_b.since(&s0.verdicts_b),
            s.sockets
        );
    }
    let s1 = wait_for("transit counters", Duration::from_secs(5), || {
        let s = fwd.snapshot();
        (s.sum("ga", |c| c.rx_packets) - s0.sum("ga", |c| c.rx_packets) >= 3
            && s.sum("ga", |c| c.tx_packets) - s0.sum("ga", |c| c.tx_packets) >= 3)
            .then_some(s)
    });
    let (va, vb) = (s1.verdicts_a.since(&s0.verdicts_a), s1.verdicts_b.since(&s0.verdicts_b));
    assert_eq!(va.get(Verdict::RedirectTransit), 3, "ga transit verdicts: {va:?}");
    assert_eq!(vb.get(Verdict::RedirectTransit), 3, "gb transit verdicts: {vb:?}");
    for (port, what, f) in [
        ("ga", "rx", (|c: &QueueCounters| c.rx_packets) as fn(&QueueCounters) -> u64),
        ("ga", "tx", |c| c.tx_packets),
        ("gb", "rx", |c| c.rx_packets),
        ("gb", "tx", |c| c.tx_packets),
    ] {
        assert_eq!(s1.sum(port, f) - s0.sum(port, f), 3, "{port} {what}: {:?}", s1.sockets);
    }
    // Where the kernel put the rx data in its chunk: 256 + our headroom.
    let headroom = XdpSocketsConfig::default().umem.headroom as usize;
    assert!(!s1.rx_chunk_offsets.is_empty());
    for o in &s1.rx_chunk_offsets {
        assert_eq!(*o, XDP_PACKET_HEADROOM + headroom, "rx data offset in chunk");
    }
    assert_eq!(s1.min_headroom, headroom);
    // 98-byte ping frames in 2048-byte chunks: 2048 - 256 - 128 - 98.
    assert!(s1.min_tailroom >= 2048 - XDP_PACKET_HEADROOM - headroom - 98, "{}", s1.min_tailroom);

    // 2. Ping to the gateway itself: answered by the kernel, AF_XDP untouched.
    assert!(lab.ping(&lab.a, GA_IP, 2), "ping host-a -> gw failed");
    let s2 = wait_for("local ping verdicts", Duration::from_secs(5), || {
        let s = fwd.snapshot();
        (s.verdicts_a.since(&s1.verdicts_a).get(Verdict::PassLocal) >= 2).then_some(s)
    });
    assert_eq!(s2.verdicts_a.since(&s1.verdicts_a).get(Verdict::PassLocal), 2);
    assert_eq!(s2.verdicts_a.since(&s1.verdicts_a).redirected(), 0);
    assert_eq!(s2.sum("ga", |c| c.rx_packets), s1.sum("ga", |c| c.rx_packets));
    assert_eq!(s2.sum("gb", |c| c.tx_packets), s1.sum("gb", |c| c.tx_packets));

    // 3. IKE on UDP 500 reaches a kernel socket in the gw namespace.
    let gw_ike = udp_in(&lab.gw, SocketAddr::from((GA_IP, 500)));
    let gw_natt = udp_in(&lab.gw, SocketAddr::from((GA_IP, 4500)));
    let a_sock = udp_in(&lab.a, SocketAddr::from((A_IP, 0)));
    a_sock.send_to(b"ike-sa-init", (GA_IP, 500)).expect("send 500");
    let mut buf = [0u8; 256];
    let (n, _) = gw_ike.recv_from(&mut buf).expect("IKE on 500 did not reach the kernel");
    assert_eq!(&buf[..n], b"ike-sa-init");

    // 4. UDP 4500: zero marker -> kernel; non-zero SPI -> AF_XDP.
    let s3 = fwd.snapshot();
    a_sock.send_to(b"\0\0\0\0ike-natt", (GA_IP, 4500)).expect("send 4500");
    let (n, _) = gw_natt.recv_from(&mut buf).expect("non-ESP-marked 4500 did not reach the kernel");
    assert_eq!(&buf[..n], b"\0\0\0\0ike-natt");
    a_sock.send_to(b"\x00\x00\x10\x01\0\0\0\x01esp-payload", (GA_IP, 4500)).expect("send esp");
    let s4 = wait_for("ESP-in-UDP to reach AF_XDP", Duration::from_secs(5), || {
        let s = fwd.snapshot();
        (s.esp_to_local > s3.esp_to_local).then_some(s)
    });
    // The next datagram the kernel sees is this one: the ESP one never got there.
    a_sock.send_to(b"\0\0\0\0after", (GA_IP, 4500)).expect("send 4500");
    let (n, _) = gw_natt.recv_from(&mut buf).expect("second IKE on 4500");
    assert_eq!(&buf[..n], b"\0\0\0\0after");
    let s5 = fwd.snapshot();
    let v = s5.verdicts_a.since(&s3.verdicts_a);
    assert_eq!(v.get(Verdict::PassIkeNatt), 2, "{v:?}");
    assert_eq!(v.get(Verdict::RedirectEspUdp), 1, "{v:?}");
    assert_eq!(s4.esp_to_local - s3.esp_to_local, 1);
    assert_eq!(s5.verdicts_a.since(&s1.verdicts_a).get(Verdict::PassIke), 1);
    assert_eq!(s5.lent, 0, "forwarder holds frames between bursts");

    // 5. Stopping detaches everything.
    fwd.stop();
    lab.wait_xdp_detached(&["ga", "gb"]);
}

#[test]
fn skb_mode_forwarding_and_kernel_split() {
    require_root!();
    exercise(AttachMode::Skb);
}

#[test]
fn driver_mode_forwarding_and_kernel_split() {
    require_root!();
    exercise(AttachMode::Driver);
}

#[test]
fn driver_mode_two_queues() {
    require_root!();
    const FLOWS: usize = 64;
    let lab = Lab::new(2);
    let (mut fwd, _) = Forwarder::start(&lab, AttachMode::Driver, 2);
    let b_sock = udp_in(&lab.b, SocketAddr::from((B_IP, 7777)));
    let s0 = fwd.snapshot();
    assert_eq!(s0.sockets.len(), 4);
    // One socket per flow: each gets its own tx hash, hence spread queues.
    in_netns(&lab.a, move || {
        for i in 0..FLOWS {
            let s = UdpSocket::bind((A_IP, 0)).expect("bind");
            s.send_to(format!("flow {i}").as_bytes(), (B_IP, 7777)).expect("send");
        }
    });
    let mut got = 0;
    let mut buf = [0u8; 64];
    while got < FLOWS {
        b_sock.recv_from(&mut buf).unwrap_or_else(|e| panic!("only {got}/{FLOWS} arrived: {e}"));
        got += 1;
    }
    let s1 = fwd.snapshot();
    let per_queue: Vec<u64> = s1
        .sockets
        .iter()
        .zip(&s0.sockets)
        .filter(|(s, _)| s.0 == "ga")
        .map(|(s, o)| s.2.rx_packets - o.2.rx_packets)
        .collect();
    eprintln!("ga rx per queue: {per_queue:?}");
    assert_eq!(per_queue.iter().sum::<u64>(), FLOWS as u64);
    assert!(per_queue.iter().all(|&n| n > 0), "a queue saw no traffic: {per_queue:?}");
    fwd.stop();
    lab.wait_xdp_detached(&["ga", "gb"]);
}

/// Rough rate of the test forwarder (not a benchmark: the generator is a
/// kernel UDP socket on the same 2 cores). `cargo test -- --ignored rate`.
#[test]
#[ignore]
fn rough_forwarding_rate() {
    require_root!();
    for mode in [AttachMode::Skb, AttachMode::Driver] {
        let lab = Lab::new(1);
        let (mut fwd, _) = Forwarder::start(&lab, mode, 1);
        // Warm ARP on host-a.
        assert!(lab.ping(&lab.a, GA_IP, 1));
        let s0 = fwd.snapshot();
        let sent = in_netns(&lab.a, move || {
            let s = UdpSocket::bind((A_IP, 0)).unwrap();
            s.connect((B_IP, 9)).unwrap();
            let payload = [0u8; 18]; // 60-byte frames
            let end = Instant::now() + Duration::from_secs(2);
            let mut n = 0u64;
            while Instant::now() < end {
                for _ in 0..256 {
                    if s.send(&payload).is_ok() {
                        n += 1;
                    }
                }
            }
            n
        });
        let s1 = fwd.snapshot();
        let fwd_n = s1.sum("gb", |c| c.tx_packets) - s0.sum("gb", |c| c.tx_packets);
        eprintln!(
            "{mode:?}: generator {:.2} Mpps, forwarded {:.2} Mpps ({fwd_n} of {sent})",
            sent as f64 / 2e6,
            fwd_n as f64 / 2e6
        );
        fwd.stop();
    }
}
