"""The ports of `svc_orders/ports.py` over the peers' gRPC stubs.

The only place in orders that knows a call can fail with an AioRpcError:
:func:`translate` turns each one into the port's exception for its status
code, with the ErrorInfo reason and the precondition violations the peer
attached. Calls that go to a customer-facing peer (catalog, serviceability,
users, the cart read) carry the per-call timeout; the calls made as
svc_orders itself (inventory, payments, the cart clean-up) take theirs from
the caller's ``mesh.call_scope``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from typing import TypeVar

import grpc
from ecom.cart.v1 import cart_pb2, cart_pb2_grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.common.v1 import common_pb2
from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from ecom.payments.v1 import payments_pb2, payments_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2, serviceability_pb2_grpc
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from google.type import money_pb2
from grpc_status import rpc_status

from mesh.errors import PreconditionViolation
from svc_orders.ports import (
    PeerDenied,
    PeerError,
    PeerNotFound,
    PeerRefused,
    PeerRejectedInput,
    Peers,
    PeerUnreachable,
)

T = TypeVar("T")

_BY_CODE: dict[grpc.StatusCode, type[PeerError]] = {
    grpc.StatusCode.FAILED_PRECONDITION: PeerRefused,
    grpc.StatusCode.NOT_FOUND: PeerNotFound,
    grpc.StatusCode.INVALID_ARGUMENT: PeerRejectedInput,
    grpc.StatusCode.PERMISSION_DENIED: PeerDenied,
    grpc.StatusCode.UNAVAILABLE: PeerUnreachable,
    grpc.StatusCode.DEADLINE_EXCEEDED: PeerUnreachable,
}


def translate(exc: grpc.aio.AioRpcError) -> PeerError:
    """The port exception for a failed call, keeping code, message, the
    ErrorInfo reason and any PreconditionFailure violations."""
    reason = ""
    violations: list[PreconditionViolation] = []
    status = rpc_status.from_call(exc)
    for packed in status.details if status else ():
        info = error_details_pb2.ErrorInfo()
        failure = error_details_pb2.PreconditionFailure()
        if packed.Is(info.DESCRIPTOR):
            packed.Unpack(info)
            reason = reason or info.reason
        elif packed.Is(failure.DESCRIPTOR):
            packed.Unpack(failure)
            violations += [
                PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations
            ]
    code = exc.code()
    kind = _BY_CODE.get(code, PeerError)
    return kind(code, exc.details() or "", reason=reason, violations=violations)


async def _call(call: Callable[[], Awaitable[T]]) -> T:
    try:
        return await call()
    except grpc.aio.AioRpcError as exc:
        raise translate(exc) from exc


def _timestamp(value: datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(value.replace(tzinfo=UTC))
    return ts


class GrpcCatalog:
    def __init__(self, stub: catalog_pb2_grpc.CatalogServiceStub, timeout: float) -> None:
        self.stub, self.timeout = stub, timeout

    async def batch_get_items(self, item_ids: list[str]) -> catalog_pb2.BatchGetItemsResponse:
        request = catalog_pb2.BatchGetItemsRequest(item_ids=item_ids)
        return await _call(lambda: self.stub.BatchGetItems(request, timeout=self.timeout))


class GrpcServiceability:
    def __init__(
        self, stub: serviceability_pb2_grpc.ServiceabilityServiceStub, timeout: float
    ) -> None:
        self.stub, self.timeout = stub, timeout

    async def batch_check(
        self, item_ids: list[str], pincode: str
    ) -> serviceability_pb2.BatchCheckServiceabilityResponse:
        request = serviceability_pb2.BatchCheckServiceabilityRequest(
            item_ids=item_ids, pincode=pincode
        )
        return await _call(
            lambda: self.stub.BatchCheckServiceability(request, timeout=self.timeout)
        )

    async def promised_dates(self, pincode: str) -> dict[str, date]:
        request = serviceability_pb2.ListRoutesRequest(pincode=pincode)
        routes = await _call(lambda: self.stub.ListRoutes(request, timeout=self.timeout))
        return {
            r.warehouse_id: date(r.promised_date.year, r.promised_date.month, r.promised_date.day)
            for r in routes.routes
            if r.promised_date.year
        }


class GrpcUsers:
    def __init__(self, stub: users_pb2_grpc.UserServiceStub, timeout: float) -> None:
        self.stub, self.timeout = stub, timeout

    async def get_address(self, user_id: str, address_id: str) -> common_pb2.Address:
        request = users_pb2.GetAddressRequest(user_id=user_id, address_id=address_id)
        return await _call(lambda: self.stub.GetAddress(request, timeout=self.timeout))


class GrpcCart:
    def __init__(self, stub: cart_pb2_grpc.CartServiceStub, timeout: float) -> None:
        self.stub, self.timeout = stub, timeout

    async def get_cart(self, user_id: str) -> cart_pb2.Cart:
        request = cart_pb2.GetCartRequest(user_id=user_id)
        return await _call(lambda: self.stub.GetCart(request, timeout=self.timeout))

    async def remove_items(self, user_id: str, item_ids: list[str], request_id: str) -> None:
        request = cart_pb2.BatchRemoveCartItemsRequest(
            user_id=user_id, item_ids=item_ids, request_id=request_id
        )
        await _call(lambda: self.stub.BatchRemoveCartItems(request))


class GrpcInventory:
    def __init__(self, stub: inventory_pb2_grpc.InventoryServiceStub) -> None:
        self.stub = stub

    async def reserve(
        self,
        order_id: str,
        pincode: str,
        lines: list[tuple[str, int]],
        hold_until: datetime,
    ) -> inventory_pb2.Reservation:
        request = inventory_pb2.ReserveStockRequest(
            order_id=order_id,
            pincode=pincode,
            lines=[inventory_pb2.ReservationLine(item_id=i, quantity=q) for i, q in lines],
            hold_expire_time=_timestamp(hold_until),
        )
        return await _call(lambda: self.stub.ReserveStock(request))

    async def get_reservation(self, order_id: str) -> inventory_pb2.Reservation:
        request = inventory_pb2.GetReservationRequest(order_id=order_id)
        return await _call(lambda: self.stub.GetReservation(request))

    async def commit(self, order_id: str) -> None:
        request = inventory_pb2.CommitReservationRequest(order_id=order_id)
        await _call(lambda: self.stub.CommitReservation(request))

    async def release(self, order_id: str, reason: str) -> None:
        request = inventory_pb2.ReleaseReservationRequest(order_id=order_id, reason=reason)
        await _call(lambda: self.stub.ReleaseReservation(request))

    async def list_held(
        self, page_token: str, page_size: int = 500
    ) -> inventory_pb2.ListReservationsResponse:
        request = inventory_pb2.ListReservationsRequest(
            state=inventory_pb2.RESERVATION_STATE_HELD, page_size=page_size, page_token=page_token
        )
        return await _call(lambda: self.stub.ListReservations(request))


class GrpcPayments:
    def __init__(self, stub: payments_pb2_grpc.PaymentServiceStub) -> None:
        self.stub = stub

    async def create(
        self,
        order_id: str,
        user_id: str,
        amount: money_pb2.Money,
        token: str,
        wait_seconds: float,
        request_id: str,
    ) -> payments_pb2.Payment:
        request = payments_pb2.CreatePaymentRequest(
            order_id=order_id,
            user_id=user_id,
            amount=amount,
            payment_token=token,
            wait_timeout=Duration(seconds=int(wait_seconds), nanos=int((wait_seconds % 1) * 1e9)),
            request_id=request_id,
        )
        return await _call(lambda: self.stub.CreatePayment(request))

    async def list_for_order(self, order_id: str) -> list[payments_pb2.Payment]:
        request = payments_pb2.ListPaymentsRequest(order_id=order_id)
        found = await _call(lambda: self.stub.ListPayments(request))
        return list(found.payments)

    async def get(self, payment_id: str) -> payments_pb2.Payment:
        request = payments_pb2.GetPaymentRequest(payment_id=payment_id)
        return await _call(lambda: self.stub.GetPayment(request))

    async def refund(self, payment_id: str, reason: str, request_id: str) -> payments_pb2.Payment:
        request = payments_pb2.RefundPaymentRequest(
            payment_id=payment_id, reason=reason, request_id=request_id
        )
        return await _call(lambda: self.stub.RefundPayment(request))


def grpc_peers(
    *,
    catalog: catalog_pb2_grpc.CatalogServiceStub,
    tat: serviceability_pb2_grpc.ServiceabilityServiceStub,
    users: users_pb2_grpc.UserServiceStub,
    inventory: inventory_pb2_grpc.InventoryServiceStub,
    payments: payments_pb2_grpc.PaymentServiceStub,
    cart: cart_pb2_grpc.CartServiceStub,
    call_timeout_seconds: float,
) -> Peers:
    """The ports over the given stubs."""
    return Peers(
        catalog=GrpcCatalog(catalog, call_timeout_seconds),
        tat=GrpcServiceability(tat, call_timeout_seconds),
        users=GrpcUsers(users, call_timeout_seconds),
        inventory=GrpcInventory(inventory),
        payments=GrpcPayments(payments),
        cart=GrpcCart(cart, call_timeout_seconds),
    )
