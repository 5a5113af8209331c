//! What fastpathd reads from the host about its ports: MAC, MTU and IPv4
//! addresses of each interface (the neighbour table comes by netlink:
//! `neigh`).

use std::net::Ipv4Addr;
use std::process::Command;

use esprit_wire::ethernet::MacAddr;

/// Facts about one interface.
#[derive(Debug, Clone)]
pub(crate) struct Interface {
    pub(crate) mac: MacAddr,
    pub(crate) mtu: u16,
    pub(crate) addrs: Vec<Ipv4Addr>,
}

/// Reads an interface's MAC, MTU (sysfs) and IPv4 addresses (`ip`).
pub(crate) fn interface(name: &str) -> Result<Interface, String> {
    let read = |what: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/{what}"))
            .map(|s| s.trim().to_owned())
            .map_err(|e| format!("interface {name}: cannot read {what}: {e}"))
    };
    let mac: MacAddr = read("address")?.parse().map_err(|_| format!("interface {name}: bad MAC address"))?;
    let mtu: u16 = read("mtu")?.parse().map_err(|_| format!("interface {name}: bad MTU"))?;
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", name])
        .output()
        .map_err(|e| format!("interface {name}: cannot run ip: {e}"))?;
    let addrs = parse_ip_addr(&String::from_utf8_lossy(&out.stdout));
    Ok(Interface { mac, mtu, addrs })
}

/// Addresses out of `ip -o -4 addr show` lines (`... inet A.B.C.D/L ...`).
fn parse_ip_addr(text: &str) -> Vec<Ipv4Addr> {
    let mut v = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "inet" {
                if let Some(a) = words.next().and_then(|a| a.split('/').next()).and_then(|a| a.parse().ok()) {
                    v.push(a);
                }
            }
        }
    }
    v
}

/// The rx queues of an interface (`/sys/class/net/DEV/queues/rx-N`).
pub(crate) fn rx_queues(name: &str) -> Result<u32, String> {
    let dir = format!("/sys/class/net/{name}/queues");
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("interface {name}: cannot read {dir}: {e}"))?;
    let n =
        entries.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count();
    if n == 0 {
        return Err(format!("interface {name}: no rx queue in {dir}"));
    }
    Ok(n as u32)
}

/// One warning line when the kernel forwards IPv4 on any of `ports`
/// (`net.ipv4.conf.{all,DEV}.forwarding = 1`): a frame the fast path does
/// not take could then be routed by the kernel, in clear.
pub(crate) fn forwarding_warning(ports: &[String]) -> Option<String> {
    let read = |dev: &str| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{dev}/forwarding"))
            .map(|t| t.trim() == "1")
            .unwrap_or(false)
    };
    let all = read("all");
    let on: Vec<&str> = ports.iter().map(String::as_str).filter(|p| read(p)).collect();
    forwarding_line(all, &on)
}

fn forwarding_line(all: bool, on: &[&str]) -> Option<String> {
    if !all && on.is_empty() {
        return None;
    }
    let which = if all { "all".to_owned() } else { on.join(",") };
    Some(format!(
        "warning: the kernel forwards IPv4 on {} (net.ipv4.conf.{which}.forwarding = 1): what the fast path \
         does not take could be routed by the kernel in clear; set it to 0",
        if on.is_empty() { "every interface".to_owned() } else { on.join(", ") }
    ))
}

/// Makes the kernel resolve `addr`: a datagram to the discard port makes
/// it ARP for the next hop, whose answer the kernel then announces by netlink (`neigh`).
pub(crate) fn resolve(addr: Ipv4Addr) {
    if let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") {
        let _ = s.send_to(&[], (addr, 9));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarding_is_warned_in_one_line() {
        assert_eq!(forwarding_line(false, &[]), None);
        assert_eq!(
            forwarding_line(true, &["lan0", "wan0"]).unwrap(),
            "warning: the kernel forwards IPv4 on lan0, wan0 (net.ipv4.conf.all.forwarding = 1): what the \
             fast path does not take could be routed by the kernel in clear; set it to 0"
        );
        assert!(forwarding_line(false, &["wan0"]).unwrap().contains("(net.ipv4.conf.wan0.forwarding = 1)"));
    }

    #[test]
    fn parses_ip_addr() {
        let ip = "2: wan0    inet 198.51.100.1/24 brd 198.51.100.255 scope global wan0\\       valid_lft forever\n\
                  2: wan0    inet 198.51.100.9/32 scope global wan0\n";
        assert_eq!(parse_ip_addr(ip), vec![Ipv4Addr::new(198, 51, 100, 1), Ipv4Addr::new(198, 51, 100, 9)]);
    }
}
