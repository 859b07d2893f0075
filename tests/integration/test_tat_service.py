"""svc_tat end to end: a real process on real Redis and Kafka (and, for the
stock test, the real svc_inventory on MariaDB).

The service's clock is frozen with ECOM_TAT_CLOCK (test-only) at 10:00 IST,
before every warehouse's cutoff, so ETAs are exact.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from ecom.common.v1 import common_pb2
from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2 as pb
from ecom.serviceability.v1 import serviceability_pb2_grpc

from mesh.auth import Caller, encode_jwt_payload
from tests.conftest import UNREACHABLE_ADDR
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration

MORNING = "2025-03-10T10:00:00+05:30"  # Monday, before every cutoff
EVENING = "2025-03-10T20:00:00+05:30"  # after every cutoff
TODAY = dt.date(2025, 3, 10)
ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("ops-1", frozenset({"admin"})))),)
CUSTOMER = (("x-jwt-payload", encode_jwt_payload(Caller("u-1", frozenset({"customer"})))),)

NEAR_BLR = "560100"  # Electronics City, next to WH-BLR
LEH = "194101"  # Ladakh: far and remote
NON_DELIVERY = "380014"  # Ahmedabad Navjivan: only a non-delivery office
GUWAHATI = "781026"
KOCHI = "682030"

# Most tests check routes and ETAs without stock: their svc_tat is pointed at
# an inventory address where nothing listens, so (as the contract says) stock
# is not considered, whether or not another test started svc_inventory.
NO_INVENTORY = {"ECOM_INVENTORY_ADDR": UNREACHABLE_ADDR}


@pytest.fixture(scope="module")
async def tat(services: Any) -> AsyncIterator[serviceability_pb2_grpc.ServiceabilityServiceStub]:
    svc = services.start("tat", ECOM_TAT_CLOCK=MORNING, **NO_INVENTORY)
    async with svc.channel() as channel:
        yield serviceability_pb2_grpc.ServiceabilityServiceStub(channel)


def promised(est: common_pb2.DeliveryEstimate) -> dt.date:
    d = est.promised_date
    return dt.date(d.year, d.month, d.day)


async def test_list_warehouses_returns_the_demo_network(tat: Any) -> None:
    resp = await tat.ListWarehouses(pb.ListWarehousesRequest())
    ids = [w.warehouse_id for w in resp.warehouses]
    assert ids == sorted(ids) and len(ids) == 12
    assert {"WH-BLR", "WH-DEL", "WH-MUM", "WH-GUW", "WH-KOC"} <= set(ids)
    blr = next(w for w in resp.warehouses if w.warehouse_id == "WH-BLR")
    assert blr.city == "Bengaluru" and blr.pincode == "560100"
    assert 12 < blr.location.latitude < 14 and blr.status == pb.WAREHOUSE_STATUS_ACTIVE
    page1 = await tat.ListWarehouses(pb.ListWarehousesRequest(page_size=5))
    page2 = await tat.ListWarehouses(
        pb.ListWarehousesRequest(page_size=5, page_token=page1.next_page_token))
    assert [w.warehouse_id for w in [*page1.warehouses, *page2.warehouses]] == ids[:10]
    got = await tat.GetWarehouse(pb.GetWarehouseRequest(warehouse_id="WH-GUW"))
    assert got.state == "Assam"
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tat.GetWarehouse(pb.GetWarehouseRequest(warehouse_id="WH-XXX"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_near_pincode_is_fast_and_remote_one_slow(tat: Any) -> None:
    near = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
        item_id="item-1", pincode=NEAR_BLR))
    far = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
        item_id="item-1", pincode=LEH))
    assert near.estimate.deliverable and far.estimate.deliverable
    assert near.estimate.warehouse_id == "WH-BLR"
    # WH-BLR: 0 processing days, same-city band (1 day), ordered before cutoff.
    assert near.estimate.eta_days == 1
    assert promised(near.estimate) == TODAY + dt.timedelta(days=1)
    assert far.estimate.warehouse_id == "WH-DEL"
    assert far.estimate.eta_days >= near.estimate.eta_days + 4
    assert promised(far.estimate) == TODAY + dt.timedelta(days=far.estimate.eta_days)


async def test_non_delivery_pincode_is_not_deliverable(tat: Any) -> None:
    resp = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
        item_id="item-1", pincode=NON_DELIVERY))
    assert not resp.estimate.deliverable
    assert resp.estimate.reason == common_pb2.UNDELIVERABLE_REASON_NOT_SERVICEABLE
    assert resp.estimate.warehouse_id == "" and resp.estimate.eta_days == 0
    routes = await tat.ListRoutes(pb.ListRoutesRequest(pincode=NON_DELIVERY))
    assert list(routes.routes) == []


async def test_malformed_and_unknown_pincodes(tat: Any) -> None:
    for bad in ("12345", "0123456", "5601OO", "012345"):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await tat.CheckServiceability(pb.CheckServiceabilityRequest(
                item_id="item-1", pincode=bad))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        assert "pincode" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tat.CheckServiceability(pb.CheckServiceabilityRequest(
            item_id="item-1", pincode="999999"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "999999" in (err.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tat.ListRoutes(pb.ListRoutesRequest(pincode="abc"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_list_routes_fastest_first(tat: Any) -> None:
    resp = await tat.ListRoutes(pb.ListRoutesRequest(pincode=NEAR_BLR))
    etas = [(r.eta_days, r.warehouse_id) for r in resp.routes]
    assert etas == sorted(etas)
    assert resp.routes[0].warehouse_id == "WH-BLR"
    assert "WH-GUW" not in {r.warehouse_id for r in resp.routes}  # out of its area


async def test_batch_of_fifty_items_is_one_call(tat: Any) -> None:
    items = [f"item-{i}" for i in range(50)]
    resp = await tat.BatchCheckServiceability(pb.BatchCheckServiceabilityRequest(
        item_ids=items + items[:5], pincode=KOCHI))
    assert [r.item_id for r in resp.results] == items
    assert all(r.estimate.deliverable and r.estimate.warehouse_id == "WH-KOC"
               for r in resp.results)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tat.BatchCheckServiceability(pb.BatchCheckServiceabilityRequest(
            item_ids=[f"i{i}" for i in range(501)], pincode=KOCHI))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def _wait_for(predicate: Any, timeout: float = 10.0, what: str = "") -> None:
    await wait_until_async(
        predicate, what or getattr(predicate, "__name__", "condition"), timeout=timeout,
        interval=0.2,
    )


async def test_outage_flips_results_and_clearing_restores(tat: Any) -> None:
    async def check() -> common_pb2.DeliveryEstimate:
        r = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
            item_id="item-1", pincode=GUWAHATI))
        return r.estimate

    before = await check()
    assert before.deliverable
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await tat.CreateDisruption(pb.CreateDisruptionRequest(
            disruption=pb.Disruption(kind=pb.DISRUPTION_KIND_CARRIER_OUTAGE, state="Assam"),
            request_id="r-0"), metadata=CUSTOMER)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED

    rid = uuid.uuid4().hex
    outage = await tat.CreateDisruption(pb.CreateDisruptionRequest(
        disruption=pb.Disruption(kind=pb.DISRUPTION_KIND_CARRIER_OUTAGE, state="Assam",
                                 note="floods"),
        request_id=rid), metadata=ADMIN)
    again = await tat.CreateDisruption(pb.CreateDisruptionRequest(
        disruption=pb.Disruption(kind=pb.DISRUPTION_KIND_CARRIER_OUTAGE, state="Assam",
                                 note="floods"),
        request_id=rid), metadata=ADMIN)
    assert again.disruption_id == outage.disruption_id
    # The same key for another disruption is refused, never a second effect.
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await tat.CreateDisruption(pb.CreateDisruptionRequest(
            disruption=pb.Disruption(kind=pb.DISRUPTION_KIND_CARRIER_OUTAGE, state="Bihar"),
            request_id=rid), metadata=ADMIN)
    assert reused.value.code() == grpc.StatusCode.ABORTED
    during = await check()
    assert not during.deliverable
    assert during.reason == common_pb2.UNDELIVERABLE_REASON_DISRUPTED
    # Other states are unaffected.
    assert (await tat.CheckServiceability(pb.CheckServiceabilityRequest(
        item_id="item-1", pincode=NEAR_BLR))).estimate.deliverable
    active = await tat.ListDisruptions(pb.ListDisruptionsRequest(active_only=True),
                                       metadata=ADMIN)
    assert outage.disruption_id in [d.disruption_id for d in active.disruptions]

    cleared = await tat.ClearDisruption(pb.ClearDisruptionRequest(
        disruption_id=outage.disruption_id, request_id=uuid.uuid4().hex), metadata=ADMIN)
    assert cleared.HasField("clear_time")
    after = await check()
    assert after.deliverable and after.warehouse_id == before.warehouse_id
    assert after.eta_days == before.eta_days


async def test_closed_warehouse_reroutes_to_the_next_fastest(tat: Any) -> None:
    base = await tat.ListRoutes(pb.ListRoutesRequest(pincode=NEAR_BLR))
    closed = await tat.CreateDisruption(pb.CreateDisruptionRequest(
        disruption=pb.Disruption(kind=pb.DISRUPTION_KIND_WAREHOUSE_CLOSED,
                                 warehouse_id="WH-BLR"),
        request_id=uuid.uuid4().hex), metadata=ADMIN)
    try:
        wh = await tat.GetWarehouse(pb.GetWarehouseRequest(warehouse_id="WH-BLR"))
        assert wh.status == pb.WAREHOUSE_STATUS_CLOSED
        resp = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
            item_id="item-1", pincode=NEAR_BLR))
        assert resp.estimate.deliverable
        assert resp.estimate.warehouse_id == base.routes[1].warehouse_id
        assert resp.estimate.eta_days > base.routes[0].eta_days
    finally:
        await tat.ClearDisruption(pb.ClearDisruptionRequest(
            disruption_id=closed.disruption_id, request_id=uuid.uuid4().hex), metadata=ADMIN)


async def test_blocked_pincode_via_the_broadcast(services: Any, tat: Any, stack: Any) -> None:
    """A disruption written by one instance reaches another through Kafka:
    publish the event as a peer would and watch this instance apply it."""
    from confluent_kafka import Producer
    from ecom.events.v1 import events_pb2

    d = pb.Disruption(disruption_id="dis-peer-1", kind=pb.DISRUPTION_KIND_PINCODE_BLOCKED,
                      pincodes=[KOCHI])
    d.create_time.GetCurrentTime()
    env = events_pb2.EventEnvelope(
        event_id=uuid.uuid4().hex, entity_key=d.disruption_id,
        event_type="ecom.events.v1.ServiceabilityInvalidated",
        serviceability_invalidated=events_pb2.ServiceabilityInvalidated(
            change=events_pb2.INVALIDATION_CHANGE_RAISED, disruption=d))
    producer = Producer({"bootstrap.servers": services.env["ECOM_KAFKA_BOOTSTRAP"]})
    producer.produce(stack.topic("serviceability.invalidations"), env.SerializeToString(),
                     key=d.disruption_id.encode())
    producer.flush(10)

    async def blocked() -> bool:
        r = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
            item_id="item-1", pincode=KOCHI))
        return not r.estimate.deliverable

    await _wait_for(blocked)
    d.clear_time.GetCurrentTime()
    env.event_id = uuid.uuid4().hex
    env.serviceability_invalidated.change = events_pb2.INVALIDATION_CHANGE_CLEARED
    env.serviceability_invalidated.disruption.CopyFrom(d)
    producer.produce(stack.topic("serviceability.invalidations"), env.SerializeToString(),
                     key=d.disruption_id.encode())
    producer.flush(10)

    async def restored() -> bool:
        return not await blocked()

    await _wait_for(restored)


async def test_item_stocked_only_far_away_gets_the_far_eta(services: Any, tat: Any) -> None:
    inv = services.start("inventory")
    services.start("tat", ECOM_TAT_CLOCK=MORNING)  # this time with the real inventory
    item = f"far-{uuid.uuid4().hex[:8]}"
    async with inv.channel() as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)
        stock = inventory_pb2.SetStockRequest(
            item_id=item, warehouse_id="WH-GUW", available=5, request_id=uuid.uuid4().hex)

        async def stocked() -> bool:
            # Inventory asks tat about the warehouse; its channel may still be
            # in reconnect back-off from the tat copies just replaced. The
            # same request_id makes the retry one change.
            try:
                await stub.SetStock(stock, metadata=ADMIN)
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                return False
            return True

        await _wait_for(stocked, timeout=30, what="inventory reaches the new tat")

        # Kolkata: WH-KOL is the fastest route, but only WH-GUW holds the item.
        routes = await tat.ListRoutes(pb.ListRoutesRequest(pincode="700091"))
        guw = next(r for r in routes.routes if r.warehouse_id == "WH-GUW")
        assert routes.routes[0].warehouse_id == "WH-KOL"

        async def from_guwahati() -> bool:
            r = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
                item_id=item, pincode="700091"))
            return r.estimate.warehouse_id == "WH-GUW" and r.estimate.eta_days == guw.eta_days

        await _wait_for(from_guwahati)  # inventory answers after tat's back-off lapses
        # More units than held: out of stock.
        r = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
            item_id=item, pincode="700091", quantity=9))
        assert r.estimate.reason == common_pb2.UNDELIVERABLE_REASON_OUT_OF_STOCK
        # Never stocked and out of WH-GUW's area: not serviceable.
        r = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
            item_id=item, pincode=NEAR_BLR))
        assert r.estimate.reason == common_pb2.UNDELIVERABLE_REASON_NOT_SERVICEABLE

        # Stock moves to Kolkata: the inventory.stock event invalidates the cache.
        await stub.SetStock(inventory_pb2.SetStockRequest(
            item_id=item, warehouse_id="WH-KOL", available=5, request_id=uuid.uuid4().hex),
            metadata=ADMIN)

        async def from_kolkata() -> bool:
            r = await tat.CheckServiceability(pb.CheckServiceabilityRequest(
                item_id=item, pincode="700091"))
            return r.estimate.warehouse_id == "WH-KOL"

        await _wait_for(from_kolkata, timeout=8)  # well under the 30 s cache TTL
    services.start("tat", ECOM_TAT_CLOCK=MORNING, **NO_INVENTORY)


async def test_cutoff_moves_the_promised_date(services: Any, tat: Any) -> None:
    morning = await tat.ListRoutes(pb.ListRoutesRequest(pincode=NEAR_BLR))
    services.running["tat"].stop()
    evening_svc = services.start("tat", ECOM_TAT_CLOCK=EVENING, **NO_INVENTORY)
    try:
        async with evening_svc.channel() as channel:
            stub = serviceability_pb2_grpc.ServiceabilityServiceStub(channel)
            evening = await stub.ListRoutes(pb.ListRoutesRequest(pincode=NEAR_BLR))
    finally:
        evening_svc.stop()
        services.start("tat", ECOM_TAT_CLOCK=MORNING, **NO_INVENTORY)
    m = {r.warehouse_id: r for r in morning.routes}
    e = {r.warehouse_id: r for r in evening.routes}
    assert e["WH-BLR"].eta_days == m["WH-BLR"].eta_days + 1
    assert (dt.date(e["WH-BLR"].promised_date.year, e["WH-BLR"].promised_date.month,
                    e["WH-BLR"].promised_date.day)
            == TODAY + dt.timedelta(days=m["WH-BLR"].eta_days + 1))
