#!/usr/bin/python3
"""Independent known answers for the SKEYID chain (RFC 2409 §5, App. B, §5.5),
computed with the python `cryptography` package. Writes kat_keys.txt."""
from cryptography.hazmat.primitives import hashes, hmac

def prf(key, *parts):
    h = hmac.HMAC(key, hashes.SHA1())
    for p in parts:
        h.update(p)
    return h.finalize()

def hsh(*parts):
    h = hashes.Hash(hashes.SHA1())
    for p in parts:
        h.update(p)
    return h.finalize()

ci, cr = b"\x11" * 8, b"\x22" * 8
ni, nr = b"\xa1" * 16, b"\xb2" * 16
gxy = b"\x5c" * 128
skeyid = prf(b"secret", ni, nr)
d = prf(skeyid, gxy, ci, cr, b"\x00")
a = prf(skeyid, d, gxy, ci, cr, b"\x01")
e = prf(skeyid, a, gxy, ci, cr, b"\x02")
k1 = prf(e, b"\x00"); k2 = prf(e, k1)
enc = (k1 + k2)[:32]
gxi, gxr = b"\x01" * 128, b"\x02" * 128
hash_i = prf(skeyid, gxi, gxr, ci, cr, b"SAi_b", b"IDii_b")
iv = hsh(gxi, gxr)[:16]
iv2 = hsh(b"\x33" * 16, bytes.fromhex("01020304"))[:16]
g = b"\x44" * 32
spi = bytes.fromhex("c1000001")
km1 = prf(d, g, b"\x03", spi, ni, nr); km2 = prf(d, km1, g, b"\x03", spi, ni, nr)
km = (km1 + km2)[:36]
h3 = prf(a, b"\x00", (7).to_bytes(4, "big"), ni, nr)
for name, v in [("skeyid", skeyid), ("skeyid_d", d), ("skeyid_a", a), ("enc_key", enc),
                ("hash_i", hash_i), ("iv", iv), ("qm_iv", iv2), ("keymat", km), ("qm_hash3", h3)]:
    print(f"{name} = {v.hex()}")
