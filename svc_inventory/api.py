"""The gRPC servicer of ecom.inventory.v1.InventoryService: checks who may
call, translates proto <-> domain, calls the use cases. Errors are raised as
mesh errors; mesh maps them to gRPC statuses with details.

Who may call what:

* SetStock, GetStock (REST through the edge): admins only.
* BatchGetStock: any caller. It is gRPC-only and read-only, and its callers
  (serviceability, the search indexer) forward the end user's identity, so
  a customer caller here is normal.
* ReserveStock, CommitReservation, ReleaseReservation, GetReservation,
  ListReservations: internal. A call with no end user (a background job)
  or with the ``admin`` or ``service`` role is accepted; a plain customer
  caller is refused, so a customer token can never hold or release stock
  even if the edge let a native gRPC call through. svc_orders therefore
  calls these on its own behalf (``mesh.call_scope`` with
  ``Caller("svc_orders", frozenset({"service"}))``), not with the
  shopper's forwarded token.
"""

from __future__ import annotations

from typing import Any

from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc

from mesh import current_caller, require_admin
from mesh.auth import SERVICE_ROLE
from mesh.db import to_timestamp
from mesh.errors import PermissionDenied
from svc_inventory.domain import RequestedLine, ReservationState
from svc_inventory.service import InventoryService
from svc_inventory.store import ReservationRecord, StockRow

_STATE_TO_PROTO = {
    ReservationState.HELD: inventory_pb2.RESERVATION_STATE_HELD,
    ReservationState.COMMITTED: inventory_pb2.RESERVATION_STATE_COMMITTED,
    ReservationState.RELEASED: inventory_pb2.RESERVATION_STATE_RELEASED,
}
_STATE_FROM_PROTO = {v: k for k, v in _STATE_TO_PROTO.items()}


def require_internal() -> None:
    """Refuse customer callers on the internal reservation RPCs (see the
    module docstring for the rule and why)."""
    caller = current_caller()
    if caller is None or caller.is_admin or SERVICE_ROLE in caller.roles:
        return
    raise PermissionDenied(
        "reservations are internal: call with a service identity", reason="INTERNAL_ONLY"
    )


class InventoryApi(inventory_pb2_grpc.InventoryServiceServicer):
    """InventoryService over the use cases in :mod:`svc_inventory.service`."""

    def __init__(self, service: InventoryService) -> None:
        self.service = service

    async def SetStock(
        self, request: inventory_pb2.SetStockRequest, context: Any
    ) -> inventory_pb2.WarehouseStock:
        require_admin()
        row = await self.service.set_stock(
            request.item_id, request.warehouse_id, request.available, request.request_id
        )
        return warehouse_stock(row)

    async def GetStock(
        self, request: inventory_pb2.GetStockRequest, context: Any
    ) -> inventory_pb2.ItemStock:
        require_admin()
        return item_stock(request.item_id, await self.service.get_item_stock(request.item_id))

    async def BatchGetStock(
        self, request: inventory_pb2.BatchGetStockRequest, context: Any
    ) -> inventory_pb2.BatchGetStockResponse:
        rows = await self.service.get_stock(list(request.item_ids))
        return inventory_pb2.BatchGetStockResponse(
            items=[item_stock(item, found) for item, found in rows.items()]
        )

    async def ReserveStock(
        self, request: inventory_pb2.ReserveStockRequest, context: Any
    ) -> inventory_pb2.Reservation:
        require_internal()
        rec = await self.service.reserve(
            request.order_id,
            [RequestedLine(line.item_id, line.quantity) for line in request.lines],
            request.pincode,
            request.hold_expire_time.ToDatetime() if request.HasField("hold_expire_time") else None,
        )
        return reservation(rec)

    async def CommitReservation(
        self, request: inventory_pb2.CommitReservationRequest, context: Any
    ) -> inventory_pb2.Reservation:
        require_internal()
        return reservation(await self.service.commit(request.order_id))

    async def ReleaseReservation(
        self, request: inventory_pb2.ReleaseReservationRequest, context: Any
    ) -> inventory_pb2.Reservation:
        require_internal()
        return reservation(await self.service.release(request.order_id, request.reason))

    async def GetReservation(
        self, request: inventory_pb2.GetReservationRequest, context: Any
    ) -> inventory_pb2.Reservation:
        require_internal()
        return reservation(await self.service.get_reservation(request.order_id))

    async def ListReservations(
        self, request: inventory_pb2.ListReservationsRequest, context: Any
    ) -> inventory_pb2.ListReservationsResponse:
        require_internal()
        page, token = await self.service.list_reservations(
            _STATE_FROM_PROTO.get(request.state),
            request.update_before.ToDatetime() if request.HasField("update_before") else None,
            request.page_size,
            request.page_token,
        )
        return inventory_pb2.ListReservationsResponse(
            reservations=[reservation(r) for r in page], next_page_token=token
        )


def warehouse_stock(row: StockRow) -> inventory_pb2.WarehouseStock:
    """A stock row as the contract shows it."""
    return inventory_pb2.WarehouseStock(
        item_id=row.item_id,
        warehouse_id=row.warehouse_id,
        available=row.available,
        reserved=row.reserved,
        update_time=to_timestamp(row.update_time),
    )


def item_stock(item_id: str, rows: list[StockRow]) -> inventory_pb2.ItemStock:
    """An item's rows with totals (empty totals for an item never stocked)."""
    return inventory_pb2.ItemStock(
        item_id=item_id,
        warehouses=[warehouse_stock(r) for r in rows],
        total_available=sum(r.available for r in rows),
        total_reserved=sum(r.reserved for r in rows),
    )


def reservation(rec: ReservationRecord) -> inventory_pb2.Reservation:
    """A reservation record as the contract shows it."""
    return inventory_pb2.Reservation(
        order_id=rec.order_id,
        state=_STATE_TO_PROTO[rec.state],
        lines=[
            inventory_pb2.ReservationLine(
                item_id=line.item_id, quantity=line.quantity, warehouse_id=line.warehouse_id
            )
            for line in rec.lines
        ],
        pincode=rec.pincode,
        hold_expire_time=to_timestamp(rec.hold_expire_time),
        release_reason=rec.release_reason,
        create_time=to_timestamp(rec.create_time),
        update_time=to_timestamp(rec.update_time),
    )
