#!/usr/bin/python3
"""scapy's IKEv2 layers (scapy.contrib.ikev2) and python `cryptography` as
an independent IKEv2 implementation for esprit-ike's cross-check.

Driven by tests/v2_scapy.rs: one process per test run, a batch of requests
in, a batch of answers out.

    /usr/bin/python3 v2_scapy.py REQUESTS ANSWERS

Requests, one a line (hex for bytes):

    dissect ID MSG          scapy dissects an esprit message
    build ID NAME           scapy builds message NAME (see BUILDERS)
    open ID SUITE EK AK MSG python decrypts an esprit message's Encrypted
                            payload with the sender's keys (EK: the AES key,
                            for GCM followed by the 4-byte salt; AK: the
                            integrity key or -), checking the ICV, and scapy
                            dissects the inner payloads
    seal ID SUITE EK AK     scapy builds an IKE_AUTH's inner payloads (IDi,
                            AUTH, SA, TSi, TSr) and python encrypts them into
                            an Encrypted payload with non-minimal padding

Answers: `ID ok DESCRIPTION` (dissect, open), `ID ok MSG DESCRIPTION`
(build, seal), `ID rejected WHY` (open: a wrong ICV), `ID error WHY`.
DESCRIPTION is one line of JSON, the same shape tests/v2_scapy.rs gives
its own parse: {"header": {...}, "payloads": [{...}, ...]}.

What is scapy's and what is this script's: scapy parses and builds the
header and payloads. scapy's classes do not chain on their own when
built (their next-payload overloads only apply below the IKEv2 header),
so the builders here set each next-payload field by hand (and the IDi
length, which scapy would take from a field IDi does not have, and a
proposal's SPI size, which its length computation reads before setting,
and an IPv6 selector's length, which scapy 2.5 defaults to 20 where
RFC 7296 §3.13.1 makes it 40). scapy has no
IKEv2 encryption: the Encrypted payload's cipher, MAC and padding are done
here with `cryptography` from RFC 7296 §3.14 and RFC 5282.
"""

import json
import os
import socket
import sys

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.all import raw
from scapy.contrib.ikev2 import (
    IKEv2,
    IKEv2_payload_AUTH,
    IKEv2_payload_CERTREQ,
    IKEv2_payload_Encrypted,
    IKEv2_payload_IDi,
    IKEv2_payload_IDr,
    IKEv2_payload_KE,
    IKEv2_payload_Nonce,
    IKEv2_payload_Notify,
    IKEv2_payload_Proposal,
    IKEv2_payload_SA,
    IKEv2_payload_Transform,
    IKEv2_payload_TSi,
    IKEv2_payload_TSr,
    IKEv2_payload_VendorID,
    IPv4TrafficSelector,
    IPv6TrafficSelector,
)
from scapy.packet import NoPayload

# suite -> (AES-GCM?, hash, ICV length)
SUITES = {
    "aes128-sha1": (False, hashes.SHA1, 12),
    "aes256-sha1": (False, hashes.SHA1, 12),
    "aes128-sha256": (False, hashes.SHA256, 16),
    "aes256-sha256": (False, hashes.SHA256, 16),
    "aes128-sha384": (False, hashes.SHA384, 24),
    "aes256-sha384": (False, hashes.SHA384, 24),
    "aes128-sha512": (False, hashes.SHA512, 32),
    "aes256-sha512": (False, hashes.SHA512, 32),
    "aes128gcm16": (True, None, 16),
    "aes256gcm16": (True, None, 16),
}

TYPES = {
    IKEv2_payload_SA: 33,
    IKEv2_payload_KE: 34,
    IKEv2_payload_IDi: 35,
    IKEv2_payload_IDr: 36,
    IKEv2_payload_CERTREQ: 38,
    IKEv2_payload_AUTH: 39,
    IKEv2_payload_Nonce: 40,
    IKEv2_payload_Notify: 41,
    IKEv2_payload_VendorID: 43,
    IKEv2_payload_TSi: 44,
    IKEv2_payload_TSr: 45,
    IKEv2_payload_Encrypted: 46,
}


def describe_header(h):
    return {
        "ispi": bytes(h.init_SPI).hex(),
        "rspi": bytes(h.resp_SPI).hex(),
        "np": h.next_payload,
        "exch": h.exch_type,
        "flags": int(h.flags),
        "id": h.id,
        "length": h.length,
    }


def id_bytes(p):
    if p.IDtype == 1:
        return socket.inet_aton(p.ID).hex()
    if p.IDtype == 5:
        return socket.inet_pton(socket.AF_INET6, p.ID).hex()
    return bytes(p.ID).hex()


