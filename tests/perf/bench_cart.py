"""Benchmark: GetCart latency for a 10-line cart (one catalog BatchGetItems,
one users ListAddresses, one tat BatchCheckServiceability per read) and
AddCartItem latency (catalog check + one MariaDB transaction + the priced
cart it returns).

Prints figures; asserts nothing about time. Run with::

    ECOM_BENCH=1 ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb \
        .venv/bin/python -m pytest -s tests/perf/bench_cart.py
"""

from __future__ import annotations

import time
import uuid

import pytest
from ecom.cart.v1 import cart_pb2, cart_pb2_grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc

from mesh import money
from mesh.auth import JWT_PAYLOAD_HEADER, Caller, encode_jwt_payload
from tests.conftest import Services
from tests.integration.catalog_support import ADMIN, phone
from tests.perf import stats

CALLS = 200
LINES = 10


def _summary(label: str, samples: list[float]) -> str:
    return f"{label:<26} {stats.line([s * 1000 for s in samples])}"


@pytest.mark.integration
async def test_cart_latency(services: Services) -> None:
    for name in ("catalog", "users", "tat"):
        services.start(name)
    cart_svc = services.start("cart")
    user = f"bench-{uuid.uuid4().hex[:8]}"
    md = [(JWT_PAYLOAD_HEADER, encode_jwt_payload(Caller(user, frozenset({"customer"}))))]
    async with cart_svc.channel() as ch, services.running["catalog"].channel() as cat_ch:
        cart = cart_pb2_grpc.CartServiceStub(ch)
        catalog = catalog_pb2_grpc.CatalogServiceStub(cat_ch)
        items = []
        for i in range(LINES + 1):
            item = phone(title=f"Bench Phone {i} {uuid.uuid4().hex[:6]}")
            item.price.CopyFrom(money.from_paise(10_000 + i))
            created = await catalog.CreateItem(
                catalog_pb2.CreateItemRequest(item=item, request_id=uuid.uuid4().hex),
                metadata=ADMIN)
            items.append(created.item_id)
        for item_id in items[:LINES]:
            await cart.AddCartItem(cart_pb2.AddCartItemRequest(
                user_id=user, item_id=item_id, request_id=uuid.uuid4().hex), metadata=md)

        reads = []
        req = cart_pb2.GetCartRequest(user_id=user, pincode="560001")
        for _ in range(CALLS):
            t = time.perf_counter()
            await cart.GetCart(req, metadata=md)
            reads.append(time.perf_counter() - t)

        writes = []
        for n in range(CALLS):
            quantity = n % 9 + 1  # alternate so each call is a real change
            t = time.perf_counter()
            await cart.UpdateCartItem(cart_pb2.UpdateCartItemRequest(
                user_id=user, item_id=items[0], quantity=quantity,
                request_id=uuid.uuid4().hex), metadata=md)
            writes.append(time.perf_counter() - t)

        adds = []
        for _ in range(CALLS // 4):
            t = time.perf_counter()
            await cart.AddCartItem(cart_pb2.AddCartItemRequest(
                user_id=user, item_id=items[LINES], request_id=uuid.uuid4().hex), metadata=md)
            adds.append(time.perf_counter() - t)
            await cart.RemoveCartItem(cart_pb2.RemoveCartItemRequest(
                user_id=user, item_id=items[LINES], request_id=uuid.uuid4().hex), metadata=md)

    print()
    print(_summary(f"GetCart ({LINES} lines)", reads))
    print(_summary("UpdateCartItem", writes))
    print(_summary("AddCartItem", adds))
    from tests.perf import report

    for label, samples in ((f"GetCart ({LINES} lines) p50", reads),
                           ("UpdateCartItem p50", writes), ("AddCartItem p50", adds)):
        report.record(label, stats.percentile([s * 1000 for s in samples], 50), None,
                      unit="ms", better="lower")
