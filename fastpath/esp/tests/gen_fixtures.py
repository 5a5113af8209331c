#!/usr/bin/python3
"""Known-answer ESP packets for esprit-esp's unit tests, computed step by
step from the RFCs with the python `cryptography` package (not scapy, not
esprit). Run: /usr/bin/python3 fastpath/esp/tests/gen_fixtures.py

Each fixture prints the SA parameters and the whole outer IPv4 packet in
hex; src/tests.rs pastes them.
"""
import hashlib
import hmac
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, tos=0, ident=0, df=True, ttl=64):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident,
                    0x4000 if df else 0, ttl, proto, 0, bytes(src), bytes(dst))
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def inner_v4(n_payload, tos=0, df=True):
    # 10.1.1.5 -> 10.2.1.7, protocol 253 (RFC 3692 experimentation).
    payload = bytes((i * 7 + 3) & 0xFF for i in range(n_payload))
    return ipv4([10, 1, 1, 5], [10, 2, 1, 7], 253, payload, tos=tos, ident=0x1234, df=df)


def inner_v6(n_payload, tc=0):
    payload = bytes((i * 5 + 1) & 0xFF for i in range(n_payload))
    first = (6 << 28) | (tc << 20) | 0x12345
    src = bytes.fromhex("20010db8000100000000000000000005")
    dst = bytes.fromhex("20010db8000200000000000000000007")
    return struct.pack("!IHBB", first, len(payload), 253, 64) + src + dst + payload


def trailer(inner, nh, align):
    pad = (-(len(inner) + 2)) % align
    return inner + bytes(range(1, pad + 1)) + bytes([pad, nh])


def esp_gcm(key, salt, spi, seq, inner, nh, esn):
    lo, hi = seq & 0xFFFFFFFF, seq >> 32
    iv = struct.pack("!Q", seq)  # esprit: IV = 64-bit sequence number
    aad = struct.pack("!LLL", spi, hi, lo) if esn else struct.pack("!LL", spi, lo)
    ct = AESGCM(key).encrypt(salt + iv, trailer(inner, nh, 4), aad)  # ct || tag16
    return struct.pack("!LL", spi, lo) + iv + ct


def esp_cbc(key, ivkey, integ, digest, icv_len, spi, seq, inner, nh, esn):
    lo, hi = seq & 0xFFFFFFFF, seq >> 32
    e = Cipher(algorithms.AES(ivkey), modes.ECB()).encryptor()
    iv = e.update(b"\0" * 8 + struct.pack("!Q", seq)) + e.finalize()
    c = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ct = c.update(trailer(inner, nh, 16)) + c.finalize()
    authed = struct.pack("!LL", spi, lo) + iv + ct
    mac = hmac.new(integ, authed + (struct.pack("!L", hi) if esn else b""), digest).digest()
    return authed + mac[:icv_len]


SRC, DST = [192, 0, 2, 1], [198, 51, 100, 2]


def outer(esp, tos, ident, df, udp=None):
    if udp:
        u = struct.pack("!HHHH", udp[0], udp[1], 8 + len(esp), 0) + esp
        return ipv4(SRC, DST, 17, u, tos=tos, ident=ident, df=df)
    return ipv4(SRC, DST, 50, esp, tos=tos, ident=ident, df=df)


def show(name, **kw):
    print("//", name)
    for k, v in kw.items():
        print("   %s = %s" % (k, v.hex() if isinstance(v, bytes) else v))


# 1. aes128gcm16, ESP, seq 1, inner IPv4 28 bytes, TOS 0, DF.
k, s = bytes(range(16)), bytes.fromhex("deadbeef")
inner = inner_v4(8)
show("GCM128", key=k + s, inner=inner,
     outer=outer(esp_gcm(k, s, 0x1000ABCD, 1, inner, 4, False), 0, 0, True))

# 2. aes128-sha1, ESP-in-UDP 4500->4500, seq 1, inner IPv4 40 bytes,
#    DSCP EF + ECN CE (0xbb), DF clear.
k = bytes.fromhex("00112233445566778899aabbccddeeff")
ivk = bytes(range(0x40, 0x50))
a = bytes(range(0x80, 0x94))
inner = inner_v4(20, tos=0xBB, df=False)
show("CBCSHA1", key=k, integ=a, ivkey=ivk, inner=inner,
     outer=outer(esp_cbc(k, ivk, a, hashlib.sha1, 12, 0x2000BEEF, 1, inner, 4, False),
                 0xBB, 0, False, udp=(4500, 4500)))

# 3. aes256gcm16 with ESN, seq 2^32 + 5, inner IPv6 (40 + 13 bytes), ident 7.
k, s = bytes(range(0x20, 0x40)), bytes.fromhex("01020304")
inner = inner_v6(13, tc=0x2E << 2)
show("GCM256ESN", key=k + s, inner=inner,
     outer=outer(esp_gcm(k, s, 0x3000CAFE, (1 << 32) + 5, inner, 41, True), 0x2E << 2, 0, True))

# 4. aes256-sha256 with ESN, seq 2^32 + 1, inner IPv4 100 bytes.
k = bytes(range(0xA0, 0xC0))
ivk = bytes(range(0x10, 0x20))
a = bytes(range(0x60, 0x80))
inner = inner_v4(80)
show("CBCSHA256ESN", key=k, integ=a, ivkey=ivk, inner=inner,
     outer=outer(esp_cbc(k, ivk, a, hashlib.sha256, 16, 0x4000F00D, (1 << 32) + 1, inner, 4, True),
                 0, 0, True))