def describe_sa(p):
    props = []
    pr = p.prop
    while isinstance(pr, IKEv2_payload_Proposal):
        trans = []
        t = pr.trans
        while isinstance(t, IKEv2_payload_Transform):
            keylen = None
            if t.length > 8:
                attr = t.getfieldval("key_length")  # the raw 32 bits: AF | type 14 | value
                if t.length != 12 or (attr >> 16) != 0x800E:
                    raise ValueError("transform attribute other than Key Length")
                keylen = attr & 0xFFFF
            trans.append({"type": t.transform_type, "id": t.transform_id, "keylen": keylen})
            t = t.payload
        if not isinstance(t, NoPayload):
            raise ValueError("transform chain left bytes: %r" % t)
        props.append({"num": pr.proposal, "proto": pr.proto, "spi": bytes(pr.SPI).hex(), "transforms": trans})
        pr = pr.payload
    if not isinstance(pr, NoPayload):
        raise ValueError("proposal chain left bytes: %r" % pr)
    return {"proposals": props}


def describe_ts(p):
    out = []
    for ts in p.traffic_selector:
        if ts.TS_type == 7:
            start, end = ts.starting_address_v4, ts.ending_address_v4
        elif ts.TS_type == 8:
            start, end = ts.starting_address_v6, ts.ending_address_v6
        else:
            raise ValueError("TS type %d" % ts.TS_type)
        out.append({"type": ts.TS_type, "proto": ts.IP_protocol_ID, "sport": ts.start_port,
                    "eport": ts.end_port, "start": start, "end": end})
    return {"ts": out}


def describe_payload(p):
    kind = TYPES.get(type(p))
    if kind is None:
        raise ValueError("scapy could not dissect payload: %r" % p)
    d = {"type": kind}
    if kind == 33:
        d.update(describe_sa(p))
    elif kind == 34:
        d.update({"group": p.group, "data": bytes(p.load).hex()})
    elif kind in (35, 36):
        d.update({"idtype": p.IDtype, "data": id_bytes(p)})
    elif kind == 38:
        d.update({"enc": p.cert_type, "data": bytes(p.cert_data).hex()})
    elif kind == 39:
        d.update({"method": p.auth_type, "data": bytes(p.load).hex()})
    elif kind in (40, 43):
        d.update({"data": bytes(p.load if kind == 40 else p.vendorID).hex()})
    elif kind == 41:
        d.update({"proto": p.proto or 0, "ntype": p.type, "spi": bytes(p.SPI).hex(), "data": bytes(p.load).hex()})
    elif kind in (44, 45):
        d.update(describe_ts(p))
    elif kind == 46:
        d.update({"data": bytes(p.load).hex()})
    return d


def describe_chain(p):
    out = []
    while not isinstance(p, NoPayload):
        out.append(describe_payload(p))
        p = p.payload
    return out


def describe(msg):
    pkt = IKEv2(msg)
    return {"header": describe_header(pkt), "payloads": describe_chain(pkt.payload)}


def transform(ty, tid, keylen=None):
    if keylen is None:
        return IKEv2_payload_Transform(next_payload=3, transform_type=ty, transform_id=tid, length=8)
    return IKEv2_payload_Transform(next_payload=3, transform_type=ty, transform_id=tid, length=12,
                                   key_length=keylen)


def transforms(*ts):
    """Chains transforms; the last one's next-payload is 0 (RFC 7296 §3.3.2)."""
    chain = None
    for i, t in enumerate(ts):
        if i == len(ts) - 1:
            t.next_payload = 0
        chain = t if chain is None else chain / t
    return chain


def build_sa_init():
    p1 = IKEv2_payload_Proposal(next_payload=2, proposal=1, proto=1, trans_nb=4,
                                trans=transforms(transform(1, 12, 256), transform(2, 5), transform(3, 12),
                                                 transform(4, 19)))
    p2 = IKEv2_payload_Proposal(next_payload=0, proposal=2, proto=1, trans_nb=3,
                                trans=transforms(transform(1, 20, 128), transform(2, 7), transform(4, 14)))
    return (IKEv2(init_SPI=bytes.fromhex("a1a2a3a4a5a6a7a8"), resp_SPI=bytes(8), exch_type=34,
                  flags="Initiator", id=0)
            / IKEv2_payload_SA(next_payload=34, prop=p1 / p2)
            / IKEv2_payload_KE(next_payload=40, group=19, load=bytes(range(64)))
            / IKEv2_payload_Nonce(next_payload=41, load=bytes(range(100, 132)))
            / IKEv2_payload_Notify(next_payload=41, type=16388, load=b"\x51" * 20)
            / IKEv2_payload_Notify(next_payload=0, type=16389, load=b"\x52" * 20))


def build_auth_inner():
    """IDi, AUTH, SA (ESP with SPI, ESN), TSi, TSr: the inner chain of an
    IKE_AUTH request; returns (first payload type, bytes)."""
    prop = IKEv2_payload_Proposal(next_payload=0, proposal=1, proto=3, SPIsize=4,
                                  SPI=bytes.fromhex("c0ffee01"), trans_nb=3,
                                  trans=transforms(transform(1, 20, 256), transform(5, 1), transform(5, 0)))
    tsi = [IPv4TrafficSelector(IP_protocol_ID=0, start_port=0, end_port=65535,
                               starting_address_v4="10.1.0.0", ending_address_v4="10.1.255.255"),
           IPv6TrafficSelector(length=40, IP_protocol_ID=17, start_port=53, end_port=53,
                               starting_address_v6="2001:db8::", ending_address_v6="2001:db8::ff")]
    tsr = [IPv4TrafficSelector(IP_protocol_ID=6, start_port=443, end_port=443,
                               starting_address_v4="10.2.0.1", ending_address_v4="10.2.0.1")]
    idi = b"initiator.example"
    # scapy's IDi computes its length from a field it does not have: set it.
    chain = (IKEv2_payload_IDi(next_payload=39, length=8 + len(idi), IDtype=2, ID=idi)
             / IKEv2_payload_AUTH(next_payload=33, auth_type=2, load=bytes(range(32)))
             / IKEv2_payload_SA(next_payload=44, prop=prop)
             / IKEv2_payload_TSi(next_payload=45, traffic_selector=tsi)
             / IKEv2_payload_TSr(next_payload=0, traffic_selector=tsr))
    return 35, raw(chain)


