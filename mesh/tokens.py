"""Access tokens: the RS256 signing key, its JWKS, and issuing/verifying JWTs.

svc_users signs a token at login; the Envoy edge (``jwt_authn``) verifies it
with the public JWKS (served by ``AuthService.GetJwks`` or built from the
same key file with :func:`public_jwks`) and forwards the claims to services
as ``x-jwt-payload`` (see :mod:`mesh.auth`). RS256 because every JWT
verifier, Envoy's included, supports it.

Claims: ``iss`` and ``aud`` are :data:`ISSUER` / :data:`AUDIENCE`, ``sub``
the user id, ``roles`` a list of role names (``["customer"]``,
``["admin"]``), ``iat`` and ``exp`` in seconds; the header carries ``kid``,
the key's RFC 7638 thumbprint, so a verifier holding several keys during a
rotation picks the right one.

The private key lives outside the repository: ``ECOM_JWT_KEY_FILE`` when
set, else ``<stack dir>/secrets/jwt-signing-key.pem`` where the stack dir is
``ECOM_STACK_DIR`` or the git-ignored ``.stack/`` at the repository root.
It is generated on first use (2048-bit, mode 0600, folder 0700).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ALGORITHM = "RS256"
ISSUER = "ecom"
AUDIENCE = "ecom"
KEY_FILE_ENV = "ECOM_JWT_KEY_FILE"
STACK_DIR_ENV = "ECOM_STACK_DIR"
KEY_FILE_NAME = "jwt-signing-key.pem"
RSA_KEY_BITS = 2048

_REPO = Path(__file__).resolve().parents[1]


class TokenError(ValueError):
    """A token that does not verify: bad signature, expired, wrong audience..."""


def signing_key_path(settings: object | None = None) -> Path:
    """Where the signing key lives: ``settings.jwt_key_file`` or
    ``ECOM_JWT_KEY_FILE`` when set, else ``<stack dir>/secrets/jwt-signing-key.pem``.

    ``settings`` is any object (a ``ServiceSettings`` subclass); only an
    optional ``jwt_key_file`` attribute is read, so services without that
    field fall back to the environment.
    """
    configured = getattr(settings, "jwt_key_file", None) or os.environ.get(KEY_FILE_ENV)
    if configured:
        return Path(configured).expanduser()
    stack = os.environ.get(STACK_DIR_ENV)
    stack_dir = Path(stack).expanduser() if stack else _REPO / ".stack"
    return stack_dir / "secrets" / KEY_FILE_NAME


def load_or_create_signing_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA private key in PEM at ``path``, generated and saved on first use.

    Creation is atomic and race-free: the key is written to a temporary file
    in the same folder and hard-linked into place, so of several processes
    starting at once exactly one key wins and every process loads that one.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkdir's mode is masked by the umask and ignored for existing folders.
        os.chmod(path.parent, 0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".jwt-key-", suffix=".tmp")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, path)  # fails if another process got there first
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return loaded


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_numbers(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> rsa.RSAPublicNumbers:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_numbers()


def key_id(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): stable for a key."""
    numbers = _public_numbers(key)
    # RFC 7638: required members only, lexicographic order, no whitespace.
    canonical = json.dumps(
        {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)},
        separators=(",", ":"),
        sort_keys=True,
    )
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_jwk(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> dict[str, str]:
    """The public half of ``key`` as one JWK (RFC 7517)."""
    numbers = _public_numbers(key)
    return {
        "kty": "RSA",
        "alg": ALGORITHM,
        "use": "sig",
        "kid": key_id(key),
        "n": _b64url_uint(numbers.n),
        "e": _b64url_uint(numbers.e),
    }


def public_jwks(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> dict[str, list[dict[str, str]]]:
    """The JWKS document (``{"keys": [...]}``) that verifies tokens signed by ``key``."""
    return {"keys": [public_jwk(key)]}


def issue_token(
    key: rsa.RSAPrivateKey,
    *,
    user_id: str,
    roles: Iterable[str],
    ttl_seconds: int = 3600,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """A signed access token for ``user_id`` and the moment it expires (UTC)."""
    if not user_id:
        raise ValueError("user_id is required")
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    issued = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    expires = issued + timedelta(seconds=ttl_seconds)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "roles": sorted(set(roles)),
        "iat": int(issued.timestamp()),
        "exp": int(expires.timestamp()),
    }
    token = jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})
    return token, expires


def _verification_key(
    jwks_or_key: Mapping[str, Any] | rsa.RSAPrivateKey | rsa.RSAPublicKey, kid: str | None
) -> rsa.RSAPublicKey:
    if isinstance(jwks_or_key, rsa.RSAPrivateKey):
        return jwks_or_key.public_key()
    if isinstance(jwks_or_key, rsa.RSAPublicKey):
        return jwks_or_key
    keys = [k for k in jwks_or_key.get("keys", []) if k.get("kty") == "RSA"]
    chosen = [k for k in keys if k.get("kid") == kid] if kid else keys[:1]
    if not chosen:
        raise TokenError(f"no RSA key with kid {kid!r} in the JWKS")
    public = jwt.PyJWK.from_dict(dict(chosen[0]), algorithm=ALGORITHM).key
    if not isinstance(public, rsa.RSAPublicKey):
        raise TokenError("JWKS entry is not an RSA public key")
    return public


def verify_token(
    jwks_or_key: Mapping[str, Any] | rsa.RSAPrivateKey | rsa.RSAPublicKey,
    token: str,
    *,
    leeway_seconds: float = 0,
) -> dict[str, Any]:
    """The claims of ``token`` after checking signature (RS256 only), ``kid``,
    issuer, audience, expiry and required claims; raises :class:`TokenError`.

    ``jwks_or_key`` is a JWKS document (as from :func:`public_jwks` or
    GetJwks) or an RSA key. For tests and tools: in the mesh the edge verifies.
    """
    try:
        header = jwt.get_unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise TokenError(f"unexpected algorithm {header.get('alg')!r}")
        public = _verification_key(jwks_or_key, header.get("kid"))
        claims: dict[str, Any] = jwt.decode(
            token,
            public,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=leeway_seconds,
            options={"require": ["iss", "aud", "sub", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise TokenError(str(exc)) from exc
    return claims


__all__ = [
    "ALGORITHM",
    "AUDIENCE",
    "ISSUER",
    "TokenError",
    "issue_token",
    "key_id",
    "load_or_create_signing_key",
    "public_jwk",
    "public_jwks",
    "signing_key_path",
    "verify_token",
]
