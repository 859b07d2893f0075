"""Through Envoy over HTTP, as a client would: sign up, log in, read the
profile, and the edge's answers for every way a request can go wrong.

Needs MariaDB and Redis (svc_users): ECOM_TEST_SERVERS=mariadb,redis.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from edge import registry
from mesh.auth import Caller, encode_jwt_payload

pytestmark = pytest.mark.integration


def _sign_up(client: httpx.Client, **extra: str) -> dict:
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": "correct horse battery", "name": "Asha Rao",
            "phone": "9876543210", "requestId": uuid.uuid4().hex, **extra}
    resp = client.post("/v1/users", json=body)
    assert resp.status_code == 200, resp.text
    user = resp.json()
    assert user["email"] == email
    return {**user, "password": body["password"]}


def _login(client: httpx.Client, email: str, password: str) -> str:
    resp = client.post("/v1/auth:login", json={"email": email, "password": password})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["tokenType"] == "Bearer"
    return str(body["accessToken"])


@pytest.fixture(scope="module")
def client(users_edge) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    with users_edge.client() as c:
        yield c


@pytest.fixture(scope="module")
def alice(client: httpx.Client) -> dict:
    user = _sign_up(client)
    user["token"] = _login(client, user["email"], user["password"])
    return user


def test_sign_up_login_and_read_own_profile(client: httpx.Client, alice: dict) -> None:
    resp = client.get(f"/v1/users/{alice['userId']}",
                      headers={"Authorization": f"Bearer {alice['token']}"})
    assert resp.status_code == 200, resp.text
    profile = resp.json()
    # Canonical proto3 JSON: lowerCamelCase names, enums as names.
    assert profile["userId"] == alice["userId"]
    assert profile["name"] == "Asha Rao"
    assert profile["role"] == "ROLE_CUSTOMER"
    assert "password" not in profile


def test_profile_without_token_is_401_json(client: httpx.Client, alice: dict) -> None:
    resp = client.get(f"/v1/users/{alice['userId']}")
    assert resp.status_code == 401
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["code"] == 16  # UNAUTHENTICATED
    assert resp.json()["message"]


def test_bad_token_is_401(client: httpx.Client, alice: dict) -> None:
    tampered = alice["token"][:-4] + ("AAAA" if not alice["token"].endswith("AAAA") else "BBBB")
    resp = client.get(f"/v1/users/{alice['userId']}",
                      headers={"Authorization": f"Bearer {tampered}"})
    assert resp.status_code == 401
    assert resp.json()["code"] == 16


def test_another_users_profile_is_403(client: httpx.Client, alice: dict) -> None:
    bob = _sign_up(client)
    resp = client.get(f"/v1/users/{bob['userId']}",
                      headers={"Authorization": f"Bearer {alice['token']}"})
    assert resp.status_code == 403, resp.text
    body = resp.json()
    assert body["code"] == 7  # PERMISSION_DENIED, as google.rpc.Status
    assert any(d.get("reason") == "NOT_OWNER" for d in body.get("details", []))


def test_forged_identity_header_without_token_is_ignored(
    client: httpx.Client, alice: dict
) -> None:
    forged = encode_jwt_payload(Caller(alice["userId"], frozenset({"admin"})))
    resp = client.get(f"/v1/users/{alice['userId']}", headers={"x-jwt-payload": forged})
    assert resp.status_code == 401, resp.text


def test_bad_json_is_400_with_message(client: httpx.Client) -> None:
    resp = client.post("/v1/users", content=b'{"email": "x@example.com",',
                       headers={"content-type": "application/json"})
    assert resp.status_code == 400
    body = resp.json()
    assert body["code"] == 3
    assert body["message"]


def test_bad_field_is_400_naming_the_field(client: httpx.Client) -> None:
    resp = client.post("/v1/users", json={"email": "not-an-email", "password": "correct horse",
                                          "name": "X", "requestId": uuid.uuid4().hex})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["code"] == 3
    violations = [v for d in body["details"] for v in d.get("fieldViolations", [])]
    assert any(v["field"] == "email" and v["description"] for v in violations), body


def test_wrong_password_is_401(client: httpx.Client, alice: dict) -> None:
    resp = client.post("/v1/auth:login", json={"email": alice["email"], "password": "nope-nope"})
    assert resp.status_code == 401
    assert resp.json()["code"] == 16


def test_unknown_route_is_404_json(client: httpx.Client, alice: dict) -> None:
    resp = client.get("/v1/no-such-thing", headers={"Authorization": f"Bearer {alice['token']}"})
    assert resp.status_code == 404
    body = resp.json()
    assert body["code"] == 5
    assert "/v1/no-such-thing" in body["message"]


def test_healthz(users_edge) -> None:  # type: ignore[no-untyped-def]
    resp = httpx.get(f"{users_edge.url}/healthz")
    assert resp.status_code == 200


def test_openapi_document_is_served(client: httpx.Client) -> None:
    resp = client.get("/openapi.json")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    doc = json.loads(resp.content)
    assert doc["openapi"].startswith("3.")
    assert "/v1/users/{user_id}" in doc["paths"]
    assert "/v1/auth:login" in doc["paths"]


def test_cors_preflight(client: httpx.Client) -> None:
    resp = client.options("/v1/users", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in resp.headers["access-control-allow-methods"]


def test_rate_limit_per_client_is_429(services, edge_factory) -> None:  # type: ignore[no-untyped-def]
    """A separate Envoy with a limit of 5 per minute: the 6th request is refused."""
    services.start("users")
    edge = edge_factory("ratelimit", {"users": services.addr("users")},
                        [registry.process_named("users")], rate_limit_per_minute=5)
    with edge.client() as c:
        codes = [c.post("/v1/auth:login", json={"email": "a@example.com", "password": "x"})
                 .status_code for _ in range(7)]
        assert codes[:5] == [401] * 5, codes
        assert codes[5:] == [429, 429], codes
        limited = c.post("/v1/auth:login", json={"email": "a@example.com", "password": "x"})
        assert limited.json()["code"] == 8  # RESOURCE_EXHAUSTED
        # /healthz is answered before the limiter: probes never get 429.
        assert c.get("/healthz").status_code == 200


# -- idempotency keys are optional; `me` is the caller -----------------------


def test_sign_up_without_a_request_id(client: httpx.Client) -> None:
    body = {"email": f"nokey-{uuid.uuid4().hex[:10]}@example.com",
            "password": "correct horse battery", "name": "No Key"}
    resp = client.post("/v1/users", json=body)
    assert resp.status_code == 200, resp.text
    # No key, so no replay: the same sign-up again is a second attempt, refused by email.
    again = client.post("/v1/users", json=body)
    assert again.status_code == 409, again.text


def test_sign_up_with_an_idempotency_key_header(client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    body = {"email": f"hdr-{uuid.uuid4().hex[:10]}@example.com",
            "password": "correct horse battery", "name": "Header Key"}
    first = client.post("/v1/users", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 200, first.text
    retry = client.post("/v1/users", json=body, headers={"Idempotency-Key": key})
    assert retry.status_code == 200, retry.text
    assert retry.json()["userId"] == first.json()["userId"]
    other = client.post("/v1/users", json={**body, "name": "Someone Else"},
                        headers={"Idempotency-Key": key})
    assert other.status_code == 409, other.text
    assert key in other.json()["message"]
    mismatch = client.post("/v1/users", json={**body, "requestId": "another-key"},
                           headers={"Idempotency-Key": key})
    assert mismatch.status_code == 400, mismatch.text
    assert "request_id" in mismatch.text


def test_me_is_the_caller(client: httpx.Client, alice: dict) -> None:
    auth = {"Authorization": f"Bearer {alice['token']}"}
    resp = client.get("/v1/users/me", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["userId"] == alice["userId"]
    added = client.post("/v1/users/me/addresses", headers=auth, json={"address": {
        "name": "Asha Rao", "lines": ["1 MG Road"], "city": "Bengaluru",
        "state": "Karnataka", "pincode": "560001", "phone": "9876543210"}})
    assert added.status_code == 200, added.text
    listed = client.get(f"/v1/users/{alice['userId']}/addresses", headers=auth).json()
    assert added.json()["addressId"] in [a["addressId"] for a in listed["addresses"]]
    assert client.get("/v1/users/me").status_code == 401


def test_me_never_reaches_another_user(client: httpx.Client, alice: dict) -> None:
    bob = _sign_up(client)
    bob_token = _login(client, bob["email"], bob["password"])
    auth = {"Authorization": f"Bearer {bob_token}"}
    assert client.get("/v1/users/me", headers=auth).json()["userId"] == bob["userId"]
    assert client.get(f"/v1/users/{alice['userId']}", headers=auth).status_code == 403
    assert client.get(f"/v1/users/{alice['userId']}/addresses", headers=auth).status_code == 403