BUILDERS = {"sa_init": build_sa_init}


def hmac_of(hash_cls, key, data):
    h = hmac.HMAC(key, hash_cls())
    h.update(data)
    return h.finalize()


def open_sk(suite, ek, ak, msg):
    gcm, hash_cls, icv_len = SUITES[suite]
    pkt = IKEv2(msg)
    sk = pkt.payload
    if not isinstance(sk, IKEv2_payload_Encrypted):
        raise ValueError("no Encrypted payload first")
    sk_at = 28
    body = bytes(sk.load)
    iv_len = 8 if gcm else 16
    iv, ct, icv = body[:iv_len], body[iv_len:-icv_len], body[-icv_len:]
    if gcm:
        key, salt = ek[:-4], ek[-4:]
        try:
            plain = AESGCM(key).decrypt(salt + iv, ct + icv, msg[:sk_at + 4])
        except Exception:
            return None, "GCM tag"
    else:
        if hmac_of(hash_cls, ak, msg[:-icv_len])[:icv_len] != icv:
            return None, "ICV"
        d = Cipher(algorithms.AES(ek), modes.CBC(iv)).decryptor()
        plain = d.update(ct) + d.finalize()
    pad = plain[-1]
    inner = plain[:len(plain) - 1 - pad]
    first = sk.next_payload
    cls = {v: k for k, v in TYPES.items()}[first]
    return {"header": describe_header(pkt), "payloads": describe_chain(cls(inner))}, None


def seal_sk(suite, ek, ak):
    gcm, hash_cls, icv_len = SUITES[suite]
    first, inner = build_auth_inner()
    # Non-minimal padding with non-zero bytes: a receiver must take any
    # pad length that aligns (RFC 7296 §3.14).
    block = 1 if gcm else 16
    pad = (block - (len(inner) + 1) % block) % block + (3 if gcm else 16)
    plain = inner + bytes((0xa0 + i) & 0xff for i in range(pad)) + bytes([pad])
    iv_len = 8 if gcm else 16
    iv = os.urandom(iv_len)
    sk_len = 4 + iv_len + len(plain) + icv_len
    hdr = IKEv2(init_SPI=bytes.fromhex("b1b2b3b4b5b6b7b8"), resp_SPI=bytes.fromhex("c1c2c3c4c5c6c7c8"),
                next_payload=46, exch_type=35, flags="Initiator", id=1, length=28 + sk_len)
    head = raw(hdr) + bytes([first, 0]) + sk_len.to_bytes(2, "big")
    if gcm:
        key, salt = ek[:-4], ek[-4:]
        sealed = AESGCM(key).encrypt(salt + iv, plain, head)
        msg = head + iv + sealed
    else:
        e = Cipher(algorithms.AES(ek), modes.CBC(iv)).encryptor()
        ct = e.update(plain) + e.finalize()
        msg = head + iv + ct
        msg += hmac_of(hash_cls, ak, msg)[:icv_len]
    cls = {v: k for k, v in TYPES.items()}[first]
    desc = {"header": describe_header(IKEv2(msg)), "payloads": describe_chain(cls(inner))}
    return msg, desc


def key(tok):
    return b"" if tok == "-" else bytes.fromhex(tok)


def answer(tok):
    cmd, ident = tok[0], tok[1]
    if cmd == "dissect":
        return "%s ok %s" % (ident, json.dumps(describe(bytes.fromhex(tok[2]))))
    if cmd == "build":
        msg = raw(BUILDERS[tok[2]]())
        return "%s ok %s %s" % (ident, msg.hex(), json.dumps(describe(msg)))
    if cmd == "open":
        desc, why = open_sk(tok[2], key(tok[3]), key(tok[4]), bytes.fromhex(tok[5]))
        if desc is None:
            return "%s rejected %s" % (ident, why)
        return "%s ok %s" % (ident, json.dumps(desc))
    if cmd == "seal":
        msg, desc = seal_sk(tok[2], key(tok[3]), key(tok[4]))
        return "%s ok %s %s" % (ident, msg.hex(), json.dumps(desc))
    raise ValueError("unknown request " + cmd)


def main():
    out = []
    with open(sys.argv[1]) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            try:
                out.append(answer(tok))
            except Exception as e:  # reported, the Rust side fails the test
                out.append("%s error %s" % (tok[1], repr(e).replace("\n", " ")))
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
