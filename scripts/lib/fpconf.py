#!/usr/bin/env python3
"""Control-API requests (JSON lines for `fpctl batch`) that program a gateway
of the seed topology (scripts/lib/topo.sh) with manual-key SAs.

Pairs are named by subnet digits: "12" = gw1's 10.1.1.0/24 <-> gw2's
10.2.2.0/24. SPIs say who sends: 0x1000 + 0x10*l + r from gw1, 0x2000 + ... from
gw2, plus 0x10000 x generation for rekeys. Keys are derived from the SPI:
they are test keys, known to both gateways, never used outside the lab.
"""
import argparse
import hashlib
import json
import sys

WAN = {1: "198.51.100.1", 2: "203.0.113.2"}
INET = {1: "198.51.100.254", 2: "203.0.113.254"}
SUITES = {
    "aes128gcm16": (20, 0), "aes256gcm16": (36, 0),
    "aes128-sha1": (16, 20), "aes256-sha1": (32, 20),
    "aes128-sha256": (16, 32), "aes256-sha256": (32, 32),
}


def out(req):
    print(json.dumps(req))


def spi(sender, pair, gen=0):
    l, r = int(pair[0]), int(pair[1])
    return (0x1000 if sender == 1 else 0x2000) + 0x10 * l + r + 0x10000 * gen


def proxy_id(gw, pair):
    l, r = int(pair[0]), int(pair[1])
    mine, theirs = (l, r) if gw == 1 else (r, l)
    peer = 2 if gw == 1 else 1
    return f"local-ip 10.{gw}.{mine}.0/24 remote-ip 10.{peer}.{theirs}.0/24 ANY"


def key(s, n, what):
    h = b""
    i = 0
    while len(h) < n:
        h += hashlib.sha256(f"esprit-lab {what} {s} {i}".encode()).digest()
        i += 1
    return h[:n].hex()


def sa(gw, pair, direction, suite, encap, gen=0, spi_of=None, proxy_of=None, sa_id=None, esn=False, last_seq=0):
    peer = 2 if gw == 1 else 1
    sender = gw if direction == "outbound" else peer
    s = spi(sender, spi_of or pair, gen)
    ek, ik = SUITES[suite]
    req = {
        "type": "add-sa", "id": sa_id if sa_id is not None else s, "direction": direction, "spi": s,
        "suite": suite, "encr_key": key(s, ek, "encr"), "integ_key": key(s, ik, "integ"),
        "local": WAN[gw], "peer": WAN[peer], "vpn": 1, "tunnel": 1,
        "proxy_id": proxy_id(gw, proxy_of or pair), "replay_window": 128,
    }
    if direction == "outbound":
        req["iv_key"] = key(s, 16, "iv")
    if encap:
        req["udp_encap"] = [4500, 4500]
    if esn:
        req["esn"] = True
    if last_seq:
        # Outbound: the first packet carries last_seq + 1; inbound: the
        # window starts above it.
        req["last_seq"] = last_seq
    return req


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("base", help="routes, tunnel.1 and its VPN with the four proxy-IDs")
    b.add_argument("gw", type=int)
    s = sub.add_parser("sas", help="SA pairs (both directions) for some subnet pairs")
    s.add_argument("gw", type=int)
    s.add_argument("pairs", nargs="+")
    s.add_argument("--suite", default="aes128gcm16")
    s.add_argument("--encap", action="store_true")
    s.add_argument("--gen", type=int, default=0)
    s.add_argument("--only", choices=["inbound", "outbound"])
    s.add_argument("--esn", action="store_true", help="64-bit extended sequence numbers")
    s.add_argument("--last-seq", type=int, default=0, help="start as if this many packets had crossed")
    o = sub.add_parser("sa", help="one SA, possibly with a proxy-ID that is not its own")
    o.add_argument("gw", type=int)
    o.add_argument("direction", choices=["inbound", "outbound"])
    o.add_argument("--spi-of", required=True)
    o.add_argument("--proxy-of", required=True)
    o.add_argument("--suite", default="aes128gcm16")
    o.add_argument("--encap", action="store_true")
    r = sub.add_parser("remove", help="remove the SAs of pairs (by id = SPI)")
    r.add_argument("gw", type=int)
    r.add_argument("pairs", nargs="+")
    r.add_argument("--gen", type=int, default=0)
    r.add_argument("--only", choices=["inbound", "outbound"])
    a = ap.parse_args()

    if a.cmd == "base":
        g = a.gw
        peer = 2 if g == 1 else 1
        routes = [
            {"prefix": f"10.{g}.1.0/24", "next_hop": {"kind": "port", "port": "lan1", "gateway": None}},
            {"prefix": f"10.{g}.2.0/24", "next_hop": {"kind": "port", "port": "lan2", "gateway": None}},
            {"prefix": f"{WAN[g].rsplit('.', 1)[0]}.0/24", "next_hop": {"kind": "port", "port": "wan0", "gateway": None}},
            {"prefix": "0.0.0.0/0", "next_hop": {"kind": "port", "port": "wan0", "gateway": INET[g]}},
        ] + [
            {"prefix": f"10.{peer}.{n}.0/24", "next_hop": {"kind": "tunnel", "tunnel": 1}} for n in (1, 2, 3)
        ]
        out({"type": "set-routes", "routes": routes})
        out({"type": "set-tunnel", "tunnel": 1, "mtu": 1400, "vpn": 1})
        pairs = ["11", "12", "21", "22"]
        out({"type": "set-vpn", "vpn": 1, "check": True, "proxy_ids": [proxy_id(g, p) for p in pairs]})
    elif a.cmd == "sas":
        for p in a.pairs:
            # Inbound first: the peer may start sending as soon as its
            # outbound exists (make-before-break).
            for d in ("inbound", "outbound"):
                if a.only in (None, d):
                    out(sa(a.gw, p, d, a.suite, a.encap, a.gen, esn=a.esn, last_seq=a.last_seq))
    elif a.cmd == "sa":
        out(sa(a.gw, a.spi_of, a.direction, a.suite, a.encap, spi_of=a.spi_of, proxy_of=a.proxy_of))
    elif a.cmd == "remove":
        peer = 2 if a.gw == 1 else 1
        for p in a.pairs:
            for d in ("inbound", "outbound"):
                if a.only in (None, d):
                    sender = a.gw if d == "outbound" else peer
                    out({"type": "remove-sa", "id": spi(sender, p, a.gen)})


if __name__ == "__main__":
    sys.exit(main())
