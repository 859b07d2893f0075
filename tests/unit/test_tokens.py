"""mesh.tokens: the signing key file, the JWKS and RS256 tokens."""

from __future__ import annotations

import base64
import json
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from mesh.tokens import (
    AUDIENCE,
    ISSUER,
    TokenError,
    issue_token,
    key_id,
    load_or_create_signing_key,
    public_jwks,
    signing_key_path,
    verify_token,
)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> rsa.RSAPrivateKey:
    return load_or_create_signing_key(tmp_path_factory.mktemp("k") / "key.pem")


def _b64decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def test_key_path_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ECOM_JWT_KEY_FILE", raising=False)
    monkeypatch.delenv("ECOM_STACK_DIR", raising=False)
    default = signing_key_path()
    assert default.parts[-3:] == (".stack", "secrets", "jwt-signing-key.pem")
    assert (default.parents[2] / "mesh" / "tokens.py").exists()

    monkeypatch.setenv("ECOM_STACK_DIR", str(tmp_path))
    assert signing_key_path() == tmp_path / "secrets" / "jwt-signing-key.pem"

    monkeypatch.setenv("ECOM_JWT_KEY_FILE", str(tmp_path / "env.pem"))
    assert signing_key_path() == tmp_path / "env.pem"

    class Settings:
        jwt_key_file = str(tmp_path / "settings.pem")

    assert signing_key_path(Settings()) == tmp_path / "settings.pem"


def test_key_created_once_with_private_modes(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "key.pem"
    first = load_or_create_signing_key(path)
    assert first.key_size == 2048
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_or_create_signing_key(path)
    assert key_id(again) == key_id(first)
    assert [p.name for p in path.parent.iterdir()] == ["key.pem"]  # no temp files left


def test_concurrent_creation_agrees_on_one_key(tmp_path: Path) -> None:
    path = tmp_path / "race.pem"
    kids: list[str] = []
    threads = [
        threading.Thread(target=lambda: kids.append(key_id(load_or_create_signing_key(path))))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(kids) == 4 and len(set(kids)) == 1


def test_jwks_shape_and_stable_kid(key: rsa.RSAPrivateKey) -> None:
    jwks = public_jwks(key)
    (jwk,) = jwks["keys"]
    assert {k: jwk[k] for k in ("kty", "alg", "use")} == {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
    }
    assert int.from_bytes(_b64decode(jwk["e"]), "big") == 65537
    assert int.from_bytes(_b64decode(jwk["n"]), "big") == key.public_key().public_numbers().n
    assert "d" not in jwk  # never the private exponent
    assert jwk["kid"] == key_id(key.public_key()) == public_jwks(key)["keys"][0]["kid"]
    json.dumps(jwks)  # a plain JSON document


def test_issue_and_verify_roundtrip(key: rsa.RSAPrivateKey) -> None:
    now = datetime.now(UTC)
    token, expires = issue_token(key, user_id="u-1", roles=["customer"], ttl_seconds=600, now=now)
    assert abs((expires - now).total_seconds() - 600) < 1
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256" and header["kid"] == key_id(key)
    for verifier in (public_jwks(key), key, key.public_key()):
        claims = verify_token(verifier, token)
        assert claims["sub"] == "u-1"
        assert claims["roles"] == ["customer"]
        assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
        assert claims["exp"] - claims["iat"] == 600
        assert claims["exp"] == int(expires.timestamp())


def test_expired_token_rejected(key: rsa.RSAPrivateKey) -> None:
    past = datetime.now(UTC) - timedelta(hours=2)
    token, _ = issue_token(key, user_id="u-1", roles=["admin"], ttl_seconds=60, now=past)
    with pytest.raises(TokenError, match="expired"):
        verify_token(public_jwks(key), token)


def test_other_key_and_tampering_rejected(key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    other = load_or_create_signing_key(tmp_path / "other.pem")
    token, _ = issue_token(other, user_id="u-1", roles=["customer"])
    with pytest.raises(TokenError, match="kid"):
        verify_token(public_jwks(key), token)  # unknown kid
    with pytest.raises(TokenError):
        verify_token(key, token)  # right kid ignored, wrong signature

    good, _ = issue_token(key, user_id="u-1", roles=["customer"])
    head, payload, sig = good.split(".")
    claims = json.loads(_b64decode(payload))
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError):
        verify_token(public_jwks(key), f"{head}.{forged}.{sig}")


def test_wrong_audience_and_alg_none_rejected(key: rsa.RSAPrivateKey) -> None:
    now = int(datetime.now(UTC).timestamp())
    base = {"iss": ISSUER, "sub": "u", "iat": now, "exp": now + 60}
    wrong_aud = jwt.encode(
        {**base, "aud": "other"}, key, algorithm="RS256", headers={"kid": key_id(key)}
    )
    with pytest.raises(TokenError):
        verify_token(public_jwks(key), wrong_aud)
    unsigned = jwt.encode({**base, "aud": AUDIENCE}, "", algorithm="none")
    with pytest.raises(TokenError, match="algorithm"):
        verify_token(public_jwks(key), unsigned)


def test_issue_validates_inputs(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError):
        issue_token(key, user_id="", roles=[])
    with pytest.raises(ValueError):
        issue_token(key, user_id="u", roles=[], ttl_seconds=0)
