"""The gRPC servicer of ecom.orders.v1.OrderService: checks who may call,
translates proto <-> domain, calls the use cases. Errors are raised as mesh
errors; mesh maps them to gRPC statuses with details.

Who may call what: customers reach only their own orders (CreateOrder,
PayOrder, GetOrder, CancelOrder, ListUserOrders); admins reach every order
and alone may ShipOrder, DeliverOrder and ReconcileOrders.
"""

from __future__ import annotations

from typing import Any

from ecom.orders.v1 import orders_pb2 as pb
from ecom.orders.v1 import orders_pb2_grpc

from mesh import require_admin, require_caller, require_owner_or_admin
from mesh.errors import FailedPrecondition
from svc_orders import codec
from svc_orders.domain import IllegalTransition, WantedLine
from svc_orders.history import OrderHistory
from svc_orders.service import OrderService, Reconciler


class OrderApi(orders_pb2_grpc.OrderServiceServicer):
    """OrderService over the use cases in :mod:`svc_orders.service`."""

    def __init__(
        self, service: OrderService, reconciler: Reconciler, history: OrderHistory
    ) -> None:
        self.service = service
        self.reconciler = reconciler
        # Live + archived reads; archived orders refuse transitions.
        self.history = history

    async def CreateOrder(self, request: pb.CreateOrderRequest, context: Any) -> pb.Order:
        caller = require_owner_or_admin(request.user_id) if request.user_id else require_caller()
        destination = request.WhichOneof("destination")
        rec = await self.service.create_order(
            caller,
            request.user_id,
            request.request_id,
            [WantedLine(ln.item_id, ln.quantity) for ln in request.lines],
            request.from_cart,
            request.address_id if destination == "address_id" else None,
            request.shipping_address if destination == "shipping_address" else None,
        )
        return codec.order_proto(rec)

    async def PayOrder(self, request: pb.PayOrderRequest, context: Any) -> pb.Order:
        require_caller()
        try:
            async with self.history.live_only(request.order_id):
                rec = await self.service.pay(
                    request.order_id, request.payment_token, request.request_id
                )
        except IllegalTransition as exc:
            raise FailedPrecondition(str(exc), reason="ILLEGAL_TRANSITION") from None
        return codec.order_proto(rec)

    async def GetOrder(self, request: pb.GetOrderRequest, context: Any) -> pb.Order:
        require_caller()
        order = await self.history.get_order(request.order_id)
        require_owner_or_admin(order.user_id)
        return order

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: Any) -> pb.Order:
        require_caller()
        async with self.history.live_only(request.order_id):
            rec = await self.service.cancel(request.order_id, request.note, request.request_id)
        return codec.order_proto(rec)

    async def ShipOrder(self, request: pb.ShipOrderRequest, context: Any) -> pb.Order:
        require_admin()
        async with self.history.live_only(request.order_id):
            rec = await self.service.ship(
                request.order_id,
                request.shipment.carrier,
                request.shipment.tracking_number,
                request.request_id,
            )
        return codec.order_proto(rec)

    async def DeliverOrder(self, request: pb.DeliverOrderRequest, context: Any) -> pb.Order:
        require_admin()
        async with self.history.live_only(request.order_id):
            rec = await self.service.deliver(request.order_id, request.request_id)
        return codec.order_proto(rec)

    async def ListUserOrders(
        self, request: pb.ListUserOrdersRequest, context: Any
    ) -> pb.ListUserOrdersResponse:
        require_owner_or_admin(request.user_id)
        return await self.history.list_user_orders(
            request.user_id, request.page_size, request.page_token
        )

    async def ReconcileOrders(
        self, request: pb.ReconcileOrdersRequest, context: Any
    ) -> pb.ReconcileOrdersResponse:
        require_admin()
        return await self.reconciler.run(request.dry_run, request.max_repairs, request.request_id)
