"""The gRPC servicers of ecom.cart.v1.CartService and
ecom.wishlist.v1.WishlistService: check who may call, translate proto <->
domain, call the use cases. Errors are raised as mesh errors.

Who may call what: a customer reads and changes only their own cart and
wishlist; an `admin` reaches every user's (PERMISSION_DENIED otherwise,
UNAUTHENTICATED without a caller). BatchRemoveCartItems is internal (orders
after a checkout from the cart): the owner, an admin, or a caller with the
`service` role.
"""

from __future__ import annotations

from typing import Any

from ecom.cart.v1 import cart_pb2, cart_pb2_grpc
from ecom.common.v1 import common_pb2
from ecom.wishlist.v1 import wishlist_pb2, wishlist_pb2_grpc
from google.type import date_pb2

from mesh import money, require_caller, require_owner_or_admin
from mesh.auth import SERVICE_ROLE
from mesh.db import to_timestamp
from mesh.errors import InvalidArgument
from svc_cart.domain import Delivery, PricedCart, PricedLine
from svc_cart.service import CartService, PricedWishlist


def _authorize(user_id: str, *, service_ok: bool = False) -> None:
    """Validate the path's user id first (so an empty one is a bad request,
    not a permission problem), then check the caller may act for it."""
    if not user_id:
        raise InvalidArgument.for_field("user_id", "is required")
    if service_ok and SERVICE_ROLE in require_caller().roles:
        return
    require_owner_or_admin(user_id)


class CartApi(cart_pb2_grpc.CartServiceServicer):
    """CartService over :class:`svc_cart.service.CartService`."""

    def __init__(self, service: CartService) -> None:
        self.service = service

    async def GetCart(self, request: cart_pb2.GetCartRequest, context: Any) -> cart_pb2.Cart:  # noqa: N802
        _authorize(request.user_id)
        return cart_to_proto(
            request.user_id, await self.service.get_cart(request.user_id, request.pincode)
        )

    async def AddCartItem(  # noqa: N802
        self, request: cart_pb2.AddCartItemRequest, context: Any
    ) -> cart_pb2.Cart:
        _authorize(request.user_id)
        cart = await self.service.add_item(
            request.user_id, request.item_id, request.quantity, request.request_id
        )
        return cart_to_proto(request.user_id, cart)

    async def UpdateCartItem(  # noqa: N802
        self, request: cart_pb2.UpdateCartItemRequest, context: Any
    ) -> cart_pb2.Cart:
        _authorize(request.user_id)
        cart = await self.service.set_quantity(
            request.user_id, request.item_id, request.quantity, request.request_id
        )
        return cart_to_proto(request.user_id, cart)

    async def RemoveCartItem(  # noqa: N802
        self, request: cart_pb2.RemoveCartItemRequest, context: Any
    ) -> cart_pb2.Cart:
        _authorize(request.user_id)
        cart = await self.service.remove_item(request.user_id, request.item_id, request.request_id)
        return cart_to_proto(request.user_id, cart)

    async def BatchRemoveCartItems(  # noqa: N802
        self, request: cart_pb2.BatchRemoveCartItemsRequest, context: Any
    ) -> cart_pb2.Cart:
        _authorize(request.user_id, service_ok=True)
        cart = await self.service.batch_remove(
            request.user_id, list(request.item_ids), request.request_id
        )
        return cart_to_proto(request.user_id, cart)


