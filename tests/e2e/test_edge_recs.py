"""Recommendations through Envoy: user A reads A's list, user B gets 403 for
it, an admin reads it, no token is 401; category and similar-item lists are
public; a refresh is admin-only; with Cassandra cut off svc_recs answers
UNAVAILABLE within a second while the catalog behind the same edge still
answers.

The model is published to Cassandra here the way the training job publishes
it (tests/integration/test_recs_training.py covers the job itself). svc_recs
reaches Cassandra through a relay the test can cut, so the shared Cassandra
keeps running for everyone else. Needs Cassandra, FerretDB, Redis:
ECOM_TEST_SERVERS=cassandra,ferretdb,redis.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import grpc
import httpx
import pytest
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.recommendations.v1 import recommendations_pb2 as pb
from ecom.recommendations.v1 import recommendations_pb2_grpc as pb_grpc
from google.protobuf import struct_pb2
from google.type import money_pb2

from edge import registry
from mesh import tokens
from svc_recs import store as recs_store
from tests.conftest import UNREACHABLE_ADDR
from tests.integration.recs_support import ADMIN
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

TAG = uuid.uuid4().hex[:6]
USER_A, USER_B = f"ea-{TAG}", f"eb-{TAG}"
PHONES = [f"ep-{n}-{TAG}" for n in range(3)]


@pytest.fixture(scope="module")
def proxy(stack) -> Iterator[TcpProxy]:  # type: ignore[no-untyped-def]
    host, port = stack.env["ECOM_CASSANDRA_HOSTS"].split(",")[0].rsplit(":", 1)
    relay = TcpProxy((host, int(port)))
    yield relay
    relay.close()


@pytest.fixture(scope="module")
def model(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    prefix = f"{stack.db_prefix}edgerecs_"
    host, port = stack.env["ECOM_CASSANDRA_HOSTS"].split(",")[0].rsplit(":", 1)
    session = recs_store.connect([(host, int(port))], prefix + recs_store.KEYSPACE)
    recs_store.create_schema(session)
    version = recs_store.new_version(datetime.now(UTC))
    recs_store.publish(session, version, datetime.now(UTC), recs_store.ModelLists(
        user_recs={USER_A: [recs_store.Ranked(p, 1.0 - n / 10) for n, p in enumerate(PHONES)]},
        category_recs={"mobiles": [recs_store.Ranked(p, 3.0) for p in PHONES],
                       recs_store.ALL: [recs_store.Ranked(p, 3.0) for p in PHONES]},
        similar_items={PHONES[0]: [recs_store.Ranked(PHONES[1], 0.9)]},
        bought={}, counts=recs_store.ModelCounts(users=1, items=3)))
    session.cluster.shutdown()
    yield prefix


@pytest.fixture(scope="module")
def edge(services, edge_factory, model, proxy):  # type: ignore[no-untyped-def]
    catalog = services.start("catalog")
    with grpc.insecure_channel(catalog.target) as ch:
        stub = catalog_pb2_grpc.CatalogServiceStub(ch)
        attrs = struct_pb2.Struct()
        attrs.update({"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5})
        for p in PHONES:
            stub.CreateItem(catalog_pb2.CreateItemRequest(item_id=p, item=catalog_pb2.Item(
                title=f"Phone {p}", category="mobiles", attributes=attrs,
                price=money_pb2.Money(currency_code="INR", units=999))),
                metadata=ADMIN, timeout=30)
    # Inventory deliberately unreachable: stock is then unknown and filters
    # nothing (the integration test covers the stock filter).
    recs = services.start("recs", ECOM_KEYSPACE_PREFIX=model,
                          ECOM_CASSANDRA_HOSTS=proxy.addr, ECOM_INVENTORY_ADDR=UNREACHABLE_ADDR)
    return edge_factory("recs", {"recs": recs.addr, "catalog": catalog.addr},
                        [registry.process_named("recs"), registry.process_named("catalog")]), recs


def _get(edge: Any, token: str | None, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with edge.client() as http:
        return http.get(path, headers=headers)


def _token(signing_key: Any, user: str, role: str = "customer") -> str:
    return str(tokens.issue_token(signing_key, user_id=user, roles=[role])[0])


def test_a_reads_own_list_b_is_refused_admin_reads_it(edge, signing_key) -> None:  # type: ignore[no-untyped-def]
    edge, _ = edge
    path = f"/v1/users/{USER_A}/recommendations"
    resp = _get(edge, _token(signing_key, USER_A), path)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["itemId"] for r in body["recommendations"]] == PHONES
    assert body["source"] == "personal" and not body.get("fallback")
    assert body["recommendations"][0]["title"] == f"Phone {PHONES[0]}"
    assert body["recommendations"][0]["price"]["units"] == "999"

    resp = _get(edge, _token(signing_key, USER_A), "/v1/users/me/recommendations")
    assert [r["itemId"] for r in resp.json()["recommendations"]] == PHONES

    assert _get(edge, _token(signing_key, USER_B), path).status_code == 403
    assert _get(edge, None, path).status_code == 401
    admin = _get(edge, _token(signing_key, "ops", "admin"), path)
    assert admin.status_code == 200
    assert [r["itemId"] for r in admin.json()["recommendations"]] == PHONES

    b_own = _get(edge, _token(signing_key, USER_B), f"/v1/users/{USER_B}/recommendations")
    assert b_own.status_code == 200
    assert (b_own.json()["source"], b_own.json()["fallback"]) == ("popularity", True)


def test_category_and_similar_lists_are_public(edge) -> None:  # type: ignore[no-untyped-def]
    edge, _ = edge
    resp = _get(edge, None, "/v1/categories/mobiles/recommendations?page_size=2")
    assert resp.status_code == 200, resp.text
    assert [r["itemId"] for r in resp.json()["recommendations"]] == PHONES[:2]
    assert resp.json()["nextPageToken"]
    resp = _get(edge, None, f"/v1/items/{PHONES[0]}/recommendations")
    assert resp.status_code == 200, resp.text
    assert [r["itemId"] for r in resp.json()["recommendations"]] == [PHONES[1]]
    assert resp.json()["source"] == "similar_items"
    bad = _get(edge, None, "/v1/categories/mobiles/recommendations?page_size=500")
    assert bad.status_code == 400 and "page_size" in bad.text


def test_refresh_is_for_admins(edge, signing_key) -> None:  # type: ignore[no-untyped-def]
    edge, _ = edge
    with edge.client() as http:
        resp = http.post("/v1/recommendations:refresh", json={},
                         headers={"Authorization": f"Bearer {_token(signing_key, USER_A)}"})
        assert resp.status_code == 403
        assert http.post("/v1/recommendations:refresh", json={}).status_code == 401


def test_cassandra_down_is_unavailable_within_a_second_and_the_shop_goes_on(
        edge, proxy, signing_key) -> None:  # type: ignore[no-untyped-def]
    edge, recs = edge
    proxy.cut()
    try:
        with grpc.insecure_channel(recs.target) as ch:
            stub = pb_grpc.RecommendationServiceStub(ch)
            # A one-second deadline: an answer later than that would be
            # DEADLINE_EXCEEDED, not UNAVAILABLE.
            with pytest.raises(grpc.RpcError) as err:
                stub.ListCategoryRecommendations(
                    pb.ListCategoryRecommendationsRequest(category="mobiles"), timeout=1.0)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
        resp = _get(edge, None, "/v1/categories/mobiles/recommendations")
        assert resp.status_code == 503, resp.text
        # The catalog behind the same edge still answers.
        item = _get(edge, None, f"/v1/items/{PHONES[0]}")
        assert item.status_code == 200, item.text
    finally:
        proxy.restore()
