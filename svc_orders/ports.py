"""The services orders calls, as ports: what the use cases need from each
peer, and the failures they tell apart.

The use cases never see gRPC. `svc_orders/adapters.py` implements these
ports over the generated stubs and turns every failed call into one of the
exceptions below; `tests/unit` implements them with in-memory fakes.

The messages are the contracts' own (a Payment, a Reservation): they are
plain data, and the consumer of `payments.events` hands the same Payment to
the use cases.

Every exception here is a ``grpc.RpcError`` with ``code()`` and
``details()``, so one that is not handled reaches the caller exactly as the
peer's failure would have (mesh maps UNAVAILABLE and DEADLINE_EXCEEDED
through, anything else to INTERNAL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol

import grpc
from ecom.cart.v1 import cart_pb2
from ecom.catalog.v1 import catalog_pb2
from ecom.common.v1 import common_pb2
from ecom.inventory.v1 import inventory_pb2
from ecom.payments.v1 import payments_pb2
from ecom.serviceability.v1 import serviceability_pb2
from google.type import money_pb2

from mesh.errors import PreconditionViolation

# -- failures ----------------------------------------------------------------


class PeerError(grpc.RpcError):
    """A call to a peer failed. The subclasses name the answers the use
    cases act on; anything else is this class itself."""

    def __init__(
        self,
        code: grpc.StatusCode,
        details: str = "",
        *,
        reason: str = "",
        violations: list[PreconditionViolation] | None = None,
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details
        self.reason = reason
        self.violations = list(violations or [])

    def code(self) -> grpc.StatusCode:
        """The peer's status code."""
        return self._code

    def details(self) -> str:
        """The peer's message."""
        return self._details

    def __str__(self) -> str:
        return f"{self._code.name}: {self._details}"


class PeerRefused(PeerError):
    """FAILED_PRECONDITION: the peer understood and said no (stock cannot be
    held, a payment cannot be refunded, a reservation cannot be committed)."""


class PeerNotFound(PeerError):
    """NOT_FOUND: the peer has no such thing."""


class PeerRejectedInput(PeerError):
    """INVALID_ARGUMENT: the peer found the request malformed."""


class PeerDenied(PeerError):
    """PERMISSION_DENIED: the caller may not see or change it."""


class PeerUnreachable(PeerError):
    """UNAVAILABLE or DEADLINE_EXCEEDED: the answer is unknown."""


# -- ports -------------------------------------------------------------------


class Catalog(Protocol):
    """Prices, titles and states of items."""

    async def batch_get_items(self, item_ids: list[str]) -> catalog_pb2.BatchGetItemsResponse: ...


class Serviceability(Protocol):
    """Whether and when items reach a pincode."""

    async def batch_check(
        self, item_ids: list[str], pincode: str
    ) -> serviceability_pb2.BatchCheckServiceabilityResponse: ...

    async def promised_dates(self, pincode: str) -> dict[str, date]:
        """Promised delivery date per warehouse serving ``pincode``."""
        ...


class Users(Protocol):
    """Saved addresses."""

    async def get_address(self, user_id: str, address_id: str) -> common_pb2.Address: ...


class Cart(Protocol):
    """The user's cart."""

    async def get_cart(self, user_id: str) -> cart_pb2.Cart: ...

    async def remove_items(self, user_id: str, item_ids: list[str], request_id: str) -> None: ...


class Inventory(Protocol):
    """Stock reservations, idempotent by order id."""

    async def reserve(
        self,
        order_id: str,
        pincode: str,
        lines: list[tuple[str, int]],
        hold_until: datetime,
    ) -> inventory_pb2.Reservation: ...

    async def get_reservation(self, order_id: str) -> inventory_pb2.Reservation: ...

    async def commit(self, order_id: str) -> None: ...

    async def release(self, order_id: str, reason: str) -> None: ...

    async def list_held(
        self, page_token: str, page_size: int = 500
    ) -> inventory_pb2.ListReservationsResponse: ...


class Payments(Protocol):
    """Payment intents and refunds, idempotent by request id."""

    async def create(
        self,
        order_id: str,
        user_id: str,
        amount: money_pb2.Money,
        token: str,
        wait_seconds: float,
        request_id: str,
    ) -> payments_pb2.Payment: ...

    async def list_for_order(self, order_id: str) -> list[payments_pb2.Payment]: ...

    async def get(self, payment_id: str) -> payments_pb2.Payment: ...

    async def refund(
        self, payment_id: str, reason: str, request_id: str
    ) -> payments_pb2.Payment: ...


@dataclass(frozen=True)
class Peers:
    """The ports the order use cases call."""

    catalog: Catalog
    tat: Serviceability
    users: Users
    inventory: Inventory
    payments: Payments
    cart: Cart
