"""Checkout from the cart with the real svc_cart (and svc_users behind it):
the order takes the cart's lines, priced by the catalog, and once it is
PLACED those lines leave the cart.

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,ferretdb
     .venv/bin/python -m pytest tests/integration/test_orders_cart.py
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from ecom.cart.v1 import cart_pb2, cart_pb2_grpc
from ecom.orders.v1 import orders_pb2 as pb

from tests.conftest import Services
from tests.integration.orders_support import Shop, address, as_user, new_id, start_shop
from tests.waiting import wait_until_async

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def shop_and_cart(
    services: Services,
) -> AsyncIterator[tuple[Shop, cart_pb2_grpc.CartServiceStub]]:
    running = start_shop(services, ECOM_ORDER_HOLD_SECONDS="120")
    services.start("users")
    cart_svc = services.start("cart")
    shop = Shop.connect(running)
    channel = cart_svc.channel()
    yield shop, cart_pb2_grpc.CartServiceStub(channel)
    await channel.close()
    await shop.close()


async def test_checkout_from_cart_then_cart_is_emptied(
    shop_and_cart: tuple[Shop, cart_pb2_grpc.CartServiceStub],
) -> None:
    shop, cart = shop_and_cart
    user = new_id()
    a, b = await shop.item(stock=5, rupees=100, paise=0), await shop.item(stock=5, rupees=50)
    for item, qty in ((a, 2), (b, 1)):
        await cart.AddCartItem(
            cart_pb2.AddCartItemRequest(
                user_id=user, item_id=item, quantity=qty, request_id=new_id("add")
            ),
            metadata=as_user(user),
        )
    order = await shop.orders.CreateOrder(
        pb.CreateOrderRequest(
            request_id=new_id("co"), user_id=user, from_cart=True, shipping_address=address()
        ),
        metadata=as_user(user),
        timeout=60,
    )
    assert order.from_cart
    assert {(ln.item_id, ln.quantity) for ln in order.lines} == {(a, 2), (b, 1)}
    assert order.total.units == 250
    placed = await shop.pay(order, "tok_success")
    assert placed.state == pb.ORDER_STATE_PLACED

    async def cart_empty() -> bool:
        got = await cart.GetCart(cart_pb2.GetCartRequest(user_id=user), metadata=as_user(user))
        return not got.lines

    await wait_until_async(cart_empty, f"the cart of {user} emptied", timeout=15, interval=0.2)

    with pytest.raises(grpc.aio.AioRpcError) as err:  # nothing left to order
        await shop.orders.CreateOrder(
            pb.CreateOrderRequest(
                request_id=new_id("co"), user_id=user, from_cart=True, shipping_address=address()
            ),
            metadata=as_user(user),
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
