"""Who a call is from: the :class:`Caller` and the ``x-jwt-payload`` header
that carries it (see :mod:`mesh.auth` for the trust model). Depends on
nothing else in mesh but errors, so :mod:`mesh.context` and
:mod:`mesh.auth` can both use it without importing each other."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from mesh.errors import Unauthenticated

JWT_PAYLOAD_HEADER = "x-jwt-payload"
ADMIN_ROLE = "admin"
CUSTOMER_ROLE = "customer"
# Other services and background jobs acting on a user's behalf.
SERVICE_ROLE = "service"


@dataclass(frozen=True)
class Caller:
    """An authenticated principal: a user id and the roles the token grants."""

    user_id: str
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    def may_act_for(self, user_id: str) -> bool:
        """True when the caller is ``user_id`` or an admin."""
        return self.is_admin or self.user_id == user_id


def decode_jwt_payload(value: str | bytes) -> Caller:
    """Parse an ``x-jwt-payload`` header (base64url JSON, padded or not)."""
    raw = value.encode() if isinstance(value, str) else value
    try:
        claims = json.loads(base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError) as exc:
        raise Unauthenticated(
            f"{JWT_PAYLOAD_HEADER} is not base64url-encoded JSON", reason="MALFORMED_IDENTITY"
        ) from exc
    if not isinstance(claims, dict):
        raise Unauthenticated(
            f"{JWT_PAYLOAD_HEADER} is not a JSON object", reason="MALFORMED_IDENTITY"
        )
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise Unauthenticated(
            f"{JWT_PAYLOAD_HEADER} has no 'sub' claim", reason="MALFORMED_IDENTITY"
        )
    roles = claims.get("roles", [])
    if isinstance(roles, str):
        roles = [roles]
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise Unauthenticated(
            f"{JWT_PAYLOAD_HEADER} 'roles' must be a list of strings", reason="MALFORMED_IDENTITY"
        )
    return Caller(user_id=sub, roles=frozenset(roles))


def encode_jwt_payload(caller: Caller) -> str:
    """The ``x-jwt-payload`` value the edge would send for ``caller`` (unpadded
    base64url, like Envoy). For tests and background jobs."""
    claims = {"sub": caller.user_id, "roles": sorted(caller.roles)}
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
