"""The caller from x-jwt-payload, and the ownership/admin checks."""

from __future__ import annotations

import base64
import json

import pytest

from mesh.auth import (
    Caller,
    caller_from_metadata,
    current_caller,
    decode_jwt_payload,
    encode_jwt_payload,
    require_admin,
    require_caller,
    require_owner_or_admin,
)
from mesh.context import call_scope
from mesh.errors import PermissionDenied, Unauthenticated

ALICE = Caller("u-alice", frozenset({"customer"}))
ADMIN = Caller("u-root", frozenset({"admin"}))


def _b64(claims: object, *, pad: bool) -> str:
    raw = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()
    return raw if pad else raw.rstrip("=")


@pytest.mark.parametrize("pad", [True, False])
def test_decodes_envoy_payload_padded_or_not(pad: bool) -> None:
    claims = {"sub": "u-1", "roles": ["customer"], "exp": 1999999999, "iss": "ecom"}
    caller = decode_jwt_payload(_b64(claims, pad=pad))
    assert caller == Caller("u-1", frozenset({"customer"}))
    assert not caller.is_admin


def test_roundtrip_and_metadata_lookup() -> None:
    header = encode_jwt_payload(ADMIN)
    caller, raw = caller_from_metadata([("x-request-id", "r"), ("x-jwt-payload", header)])
    assert caller == ADMIN and caller.is_admin
    assert raw == header
    assert caller_from_metadata([("x-request-id", "r")]) == (None, None)


@pytest.mark.parametrize(
    "header",
    [
        "%%%not-base64%%%",
        _b64(["sub", "u-1"], pad=False),
        _b64({"roles": ["admin"]}, pad=False),
        _b64({"sub": "u-1", "roles": [1, 2]}, pad=False),
        base64.urlsafe_b64encode(b"not json").decode(),
    ],
)
def test_malformed_payload_is_unauthenticated(header: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        decode_jwt_payload(header)
    assert caught.value.reason == "MALFORMED_IDENTITY"


def test_outside_any_call_there_is_no_caller() -> None:
    assert current_caller() is None
    with pytest.raises(Unauthenticated):
        require_caller()


def test_anonymous_call_needs_sign_in() -> None:
    with call_scope():
        assert current_caller() is None
        with pytest.raises(Unauthenticated):
            require_owner_or_admin("u-alice")


def test_owner_reaches_own_resources_only() -> None:
    with call_scope(caller=ALICE):
        assert require_caller() == ALICE
        assert require_owner_or_admin("u-alice") == ALICE
        with pytest.raises(PermissionDenied) as caught:
            require_owner_or_admin("u-bob")
        assert caught.value.reason == "NOT_OWNER"
        with pytest.raises(PermissionDenied):
            require_admin()


def test_admin_reaches_everything() -> None:
    with call_scope(caller=ADMIN):
        assert require_owner_or_admin("u-bob") == ADMIN
        assert require_admin() == ADMIN


def test_call_scope_encodes_the_caller_for_propagation() -> None:
    with call_scope(caller=ALICE) as ctx:
        assert ctx.jwt_payload is not None
        assert decode_jwt_payload(ctx.jwt_payload) == ALICE
    assert current_caller() is None
