"""Every RPC with an HTTP annotation, of every implemented service, answers
through Envoy: the REST call is routed, transcoded and reaches the service
(which may well say 404 for a made-up id, or 400 for an empty body), and
nothing answers 5xx or "no such route".

Starts every implemented service, so it needs the servers they use (with
ECOM_TEST_SERVERS, list them all, e.g. mariadb,redis,kafka,ferretdb).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from edge import config, descriptors, registry
from mesh import tokens

pytestmark = pytest.mark.integration

PRESENT = registry.present_processes()
CONTRACTS = descriptors.load()
BINDINGS = [
    (rpc, b)
    for rpc, _ in config.routed_rpcs(CONTRACTS, PRESENT)
    for b in rpc.bindings
]


@pytest.fixture(scope="module")
def client(services, edge_factory, signing_key) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    for p in PRESENT:
        services.start(p.name)
    edge = edge_factory("contract", {p.name: services.addr(p.name) for p in PRESENT}, PRESENT)
    token = tokens.issue_token(signing_key, user_id="contract-admin", roles=["admin"])[0]
    with edge.client(headers={"Authorization": f"Bearer {token}"}) as c:
        yield c


@pytest.mark.parametrize(
    ("rpc", "binding"), BINDINGS, ids=[f"{b.verb} {b.path}" for _, b in BINDINGS] or None
)
def test_rest_binding_answers_through_envoy(client: httpx.Client, rpc, binding) -> None:  # type: ignore[no-untyped-def]
    path = re.sub(r"\{[^}]+\}", "contract-x", binding.path)
    body: dict[str, object] | None = {} if binding.body else None
    resp = client.request(binding.verb, path, json=body)
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    payload = resp.json()
    assert resp.status_code < 500, f"{rpc.full_name}: {resp.status_code} {payload}"
    if resp.status_code == 404:
        assert "no such route" not in payload.get("message", ""), payload
