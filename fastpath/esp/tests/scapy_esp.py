#!/usr/bin/python3
"""scapy as an independent ESP implementation for esprit-esp's cross-check.

Driven by tests/scapy_cross.rs: one process per test run, a batch of
requests in, a batch of answers out.

    /usr/bin/python3 scapy_esp.py REQUESTS ANSWERS

Each request is one line of whitespace-separated tokens (hex for bytes):

    sa NAME SUITE SPI ENCR INTEG|- NATT(0|1) ESN(0|1) IVKEY SRC DST
        define a tunnel-mode SA (scapy.layers.ipsec.SecurityAssociation)
    check ID SA SEQ IDENT INNER OUTER
        OUTER is an esprit packet: scapy decrypts it (expects INNER), and
        re-encrypts INNER with the same sequence number and esprit's IV
        rule (GCM: IV = 64-bit seq; CBC: IV = AES-ECB(IVKEY, 0^64 || seq))
        and outer header rule (TOS copied, DF copied / set for IPv6,
        TTL 64, id IDENT) to compare the whole packet byte for byte.
    tamper ID SA SEQ OUTER     a modified esprit packet: must be refused
    replay ID SA SEQ OUTER     an esprit packet already checked: refused
    enc ID SA SEQ INNER        scapy encrypts (random IV) for esprit

Answers, one line each:

    ID ok INNER same|differ:SCAPYHEX     (check)
    ID rejected|accepted WHY             (tamper, replay)
    ID ok OUTER                          (enc)
    ID error TEXT                        (anything that raised)

What is scapy's and what is this script's: scapy does the ESP encryption,
decryption, padding and ICV. This script adds three things scapy 2.5
lacks: (1) ESN for the HMAC suites: scapy applies ESN to AES-GCM's AAD
but ignores it in the ESP ICV, so the ICV over ESP || seq_hi
(RFC 4303 §2.2.1) is computed here with python's hmac; (2) the UDP length
of RFC 3948 packets, which scapy's encrypt leaves at 8 (a scapy bug); it
is set right here; (3) anti-replay, which scapy does not have: a set of
the sequence numbers seen per SA stands in for the receiver's window.
"""

import hashlib
import hmac
import struct
import sys
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.ipsec import ESP, IPSecIntegrityError, SecurityAssociation

# esprit suite name -> (scapy crypt algo, scapy auth algo, hash, ICV length)
SUITES = {
    "aes128gcm16": ("AES-GCM", None, None, 16),
    "aes256gcm16": ("AES-GCM", None, None, 16),
    "aes128-sha1": ("AES-CBC", "HMAC-SHA1-96", hashlib.sha1, 12),
    "aes256-sha1": ("AES-CBC", "HMAC-SHA1-96", hashlib.sha1, 12),
    "aes128-sha256": ("AES-CBC", "SHA2-256-128", hashlib.sha256, 16),
    "aes256-sha256": ("AES-CBC", "SHA2-256-128", hashlib.sha256, 16),
}


