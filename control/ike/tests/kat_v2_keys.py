#!/usr/bin/python3
"""Independent known answers for the IKEv2 key schedule (RFC 7296 §2.13
prf+, §2.14 SKEYSEED and SK_*, §2.18 rekeyed SKEYSEED, §2.17 child KEYMAT),
computed with the python `cryptography` package. Writes kat_v2_keys.txt:

    python3 kat_v2_keys.py > kat_v2_keys.txt
"""
from cryptography.hazmat.primitives import hashes, hmac

HASHES = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


def prf(alg, key, *parts):
    h = hmac.HMAC(key, HASHES[alg]())
    for p in parts:
        h.update(p)
    return h.finalize()


def prf_plus(alg, key, seed, length):
    out, t, n = b"", b"", 1
    while len(out) < length:
        t = prf(alg, key, t + seed + bytes([n]))
        out += t
        n += 1
    return out[:length]


def split(data, lengths):
    out = []
    for n in lengths:
        out.append(data[:n])
        data = data[n:]
    return out


# name: (PRF, SK_a length, SK_e length incl. GCM salt)
CASES = {
    "sha1": ("sha1", 20, 16),      # AES-CBC-128, HMAC-SHA1-96
    "sha256": ("sha256", 32, 32),  # AES-CBC-256, HMAC-SHA2-256-128
    "sha384": ("sha384", 0, 36),   # AES-GCM-16-256
    "sha512": ("sha512", 64, 32),  # AES-CBC-256, HMAC-SHA2-512-256
}
NI, NR = b"\xa1" * 32, b"\xb2" * 32
GIR = b"\x5c" * 256
SPII, SPIR = bytes.fromhex("0102030405060708"), bytes.fromhex("1112131415161718")
NI2, NR2 = b"\xc3" * 32, b"\xd4" * 24
GIR2 = b"\x6d" * 32
SPII2, SPIR2 = bytes.fromhex("2122232425262728"), bytes.fromhex("3132333435363738")
GIR3 = b"\x7e" * 32

NAMES = ["sk_d", "sk_ai", "sk_ar", "sk_ei", "sk_er", "sk_pi", "sk_pr"]


def expand(alg, a, e, skeyseed, ni, nr, spii, spir):
    p = hashes.Hash(HASHES[alg]()).algorithm.digest_size
    km = prf_plus(alg, skeyseed, ni + nr + spii + spir, 3 * p + 2 * a + 2 * e)
    return split(km, [p, a, a, e, e, p, p])


for case, (alg, a, e) in CASES.items():
    skeyseed = prf(alg, NI + NR, GIR)
    keys = expand(alg, a, e, skeyseed, NI, NR, SPII, SPIR)
    print(f"{case}.skeyseed = {skeyseed.hex()}")
    for name, k in zip(NAMES, keys):
        print(f"{case}.{name} = {k.hex()}")
    # Rekey (§2.18): the old SA's SK_d and PRF, new secret, nonces, SPIs.
    sk_d = keys[0]
    skeyseed2 = prf(alg, sk_d, GIR2 + NI2 + NR2)
    print(f"{case}.rekey.skeyseed = {skeyseed2.hex()}")
    for name, k in zip(NAMES, expand(alg, a, e, skeyseed2, NI2, NR2, SPII2, SPIR2)):
        print(f"{case}.rekey.{name} = {k.hex()}")
    # Child KEYMAT (§2.17): AES-GCM-128 without PFS (20 bytes each way,
    # no integrity), AES-CBC-256 + HMAC-SHA2-256 with PFS (32 + 32).
    km = prf_plus(alg, sk_d, NI2 + NR2, 2 * 20)
    for name, k in zip(["i2r.encr", "r2i.encr"], split(km, [20, 20])):
        print(f"{case}.child.gcm128.{name} = {k.hex()}")
    km = prf_plus(alg, sk_d, GIR3 + NI2 + NR2, 2 * (32 + 32))
    for name, k in zip(["i2r.encr", "i2r.integ", "r2i.encr", "r2i.integ"], split(km, [32, 32, 32, 32])):
        print(f"{case}.child.cbc256sha256.pfs.{name} = {k.hex()}")
