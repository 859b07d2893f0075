"""Cart and wishlist use cases.

Writes: every change of a user's cart or wishlist is one MariaDB transaction
that locks the user's `shoppers` row, claims the request id (AIP-155: a
retry with the same id changes nothing again and answers with the cart as
it is now), applies the change and queues its `cart.events` event in the
outbox. Items are checked against the catalog before the transaction:
unknown ids are NOT_FOUND, deleted items FAILED_PRECONDITION, and when the
catalog cannot be reached the write is refused as UNAVAILABLE (nothing is
added that could not be checked).

Reads never fail because a neighbour is down: the cart is priced with one
`BatchGetItems` call and checked with one `BatchCheckServiceability` call
for the pincode asked for, else the owner's default address (users
`ListAddresses`, with the caller's identity propagated). A failed call
leaves prices unset (`priced = false`) or estimates "unavailable" instead
of failing the read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.events.v1 import events_pb2
from ecom.serviceability.v1 import serviceability_pb2, serviceability_pb2_grpc
from ecom.users.v1 import users_pb2, users_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import money
from mesh.db import utcnow
from mesh.errors import Conflict, FailedPrecondition, NotFound, Unavailable
from mesh.idempotency import request_id_reused
from svc_cart import domain
from svc_cart.domain import CatalogItem, Delivery, Limits, PricedCart, SavedEntry
from svc_cart.store import CartStore, Shopper

log = logging.getLogger(__name__)

REASON_ITEM_DELETED = "ITEM_DELETED"
REASON_CATALOG_UNAVAILABLE = "CATALOG_UNAVAILABLE"
BATCH_LIMIT = 500  # BatchGetItems / BatchCheckServiceability accept this many ids


class DependencyDown(Exception):
    """A neighbouring service did not answer (or answered with an error)."""


# -- ports -------------------------------------------------------------------
class Catalog(Protocol):
    """Where item titles, prices and states come from."""

    async def items(self, item_ids: Sequence[str]) -> tuple[dict[str, CatalogItem], frozenset[str]]:
        """The known items by id and the ids the catalog does not know;
        raises DependencyDown when the catalog cannot answer."""
        ...


class Serviceability(Protocol):
    """Where delivery estimates come from."""

    async def check(self, item_ids: Sequence[str], pincode: str) -> dict[str, Delivery]:
        """Estimates by item for one pincode; raises DependencyDown."""
        ...


class Addresses(Protocol):
    """Where the user's default delivery pincode comes from."""

    async def default_pincode(self, user_id: str) -> str:
        """The default address's pincode, "" when the user has none;
        raises DependencyDown."""
        ...