class WishlistApi(wishlist_pb2_grpc.WishlistServiceServicer):
    """WishlistService over :class:`svc_cart.service.CartService`."""

    def __init__(self, service: CartService) -> None:
        self.service = service

    async def GetWishlist(  # noqa: N802
        self, request: wishlist_pb2.GetWishlistRequest, context: Any
    ) -> wishlist_pb2.Wishlist:
        _authorize(request.user_id)
        return wishlist_to_proto(await self.service.get_wishlist(request.user_id))

    async def AddWishlistItem(  # noqa: N802
        self, request: wishlist_pb2.AddWishlistItemRequest, context: Any
    ) -> wishlist_pb2.Wishlist:
        _authorize(request.user_id)
        return wishlist_to_proto(
            await self.service.save_item(request.user_id, request.item_id, request.request_id)
        )

    async def RemoveWishlistItem(  # noqa: N802
        self, request: wishlist_pb2.RemoveWishlistItemRequest, context: Any
    ) -> wishlist_pb2.Wishlist:
        _authorize(request.user_id)
        return wishlist_to_proto(
            await self.service.unsave_item(request.user_id, request.item_id, request.request_id)
        )

    async def MoveWishlistItemToCart(  # noqa: N802
        self, request: wishlist_pb2.MoveWishlistItemToCartRequest, context: Any
    ) -> wishlist_pb2.MoveWishlistItemToCartResponse:
        _authorize(request.user_id)
        wishlist, cart = await self.service.move_to_cart(
            request.user_id, request.item_id, request.quantity, request.request_id
        )
        return wishlist_pb2.MoveWishlistItemToCartResponse(
            wishlist=wishlist_to_proto(wishlist), cart=cart_to_proto(request.user_id, cart)
        )


# -- translation ---------------------------------------------------------------
def cart_to_proto(user_id: str, cart: PricedCart) -> cart_pb2.Cart:
    """A priced cart as the Cart message."""
    out = cart_pb2.Cart(
        user_id=user_id,
        lines=[_line(line, cart.pincode) for line in cart.lines],
        total=money.to_money(cart.total_nanos),
        item_count=cart.item_count,
        pincode=cart.pincode,
        priced=cart.priced,
        all_deliverable=cart.all_deliverable,
    )
    if cart.update_time is not None:
        out.update_time.CopyFrom(to_timestamp(cart.update_time))
    return out


def _line(line: PricedLine, pincode: str) -> cart_pb2.CartLine:
    out = cart_pb2.CartLine(
        item_id=line.item_id,
        quantity=line.quantity,
        title=line.title,
        image_url=line.image_url,
        available=line.available,
        add_time=to_timestamp(line.add_time),
    )
    if line.unit_price_nanos is not None:
        out.unit_price.CopyFrom(money.to_money(line.unit_price_nanos))
    if line.line_total_nanos is not None:
        out.line_total.CopyFrom(money.to_money(line.line_total_nanos))
    if line.delivery is not None:
        out.delivery.CopyFrom(_delivery(line.delivery, pincode))
    return out


def _delivery(d: Delivery, pincode: str) -> common_pb2.DeliveryEstimate:
    # The cart's pincode is on the Cart; each estimate repeats it, as the
    # estimates embedded in search hits and order lines do.
    out = common_pb2.DeliveryEstimate(
        pincode=pincode,
        deliverable=d.deliverable,
        eta_days=d.eta_days,
        warehouse_id=d.warehouse_id,
        reason=d.reason,  # type: ignore[arg-type]
    )
    if d.promised is not None:
        out.promised_date.CopyFrom(date_pb2.Date(year=d.promised[0], month=d.promised[1],
                                                 day=d.promised[2]))
    return out


def wishlist_to_proto(wishlist: PricedWishlist) -> wishlist_pb2.Wishlist:
    """A priced wishlist as the Wishlist message."""
    out = wishlist_pb2.Wishlist(user_id=wishlist.user_id)
    for entry in wishlist.items:
        item = out.items.add(
            item_id=entry.item_id,
            title=entry.title,
            image_url=entry.image_url,
            available=entry.available,
            add_time=to_timestamp(entry.add_time),
        )
        if entry.price_nanos is not None:
            item.price.CopyFrom(money.to_money(entry.price_nanos))
    if wishlist.update_time is not None:
        out.update_time.CopyFrom(to_timestamp(wishlist.update_time))
    return out
