"""Schemathesis against the REST edge: every operation of the OpenAPI
document (as Envoy serves it at ``/openapi.json``) whose service runs in this
checkout is fuzzed through a real Envoy in front of the real services, as a
signed-in shopper (a fresh account, its own ``user_id`` in the paths so the
calls get past the ownership check and into the service) and as an admin,
with valid (positive) and invalid (negative) inputs. No answer may be 5xx
(schemathesis's ``not_a_server_error`` check).

The run is bounded: a few examples per operation and mode, no shrinking, and
a total time budget after which each remaining operation still gets one
example. ``ECOM_SCHEMATHESIS_EXAMPLES`` and ``ECOM_SCHEMATHESIS_BUDGET_SECONDS``
tune it.

Starts every implemented service, so it needs the servers they use:
ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb,elasticsearch.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hsettings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok

from edge import registry
from mesh import tokens
from tests.e2e.conftest import Edge

pytestmark = pytest.mark.integration

PRESENT = registry.present_processes()
# OpenAPI tags are the short proto service names (edge/openapi.py), plus the
# edge's own /healthz.
RUNNING_TAGS = sorted({s.rsplit(".", 1)[-1] for p in PRESENT for s in p.public_services}
                      | {"Edge"})
EXAMPLES = int(os.environ.get("ECOM_SCHEMATHESIS_EXAMPLES", "8"))
BUDGET_SECONDS = float(os.environ.get("ECOM_SCHEMATHESIS_BUDGET_SECONDS", "75"))


@dataclass
class Fuzzer:
    """Runs one operation's strategy through Envoy and collects every 5xx
    (rather than stopping at the first) so one run reports all of them."""

    base_url: str
    deadline: float
    failures: list[str] = field(default_factory=list)
    calls: int = 0
    covered: set[str] = field(default_factory=set)

    def run(self, op: schemathesis.APIOperation, mode: GenerationMode, who: str,
            auth: dict[str, str], path_parameters: dict[str, str]) -> None:
        examples = EXAMPLES if time.monotonic() < self.deadline else 1
        # Pin only the path parameters this operation has.
        pinned = {k: v for k, v in path_parameters.items() if f"{{{k}}}" in op.path}

        @hsettings(max_examples=examples, deadline=None, database=None,
                   # No shrinking: the first failing input is reported as is,
                   # which keeps the run's time bounded.
                   phases=[Phase.explicit, Phase.generate],
                   suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(generation_mode=mode, path_parameters=pinned or None))
        def fuzz(case: schemathesis.Case) -> None:
            resp = case.call(base_url=self.base_url, headers=auth, timeout=20)
            self.calls += 1
            self.covered.add(op.label)
            try:
                case.validate_response(resp, checks=[not_a_server_error])
            except (FailureGroup, AssertionError):
                self.failures.append(
                    f"{who} {mode.value} {op.label} -> {resp.status_code} {resp.text[:300]}\n"
                    f"    {case.as_curl_command(headers=auth)}"
                )

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing to make invalid (e.g. GET /healthz has no inputs): fine
            # for negative cases, a broken schema for positive ones.
            if mode is GenerationMode.POSITIVE:
                self.failures.append(f"{who} {op.label}: no valid input can be generated")


@pytest.fixture(scope="module")
def edge(services, edge_factory) -> Edge:  # type: ignore[no-untyped-def]
    for p in PRESENT:
        services.start(p.name)
    return edge_factory("schemathesis", {p.name: services.addr(p.name) for p in PRESENT}, PRESENT)


@pytest.fixture(scope="module")
def shopper(edge: Edge, signing_key) -> Iterator[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """(user_id, access token) of a fresh account, signed up and logged in
    over HTTP when svc_users runs; else a token signed with the edge's key."""
    if not registry.process_named("users").present():
        user_id = f"fuzz-{uuid.uuid4().hex[:10]}"
        yield user_id, tokens.issue_token(signing_key, user_id=user_id, roles=["customer"])[0]
        return
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    with edge.client() as c:
        made = c.post("/v1/users", json={"email": email, "password": "correct horse battery",
                                         "name": "Fuzz Shopper", "requestId": uuid.uuid4().hex})
        assert made.status_code == 200, made.text
        login = c.post("/v1/auth:login", json={"email": email,
                                               "password": "correct horse battery"})
        assert login.status_code == 200, login.text
    yield str(made.json()["userId"]), str(login.json()["accessToken"])