# -- gRPC adapters -------------------------------------------------------------
class CatalogClient:
    """Catalog over gRPC (`BatchGetItems`, one call per 500 ids)."""

    def __init__(self, stub: catalog_pb2_grpc.CatalogServiceStub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout

    async def items(self, item_ids: Sequence[str]) -> tuple[dict[str, CatalogItem], frozenset[str]]:
        found: dict[str, CatalogItem] = {}
        missing: set[str] = set()
        ids = list(dict.fromkeys(item_ids))
        try:
            for start in range(0, len(ids), BATCH_LIMIT):
                resp = await self.stub.BatchGetItems(
                    catalog_pb2.BatchGetItemsRequest(item_ids=ids[start : start + BATCH_LIMIT]),
                    timeout=self.timeout,
                )
                for item in resp.items:
                    found[item.item_id] = catalog_item(item)
                missing.update(resp.missing_item_ids)
        except grpc.aio.AioRpcError as exc:
            raise DependencyDown(f"catalog: {exc.code().name} {exc.details()}") from exc
        return found, frozenset(missing)


def catalog_item(item: catalog_pb2.Item) -> CatalogItem:
    """The cart's view of a catalog Item message."""
    try:
        price = money.to_nanos(item.price)
    except money.MoneyError:
        # An item without a usable INR price cannot be bought from the cart.
        return CatalogItem(item.item_id, item.title, "", 0, active=False)
    return CatalogItem(
        item_id=item.item_id,
        title=item.title,
        image_url=item.image_urls[0] if item.image_urls else "",
        price_nanos=price,
        active=item.state == catalog_pb2.ITEM_STATE_ACTIVE,
    )


class ServiceabilityClient:
    """Serviceability over gRPC (`BatchCheckServiceability`)."""

    def __init__(
        self, stub: serviceability_pb2_grpc.ServiceabilityServiceStub, timeout: float
    ) -> None:
        self.stub = stub
        self.timeout = timeout

    async def check(self, item_ids: Sequence[str], pincode: str) -> dict[str, Delivery]:
        out: dict[str, Delivery] = {}
        ids = list(dict.fromkeys(item_ids))
        try:
            for start in range(0, len(ids), BATCH_LIMIT):
                resp = await self.stub.BatchCheckServiceability(
                    serviceability_pb2.BatchCheckServiceabilityRequest(
                        item_ids=ids[start : start + BATCH_LIMIT], pincode=pincode
                    ),
                    timeout=self.timeout,
                )
                for result in resp.results:
                    est = result.estimate
                    date = est.promised_date
                    out[result.item_id] = Delivery(
                        deliverable=est.deliverable,
                        eta_days=est.eta_days,
                        promised=(date.year, date.month, date.day) if date.year else None,
                        warehouse_id=est.warehouse_id,
                        reason=int(est.reason),
                    )
        except grpc.aio.AioRpcError as exc:
            raise DependencyDown(f"tat: {exc.code().name} {exc.details()}") from exc
        return out


class UsersClient:
    """The users service's `ListAddresses` (default address first)."""

    def __init__(self, stub: users_pb2_grpc.UserServiceStub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout

    async def default_pincode(self, user_id: str) -> str:
        try:
            resp = await self.stub.ListAddresses(
                users_pb2.ListAddressesRequest(user_id=user_id, page_size=1),
                timeout=self.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
                # No account behind the id, or a service caller (orders after
                # a checkout) that may not read addresses: no pincode, no noise.
                return ""
            raise DependencyDown(f"users: {exc.code().name} {exc.details()}") from exc
        first = resp.addresses[0] if resp.addresses else None
        return first.pincode if first is not None and first.is_default else ""


# -- use cases -----------------------------------------------------------------
@dataclass(frozen=True)
class PricedWishlist:
    """A wishlist with current prices."""

    user_id: str
    items: tuple[SavedEntry, ...]
    update_time: datetime | None


Change = Callable[[AsyncConnection, Shopper, datetime], Awaitable[None]]


class CartService:
    """The cart and wishlist use cases."""

    def __init__(
        self,
        store: CartStore,
        catalog: Catalog,
        serviceability: Serviceability,
        addresses: Addresses,
        limits: Limits | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.serviceability = serviceability
        self.addresses = addresses
        self.limits = limits or Limits()

    # -- reads ---------------------------------------------------------------
    async def get_cart(self, user_id: str, pincode: str = "") -> PricedCart:
        """The cart priced now, with estimates for ``pincode`` (else the
        owner's default address)."""
        domain.require(domain.check_id("user_id", user_id), domain.check_pincode(pincode))
        lines = await self.store.cart_lines(None, user_id)
        shopper = await self.store.shopper(user_id)
        ids = [line.item_id for line in lines]
        catalog_answer, pincode = await asyncio.gather(
            self._catalog_or_none(ids), self._pincode(user_id, pincode)
        )
        deliveries: dict[str, Delivery] | None = {}
        if ids and pincode:
            try:
                deliveries = await self.serviceability.check(ids, pincode)
            except DependencyDown as exc:
                log.warning("cart read without delivery estimates: %s", exc)
                deliveries = None
        items, missing = catalog_answer if catalog_answer is not None else (None, frozenset())
        return domain.price_cart(
            lines,
            items,
            missing,
            pincode,
            deliveries,
            update_time=shopper.cart_update_time if shopper else None,
        )

    async def get_wishlist(self, user_id: str) -> PricedWishlist:
        """The wishlist with current prices (unpriced when the catalog is down)."""
        domain.require(domain.check_id("user_id", user_id))
        saved = await self.store.wishlist(None, user_id)
        shopper = await self.store.shopper(user_id)
        answer = await self._catalog_or_none([s.item_id for s in saved])
        entries = domain.price_wishlist(
            [(s.item_id, s.add_time) for s in saved], answer[0] if answer else None
        )
        return PricedWishlist(
            user_id, tuple(entries), shopper.wishlist_update_time if shopper else None
        )

    # -- cart writes -----------------------------------------------------------
    async def add_item(
        self, user_id: str, item_id: str, quantity: int, request_id: str
    ) -> PricedCart:
        """Add units of an item (a new line or more on the existing one)."""
        domain.require(
            domain.check_id("user_id", user_id),
            domain.check_id("item_id", item_id),
            domain.check_request_id(request_id),
        )
        units = domain.units_to_add(quantity, self.limits)
        fp = domain.fingerprint("cart.add", item_id, units)
        if not await self._replayed(user_id, request_id, fp):
            await self._require_buyable(item_id)

            async def change(conn: AsyncConnection, shopper: Shopper, now: datetime) -> None:
                lines = await self.store.cart_lines(conn, user_id)
                current = next((ln.quantity for ln in lines if ln.item_id == item_id), 0)
                domain.check_cart_room(len(lines), current == 0, self.limits)
                after = domain.quantity_after_add(current, units, self.limits)
                await self.store.upsert_line(conn, user_id, item_id, after, now)
                shopper = await self.store.touch(conn, shopper, cart=True, wishlist=False, now=now)
                await self.store.add_event(
                    conn, user_id, shopper.version, now, request_id,
                    cart_item_added=events_pb2.CartItemAdded(
                        user_id=user_id, item_id=item_id, quantity=units, line_quantity=after
                    ),
                )

            await self._apply(user_id, request_id, fp, change)
        return await self.get_cart(user_id)

    async def set_quantity(
        self, user_id: str, item_id: str, quantity: int, request_id: str
    ) -> PricedCart:
        """Set a line's quantity; 0 removes it. NOT_FOUND for a non-zero
        quantity on an item that is not in the cart."""
        domain.require(
            domain.check_id("user_id", user_id),
            domain.check_id("item_id", item_id),
            domain.check_request_id(request_id),
        )
        quantity = domain.check_new_quantity(quantity, self.limits)
        fp = domain.fingerprint("cart.set", item_id, quantity)

        async def change(conn: AsyncConnection, shopper: Shopper, now: datetime) -> None:
            lines = await self.store.cart_lines(conn, user_id)
            current = next((ln.quantity for ln in lines if ln.item_id == item_id), 0)
            if current == 0 and quantity > 0:
                raise NotFound(
                    f"item {item_id!r} is not in the cart",
                    resource_type="cart_line",
                    resource_name=item_id,
                )
            if current == quantity:
                return
            shopper = await self.store.touch(conn, shopper, cart=True, wishlist=False, now=now)
            if quantity == 0:
                await self.store.delete_lines(conn, user_id, [item_id])
                await self.store.add_event(
                    conn, user_id, shopper.version, now, request_id,
                    cart_item_removed=events_pb2.CartItemRemoved(
                        user_id=user_id, item_id=item_id, quantity=current,
                        reason=events_pb2.CART_REMOVAL_REASON_USER,
                    ),
                )
                return
            await self.store.upsert_line(conn, user_id, item_id, quantity, now)
            await self.store.add_event(
                conn, user_id, shopper.version, now, request_id,
                cart_item_quantity_changed=events_pb2.CartItemQuantityChanged(
                    user_id=user_id, item_id=item_id, old_quantity=current,
                    new_quantity=quantity,
                ),
            )

        if not await self._replayed(user_id, request_id, fp):
            await self._apply(user_id, request_id, fp, change)
        return await self.get_cart(user_id)

    async def remove_item(self, user_id: str, item_id: str, request_id: str) -> PricedCart:
        """Remove a line; a no-op when the item is not in the cart."""
        domain.require(
            domain.check_id("user_id", user_id),
            domain.check_id("item_id", item_id),
            domain.check_request_id(request_id),
        )
        await self._remove(
            user_id, [item_id], request_id, domain.fingerprint("cart.remove", item_id),
            events_pb2.CART_REMOVAL_REASON_USER,
        )
        return await self.get_cart(user_id)

    async def batch_remove(
        self, user_id: str, item_ids: Sequence[str], request_id: str
    ) -> PricedCart:
        """Remove the named lines (all when none are named) after an order."""
        domain.require(
            domain.check_id("user_id", user_id),
            [v for i, item in enumerate(item_ids)
             for v in domain.check_id(f"item_ids[{i}]", item)],
            domain.check_request_id(request_id),
        )
        wanted = sorted(set(item_ids))
        await self._remove(
            user_id, wanted, request_id, domain.fingerprint("cart.batch_remove", *wanted),
            events_pb2.CART_REMOVAL_REASON_ORDERED, everything=not wanted,
        )
        return await self.get_cart(user_id)

    async def _remove(
        self,
        user_id: str,
        item_ids: Sequence[str],
        request_id: str,
        fp: str,
        reason: int,
        *,
        everything: bool = False,
    ) -> None:
        async def change(conn: AsyncConnection, shopper: Shopper, now: datetime) -> None:
            lines = await self.store.cart_lines(conn, user_id)
            gone = [ln for ln in lines if everything or ln.item_id in item_ids]
            if not gone:
                return
            await self.store.delete_lines(conn, user_id, [ln.item_id for ln in gone])
            shopper = await self.store.touch(
                conn, shopper, cart=True, wishlist=False, now=now, events=len(gone)
            )
            first = shopper.version - len(gone) + 1
            for i, ln in enumerate(gone):
                await self.store.add_event(
                    conn, user_id, first + i, now, request_id,
                    cart_item_removed=events_pb2.CartItemRemoved(
                        user_id=user_id, item_id=ln.item_id, quantity=ln.quantity,
                        reason=reason,  # type: ignore[arg-type]
                    ),
                )

        if not await self._replayed(user_id, request_id, fp):
            await self._apply(user_id, request_id, fp, change)

    # -- wishlist writes ---------------------------------------------------------
    async def save_item(self, user_id: str, item_id: str, request_id: str) -> PricedWishlist:
        """Save an item; a no-op when it is already saved."""
        domain.require(
            domain.check_id("user_id", user_id),
            domain.check_id("item_id", item_id),
            domain.check_request_id(request_id),
        )
        fp = domain.fingerprint("wishlist.add", item_id)
        if not await self._replayed(user_id, request_id, fp):
            await self._require_buyable(item_id)

            async def change(conn: AsyncConnection, shopper: Shopper, now: datetime) -> None:
                saved = await self.store.wishlist(conn, user_id)
                if any(s.item_id == item_id for s in saved):
                    return
                domain.check_wishlist_room(len(saved), self.limits)
                await self.store.save_item(conn, user_id, item_id, now)
                shopper = await self.store.touch(conn, shopper, cart=False, wishlist=True, now=now)
                await self.store.add_event(
                    conn, user_id, shopper.version, now, request_id,
                    wishlist_item_added=events_pb2.WishlistItemAdded(
                        user_id=user_id, item_id=item_id
                    ),
                )

            await self._apply(user_id, request_id, fp, change)
        return await self.get_wishlist(user_id)

    async def unsave_item(self, user_id: str, item_id: str, request_id: str) -> PricedWishlist:
        """Remove a saved item; a no-op when it is not saved."""
        domain.require(
            domain.check_id("user_id", user_id),
            domain.check_id("item_id", item_id),
            domain.check_request_id(request_id),
        )
        fp = domain.fingerprint("wishlist.remove", item_id)

        async def change(conn: AsyncConnection, shopper: Shopper, now: datetime) -> None:
            if not await self.store.unsave_item(conn, user_id, item_id):
                return
            shopper = await self.store.touch(conn, shopper, cart=False, wishlist=True, now=now)
            await self.store.add_event(
                conn, user_id, shopper.version, now, request_id,
                wishlist_item_removed=events_pb2.WishlistItemRemoved(
                    user_id=user_id, item_id=item_id, moved_to_cart=False
                ),
            )

        if not await self._replayed(user_id, request_id, fp):
            await self._apply(user_id, request_id, fp, change)
        return await self.get_wishlist(user_id)

    async def move_to_cart(
        self, user_id: str, item_id: str, quantity: int, request_id: str
    ) -> tuple[PricedWishlist, PricedCart]:
        """Move a saved item into the cart in one transaction: either it
        leaves the wishlist and lands in the cart, or nothing changes."""
        domain.require(
            domain.check_id("user_id", user_id),
            domain.check_id("item_id", item_id),
            domain.check_request_id(request_id),
        )
        units = domain.units_to_add(quantity, self.limits)
        fp = domain.fingerprint("wishlist.move", item_id, units)
        if not await self._replayed(user_id, request_id, fp):
            saved = await self.store.wishlist(None, user_id)
            if not any(s.item_id == item_id for s in saved):
                raise _not_saved(item_id)
            await self._require_buyable(item_id)

            async def change(conn: AsyncConnection, shopper: Shopper, now: datetime) -> None:
                if not await self.store.unsave_item(conn, user_id, item_id):
                    raise _not_saved(item_id)  # removed meanwhile; rolls back
                lines = await self.store.cart_lines(conn, user_id)
                current = next((ln.quantity for ln in lines if ln.item_id == item_id), 0)
                domain.check_cart_room(len(lines), current == 0, self.limits)
                after = domain.quantity_after_add(current, units, self.limits)
                await self.store.upsert_line(conn, user_id, item_id, after, now)
                shopper = await self.store.touch(
                    conn, shopper, cart=True, wishlist=True, now=now, events=2
                )
                await self.store.add_event(
                    conn, user_id, shopper.version - 1, now, request_id,
                    wishlist_item_removed=events_pb2.WishlistItemRemoved(
                        user_id=user_id, item_id=item_id, moved_to_cart=True
                    ),
                )
                await self.store.add_event(
                    conn, user_id, shopper.version, now, request_id,
                    cart_item_added=events_pb2.CartItemAdded(
                        user_id=user_id, item_id=item_id, quantity=units, line_quantity=after
                    ),
                )

            await self._apply(user_id, request_id, fp, change)
        wishlist, cart = await asyncio.gather(self.get_wishlist(user_id), self.get_cart(user_id))
        return wishlist, cart

    # -- helpers -------------------------------------------------------------
    async def _replayed(self, user_id: str, request_id: str, fp: str) -> bool:
        """True when the request id was already applied to this request;
        ABORTED when it was used for a different one. A cheap read
        before any catalog call, so a retry answers even if the item was
        deleted since; the transaction checks again under the lock."""
        seen = await self.store.applied_fingerprint(None, user_id, request_id)
        if seen is None:
            return False
        if seen != fp:
            raise _reused(request_id)
        return True

    async def _apply(self, user_id: str, request_id: str, fp: str, change: Change) -> None:
        async def work(conn: AsyncConnection) -> None:
            shopper = await self.store.lock_shopper(conn, user_id)
            seen = await self.store.applied_fingerprint(conn, user_id, request_id)
            if seen is not None:  # a concurrent retry got here first
                if seen != fp:
                    raise _reused(request_id)
                return
            now = utcnow()
            await change(conn, shopper, now)
            await self.store.record_request(conn, user_id, request_id, fp, now)

        await self.store.run(work)

    async def _require_buyable(self, item_id: str) -> None:
        """NOT_FOUND for unknown items, FAILED_PRECONDITION for deleted ones,
        UNAVAILABLE when the catalog cannot say."""
        try:
            items, _ = await self.catalog.items([item_id])
        except DependencyDown as exc:
            log.warning("cannot check item %s: %s", item_id, exc)
            raise Unavailable(
                "the catalog cannot be reached to check the item; try again shortly",
                reason=REASON_CATALOG_UNAVAILABLE,
            ) from None
        item = items.get(item_id)
        if item is None:
            raise NotFound(
                f"item {item_id!r} does not exist", resource_type="item", resource_name=item_id
            )
        if not item.active:
            raise FailedPrecondition(
                f"item {item_id!r} is no longer sold",
                reason=REASON_ITEM_DELETED,
                metadata={"item_id": item_id},
            )

    async def _catalog_or_none(
        self, ids: Sequence[str]
    ) -> tuple[dict[str, CatalogItem], frozenset[str]] | None:
        if not ids:
            return {}, frozenset()
        try:
            return await self.catalog.items(ids)
        except DependencyDown as exc:
            log.warning("read without prices: %s", exc)
            return None

    async def _pincode(self, user_id: str, asked: str) -> str:
        if asked:
            return asked
        try:
            return await self.addresses.default_pincode(user_id)
        except DependencyDown as exc:
            log.warning("no default pincode for the cart: %s", exc)
            return ""


def _not_saved(item_id: str) -> NotFound:
    return NotFound(
        f"item {item_id!r} is not on the wishlist",
        resource_type="wishlist_item",
        resource_name=item_id,
    )


def _reused(request_id: str) -> Conflict:
    return request_id_reused(request_id)

