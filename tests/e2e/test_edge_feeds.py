"""Supplier feeds through Envoy: `POST /v1/suppliers/{id}/feeds` carries the
whole feed in one JSON body, tens of MB for 100,000 rows, far beyond Envoy's
default 1 MiB buffer, so the edge must accept it; and only admins may post.

Needs Kafka and FerretDB (catalog): ECOM_TEST_SERVERS=kafka,ferretdb.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from edge import registry
from mesh import tokens

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def edge(services, edge_factory):  # type: ignore[no-untyped-def]
    catalog = services.start("catalog")
    return edge_factory("feeds", {"catalog": catalog.addr}, [registry.process_named("catalog")],
                        rate_limit_per_minute=100_000)


def _content(rows: int) -> str:
    return "\n".join(json.dumps({
        "sku": f"BIG-{i:06d}", "title": f"Edge feed phone {i}", "category": "mobiles",
        "brand": "Acme", "description": "A row of a large feed, long enough to look real. " * 2,
        "price": {"currencyCode": "INR", "units": str(5_000 + i)},
        "attributes": {"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5},
    }) for i in range(rows))


def test_a_feed_of_several_megabytes_passes_the_edge(edge, signing_key) -> None:  # type: ignore[no-untyped-def]
    admin = tokens.issue_token(signing_key, user_id="feed-admin", roles=["admin"])[0]
    content = _content(25_000)
    assert len(content) > 8_000_000
    supplier = f"edge-{uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=edge.url, timeout=120) as http:
        # dry_run validates and counts every row without publishing them.
        resp = http.post(f"/v1/suppliers/{supplier}/feeds",
                         headers={"Authorization": f"Bearer {admin}"},
                         json={"format": "FEED_FORMAT_JSONL", "content": content,
                               "dryRun": True, "requestId": str(uuid.uuid4())})
        assert resp.status_code == 200, resp.text[:300]
        feed = resp.json()
        assert (feed["state"], int(feed["totalRows"]), int(feed["validRows"])) == (
            "FEED_STATE_VALIDATED", 25_000, 25_000)

        customer = tokens.issue_token(signing_key, user_id="shopper", roles=["customer"])[0]
        resp = http.post(f"/v1/suppliers/{supplier}/feeds",
                         headers={"Authorization": f"Bearer {customer}"},
                         json={"format": "FEED_FORMAT_JSONL", "content": _content(3),
                               "requestId": str(uuid.uuid4())})
        assert resp.status_code == 403, resp.text[:300]
