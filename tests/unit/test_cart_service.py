"""CartService's use cases on an in-memory store and fake neighbours: the
request-id rules, the limits, the catalog checks on writes, reads that
degrade instead of failing, and the wishlist move that is all or nothing.
tests/integration/test_cart_service.py runs the same paths on MariaDB."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar, cast

import pytest
from ecom.events.v1 import events_pb2

from mesh.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from svc_cart.domain import CatalogItem, Delivery, Limits, StoredLine
from svc_cart.service import CartService, DependencyDown
from svc_cart.store import CartStore, SavedItem, Shopper

T = TypeVar("T")
USER = "u-ravi"


@dataclass
class _Tables:
    shoppers: dict[str, Shopper] = field(default_factory=dict)
    requests: dict[tuple[str, str], str] = field(default_factory=dict)
    lines: dict[str, dict[str, StoredLine]] = field(default_factory=dict)
    saved: dict[str, dict[str, SavedItem]] = field(default_factory=dict)
    events: list[events_pb2.EventEnvelope] = field(default_factory=list)


class FakeCartStore:
    """CartStore over dicts; ``run`` rolls back on an exception."""

    def __init__(self) -> None:
        self.t = _Tables()

    async def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        saved = copy.deepcopy(self.t)
        try:
            return await work(None)
        except BaseException:
            self.t = saved
            raise

    async def lock_shopper(self, conn: Any, user_id: str) -> Shopper:
        return self.t.shoppers.setdefault(user_id, Shopper(user_id, 0, None, None))

    async def touch(
        self,
        conn: Any,
        shopper: Shopper,
        *,
        cart: bool,
        wishlist: bool,
        now: datetime,
        events: int = 1,
    ) -> Shopper:
        after = replace(
            shopper,
            version=shopper.version + events,
            cart_update_time=now if cart else shopper.cart_update_time,
            wishlist_update_time=now if wishlist else shopper.wishlist_update_time,
        )
        self.t.shoppers[shopper.user_id] = after
        return after

    async def applied_fingerprint(self, conn: Any, user_id: str, request_id: str) -> str | None:
        return self.t.requests.get((user_id, request_id))

    async def record_request(
        self, conn: Any, user_id: str, request_id: str, fingerprint: str, now: datetime
    ) -> None:
        self.t.requests[(user_id, request_id)] = fingerprint

    async def cart_lines(self, conn: Any, user_id: str) -> list[StoredLine]:
        lines = self.t.lines.get(user_id, {}).values()
        return sorted(lines, key=lambda ln: (ln.add_time, ln.item_id), reverse=True)

    async def shopper(self, user_id: str) -> Shopper | None:
        return self.t.shoppers.get(user_id)

    async def upsert_line(
        self, conn: Any, user_id: str, item_id: str, quantity: int, now: datetime
    ) -> None:
        lines = self.t.lines.setdefault(user_id, {})
        added = lines[item_id].add_time if item_id in lines else now
        lines[item_id] = StoredLine(item_id, quantity, added)

    async def delete_lines(self, conn: Any, user_id: str, item_ids: Sequence[str]) -> None:
        for item_id in item_ids:
            self.t.lines.get(user_id, {}).pop(item_id, None)

    async def wishlist(self, conn: Any, user_id: str) -> list[SavedItem]:
        return sorted(
            self.t.saved.get(user_id, {}).values(), key=lambda s: s.add_time, reverse=True
        )

    async def save_item(self, conn: Any, user_id: str, item_id: str, now: datetime) -> None:
        self.t.saved.setdefault(user_id, {})[item_id] = SavedItem(item_id, now)

    async def unsave_item(self, conn: Any, user_id: str, item_id: str) -> bool:
        return self.t.saved.get(user_id, {}).pop(item_id, None) is not None

    async def add_event(
        self,
        conn: Any,
        user_id: str,
        version: int,
        now: datetime,
        request_id: str,
        **payload: Any,
    ) -> None:
        ((case, message),) = payload.items()
        self.t.events.append(
            events_pb2.EventEnvelope(
                entity_key=user_id, entity_version=version, request_id=request_id, **{case: message}
            )
        )


@dataclass
class FakeCatalog:
    items: dict[str, CatalogItem] = field(default_factory=dict)
    down: bool = False

    def add(self, item_id: str, rupees: int, *, active: bool = True) -> None:
        self.items[item_id] = CatalogItem(item_id, item_id.title(), "", rupees * 10**9, active)

    async def items_(
        self, item_ids: Sequence[str]
    ) -> tuple[dict[str, CatalogItem], frozenset[str]]:
        if self.down:
            raise DependencyDown("catalog down")
        known = {i: self.items[i] for i in item_ids if i in self.items}
        return known, frozenset(i for i in item_ids if i not in self.items)


class _CatalogPort:
    def __init__(self, fake: FakeCatalog) -> None:
        self.fake = fake

    async def items(self, item_ids: Sequence[str]) -> tuple[dict[str, CatalogItem], frozenset[str]]:
        return await self.fake.items_(item_ids)


@dataclass
class FakeServiceability:
    down: bool = False
    asked: list[str] = field(default_factory=list)

    async def check(self, item_ids: Sequence[str], pincode: str) -> dict[str, Delivery]:
        self.asked.append(pincode)
        if self.down:
            raise DependencyDown("tat down")
        return {i: Delivery(True, 2, None, "WH-1") for i in item_ids}


@dataclass
class FakeAddresses:
    default: str = "560001"
    down: bool = False

    async def default_pincode(self, user_id: str) -> str:
        if self.down:
            raise DependencyDown("users down")
        return self.default


@dataclass
class Cart:
    store: FakeCartStore
    catalog: FakeCatalog
    tat: FakeServiceability
    users: FakeAddresses
    service: CartService


@pytest.fixture
def cart() -> Cart:
    store, catalog, tat, users = (
        FakeCartStore(),
        FakeCatalog(),
        FakeServiceability(),
        FakeAddresses(),
    )
    catalog.add("kettle", 1200)
    catalog.add("mug", 300)
    catalog.add("lamp", 900, active=False)
    service = CartService(
        cast(CartStore, store),
        _CatalogPort(catalog),
        tat,
        users,
        Limits(max_line_quantity=5, max_cart_lines=2, max_wishlist_items=2),
    )
    return Cart(store, catalog, tat, users, service)


def kinds(cart: Cart) -> list[str | None]:
    return [e.WhichOneof("payload") for e in cart.store.t.events]


async def test_adding_prices_the_cart_and_queues_one_event(cart: Cart) -> None:
    priced = await cart.service.add_item(USER, "kettle", 2, "r-1")
    assert [(ln.item_id, ln.quantity) for ln in priced.lines] == [("kettle", 2)]
    assert priced.total_nanos == 2400 * 10**9 and priced.priced and priced.pincode == "560001"
    assert kinds(cart) == ["cart_item_added"]
    assert cart.store.t.events[0].entity_version == 1


async def test_a_retry_changes_nothing_and_a_reused_key_is_refused(cart: Cart) -> None:
    await cart.service.add_item(USER, "kettle", 1, "r-1")
    again = await cart.service.add_item(USER, "kettle", 1, "r-1")
    assert again.lines[0].quantity == 1 and len(cart.store.t.events) == 1
    with pytest.raises(Conflict):
        await cart.service.add_item(USER, "mug", 1, "r-1")


async def test_a_retry_answers_even_when_the_catalog_is_down(cart: Cart) -> None:
    await cart.service.add_item(USER, "kettle", 1, "r-1")
    cart.catalog.down = True
    again = await cart.service.add_item(USER, "kettle", 1, "r-1")
    assert not again.priced and again.lines[0].quantity == 1
    with pytest.raises(Unavailable):
        await cart.service.add_item(USER, "mug", 1, "r-2")


async def test_unknown_and_deleted_items_are_refused(cart: Cart) -> None:
    with pytest.raises(NotFound):
        await cart.service.add_item(USER, "ghost", 1, "r-1")
    with pytest.raises(FailedPrecondition) as err:
        await cart.service.save_item(USER, "lamp", "r-2")
    assert err.value.reason == "ITEM_DELETED"
    assert cart.store.t.events == []


async def test_limits_per_line_and_per_cart(cart: Cart) -> None:
    with pytest.raises(InvalidArgument) as err:
        await cart.service.add_item(USER, "kettle", 6, "r-1")
    assert err.value.violations[0].field == "quantity"
    await cart.service.add_item(USER, "kettle", 4, "r-2")
    with pytest.raises(InvalidArgument):
        await cart.service.add_item(USER, "kettle", 2, "r-3")  # 6 > 5 on one line
    await cart.service.add_item(USER, "mug", 1, "r-4")
    cart.catalog.add("spoon", 10)
    with pytest.raises(InvalidArgument):
        await cart.service.add_item(USER, "spoon", 1, "r-5")  # a third line
    assert len(cart.store.t.lines[USER]) == 2


async def test_setting_and_removing_quantities(cart: Cart) -> None:
    await cart.service.add_item(USER, "kettle", 1, "r-1")
    with pytest.raises(NotFound):
        await cart.service.set_quantity(USER, "mug", 2, "r-2")
    assert (await cart.service.set_quantity(USER, "kettle", 3, "r-3")).item_count == 3
    assert (await cart.service.set_quantity(USER, "kettle", 0, "r-4")).lines == ()
    await cart.service.remove_item(USER, "kettle", "r-5")  # already gone: a no-op
    assert kinds(cart) == ["cart_item_added", "cart_item_quantity_changed", "cart_item_removed"]


async def test_batch_remove_after_an_order_numbers_each_event(cart: Cart) -> None:
    await cart.service.add_item(USER, "kettle", 1, "r-1")
    await cart.service.add_item(USER, "mug", 1, "r-2")
    after = await cart.service.batch_remove(USER, [], "order-1:cart")
    assert after.lines == ()
    removed = [e for e in cart.store.t.events if e.WhichOneof("payload") == "cart_item_removed"]
    assert sorted(e.entity_version for e in removed) == [3, 4]
    assert {e.cart_item_removed.reason for e in removed} == {events_pb2.CART_REMOVAL_REASON_ORDERED}


async def test_reads_degrade_instead_of_failing(cart: Cart) -> None:
    await cart.service.add_item(USER, "kettle", 1, "r-1")
    cart.catalog.down = cart.tat.down = cart.users.down = True
    read = await cart.service.get_cart(USER)
    assert not read.priced and read.pincode == "" and read.lines[0].item_id == "kettle"
    cart.users.down = False
    read = await cart.service.get_cart(USER, "110001")
    assert cart.tat.asked[-1] == "110001" and read.pincode == "110001"


async def test_moving_to_the_cart_is_all_or_nothing(cart: Cart) -> None:
    await cart.service.add_item(USER, "kettle", 1, "r-1")
    await cart.service.add_item(USER, "mug", 1, "r-2")
    cart.catalog.add("spoon", 10)
    await cart.service.save_item(USER, "spoon", "r-3")
    with pytest.raises(InvalidArgument):
        await cart.service.move_to_cart(USER, "spoon", 1, "r-4")  # the cart is full
    assert "spoon" in cart.store.t.saved[USER]  # rolled back: still saved
    await cart.service.remove_item(USER, "mug", "r-5")
    wishlist, priced = await cart.service.move_to_cart(USER, "spoon", 1, "r-6")
    assert wishlist.items == () and {ln.item_id for ln in priced.lines} == {"kettle", "spoon"}
    with pytest.raises(NotFound):
        await cart.service.move_to_cart(USER, "spoon", 1, "r-7")


async def test_bad_ids_name_each_field(cart: Cart) -> None:
    with pytest.raises(InvalidArgument) as err:
        await cart.service.add_item("", "bad id!", 1, "k" * 129)
    assert {v.field for v in err.value.violations} == {"user_id", "item_id", "request_id"}
