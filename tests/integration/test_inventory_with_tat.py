"""svc_inventory choosing warehouses with the real svc_tat (ListRoutes and
GetWarehouse over gRPC), both as real processes.

The main inventory tests (test_inventory_service.py) use an in-test
serviceability peer with fixed routes so every allocation rule can be pinned
down; this module checks the same rules end to end against the real routes
of the demo warehouses. svc_tat needs Redis, so the module is skipped when
ECOM_TEST_SERVERS leaves Redis out (`make test` starts everything).

It runs a second inventory instance next to the session's one, on the same
database: two instances of a service sharing their store is how it scales
out, and the outbox relays take turns through their named lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from ecom.inventory.v1 import inventory_pb2 as pb
from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2 as spb
from ecom.serviceability.v1 import serviceability_pb2_grpc

from infra.core import REPO, STACK
from tests.conftest import RunningService, Services, _free_port, _wait_serving
from tests.integration.test_inventory_service import ADMIN, ORDERS, new_id, status_of

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        "redis" not in os.environ.get("ECOM_TEST_SERVERS", "redis").split(","),
        reason="svc_tat needs Redis (add redis to ECOM_TEST_SERVERS)",
    ),
]


@pytest.fixture(scope="module")
def tat(services: Services) -> RunningService:
    return services.start("tat")


@pytest.fixture(scope="module")
def inventory_on_tat(services: Services, tat: RunningService) -> Iterator[RunningService]:
    addr = f"127.0.0.1:{_free_port()}"
    log = STACK / "logs" / f"test-{services.stack.run_id}-inventory-on-tat.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "svc_inventory.main"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**services.env, "ECOM_INVENTORY_ADDR": addr, "ECOM_TAT_ADDR": tat.addr},
            cwd=REPO,
            start_new_session=True,
        )
    svc = RunningService("inventory", addr, [proc], [log])
    _wait_serving(svc, 90)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
async def stubs(
    inventory_on_tat: RunningService, tat: RunningService
) -> AsyncIterator[
    tuple[
        inventory_pb2_grpc.InventoryServiceStub, serviceability_pb2_grpc.ServiceabilityServiceStub
    ]
]:
    inv, ser = grpc.aio.insecure_channel(inventory_on_tat.target), tat.channel()
    yield (
        inventory_pb2_grpc.InventoryServiceStub(inv),
        serviceability_pb2_grpc.ServiceabilityServiceStub(ser),
    )
    await inv.close()
    await ser.close()


async def test_reserves_from_the_fastest_real_route_with_stock(
    stubs: tuple[
        inventory_pb2_grpc.InventoryServiceStub,
        serviceability_pb2_grpc.ServiceabilityServiceStub,
    ],
) -> None:
    inventory, serviceability = stubs
    routes = await serviceability.ListRoutes(spb.ListRoutesRequest(pincode="110001"))
    order = [r.warehouse_id for r in routes.routes]
    assert len(order) >= 3, "the demo warehouses serve Delhi from several places"
    fastest, second = order[0], order[1]
    item = new_id("item")
    for wh, units in ((fastest, 2), (second, 5)):
        await inventory.SetStock(
            pb.SetStockRequest(
                item_id=item, warehouse_id=wh, available=units, request_id=uuid.uuid4().hex
            ),
            metadata=ADMIN,
        )

    async def reserve(qty: int) -> pb.Reservation:
        return await inventory.ReserveStock(
            pb.ReserveStockRequest(
                order_id=new_id("order"),
                pincode="110001",
                lines=[pb.ReservationLine(item_id=item, quantity=qty)],
            ),
            metadata=ORDERS,
        )

    assert (await reserve(2)).lines[0].warehouse_id == fastest
    assert (await reserve(3)).lines[0].warehouse_id == second  # fastest is empty now
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await reserve(3)  # 2 left, at the second warehouse only
    assert status_of(err.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "INSUFFICIENT_STOCK")


async def test_unknown_warehouse_is_not_found_by_serviceability(
    stubs: tuple[
        inventory_pb2_grpc.InventoryServiceStub,
        serviceability_pb2_grpc.ServiceabilityServiceStub,
    ],
) -> None:
    inventory, _ = stubs
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await inventory.SetStock(
            pb.SetStockRequest(
                item_id="x", warehouse_id="WH-NOWHERE", available=1, request_id="r-x"
            ),
            metadata=ADMIN,
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
