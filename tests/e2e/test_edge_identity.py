"""The edge's own guarantees, against a stand-in users service that reports
the caller it was given (tests/e2e/stub_users.py): a forged ``x-jwt-payload``
never reaches a service, a verified token does, and on a public route the
token stays optional but is still forwarded when sent.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from edge import registry
from mesh import tokens
from mesh.auth import Caller, encode_jwt_payload

pytestmark = pytest.mark.integration

FORGED_ADMIN = encode_jwt_payload(Caller("mallory", frozenset({"admin"})))


@pytest.fixture(scope="module")
def client(stub_users: str, edge_factory) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    edge = edge_factory("stub", {"users": stub_users}, [registry.process_named("users")])
    with edge.client() as c:
        yield c


def _token(signing_key, user_id: str, roles: list[str]) -> str:  # type: ignore[no-untyped-def]
    return tokens.issue_token(signing_key, user_id=user_id, roles=roles)[0]


def _bearer(signing_key, user_id: str, *roles: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {_token(signing_key, user_id, list(roles))}"}


def test_forged_header_on_public_route_reaches_service_as_anonymous(
    client: httpx.Client,
) -> None:
    resp = client.post("/v1/users", json={"email": "a@example.com"},
                       headers={"x-jwt-payload": FORGED_ADMIN})
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "caller="  # the service saw no caller


def test_token_on_public_route_is_verified_and_forwarded(client: httpx.Client, signing_key) -> None:  # type: ignore[no-untyped-def]
    resp = client.post("/v1/users", json={"email": "a@example.com"},
                       headers={**_bearer(signing_key, "u7", "customer"),
                                "x-jwt-payload": FORGED_ADMIN})
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "caller=u7"


def test_bad_token_on_public_route_is_still_rejected(client: httpx.Client) -> None:
    resp = client.post("/v1/users", json={"email": "a@example.com"},
                       headers={"Authorization": "Bearer not.a.token"})
    assert resp.status_code == 401


def test_token_signed_by_another_key_is_rejected(client: httpx.Client) -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    resp = client.get("/v1/users/u7",
                      headers=_bearer(other, "u7", "admin"))
    assert resp.status_code == 401


def test_forged_header_with_a_real_token_does_not_escalate(  # type: ignore[no-untyped-def]
    client: httpx.Client, signing_key
) -> None:
    resp = client.get("/v1/users/someone-else",
                      headers={**_bearer(signing_key, "u7", "customer"),
                               "x-jwt-payload": FORGED_ADMIN})
    assert resp.status_code == 403, resp.text


def test_admin_token_reaches_any_profile(client: httpx.Client, signing_key) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/v1/users/u9",
                      headers=_bearer(signing_key, "boss", "admin"))
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"].startswith("caller=boss")


def test_service_not_found_maps_to_404_status_json(client: httpx.Client, signing_key) -> None:  # type: ignore[no-untyped-def]
    resp = client.get("/v1/users/missing",
                      headers=_bearer(signing_key, "boss", "admin"))
    assert resp.status_code == 404
    assert resp.json()["code"] == 5


def test_raw_grpc_path_needs_a_token(client: httpx.Client) -> None:
    """The gRPC path of a public REST method is not a way around the rules."""
    resp = client.post("/ecom.users.v1.UserService/CreateUser", content=b"",
                       headers={"content-type": "application/grpc"})
    # Envoy answers a gRPC client in gRPC terms: HTTP 200, grpc-status 16.
    assert resp.headers.get("grpc-status") == "16", resp.headers


def test_internal_rpc_has_no_route(client: httpx.Client, signing_key) -> None:  # type: ignore[no-untyped-def]
    """gRPC-only methods (GetJwks, GetAddress...) are not reachable through the edge."""
    resp = client.post("/ecom.users.v1.AuthService/GetJwks", content=b"",
                       headers={"content-type": "application/json",
                                **_bearer(signing_key, "boss", "admin")})
    assert resp.status_code == 404
