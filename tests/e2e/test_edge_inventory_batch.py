"""Bulk stock through a real Envoy: ``POST /v1/inventory:batchSetStock`` in
front of real svc_inventory and svc_tat processes, as an operator's script
(or `make up`'s demo loader over gRPC) would load a warehouse count.

Needs: ECOM_TEST_SERVERS=mariadb,redis,kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from edge import registry
from mesh import tokens
from tests.e2e.conftest import Edge

pytestmark = pytest.mark.integration

NEEDED = ("tat", "inventory")


@pytest.fixture(scope="module")
def edge(services, edge_factory) -> Edge:  # type: ignore[no-untyped-def]
    for name in NEEDED:
        services.start(name)
    return edge_factory("bulkstock", {n: services.addr(n) for n in NEEDED},
                        [registry.process_named(n) for n in NEEDED])


@pytest.fixture(scope="module")
def client(edge: Edge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=40) as c:
        yield c


def bearer(signing_key, user: str, roles: list[str]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": "Bearer " + tokens.issue_token(signing_key, user_id=user,
                                                            roles=roles)[0]}


def test_batch_set_stock_over_rest(client: httpx.Client, signing_key) -> None:  # type: ignore[no-untyped-def]
    admin = bearer(signing_key, "bulk-admin", ["admin"])
    items = [f"bulk-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    rows = [{"itemId": i, "warehouseId": wh, "available": str(n), "requestId": f"{i}-{wh}"}
            for i in items for wh, n in (("WH-BLR", 5), ("WH-DEL", 0))]

    resp = client.post("/v1/inventory:batchSetStock", headers=admin, json={"requests": rows})
    assert resp.status_code == 200, resp.text
    results = resp.json()["results"]
    assert [(r["stock"]["itemId"], r["stock"]["warehouseId"], int(r["stock"]["available"]),
             r.get("replayed", False)) for r in results] == [
        (i, wh, n, False) for i in items for wh, n in (("WH-BLR", 5), ("WH-DEL", 0))
    ]
    stock = client.get(f"/v1/inventory/{items[0]}", headers=admin).json()
    assert int(stock["totalAvailable"]) == 5

    # The same rows again: replays, nothing set twice.
    again = client.post("/v1/inventory:batchSetStock", headers=admin, json={"requests": rows})
    assert again.status_code == 200, again.text
    assert all(r["replayed"] for r in again.json()["results"])

    # A bad row is named; a refused batch sets nothing.
    fresh = f"bulk-{uuid.uuid4().hex[:8]}"
    bad = client.post("/v1/inventory:batchSetStock", headers=admin, json={"requests": [
        {"itemId": fresh, "warehouseId": "WH-BLR", "available": "3", "requestId": fresh},
        {"itemId": fresh, "warehouseId": "WH-DEL", "available": "-1", "requestId": fresh + "d"},
    ]})
    assert bad.status_code == 400, bad.text
    fields = [v["field"] for d in bad.json()["details"] for v in d.get("fieldViolations", [])]
    assert fields == ["requests[1].available"]
    assert not client.get(f"/v1/inventory/{fresh}", headers=admin).json().get("warehouses")

    # A full batch (the RPC's maximum) fits through the edge in one request.
    full = [{"itemId": f"bulk-{uuid.uuid4().hex[:8]}-{n}", "warehouseId": "WH-MUM",
             "available": str(n), "requestId": uuid.uuid4().hex} for n in range(1000)]
    big = client.post("/v1/inventory:batchSetStock", headers=admin, json={"requests": full})
    assert big.status_code == 200, big.text[:500]
    assert len(big.json()["results"]) == 1000

    # Only admins.
    customer = bearer(signing_key, "bulk-shopper", ["customer"])
    refused = client.post("/v1/inventory:batchSetStock", headers=customer,
                          json={"requests": rows[:1]})
    assert refused.status_code == 403, refused.text
    anonymous = client.post("/v1/inventory:batchSetStock", json={"requests": rows[:1]})
    assert anonymous.status_code == 401, anonymous.text
