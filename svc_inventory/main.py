"""Wiring: `python -m svc_inventory.main` serves InventoryService on
ECOM_INVENTORY_ADDR, with its tables in the `inventory` database and an
outbox relay publishing `inventory.stock`."""

from __future__ import annotations

import asyncio

from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2_grpc
from pydantic import Field

import mesh
from mesh.db import make_engine
from mesh.kafka import ensure_topics, make_admin
from mesh.outbox import OutboxRelay, purge_sent_forever
from svc_inventory.api import InventoryApi
from svc_inventory.service import InventoryService, TatRoutes
from svc_inventory.store import STOCK_TOPIC, InventoryStore

TAT = "ecom.serviceability.v1.ServiceabilityService"


class InventorySettings(mesh.ServiceSettings):
    """Shared settings plus inventory's own (ECOM_INVENTORY_*)."""

    # Connections to MariaDB; a hot item's reservations queue on its row
    # lock, so more connections than cores still help.
    inventory_db_pool_size: int = Field(default=10, ge=1)
    # How long serviceability routes per pincode are reused (0 = never).
    inventory_routes_cache_seconds: float = Field(default=2.0, ge=0)
    # Published outbox rows are kept this long (for inspection), then purged.
    inventory_outbox_retention_seconds: int = Field(default=86_400, ge=0)
    inventory_outbox_purge_interval_seconds: float = Field(default=600, gt=0)


async def build() -> mesh.Service:
    settings = mesh.load_settings(InventorySettings)
    mesh.configure_logging(settings.log_level, service="inventory")
    engine = await make_engine(
        settings.mysql_url,
        settings.database("inventory"),
        pool_size=settings.inventory_db_pool_size,
        max_overflow=settings.inventory_db_pool_size,
        # Set once per connection rather than per transaction; see store.py
        # for why READ COMMITTED.
        isolation_level="READ COMMITTED",
    )
    store = InventoryStore(engine)
    await store.create_tables()
    admin = make_admin(settings.kafka_bootstrap)
    await asyncio.to_thread(ensure_topics, admin, [STOCK_TOPIC], prefix=settings.topic_prefix)

    channels = mesh.Channels(settings)
    tat = serviceability_pb2_grpc.ServiceabilityServiceStub(
        channels.get("tat", idempotent=[f"{TAT}/ListRoutes", f"{TAT}/GetWarehouse"])
    )
    service = InventoryService(store, TatRoutes(tat, settings.inventory_routes_cache_seconds))
    relay = OutboxRelay(
        engine,
        settings.kafka_bootstrap,
        topic_prefix=settings.topic_prefix,
        client_id="svc_inventory-outbox",
    )

    svc = mesh.Service("inventory", settings)
    svc.add_servicer(
        InventoryApi(service), inventory_pb2_grpc.add_InventoryServiceServicer_to_server
    )
    svc.add_dependency("mariadb", store.ping)
    svc.add_task("outbox-relay", relay.run)
    svc.add_task(
        "outbox-purge",
        lambda: purge_sent_forever(
            engine,
            older_than_seconds=settings.inventory_outbox_retention_seconds,
            interval=settings.inventory_outbox_purge_interval_seconds,
        ),
    )
    svc.on_shutdown(engine.dispose)
    svc.on_shutdown(channels.close)
    svc.on_shutdown(relay.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
