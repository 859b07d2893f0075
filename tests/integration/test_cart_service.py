"""svc_cart end to end: the real process on real MariaDB and Kafka, next to
the real catalog (FerretDB), users (MariaDB + Redis) and tat (Redis).

Run with ``ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb``. Callers act as
a user the way the edge does, with an ``x-jwt-payload`` header.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from ecom.cart.v1 import cart_pb2, cart_pb2_grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.common.v1 import common_pb2
from ecom.events.v1 import events_pb2
from ecom.users.v1 import users_pb2, users_pb2_grpc
from ecom.wishlist.v1 import wishlist_pb2, wishlist_pb2_grpc
from google.protobuf import field_mask_pb2
from google.type import money_pb2

from mesh import money
from mesh.auth import JWT_PAYLOAD_HEADER, Caller, encode_jwt_payload
from mesh.config import grpc_target
from tests.conftest import UNREACHABLE_ADDR, Services, Stack
from tests.integration.catalog_support import ADMIN, TopicReader, phone

pytestmark = pytest.mark.integration

MORNING = "2025-03-10T10:00:00+05:30"  # the tat tests' frozen clock, so the process is shared
BENGALURU = "560001"
NON_DELIVERY = "380014"


def as_user(user_id: str, *roles: str) -> list[tuple[str, str]]:
    """Metadata the edge would send for this caller."""
    caller = Caller(user_id, frozenset(roles or ("customer",)))
    return [(JWT_PAYLOAD_HEADER, encode_jwt_payload(caller))]


def rid() -> str:
    return uuid.uuid4().hex


def inr(rupees: int, paise: int = 0) -> money_pb2.Money:
    return money.from_paise(rupees * 100 + paise)


class World:
    """Stubs of the four services of this test module."""

    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self.cart = cart_pb2_grpc.CartServiceStub(channels["cart"])
        self.wishlist = wishlist_pb2_grpc.WishlistServiceStub(channels["cart"])
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(channels["catalog"])
        self.users = users_pb2_grpc.UserServiceStub(channels["users"])

    async def item(self, rupees: int, paise: int = 0, title: str = "Acme Phone") -> str:
        created = await self.catalog.CreateItem(
            catalog_pb2.CreateItemRequest(
                item=catalog_pb2.Item(
                    title=f"{title} {uuid.uuid4().hex[:6]}",
                    category="mobiles",
                    brand="Acme",
                    price=inr(rupees, paise),
                    attributes=phone().attributes,
                    image_urls=["https://img.example/p.jpg"],
                ),
                request_id=rid(),
            ),
            metadata=ADMIN,
        )
        return str(created.item_id)

    async def shopper(self, pincode: str = BENGALURU) -> str:
        """A signed-up user whose default address is at ``pincode``."""
        user = await self.users.CreateUser(
            users_pb2.CreateUserRequest(
                email=f"cart-{uuid.uuid4().hex[:10]}@example.com",
                password="correct horse",
                name="Asha Rao",
                phone="98450 12345",
                request_id=rid(),
            )
        )
        await self.users.CreateAddress(
            users_pb2.CreateAddressRequest(
                user_id=user.user_id,
                address=common_pb2.Address(
                    name="Asha Rao", lines=["12 MG Road"], city="Bengaluru",
                    state="Karnataka", pincode=pincode, phone="+919845012345",
                ),
                request_id=rid(),
            ),
            metadata=as_user(user.user_id),
        )
        return str(user.user_id)

    async def add(self, user: str, item: str, qty: int = 1, request_id: str = "") -> Any:
        return await self.cart.AddCartItem(
            cart_pb2.AddCartItemRequest(
                user_id=user, item_id=item, quantity=qty, request_id=request_id or rid()
            ),
            metadata=as_user(user),
        )

    async def get(self, user: str, pincode: str = "") -> Any:
        return await self.cart.GetCart(
            cart_pb2.GetCartRequest(user_id=user, pincode=pincode), metadata=as_user(user)
        )


@pytest.fixture(scope="module")
async def world(services: Services) -> AsyncIterator[World]:
    services.start("catalog")
    services.start("users")
    # Stock-agnostic ETAs (the items are never stocked), shared with the tat tests.
    services.start("tat", ECOM_TAT_CLOCK=MORNING, ECOM_INVENTORY_ADDR=UNREACHABLE_ADDR)
    services.start("cart")
    channels = {n: grpc.aio.insecure_channel(grpc_target(services.addr(n)))
                for n in ("cart", "catalog", "users")}
    yield World(channels)
    for ch in channels.values():
        await ch.close()


async def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code()


async def test_cart_totals_in_money_with_several_lines(world: World) -> None:
    user = await world.shopper()
    a = await world.item(149, 99)
    b = await world.item(10, 1)
    c = await world.item(24_999)
    await world.add(user, a, 2)
    await world.add(user, b, 3)
    await world.add(user, c)
    cart = await world.add(user, b, 2)  # more units on an existing line
    assert [ln.item_id for ln in cart.lines] == [c, b, a]  # most recently added first
    lines = {ln.item_id: ln for ln in cart.lines}
    assert lines[b].quantity == 5
    assert lines[a].unit_price == inr(149, 99)
    assert lines[a].line_total == inr(299, 98)
    assert lines[b].line_total == inr(50, 5)
    # 299.98 + 50.05 + 24,999.00, exactly, with the carry into units.
    assert cart.total == money_pb2.Money(currency_code="INR", units=25_349, nanos=30_000_000)
    assert cart.item_count == 8 and cart.priced
    assert lines[a].title.startswith("Acme Phone") and lines[a].available
    assert lines[a].image_url == "https://img.example/p.jpg"
    # Deliverability for the default address, one estimate per line.
    assert cart.pincode == BENGALURU and cart.all_deliverable
    for ln in cart.lines:
        assert ln.delivery.deliverable and ln.delivery.pincode == BENGALURU
        assert ln.delivery.eta_days >= 0 and ln.delivery.warehouse_id
    assert cart.HasField("update_time")
    # The same cart for an explicit non-delivery pincode.
    elsewhere = await world.get(user, NON_DELIVERY)
    assert elsewhere.pincode == NON_DELIVERY and not elsewhere.all_deliverable
    assert all(not ln.delivery.deliverable for ln in elsewhere.lines)
    assert elsewhere.total == cart.total


async def test_retried_add_does_not_add_twice(world: World) -> None:
    user = f"u-{rid()[:12]}"
    item = await world.item(100)
    request_id = rid()
    await world.add(user, item, 3, request_id)
    again = await world.add(user, item, 3, request_id)
    assert again.lines[0].quantity == 3
    # The same id for a different request is refused rather than replayed.
    assert await code_of(world.add(user, item, 4, request_id)) == grpc.StatusCode.ABORTED


async def test_price_change_in_the_catalog_shows_in_the_cart(world: World) -> None:
    user = f"u-{rid()[:12]}"
    item = await world.item(1_000)
    before = await world.add(user, item, 2)
    assert before.total == inr(2_000)
    await world.catalog.UpdateItem(
        catalog_pb2.UpdateItemRequest(
            item_id=item, item=catalog_pb2.Item(price=inr(899, 50)),
            update_mask=field_mask_pb2.FieldMask(paths=["price"]), request_id=rid(),
        ),
        metadata=ADMIN,
    )
    after = await world.get(user)
    assert after.lines[0].unit_price == inr(899, 50)
    assert after.total == inr(1_799)


async def test_another_users_cart_is_refused_and_an_admin_may_read_it(world: World) -> None:
    owner, other = f"u-{rid()[:12]}", f"u-{rid()[:12]}"
    item = await world.item(500)
    await world.add(owner, item)
    md = as_user(other)
    assert await code_of(world.cart.GetCart(
        cart_pb2.GetCartRequest(user_id=owner), metadata=md)) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(world.cart.AddCartItem(cart_pb2.AddCartItemRequest(
        user_id=owner, item_id=item, request_id=rid()), metadata=md)
    ) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(world.cart.RemoveCartItem(cart_pb2.RemoveCartItemRequest(
        user_id=owner, item_id=item, request_id=rid()), metadata=md)
    ) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(world.wishlist.GetWishlist(
        wishlist_pb2.GetWishlistRequest(user_id=owner), metadata=md)
    ) == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(world.cart.GetCart(cart_pb2.GetCartRequest(user_id=owner))
                         ) == grpc.StatusCode.UNAUTHENTICATED
    seen = await world.cart.GetCart(cart_pb2.GetCartRequest(user_id=owner), metadata=ADMIN)
    assert [ln.item_id for ln in seen.lines] == [item]
    # The other user's own cart is untouched and empty.
    assert len((await world.get(other)).lines) == 0


async def test_unknown_deleted_and_over_limit_items(world: World) -> None:
    user = f"u-{rid()[:12]}"
    assert await code_of(world.add(user, "no-such-item")) == grpc.StatusCode.NOT_FOUND
    gone = await world.item(300)
    await world.add(user, gone)
    await world.catalog.DeleteItem(
        catalog_pb2.DeleteItemRequest(item_id=gone, request_id=rid()), metadata=ADMIN)
    assert await code_of(world.add(user, gone)) == grpc.StatusCode.FAILED_PRECONDITION
    keep = await world.item(50)
    cart = await world.add(user, keep, 8)
    # The deleted line stays visible but is excluded from the total.
    lines = {ln.item_id: ln for ln in cart.lines}
    assert not lines[gone].available and lines[keep].available
    assert cart.total == inr(400) and cart.item_count == 8
    assert await code_of(world.add(user, keep, 3)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(world.add(user, keep, 11)) == grpc.StatusCode.INVALID_ARGUMENT
    assert (await world.get(user)).total == inr(400)


async def test_concurrent_adds_never_pass_the_line_limit(world: World) -> None:
    user = f"u-{rid()[:12]}"
    item = await world.item(10)
    results = await asyncio.gather(*(world.add(user, item, 1) for _ in range(13)),
                                   return_exceptions=True)
    refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
    assert len(refused) == 3
    assert all(r.code() == grpc.StatusCode.INVALID_ARGUMENT for r in refused)
    assert (await world.get(user)).lines[0].quantity == 10


async def test_update_remove_and_batch_remove(world: World) -> None:
    user = f"u-{rid()[:12]}"
    a, b, c = await world.item(1), await world.item(2), await world.item(3)
    for item in (a, b, c):
        await world.add(user, item)
    md = as_user(user)
    cart = await world.cart.UpdateCartItem(cart_pb2.UpdateCartItemRequest(
        user_id=user, item_id=a, quantity=4, request_id=rid()), metadata=md)
    assert {ln.item_id: ln.quantity for ln in cart.lines}[a] == 4
    cart = await world.cart.UpdateCartItem(cart_pb2.UpdateCartItemRequest(
        user_id=user, item_id=a, quantity=0, request_id=rid()), metadata=md)
    assert a not in {ln.item_id for ln in cart.lines}
    assert await code_of(world.cart.UpdateCartItem(cart_pb2.UpdateCartItemRequest(
        user_id=user, item_id=a, quantity=2, request_id=rid()), metadata=md)
    ) == grpc.StatusCode.NOT_FOUND
    cart = await world.cart.RemoveCartItem(cart_pb2.RemoveCartItemRequest(
        user_id=user, item_id=b, request_id=rid()), metadata=md)
    assert [ln.item_id for ln in cart.lines] == [c]
    # Removing what is not there is a no-op.
    await world.cart.RemoveCartItem(cart_pb2.RemoveCartItemRequest(
        user_id=user, item_id=b, request_id=rid()), metadata=md)
    # Orders empties the cart with its own service identity.
    svc_md = as_user("svc_orders", "service")
    cart = await world.cart.BatchRemoveCartItems(cart_pb2.BatchRemoveCartItemsRequest(
        user_id=user, request_id="order-1:cart"), metadata=svc_md)
    assert len(cart.lines) == 0 and cart.total == inr(0)


async def test_wishlist_move_to_cart(world: World) -> None:
    user = await world.shopper()
    md = as_user(user)
    item = await world.item(1_299, 50)
    other = await world.item(99)
    for saved in (item, other, item):  # saving twice is a no-op
        wl = await world.wishlist.AddWishlistItem(wishlist_pb2.AddWishlistItemRequest(
            user_id=user, item_id=saved, request_id=rid()), metadata=md)
    assert [i.item_id for i in wl.items] == [other, item]
    assert {i.item_id: i.price for i in wl.items}[item] == inr(1_299, 50)
    assert await code_of(world.wishlist.AddWishlistItem(wishlist_pb2.AddWishlistItemRequest(
        user_id=user, item_id="no-such-item", request_id=rid()), metadata=md)
    ) == grpc.StatusCode.NOT_FOUND

    request_id = rid()
    moved = await world.wishlist.MoveWishlistItemToCart(
        wishlist_pb2.MoveWishlistItemToCartRequest(
            user_id=user, item_id=item, quantity=2, request_id=request_id), metadata=md)
    assert [i.item_id for i in moved.wishlist.items] == [other]
    assert [(ln.item_id, ln.quantity) for ln in moved.cart.lines] == [(item, 2)]
    assert moved.cart.total == inr(2_599) and moved.cart.pincode == BENGALURU
    # A retry answers without moving twice; a new move finds nothing to move.
    again = await world.wishlist.MoveWishlistItemToCart(
        wishlist_pb2.MoveWishlistItemToCartRequest(
            user_id=user, item_id=item, quantity=2, request_id=request_id), metadata=md)
    assert [(ln.item_id, ln.quantity) for ln in again.cart.lines] == [(item, 2)]
    assert await code_of(world.wishlist.MoveWishlistItemToCart(
        wishlist_pb2.MoveWishlistItemToCartRequest(
            user_id=user, item_id=item, request_id=rid()), metadata=md)
    ) == grpc.StatusCode.NOT_FOUND
    # A move the cart cannot take leaves the item on the wishlist.
    await world.add(user, other, 10)
    await world.wishlist.AddWishlistItem(wishlist_pb2.AddWishlistItemRequest(
        user_id=user, item_id=other, request_id=rid()), metadata=md)
    assert await code_of(world.wishlist.MoveWishlistItemToCart(
        wishlist_pb2.MoveWishlistItemToCartRequest(
            user_id=user, item_id=other, request_id=rid()), metadata=md)
    ) == grpc.StatusCode.INVALID_ARGUMENT
    wl = await world.wishlist.GetWishlist(wishlist_pb2.GetWishlistRequest(user_id=user),
                                          metadata=md)
    assert [i.item_id for i in wl.items] == [other]
    wl = await world.wishlist.RemoveWishlistItem(wishlist_pb2.RemoveWishlistItemRequest(
        user_id=user, item_id=other, request_id=rid()), metadata=md)
    assert len(wl.items) == 0 and wl.HasField("update_time")


async def test_cart_events_reach_kafka(world: World, stack: Stack) -> None:
    reader = TopicReader(stack, "cart.events")
    try:
        user = f"u-{rid()[:12]}"
        md = as_user(user)
        item = await world.item(42)
        await world.add(user, item, 2)
        await world.cart.UpdateCartItem(cart_pb2.UpdateCartItemRequest(
            user_id=user, item_id=item, quantity=5, request_id=rid()), metadata=md)
        await world.wishlist.AddWishlistItem(wishlist_pb2.AddWishlistItemRequest(
            user_id=user, item_id=item, request_id=rid()), metadata=md)
        await world.cart.RemoveCartItem(cart_pb2.RemoveCartItemRequest(
            user_id=user, item_id=item, request_id=rid()), metadata=md)
        await world.wishlist.MoveWishlistItemToCart(wishlist_pb2.MoveWishlistItemToCartRequest(
            user_id=user, item_id=item, request_id=rid()), metadata=md)
        reader.until(lambda evs: len([e for e in evs if e.entity_key == user]) >= 6)
        mine = reader.about(user)
        assert [e.WhichOneof("payload") for e in mine] == [
            "cart_item_added", "cart_item_quantity_changed", "wishlist_item_added",
            "cart_item_removed", "wishlist_item_removed", "cart_item_added"]
        assert [e.entity_version for e in mine] == [1, 2, 3, 4, 5, 6]
        assert mine[0].cart_item_added == events_pb2.CartItemAdded(
            user_id=user, item_id=item, quantity=2, line_quantity=2)
        assert mine[1].cart_item_quantity_changed.new_quantity == 5
        assert mine[3].cart_item_removed.reason == events_pb2.CART_REMOVAL_REASON_USER
        assert mine[4].wishlist_item_removed.moved_to_cart
        assert all(e.producer == "svc_cart" and e.event_id for e in mine)
    finally:
        reader.close()


async def test_cart_still_reads_while_the_catalog_is_down(
    world: World, services: Services
) -> None:
    user = f"u-{rid()[:12]}"
    item = await world.item(700)
    await world.add(user, item, 2)
    services.running["catalog"].stop()
    try:
        cart = await world.get(user, BENGALURU)
        assert not cart.priced and len(cart.lines) == 1
        (line,) = cart.lines
        assert line.quantity == 2 and line.available and not line.HasField("unit_price")
        assert cart.total == inr(0)
        # Deliverability does not depend on the catalog.
        assert line.delivery.deliverable
        wl = await world.wishlist.GetWishlist(
            wishlist_pb2.GetWishlistRequest(user_id=user), metadata=as_user(user))
        assert len(wl.items) == 0
        # Nothing is added that could not be checked.
        assert await code_of(world.add(user, item)) == grpc.StatusCode.UNAVAILABLE
    finally:
        services.start("catalog")
    # Prices return once the cart's channel has reconnected (backoff capped at 2 s).
    for _ in range(50):
        cart = await world.get(user)
        if cart.priced:
            break
        await asyncio.sleep(0.2)
    assert cart.priced and cart.total == inr(1_400)