def _operations(edge: Edge) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{edge.url}/openapi.json", timeout=10)
    running = schema.include(tag=RUNNING_TAGS)
    ops = [r.ok() for r in running.get_all_operations() if isinstance(r, Ok)]
    assert ops, "no operations in the OpenAPI document"
    return ops


def test_no_server_errors_for_any_input(edge: Edge, shopper: tuple[str, str],
                                        signing_key) -> None:  # type: ignore[no-untyped-def]
    ops = _operations(edge)
    user_id, token = shopper
    admin = tokens.issue_token(signing_key, user_id="fuzz-admin", roles=["admin"])[0]
    roles: list[tuple[str, dict[str, str], dict[str, str]]] = [
        ("shopper", {"Authorization": f"Bearer {token}"}, {"user_id": user_id}),
        ("admin", {"Authorization": f"Bearer {admin}"}, {}),
    ]
    fuzzer = Fuzzer(edge.url, time.monotonic() + BUDGET_SECONDS)
    started = time.monotonic()
    for who, auth, path_parameters in roles:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for op in ops:
                fuzzer.run(op, mode, who, auth, path_parameters)
    elapsed = time.monotonic() - started
    print(f"schemathesis: {len(ops)} operations, {fuzzer.calls} calls in {elapsed:.1f}s, "
          f"{len(fuzzer.failures)} server errors")
    assert fuzzer.covered == {op.label for op in ops}, "some operations were never called"
    assert not fuzzer.failures, "5xx through the edge:\n" + "\n".join(fuzzer.failures)


# What the first runs found (both were 5xx through the edge; see edge/config.py).


def test_unknown_query_parameter_is_400_naming_it(edge: Edge) -> None:
    """Used to be passed through untranscoded and reset by the service (503)."""
    with edge.client() as c:
        resp = c.get("/v1/warehouses", params={"page_size": 2, "colour": "red"})
        assert resp.status_code == 400, resp.text
        assert resp.json()["code"] == 3 and '"colour"' in resp.json()["message"]
        # Known parameters still work.
        assert c.get("/v1/warehouses", params={"page_size": 2}).status_code == 200


def test_headers_grpc_cannot_carry_are_dropped(edge: Edge, shopper: tuple[str, str]) -> None:
    """A header name legal in HTTP but not in gRPC (``*``, ``~``...), or a
    non-ASCII value, used to fail the call with INTERNAL (500)."""
    user_id, token = shopper
    odd: list[tuple[bytes, bytes]] = [
        (b"Authorization", f"Bearer {token}".encode()), (b"x-fine", b"kept"),
        (b"ab*c~d", b"1"), (b"x-accent", "café".encode()),
    ]
    with edge.client() as c:
        resp = c.get(f"/v1/users/{user_id}", headers=odd)
    assert resp.status_code == 200, resp.text
    assert resp.json()["userId"] == user_id


def test_the_fuzzer_reports_a_server_error() -> None:
    """The check above can fail: a server answering 500 is reported, with
    the operation, the status and a curl line to reproduce it."""

    class Boom(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = b'{"code":13,"message":"boom"}'
            self.send_response(500)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Boom)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        schema = schemathesis.openapi.from_dict({
            "openapi": "3.0.3", "info": {"title": "t", "version": "1"},
            "paths": {"/boom": {"get": {"responses": {"200": {"description": "ok"}}}}},
        })
        op = next(r.ok() for r in schema.get_all_operations() if isinstance(r, Ok))
        fuzzer = Fuzzer(f"http://127.0.0.1:{server.server_port}", time.monotonic() + 10)
        fuzzer.run(op, GenerationMode.POSITIVE, "anyone", {}, {})
    finally:
        server.shutdown()
        server.server_close()
    assert fuzzer.calls >= 1 and fuzzer.failures
    assert fuzzer.failures[0].startswith("anyone positive GET /boom -> 500")
    assert "curl -X GET" in fuzzer.failures[0]