class Sa:
    def __init__(self, suite, spi, encr, integ, natt, esn, ivkey, src, dst):
        crypt, auth, digest, icv = SUITES[suite]
        self.suite, self.spi, self.natt, self.esn = suite, spi, natt, esn
        self.integ, self.digest, self.icv = integ, digest, icv
        self.src, self.dst = src, dst
        self.ivkey = ivkey
        self.gcm = crypt == "AES-GCM"
        self.seen = set()
        self.sa = SecurityAssociation(
            ESP,
            spi=spi,
            crypt_algo=crypt,
            crypt_key=encr,  # GCM: key || 4-byte salt, as RFC 4106 §8.1
            auth_algo=auth,
            auth_key=integ if auth else None,
            tunnel_header=IP(src=src, dst=dst),
            nat_t_header=UDP(sport=4500, dport=4500) if natt else None,
        )

    def _set_seq(self, seq):
        self.sa.seq_num = seq & 0xFFFFFFFF
        self.sa.esn_en = self.esn
        self.sa.esn = seq >> 32

    def _esp_offset(self):
        return 20 + (8 if self.natt else 0)

    def _hmac_esn(self, body, seq):
        # RFC 4303 §2.2.1: seq_hi is appended to the ICV input, not sent.
        mac = hmac.new(self.integ, body + struct.pack("!L", seq >> 32), self.digest)
        return mac.digest()[: self.icv]

    def decrypt(self, raw, seq):
        """Decrypts an outer packet; returns the inner bytes or raises."""
        self._set_seq(seq)
        pkt = IP(raw)
        if ESP not in pkt:
            raise ValueError("no ESP layer")
        if self.esn and not self.gcm:
            esp = bytes(pkt[ESP])
            body, icv = esp[: -self.icv], esp[-self.icv :]
            if not hmac.compare_digest(icv, self._hmac_esn(body, seq)):
                raise IPSecIntegrityError("ESN ICV mismatch")
            out = self.sa.decrypt(pkt, verify=False)
        else:
            out = self.sa.decrypt(pkt)
        return bytes(out)

    def encrypt(self, inner, seq, iv=None, header=None):
        """Encrypts an inner packet; returns the outer packet bytes."""
        self._set_seq(seq)
        self.sa.tunnel_header = header if header is not None else IP(src=self.src, dst=self.dst, ttl=64)
        p = IP(inner) if inner[0] >> 4 == 4 else IPv6(inner)
        out = bytearray(bytes(self.sa.encrypt(p, iv=iv)))
        if self.natt:
            # scapy 2.5 leaves the UDP length at 8 (header only).
            out[24:26] = struct.pack("!H", len(out) - 20)
        if self.esn and not self.gcm:
            body = bytes(out[self._esp_offset() : -self.icv])
            out[-self.icv :] = self._hmac_esn(body, seq)
        return bytes(out)

    def esprit_iv(self, seq):
        if self.gcm:
            return struct.pack("!Q", seq)
        enc = Cipher(algorithms.AES(self.ivkey), modes.ECB()).encryptor()
        return enc.update(b"\0" * 8 + struct.pack("!Q", seq)) + enc.finalize()

    def esprit_header(self, inner, ident):
        if inner[0] >> 4 == 4:
            tos, df = inner[1], bool(inner[6] & 0x40)
        else:
            tos, df = ((inner[0] & 0x0F) << 4) | (inner[1] >> 4), True
        return IP(src=self.src, dst=self.dst, tos=tos, id=ident, flags="DF" if df else 0, ttl=64)


def run(requests, answers):
    sas = {}
    stats = {}
    out = []
    for line in requests:
        t = line.split()
        if not t:
            continue
        op = t[0]
        stats[op] = stats.get(op, 0) + 1
        if op == "sa":
            name, suite, spi, encr, integ, natt, esn, ivkey, src, dst = t[1:11]
            sas[name] = Sa(
                suite,
                int(spi, 16),
                bytes.fromhex(encr),
                b"" if integ == "-" else bytes.fromhex(integ),
                natt == "1",
                esn == "1",
                bytes.fromhex(ivkey),
                src,
                dst,
            )
            continue
        rid, sa, seq = t[1], sas[t[2]], int(t[3])
        try:
            if op == "check":
                ident, inner, outer = int(t[4]), bytes.fromhex(t[5]), bytes.fromhex(t[6])
                got = sa.decrypt(outer, seq)
                if seq in sa.seen:
                    out.append("%s error sequence-number-reused" % rid)
                    continue
                sa.seen.add(seq)
                if got != inner:
                    out.append("%s error inner-differs:%s" % (rid, got.hex()))
                    continue
                again = sa.encrypt(inner, seq, iv=sa.esprit_iv(seq), header=sa.esprit_header(inner, ident))
                verdict = "same" if again == outer else "differ:" + again.hex()
                out.append("%s ok %s %s" % (rid, got.hex(), verdict))
            elif op == "tamper" or op == "replay":
                outer = bytes.fromhex(t[4])
                try:
                    sa.decrypt(outer, seq)
                except IPSecIntegrityError:
                    out.append("%s rejected integrity" % rid)
                    continue
                if seq in sa.seen:
                    out.append("%s rejected replay" % rid)
                    continue
                sa.seen.add(seq)
                out.append("%s accepted -" % rid)
            elif op == "enc":
                inner = bytes.fromhex(t[4])
                out.append("%s ok %s" % (rid, sa.encrypt(inner, seq).hex()))
            else:
                out.append("%s error unknown-op-%s" % (rid, op))
        except Exception as e:  # report, never stop the batch
            out.append("%s error %s:%s" % (rid, type(e).__name__, str(e).replace(" ", "_")[:200]))
    answers.write("\n".join(out) + "\n")
    return stats


def main():
    t0 = time.time()
    with open(sys.argv[1]) as req, open(sys.argv[2], "w") as ans:
        stats = run(req, ans)
    sys.stderr.write("scapy_esp.py: %s in %.1f s\n" % (stats, time.time() - t0))


if __name__ == "__main__":
    main()
