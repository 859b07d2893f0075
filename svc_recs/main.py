"""Wiring: `python -m svc_recs.main` serves RecommendationService on
ECOM_RECS_ADDR, reading the `<ECOM_KEYSPACE_PREFIX>recs` Cassandra keyspace
(short request timeout: Cassandra down answers UNAVAILABLE within a second)
and hydrating hits from the catalog and inventory."""

from __future__ import annotations

import asyncio
import os

from ecom.catalog.v1 import catalog_pb2_grpc
from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.recommendations.v1 import recommendations_pb2_grpc
from pydantic import Field

import mesh
from infra.core import STACK
from svc_recs import store as recs_store
from svc_recs.api import RecsApi
from svc_recs.service import CatalogClient, InventoryClient, RecsService, subprocess_trainer


class RecsServiceSettings(mesh.ServiceSettings):
    """Shared settings plus the service's own (ECOM_RECS_*)."""

    # The event lake training reads (ECOM_LAKE_URL, as pipelines/recs.py);
    # empty: the local stack's.
    lake_url: str = ""

    # Per Cassandra read: a dead store answers UNAVAILABLE within a second.
    recs_store_timeout_seconds: float = Field(default=0.8, gt=0)
    # Per call to catalog and inventory while hydrating.
    recs_dependency_timeout_seconds: float = Field(default=2.0, gt=0)
    # A refresh waits this long for a running training, then as long again
    # for its own.
    recs_refresh_timeout_seconds: float = Field(default=600.0, gt=0)


async def build() -> mesh.Service:
    """The recommendations service process."""
    settings = mesh.load_settings(RecsServiceSettings)
    mesh.configure_logging(settings.log_level, service="recs")
    session = await asyncio.to_thread(
        recs_store.connect, settings.cassandra_contact_points,
        settings.keyspace(recs_store.KEYSPACE), connect_timeout=2.0,
        request_timeout=settings.recs_store_timeout_seconds)
    # The job creates the tables too; creating them here lets the service
    # answer (empty, popularity) before the first training.
    await asyncio.to_thread(recs_store.create_schema, session)
    store = recs_store.RecsStore(session)

    timeout = settings.recs_dependency_timeout_seconds
    catalog_ch = mesh.open_channel(
        settings.addr_of("catalog"), idempotent=["ecom.catalog.v1.CatalogService/BatchGetItems"],
        default_timeout=settings.call_timeout_seconds)
    inventory_ch = mesh.open_channel(
        settings.addr_of("inventory"),
        idempotent=["ecom.inventory.v1.InventoryService/BatchGetStock"],
        default_timeout=settings.call_timeout_seconds)
    service = RecsService(
        store,
        CatalogClient(catalog_pb2_grpc.CatalogServiceStub(catalog_ch), timeout),
        InventoryClient(inventory_pb2_grpc.InventoryServiceStub(inventory_ch), timeout),
        subprocess_trainer(dict(os.environ), settings.recs_refresh_timeout_seconds,
                           lake=settings.lake_url or (STACK / "lake").as_uri()),
        # The trainer waits up to the timeout for a running training, then
        # as long again for its own.
        refresh_wait_seconds=2 * settings.recs_refresh_timeout_seconds + 60,
    )

    svc = mesh.Service("recs", settings)
    svc.add_servicer(RecsApi(service),
                     recommendations_pb2_grpc.add_RecommendationServiceServicer_to_server)
    # Catalog and inventory are not dependencies: hits are shown unhydrated
    # (or unfiltered by stock) while they are down.
    svc.add_dependency("cassandra", store.ping)
    svc.on_shutdown(lambda: session.cluster.shutdown())
    svc.on_shutdown(catalog_ch.close)
    svc.on_shutdown(inventory_ch.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
