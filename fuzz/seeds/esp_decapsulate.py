#!/usr/bin/python3
"""Writes the seed corpus of the esp_decapsulate fuzz target.

ESP packets are sealed by scapy (an implementation independent of
esprit-esp) with the keys of `esprit_esp::fuzz::keys` and SPI
`esprit_esp::fuzz::SPI`, so that a fresh SA accepts them; plaintexts and
bare inner packets feed the target's other two modes.

    /usr/bin/python3 fuzz/seeds/esp_decapsulate.py
"""
import os
import sys

from scapy.layers.inet import IP, UDP, TCP, ICMP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, SecurityAssociation

SPI = 0xC0DE
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "corpus", "esp_decapsulate")

# (name, esprit suite, AES key length, scapy crypt, scapy auth, integrity key length)
SUITES = [
    ("aes128gcm16", 16, "AES-GCM", None, 0),
    ("aes256gcm16", 32, "AES-GCM", None, 0),
    ("aes128-sha1", 16, "AES-CBC", "HMAC-SHA1-96", 20),
    ("aes256-sha1", 32, "AES-CBC", "HMAC-SHA1-96", 20),
    ("aes128-sha256", 16, "AES-CBC", "SHA2-256-128", 32),
    ("aes256-sha256", 32, "AES-CBC", "SHA2-256-128", 32),
]


def keys(aes_len, gcm, integ_len):
    """esprit_esp::fuzz::keys: e[i] = 13 i + 1, a[i] = 29 i + 7 (mod 256)."""
    e = bytes((i * 13 + 1) & 0xFF for i in range(aes_len + (4 if gcm else 0)))
    a = bytes((i * 29 + 7) & 0xFF for i in range(integ_len))
    return e, a


def inner_v4(payload=b"esprit fuzz seed", proto="udp"):
    ip = IP(src="10.1.1.10", dst="10.2.1.10", ttl=63, id=7)
    if proto == "udp":
        return bytes(ip / UDP(sport=40000, dport=5001) / payload)
    if proto == "tcp":
        return bytes(ip / TCP(sport=40001, dport=80, flags="S"))
    return bytes(ip / ICMP(type=8, id=1, seq=1) / payload)


def inner_v6(payload=b"esprit fuzz seed v6"):
    return bytes(IPv6(src="2001:db8:1::10", dst="2001:db8:2::10", hlim=63) / UDP(sport=40000, dport=5001) / payload)


def esp_packet(suite, inner, seq):
    name, aes_len, crypt, auth, integ_len = suite
    e, a = keys(aes_len, crypt == "AES-GCM", integ_len)
    kw = dict(spi=SPI, crypt_algo=crypt, crypt_key=e, tunnel_header=IP(src="192.0.2.1", dst="192.0.2.2"))
    if auth:
        kw.update(auth_algo=auth, auth_key=a)
    sa = SecurityAssociation(ESP, **kw)
    first = inner[0] >> 4
    pkt = IP(inner) if first == 4 else IPv6(inner)
    sa.seq_num = seq
    enc = sa.encrypt(pkt)
    raw = bytes(enc)
    return raw[20:]  # outer IPv4 header stripped: ESP header .. ICV


def trailer(inner, nh, align=4, extra_pad=0):
    pad = (align - (len(inner) + 2) % align) % align + extra_pad
    return inner + bytes(range(1, pad + 1)) + bytes([pad, nh])


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    seeds["esp-aes128gcm16-v4udp"] = esp_packet(SUITES[0], inner_v4(), 1)
    seeds["esp-aes256gcm16-v4icmp"] = esp_packet(SUITES[1], inner_v4(proto="icmp"), 5)
    seeds["esp-aes128-sha1-v4tcp"] = esp_packet(SUITES[2], inner_v4(proto="tcp"), 1)
    seeds["esp-aes256-sha1-v6"] = esp_packet(SUITES[3], inner_v6(), 2)
    seeds["esp-aes128-sha256-v4udp"] = esp_packet(SUITES[4], inner_v4(b"x" * 100), 1)
    seeds["esp-aes256-sha256-v6"] = esp_packet(SUITES[5], inner_v6(b"y" * 33), 3)
    # Plaintexts (mode 2): inner packet | padding 1, 2, .. | pad length | next header.
    seeds["plain-v4"] = trailer(inner_v4(), 4)
    seeds["plain-v6-tfc"] = trailer(inner_v6() + b"\0" * 12, 41)  # TFC padding after the packet
    seeds["plain-v4-longpad"] = trailer(inner_v4(proto="tcp"), 4, extra_pad=16)
    seeds["plain-dummy"] = trailer(b"\xaa" * 30, 59)
    # Bare inner packets (mode 3).
    seeds["inner-v4-udp"] = inner_v4()
    seeds["inner-v4-options"] = bytes(
        IP(src="10.1.1.10", dst="10.2.1.10", options=b"\x01\x01\x01\x00") / UDP(sport=1, dport=2) / b"opt"
    )
    seeds["inner-v6-udp"] = inner_v6()
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"{len(seeds)} seeds in {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
