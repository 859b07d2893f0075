"""The authenticated caller of an RPC, and the checks servicers make on it.

Trust model
-----------
Services never verify JWTs themselves. The Envoy edge (``jwt_authn``)
verifies the ``Authorization: Bearer`` token and forwards its payload as the
``x-jwt-payload`` header: base64url-encoded JSON claims, ``sub`` = user id,
``roles`` = list of strings (``["customer"]``, ``["admin"]``). A service
believes that header as-is, which is safe only because:

* services listen where only the edge and other services can reach them
  (loopback by default; a private network or mesh policy in a cluster);
* the edge removes any client-supplied ``x-jwt-payload`` *before*
  ``jwt_authn`` runs, so a request without a token arrives with no caller;
* service-to-service calls forward the inbound header verbatim
  (:mod:`mesh.channels` does it), so the downstream service checks the same
  end user; background jobs name their own caller with
  :func:`mesh.context.call_scope`.

A header that is present but cannot be decoded is rejected with
UNAUTHENTICATED rather than treated as anonymous: it means something
between the edge and the service is broken or forged.
"""

from __future__ import annotations

from collections.abc import Iterable

from mesh.context import current_call
from mesh.errors import PermissionDenied, Unauthenticated
from mesh.identity import (  # noqa: F401 - re-exported, the names callers use
    ADMIN_ROLE,
    CUSTOMER_ROLE,
    JWT_PAYLOAD_HEADER,
    SERVICE_ROLE,
    Caller,
    decode_jwt_payload,
    encode_jwt_payload,
)


def caller_from_metadata(
    metadata: Iterable[tuple[str, str | bytes]] | None,
) -> tuple[Caller | None, str | None]:
    """The caller named by request metadata and the raw header, (None, None)
    when the call is anonymous. Raises Unauthenticated on a malformed header."""
    for key, value in metadata or ():
        if key == JWT_PAYLOAD_HEADER:
            raw = value.decode() if isinstance(value, bytes) else value
            return decode_jwt_payload(raw), raw
    return None, None


def current_caller() -> Caller | None:
    """The caller of the RPC being served, None when anonymous or outside a call."""
    call = current_call()
    return call.caller if call else None


def require_caller() -> Caller:
    """The caller, or UNAUTHENTICATED when the call carries no identity."""
    caller = current_caller()
    if caller is None:
        raise Unauthenticated("this call needs a signed-in user", reason="NOT_SIGNED_IN")
    return caller


def require_owner_or_admin(user_id: str) -> Caller:
    """The caller, if it is ``user_id`` itself or an admin; PERMISSION_DENIED otherwise."""
    caller = require_caller()
    if not caller.may_act_for(user_id):
        raise PermissionDenied(
            "callers may only reach their own resources",
            reason="NOT_OWNER",
            metadata={"user_id": user_id},
        )
    return caller


def require_admin() -> Caller:
    """The caller, if it has the admin role; PERMISSION_DENIED otherwise."""
    caller = require_caller()
    if not caller.is_admin:
        raise PermissionDenied("this call needs the admin role", reason="ADMIN_ONLY")
    return caller


# The path alias for "the signed-in caller", as Google APIs spell it
# (``GET /v1/users/me/cart``).
ME = "me"
USER_FIELD = "user_id"


def apply_caller_defaults(request: object) -> None:
    """Make the caller the default user of a request.

    A request message with a top-level ``user_id`` string gets the caller's
    id when it says ``me`` or leaves the field empty (a service caller acts
    for users and must name them, so an empty field stays empty for the
    service to refuse by name). Naming another user is
    left to the service's own check (:func:`require_owner_or_admin`), so an
    admin acting for someone names them and a customer cannot. ``me``
    without a signed-in caller is UNAUTHENTICATED; an empty field without
    one stays empty for the service to refuse by name.
    """
    from google.protobuf.message import Message

    if not isinstance(request, Message):
        return
    field = request.DESCRIPTOR.fields_by_name.get(USER_FIELD)
    if field is None or field.type != field.TYPE_STRING:
        return
    value = getattr(request, USER_FIELD)
    if value not in ("", ME):
        return
    caller = current_caller()
    if caller is None:
        if value == ME:
            raise Unauthenticated(
                "user 'me' means the signed-in caller, and this call has none",
                reason="NOT_SIGNED_IN",
            )
        return
    if value == "" and SERVICE_ROLE in caller.roles:
        return
    setattr(request, USER_FIELD, caller.user_id)
