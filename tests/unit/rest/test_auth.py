"""Password hashes and Bearer tokens of the REST API."""

from __future__ import annotations

from engine_client.rest import passwords
from engine_client.rest.tokens import Tokens


def test_hash_is_salted_scrypt_and_verifies() -> None:
    a, b = passwords.hash_password("s3cret pass"), passwords.hash_password("s3cret pass")
    assert a != b  # a random salt each time
    assert "s3cret" not in a
    prefix, n, r, p, _, _ = a.split("$")
    assert (prefix, int(n), int(r), int(p)) == ("scrypt", 2**15, 8, 1)
    assert passwords.verify_password("s3cret pass", a)
    assert not passwords.verify_password("s3cret pasS", a)
    assert not passwords.verify_password("s3cret pass", "not a hash")
    assert not passwords.verify_password("s3cret pass", a.replace("scrypt", "md5", 1))


def test_tokens_expire_and_revoke() -> None:
    now = [1000.0]
    tokens = Tokens(lifetime=60, clock=lambda: now[0])
    token, session = tokens.issue("admin")
    assert session.user == "admin" and session.expires == 1060
    assert tokens.check(token) == session
    assert tokens.check(token + "x") is None
    now[0] = 1059.9
    assert tokens.check(token) is not None
    now[0] = 1060
    assert tokens.check(token) is None
    other, _ = tokens.issue("admin")
    assert tokens.revoke(other) and tokens.check(other) is None
    assert not tokens.revoke(other)
