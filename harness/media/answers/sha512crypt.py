"""SHA-512 crypt (``$6$``), the password hash every installer here accepts, written
out from Ulrich Drepper's specification ("Unix crypt using SHA-256 and SHA-512"),
since Python 3.13 drops the ``crypt`` module. Checked against ``openssl passwd -6``
and the specification's test vectors."""

from __future__ import annotations

import hashlib
import secrets

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ROUNDS_DEFAULT = 5000
# The specification's byte order of the final digest, three bytes per group.
_ORDER = ((0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
          (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
          (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38),
          (18, 39, 60), (40, 61, 19), (62, 20, 41))


def _b64(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha512_crypt(password: str, salt: str | None = None, rounds: int = ROUNDS_DEFAULT) -> str:
    """``$6$[rounds=N$]salt$hash`` for ``password``; a random 16-character salt unless
    one is given (tests)."""
    if salt is None:
        salt = "".join(secrets.choice(ITOA64) for _ in range(16))
    if any(c not in ITOA64 for c in salt):
        raise ValueError("a crypt salt is made of [./0-9A-Za-z]")
    rounds = min(max(rounds, 1000), 999_999_999)
    p, s = password.encode(), salt.encode()[:16]
    b = hashlib.sha512(p + s + p).digest()
    a = hashlib.sha512(p + s + _repeat(b, len(p)))
    i = len(p)
    while i:
        a.update(b if i & 1 else p)
        i >>= 1
    a_digest = a.digest()
    p_seq = _repeat(hashlib.sha512(p * len(p)).digest(), len(p))
    s_seq = _repeat(hashlib.sha512(s * (16 + a_digest[0])).digest(), len(s))
    c = a_digest
    for r in range(rounds):
        h = hashlib.sha512(p_seq if r & 1 else c)
        if r % 3:
            h.update(s_seq)
        if r % 7:
            h.update(p_seq)
        h.update(c if r & 1 else p_seq)
        c = h.digest()
    encoded = "".join(_b64(c[x], c[y], c[z], 4) for x, y, z in _ORDER) + _b64(0, 0, c[63], 2)
    prefix = "$6$" if rounds == ROUNDS_DEFAULT else f"$6$rounds={rounds}$"
    return f"{prefix}{s.decode()}${encoded}"
