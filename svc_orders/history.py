"""One order history over the live orders (MariaDB) and the archive
(Cassandra), and the OrderHistoryService servicer.

Merged list (ListUserOrders): both stores are ordered by (create_time,
order_id) newest first, a key that never changes when an order moves. A page
asks each store for ``size + 1`` orders strictly after the page token's
(create_time, order_id), drops the archive's copy of any order also live,
and keeps the first ``size``; the token is the last one's key. MariaDB is
read before Cassandra: the archiver writes Cassandra before it deletes from
MariaDB, so an order moving between the two reads is found in the second
one; an order never falls between pages. Times compare at microseconds in
both stores (DATETIME(6) and bigint micros).

If Cassandra is unreachable the page holds live orders only and says so
(``archive_unavailable``). If MariaDB is unreachable, archived orders are
still served by id.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ecom.orderhistory.v1 import orderhistory_pb2 as hpb
from ecom.orderhistory.v1 import orderhistory_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb

from mesh import require_admin, require_caller, require_owner_or_admin
from mesh.errors import DomainError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from svc_orders import codec
from svc_orders.archive import Archiver
from svc_orders.archive_store import ArchiveStore, ArchiveUnavailable, from_us, to_us
from svc_orders.codec import Cursor, decode_token, encode_token
from svc_orders.service import OrderService

log = logging.getLogger(__name__)

# Ids (users, orders, sellers) are at most 64 characters everywhere.
MAX_ID = 64


def _check_id(field: str, value: str) -> None:
    if not value:
        raise InvalidArgument.for_field(field, "is required")
    if len(value) > MAX_ID:
        raise InvalidArgument.for_field(field, f"at most {MAX_ID} characters")


def _page_size(page_size: int) -> int:
    if not 0 <= page_size <= 100:
        raise InvalidArgument.for_field("page_size", "must be 0-100")
    return page_size or 20


def order_key(order: pb.Order) -> Cursor:
    return order.create_time.ToMicroseconds(), order.order_id


def merge_pages(
    live: list[pb.Order], archived: list[pb.Order], size: int
) -> tuple[list[pb.Order], Cursor | None]:
    """The first ``size`` orders of both lists, newest first, an order in
    both taken from ``live``; and the cursor of the next page (None when
    nothing follows). Each list must hold its store's first ``size + 1``."""
    seen = {o.order_id for o in live}
    merged = live + [o for o in archived if o.order_id not in seen]
    merged.sort(key=order_key, reverse=True)
    if len(merged) > size:
        return merged[:size], order_key(merged[size - 1])
    return merged, None


