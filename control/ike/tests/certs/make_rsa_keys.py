#!/usr/bin/env python3
"""Writes the RSA keys of the certificate tests (tests/v2_cert.rs) as
PKCS#8 DER: ring, which rcgen signs with here, cannot generate RSA keys.
The ECDSA keys are made by rcgen at test time. Run from this directory:

    python3 make_rsa_keys.py

Needs the `cryptography` package. The keys are test material only.
"""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

for name in ("ca", "west", "east"):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(f"rsa-{name}.pk8", "wb") as f:
        f.write(der)
