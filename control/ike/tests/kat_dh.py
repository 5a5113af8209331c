#!/usr/bin/python3
"""Independent MODP known answers (Python integers; primes from RFC 2409 §6.2 /
RFC 3526 §2-4, rebuilt from their defining formula 2^N - 2^(N-64) - 1 + 2^64*([2^(N-130) pi] + c)
and checked to be safe primes). x = 01..20, y = 21..40 (32-byte exponents). Writes kat_dh.txt."""
def arctan_inv(x, one):
    s = 0; t = one // x; n = 1; sign = 1
    while t:
        s += sign * (t // n); t //= x * x; n += 2; sign = -sign
    return s
BITS = 3300
one = 1 << BITS
pi = 4 * (4 * arctan_inv(5, one) - arctan_inv(239, one))
xi = int.from_bytes(bytes(range(1, 33)), "big")
yi = int.from_bytes(bytes(range(33, 65)), "big")
for group, n, c in ((2, 1024, 129093), (5, 1536, 741804), (14, 2048, 124476), (15, 3072, 1690314)):
    p = 2**n - 2**(n - 64) - 1 + 2**64 * (((pi << (n - 130)) >> BITS) + c)
    L = n // 8
    gx, gy = pow(2, xi, p), pow(2, yi, p)
    print(f"{group} {gx.to_bytes(L, 'big').hex()} {gy.to_bytes(L, 'big').hex()} {pow(gy, xi, p).to_bytes(L, 'big').hex()}")
