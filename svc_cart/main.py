"""Wiring: `python -m svc_cart.main` serves CartService and WishlistService
on ECOM_CART_ADDR, with its tables in the `cart` database and an outbox
relay publishing `cart.events`."""

from __future__ import annotations

import asyncio

from ecom.cart.v1 import cart_pb2_grpc
from ecom.catalog.v1 import catalog_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2_grpc
from ecom.users.v1 import users_pb2_grpc
from ecom.wishlist.v1 import wishlist_pb2_grpc
from pydantic import Field

import mesh
from mesh.db import make_engine
from mesh.kafka import ensure_topics, make_admin
from mesh.outbox import OutboxRelay
from svc_cart import domain
from svc_cart.api import CartApi, WishlistApi
from svc_cart.service import CartService, CatalogClient, ServiceabilityClient, UsersClient
from svc_cart.store import CART_TOPIC, CartStore


class CartSettings(mesh.ServiceSettings):
    """Shared settings plus the cart's own (ECOM_CART_*, ECOM_WISHLIST_*)."""

    cart_max_quantity: int = Field(default=domain.MAX_LINE_QUANTITY, ge=1)
    cart_max_lines: int = Field(default=domain.MAX_CART_LINES, ge=1)
    wishlist_max_items: int = Field(default=domain.MAX_WISHLIST_ITEMS, ge=1)
    # Per call to catalog, tat and users while pricing a cart: short, so a
    # slow neighbour degrades the cart instead of stalling it.
    cart_dependency_timeout_seconds: float = Field(default=2.0, gt=0)
    # Request ids and published outbox rows are kept this long, then purged.
    cart_retention_seconds: int = Field(default=86_400, ge=0)
    cart_purge_interval_seconds: float = Field(default=600, gt=0)


async def build() -> mesh.Service:
    """The cart service process."""
    settings = mesh.load_settings(CartSettings)
    mesh.configure_logging(settings.log_level, service="cart")
    # READ COMMITTED: no gap locks, so different users' changes never wait
    # for each other; each user's changes serialise on their own row.
    engine = await make_engine(
        settings.mysql_url, settings.database("cart"), isolation_level="READ COMMITTED"
    )
    store = CartStore(engine)
    await store.create_tables()
    admin = make_admin(settings.kafka_bootstrap)
    await asyncio.to_thread(ensure_topics, admin, [CART_TOPIC], prefix=settings.topic_prefix)

    timeout = settings.cart_dependency_timeout_seconds

    # mesh caps gRPC's reconnect backoff, so the cart is priced again
    # within seconds of the catalog coming back.
    channels = mesh.Channels(settings)
    catalog = catalog_pb2_grpc.CatalogServiceStub(
        channels.get("catalog", idempotent=["ecom.catalog.v1.CatalogService/BatchGetItems"])
    )
    tat = serviceability_pb2_grpc.ServiceabilityServiceStub(
        channels.get(
            "tat",
            idempotent=["ecom.serviceability.v1.ServiceabilityService/BatchCheckServiceability"],
        )
    )
    users = users_pb2_grpc.UserServiceStub(
        channels.get("users", idempotent=["ecom.users.v1.UserService/ListAddresses"])
    )
    service = CartService(
        store,
        CatalogClient(catalog, timeout),
        ServiceabilityClient(tat, timeout),
        UsersClient(users, timeout),
        domain.Limits(
            max_line_quantity=settings.cart_max_quantity,
            max_cart_lines=settings.cart_max_lines,
            max_wishlist_items=settings.wishlist_max_items,
        ),
    )
    relay = OutboxRelay(
        engine, settings.kafka_bootstrap, topic_prefix=settings.topic_prefix,
        client_id="svc_cart-outbox",
    )

    svc = mesh.Service("cart", settings)
    svc.add_servicer(CartApi(service), cart_pb2_grpc.add_CartServiceServicer_to_server)
    svc.add_servicer(WishlistApi(service), wishlist_pb2_grpc.add_WishlistServiceServicer_to_server)
    # Catalog, tat and users are deliberately not dependencies: the cart
    # still reads (unpriced, estimates unknown) while they are down.
    svc.add_dependency("mariadb", store.ping)
    svc.add_task("outbox-relay", relay.run)
    svc.add_task(
        "purge",
        lambda: store.purge_forever(
            settings.cart_retention_seconds, settings.cart_purge_interval_seconds
        ),
    )
    svc.on_shutdown(engine.dispose)
    svc.on_shutdown(channels.close)
    svc.on_shutdown(relay.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
