"""Helpers for the orders integration tests: the real peers (catalog, tat,
inventory, payments) and orders as processes, items with stock, callers,
checkout and payment shortcuts, and a stock balance reader."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.common.v1 import common_pb2
from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb
from ecom.orders.v1 import orders_pb2_grpc
from ecom.payments.v1 import payments_pb2_grpc
from google.rpc import error_details_pb2
from google.type import money_pb2
from grpc_status import rpc_status

from mesh.auth import Caller, encode_jwt_payload
from mesh.errors import error_details
from tests.conftest import RunningService, Services
from tests.integration.catalog_support import phone
from tests.waiting import wait_until_async

ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("admin-1", frozenset({"admin"})))),)
SERVICE = (("x-jwt-payload", encode_jwt_payload(Caller("svc_orders", frozenset({"service"})))),)
PINCODE = "560001"  # Bengaluru: served by WH-BLR
WAREHOUSE = "WH-BLR"


def as_user(user_id: str) -> tuple[tuple[str, str], ...]:
    """Metadata of a signed-in customer, as the edge would forward it."""
    return (("x-jwt-payload", encode_jwt_payload(Caller(user_id, frozenset({"customer"})))),)


def new_id(prefix: str = "u") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def address(pincode: str = PINCODE) -> common_pb2.Address:
    return common_pb2.Address(
        name="Asha Rao",
        lines=["12 MG Road"],
        city="Bengaluru",
        state="Karnataka",
        pincode=pincode,
        phone="9876543210",
    )


def status_of(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str]:
    """(code, ErrorInfo reason) of a failed call."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    reason = ""
    if status is not None:
        reason = next(
            (d.reason for d in error_details(status) if isinstance(d, error_details_pb2.ErrorInfo)),
            "",
        )
    return exc.code(), reason


def start_shop(services: Services, **orders_env: str) -> dict[str, RunningService]:
    """Start the peers and orders; ``orders_env`` also goes to payments (the
    hold length is shared)."""
    hold = {"ECOM_ORDER_HOLD_SECONDS": orders_env.get("ECOM_ORDER_HOLD_SECONDS", "60")}
    pay_env = {k: v for k, v in orders_env.items() if k.startswith("ECOM_PAYMENTS_")}
    ord_env = {k: v for k, v in orders_env.items() if not k.startswith("ECOM_PAYMENTS_")}
    return {
        "catalog": services.start("catalog"),
        "tat": services.start("tat"),
        "inventory": services.start("inventory"),
        "payments": services.start("payments", **hold, **pay_env),
        "orders": services.start("orders", **{**hold, **ord_env}),
    }


@dataclass
class Shop:
    """Stubs on fresh channels (one per test module's event loop use)."""

    orders: orders_pb2_grpc.OrderServiceStub
    catalog: catalog_pb2_grpc.CatalogServiceStub
    inventory: inventory_pb2_grpc.InventoryServiceStub
    payments: payments_pb2_grpc.PaymentServiceStub
    channels: list[grpc.aio.Channel]

    @classmethod
    def connect(cls, running: dict[str, RunningService]) -> Shop:
        chans = {n: running[n].channel() for n in ("orders", "catalog", "inventory", "payments")}
        return cls(
            orders=orders_pb2_grpc.OrderServiceStub(chans["orders"]),
            catalog=catalog_pb2_grpc.CatalogServiceStub(chans["catalog"]),
            inventory=inventory_pb2_grpc.InventoryServiceStub(chans["inventory"]),
            payments=payments_pb2_grpc.PaymentServiceStub(chans["payments"]),
            channels=list(chans.values()),
        )

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()

    async def item(self, stock: int, rupees: int = 499, paise: int = 50) -> str:
        """A new active catalog item with ``stock`` units at WH-BLR."""
        template = phone(f"Test Phone {uuid.uuid4().hex[:6]}", rupees)
        template.price.CopyFrom(
            money_pb2.Money(currency_code="INR", units=rupees, nanos=paise * 10_000_000)
        )
        item = await self.catalog.CreateItem(
            catalog_pb2.CreateItemRequest(request_id=new_id("r"), item=template),
            metadata=ADMIN,
        )
        await self.inventory.SetStock(
            inventory_pb2.SetStockRequest(
                item_id=item.item_id,
                warehouse_id=WAREHOUSE,
                available=stock,
                request_id=new_id("s"),
            ),
            metadata=ADMIN,
        )
        return str(item.item_id)

    async def checkout(
        self, user: str, item: str, qty: int = 1, request_id: str | None = None, **kw: Any
    ) -> pb.Order:
        return await self.orders.CreateOrder(
            pb.CreateOrderRequest(
                request_id=request_id or new_id("co"),
                user_id=user,
                lines=[pb.LineItem(item_id=item, quantity=qty)],
                shipping_address=address(),
                **kw,
            ),
            metadata=as_user(user),
            timeout=60,
        )

    async def pay(self, order: pb.Order, token: str, request_id: str | None = None) -> pb.Order:
        return await self.orders.PayOrder(
            pb.PayOrderRequest(
                order_id=order.order_id,
                payment_token=token,
                request_id=request_id or new_id("pay"),
            ),
            metadata=as_user(order.user_id),
            timeout=60,
        )

    async def get(self, order_id: str) -> pb.Order:
        return await self.orders.GetOrder(pb.GetOrderRequest(order_id=order_id), metadata=ADMIN)

    async def wait_for(
        self, order_id: str, pred: Any, timeout: float = 30, what: str = ""
    ) -> pb.Order:
        """Poll GetOrder until ``pred(order)`` (tests/waiting.py)."""

        async def probe() -> pb.Order | None:
            order = await self.get(order_id)
            return order if pred(order) else None

        return await wait_until_async(
            probe, f"order {order_id} {what or 'in the state wanted'}", timeout=timeout,
            interval=0.2,
        )

    async def stock(self, item: str) -> tuple[int, int]:
        """(available, reserved) of an item across warehouses."""
        s = await self.inventory.GetStock(
            inventory_pb2.GetStockRequest(item_id=item), metadata=ADMIN
        )
        return int(s.total_available), int(s.total_reserved)

    async def stock_settles(self, item: str, want: tuple[int, int],
                            timeout: float = 10) -> tuple[int, int]:
        """(available, reserved) once it equals ``want``, or as it stands at
        ``timeout``: the release or commit owed by a transition the sweeper
        made runs just after that transition commits."""
        deadline = time.monotonic() + timeout
        while (got := await self.stock(item)) != want and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        return got

    async def reservation(self, order_id: str) -> inventory_pb2.Reservation:
        return await self.inventory.GetReservation(
            inventory_pb2.GetReservationRequest(order_id=order_id), metadata=SERVICE
        )
