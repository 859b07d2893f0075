"""Checkout with two processes of orders, inventory and payments (and of
every peer), one replica of each killed with -9 in the middle of a burst of
200 buyers for 50 units: the other replica keeps serving, the killed one
comes back (as the supervisor restarts it), buyers retry with their request
ids. Then: nothing oversold, stock balances, no order left CREATED or
PENDING, each reservation agrees with its order, and every order's
lifecycle reached Kafka with one event per transition (redeliveries carry
the same event id, so nothing is doubled in its effect).

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb
     .venv/bin/python -m pytest tests/integration/test_orders_replicas.py
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import pytest
from ecom.orders.v1 import orders_pb2 as pb

from tests.conftest import RunningService, Services, Stack
from tests.integration.catalog_support import TopicReader
from tests.integration.orders_support import ADMIN, Shop, new_id, start_shop
from tests.integration.test_orders_crash import COMMITTED, RELEASED, Buyer
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration
HOLD = 4
VICTIMS = ("orders", "inventory", "payments")


@pytest.fixture(scope="module")
def running(services: Services) -> dict[str, RunningService]:
    shop = start_shop(
        services,
        ECOM_ORDER_HOLD_SECONDS=str(HOLD),
        ECOM_ORDERS_PAYMENT_WAIT_SECONDS="1",
        ECOM_ORDERS_SWEEP_INTERVAL_SECONDS="0.5",
        ECOM_ORDERS_PENDING_GRACE_SECONDS="2",
        ECOM_PAYMENTS_GATEWAY_TIMEOUT_SECONDS="1",
    )
    for name in VICTIMS:
        assert len(shop[name].replica_addrs) >= 2, "needs ECOM_TEST_REPLICAS=2 (the default)"
    return shop


async def _burst_with_kills(shop: Shop, running: dict[str, RunningService],
                            item: str) -> list[Buyer]:
    """200 buyers; one replica of each victim killed -9 mid-burst, then
    restarted as the supervisor would."""
    rng = random.Random(17)
    tokens = ["tok_success", "tok_success", "tok_decline", "tok_timeout"]
    buyers = [Buyer(shop, item, rng.choice(tokens)) for _ in range(200)]
    tasks = [asyncio.create_task(b.run()) for b in buyers]
    in_flight = []
    for victim in VICTIMS:
        await asyncio.sleep(0.7)
        in_flight.append(sum(not t.done() for t in tasks))
        running[victim].kill_replica(1)
    await asyncio.sleep(1.0)
    for victim in VICTIMS:
        await asyncio.to_thread(running[victim].restart_replica, 1)
    await asyncio.gather(*tasks)
    print("buyers still in flight at each kill:", in_flight)
    assert in_flight[0] > 0, "the first replica must die with checkouts in flight"
    assert all(s.alive() for s in running.values())
    return buyers


async def _settled(shop: Shop, accepted: list[Buyer]) -> list[pb.Order]:
    """Wait until no order is CREATED or PENDING any more (holds run out)."""
    async def all_final() -> list[pb.Order] | None:
        orders = [await shop.get(b.order.order_id) for b in accepted if b.order]
        done = all(o.state in (pb.ORDER_STATE_PLACED, pb.ORDER_STATE_CANCELLED)
                   for o in orders)
        return orders if done else None

    return await wait_until_async(all_final, "every order PLACED or CANCELLED",
                                  timeout=HOLD + 90, interval=0.5)


def _one_event_per_transition(reader: TopicReader, final: dict[str, int]) -> None:
    def complete(events: list) -> bool:  # type: ignore[type-arg]
        reached = {(e.entity_key, e.order_transitioned.to_state) for e in events
                   if e.WhichOneof("payload") == "order_transitioned"}
        return all((oid, state) in reached for oid, state in final.items())

    events = reader.until(complete, timeout=120)
    ids_of: dict[tuple[str, int], set[str]] = defaultdict(set)
    for e in events:
        if e.WhichOneof("payload") == "order_transitioned" and e.entity_key in final:
            ids_of[(e.entity_key, e.order_transitioned.to_state)].add(e.event_id)
    doubled = {k: v for k, v in ids_of.items() if len(v) > 1}
    assert not doubled, doubled
    for oid in final:
        assert len(ids_of[(oid, pb.ORDER_STATE_CREATED)]) == 1, oid


async def test_one_replica_of_each_killed_mid_burst(
    services: Services, running: dict[str, RunningService], stack: Stack
) -> None:
    initial = 50
    reader = TopicReader(stack, "orders.lifecycle")
    shop = Shop.connect(running)
    try:
        item = await shop.item(stock=initial)
        buyers = await _burst_with_kills(shop, running, item)
        accepted = [b for b in buyers if b.order is not None]
        assert accepted, "some checkouts must have gone through"
        # Declines and expired holds give units back, so on a slow machine
        # every buyer may get an order in the end; none may get a unit twice.
        print(f"{len(accepted)} checkouts accepted, "
              f"{sum(b.refused for b in buyers)} refused for stock")
        orders = await _settled(shop, accepted)
        report = await shop.orders.ReconcileOrders(
            pb.ReconcileOrdersRequest(request_id=new_id("rec")), metadata=ADMIN, timeout=120)
        print("reconciler repairs after the burst:", len(report.repairs))

        sold = 0
        for o in orders:
            res = await shop.reservation(o.order_id)
            want = COMMITTED if o.state == pb.ORDER_STATE_PLACED else RELEASED
            assert res.state == want, o.order_id
            sold += o.item_count if o.state == pb.ORDER_STATE_PLACED else 0
        available, reserved = await shop.stock(item)
        assert reserved == 0
        assert sold <= initial, "oversold"
        assert available + reserved + sold == initial, (available, reserved, sold)
        # Every order's transitions reached Kafka, each once in effect.
        _one_event_per_transition(reader, {o.order_id: o.state for o in orders})
    finally:
        reader.close()
        await shop.close()
