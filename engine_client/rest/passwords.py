"""Password hashes of the REST API's accounts: scrypt (memory-hard, Python's standard library),
a random salt per password, the parameters stored with the hash so that they can be raised
later without invalidating stored hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# 2**15 * 8 * 128 bytes = 32 MiB of memory per hash, ~0.1 s on this class of machine.
N, R, P = 2**15, 8, 1
KEY_LEN = 32
SALT_LEN = 16
PREFIX = "scrypt"


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=4 * 128 * r * n
    )


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$SALT$KEY`` (base64); never the password itself."""
    salt = os.urandom(SALT_LEN)
    key = _scrypt(password, salt, N, R, P, KEY_LEN)
    b64 = base64.b64encode
    return f"{PREFIX}${N}${R}${P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison of the derived key with the stored one."""
    try:
        prefix, n, r, p, salt, key = stored.split("$")
        if prefix != PREFIX:
            return False
        want = base64.b64decode(key)
        got = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p), len(want))
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


# Verified against when the user does not exist, so that a wrong user name costs the same time
# as a wrong password (no user enumeration by timing): the same parameters, so the same scrypt.
# Written out rather than hashed at import, which cost every engine-client command ~0.1 s.
DUMMY_HASH = (
    f"{PREFIX}${N}${R}${P}${base64.b64encode(bytes(SALT_LEN)).decode()}"
    f"${base64.b64encode(bytes(KEY_LEN)).decode()}"
)