class OrderHistory:
    """Reads over both stores."""

    def __init__(self, service: OrderService, archive: ArchiveStore) -> None:
        self.service = service
        self.archive = archive

    async def archived(self, order_id: str) -> pb.Order | None:
        """The archived copy of an order, or None (ArchiveUnavailable when
        Cassandra cannot be asked)."""
        # Ids longer than any stored one cannot be archived (and would be
        # refused by Cassandra as keys).
        raw = await self.archive.get(order_id) if 0 < len(order_id) <= MAX_ID else None
        return pb.Order.FromString(raw) if raw is not None else None

    async def get_order(self, order_id: str) -> pb.Order:
        """A live order, else its archived copy. MariaDB down: the archive
        still answers for archived orders."""
        try:
            return codec.order_proto(await self.service.get_visible(order_id))
        except NotFound:
            live_error: Exception | None = None
        except DomainError:
            raise
        except Exception as exc:  # noqa: BLE001 - MariaDB unreachable: try the archive
            log.warning("live read of %s failed (%s); trying the archive", order_id, exc)
            live_error = exc
        try:
            found = await self.archived(order_id)
        except ArchiveUnavailable as exc:
            if live_error is not None:
                raise Unavailable("orders cannot be read right now") from exc
            raise NotFound(
                f"order {order_id!r} not found (the archive is unreachable)",
                resource_type="order",
                resource_name=order_id,
            ) from exc
        if found is None:
            if live_error is not None:
                raise Unavailable("orders cannot be read right now") from live_error
            raise NotFound(
                f"order {order_id!r} not found", resource_type="order", resource_name=order_id
            )
        return found

    @asynccontextmanager
    async def live_only(self, order_id: str) -> AsyncIterator[None]:
        """Around a transition: an order that is only in the archive gets
        FAILED_PRECONDITION (ORDER_ARCHIVED) instead of NOT_FOUND, once the
        caller is shown to be its owner or an admin."""
        try:
            yield
        except NotFound:
            try:
                found = await self.archived(order_id)
            except ArchiveUnavailable:
                found = None
            if found is None:
                raise
            require_owner_or_admin(found.user_id)
            raise FailedPrecondition(
                f"order {order_id!r} is archived and can no longer change",
                reason="ORDER_ARCHIVED",
            ) from None

    async def list_user_orders(
        self, user_id: str, page_size: int, page_token: str
    ) -> pb.ListUserOrdersResponse:
        """One merged page, newest first (see the module doc)."""
        _check_id("user_id", user_id)
        size = _page_size(page_size)
        after = decode_token(page_token, user_id)
        live_after = (from_us(after[0]), after[1]) if after else None
        # MariaDB first, then Cassandra: see the module doc for why.
        live = [
            codec.order_proto(r)
            for r in await self.service.store.list_user(user_id, size + 1, live_after)
        ]
        unavailable = False
        try:
            archived = [
                pb.Order.FromString(raw)
                for _, _, raw in await self.archive.list_user(user_id, size + 1, after)
            ]
        except ArchiveUnavailable as exc:
            log.warning("history of %s without the archive: %s", user_id, exc)
            archived, unavailable = [], True
        page, cursor = merge_pages(live, archived, size)
        return pb.ListUserOrdersResponse(
            orders=page,
            next_page_token=encode_token(cursor, user_id) if cursor else "",
            archive_unavailable=unavailable,
        )

    async def list_archived(
        self, user_id: str, page_size: int, page_token: str
    ) -> hpb.ListArchivedOrdersResponse:
        _check_id("user_id", user_id)
        size = _page_size(page_size)
        after = decode_token(page_token, user_id)
        found = await self.archive.list_user(user_id, size + 1, after)
        page = [pb.Order.FromString(raw) for _, _, raw in found[:size]]
        token = encode_token(order_key(page[-1]), user_id) if len(found) > size else ""
        return hpb.ListArchivedOrdersResponse(orders=page, next_page_token=token)

    async def list_seller(
        self, seller_id: str, page_size: int, page_token: str
    ) -> hpb.ListSellerOrdersResponse:
        _check_id("seller_id", seller_id)
        size = _page_size(page_size)
        scope = "seller:" + seller_id
        after = decode_token(page_token, scope)
        found = await self.archive.list_seller(seller_id, size + 1, after)
        page = [pb.Order.FromString(raw) for _, _, raw in found[:size]]
        token = encode_token(order_key(page[-1]), scope) if len(found) > size else ""
        return hpb.ListSellerOrdersResponse(orders=page, next_page_token=token)


def _archive_down(exc: ArchiveUnavailable) -> Unavailable:
    return Unavailable(str(exc).split(":")[0], reason="ARCHIVE_UNAVAILABLE")


class OrderHistoryApi(orderhistory_pb2_grpc.OrderHistoryServiceServicer):
    """ecom.orderhistory.v1.OrderHistoryService. ArchiveOrders and
    ListSellerOrders: admin. Archived reads: the order's owner or admin."""

    def __init__(self, history: OrderHistory, archiver: Archiver) -> None:
        self.history = history
        self.archiver = archiver

    async def ArchiveOrders(
        self, request: hpb.ArchiveOrdersRequest, context: Any
    ) -> hpb.ArchiveOrdersResponse:
        require_admin()
        min_age = request.min_age.ToTimedelta() if request.HasField("min_age") else None
        return await self.archiver.run(
            min_age, request.max_orders, request.dry_run, request.request_id
        )

    async def ListArchivedOrders(
        self, request: hpb.ListArchivedOrdersRequest, context: Any
    ) -> hpb.ListArchivedOrdersResponse:
        require_owner_or_admin(request.user_id)
        try:
            return await self.history.list_archived(
                request.user_id, request.page_size, request.page_token
            )
        except ArchiveUnavailable as exc:
            raise _archive_down(exc) from exc

    async def GetArchivedOrder(
        self, request: hpb.GetArchivedOrderRequest, context: Any
    ) -> pb.Order:
        require_caller()
        try:
            found = await self.history.archived(request.order_id)
        except ArchiveUnavailable as exc:
            raise _archive_down(exc) from exc
        if found is None:
            raise NotFound(
                f"order {request.order_id!r} is not archived",
                resource_type="order",
                resource_name=request.order_id,
            )
        require_owner_or_admin(found.user_id)
        return found

    async def ListSellerOrders(
        self, request: hpb.ListSellerOrdersRequest, context: Any
    ) -> hpb.ListSellerOrdersResponse:
        require_admin()
        try:
            return await self.history.list_seller(
                request.seller_id, request.page_size, request.page_token
            )
        except ArchiveUnavailable as exc:
            raise _archive_down(exc) from exc


__all__ = ["OrderHistory", "OrderHistoryApi", "merge_pages", "to_us"]
