"""Wiring: ``python -m svc_tat.main`` serves ServiceabilityService on
``ECOM_TAT_ADDR``.

Knobs: ``ECOM_TAT_WAREHOUSES_FILE`` (warehouse config JSON),
``ECOM_TAT_REFRESH_SECONDS`` (periodic matrix rebuild),
``ECOM_TAT_OVERLAY_RELOAD_SECONDS``, ``ECOM_TAT_STOCK_CACHE_SECONDS``,
``ECOM_TAT_INVENTORY_TIMEOUT_SECONDS``, and, for tests only,
``ECOM_TAT_CLOCK``: an ISO timestamp that freezes the service's clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools

import redis
import redis.asyncio as aioredis
from ecom.events.v1 import events_pb2
from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2_grpc
from ecom.users.v1 import users_pb2_grpc
from pydantic import Field

import mesh
from mesh import tracing
from mesh.kafka import OutgoingEvent, ensure_topics, make_admin, make_producer, publish
from pipelines.serviceability import build_locked
from svc_tat import consumers
from svc_tat.api import ServiceabilityApi
from svc_tat.service import (
    DefaultAddressPincode,
    StockCache,
    TatService,
    every,
    frozen_clock,
    inventory_fetcher,
    system_clock,
)
from svc_tat.store import DisruptionStore, MatrixStore
from svc_tat.warehouses import load_warehouses


class TatSettings(mesh.ServiceSettings):
    """svc_tat's own settings (ECOM_TAT_*)."""

    tat_warehouses_file: str | None = None
    tat_refresh_seconds: float = Field(default=6 * 3600, gt=0)
    tat_overlay_reload_seconds: float = Field(default=30, gt=0)
    tat_version_poll_seconds: float = Field(default=5, gt=0)
    tat_stock_cache_seconds: float = Field(default=30, ge=0)
    tat_inventory_timeout_seconds: float = Field(default=1.0, gt=0)
    # Test-only: freeze "now" at this instant (ISO 8601, with offset).
    tat_clock: dt.datetime | None = None


async def build() -> mesh.Service:
    settings = mesh.load_settings(TatSettings)
    mesh.configure_logging(settings.log_level, service="tat")
    warehouses = load_warehouses(settings.tat_warehouses_file)
    client = tracing.instrument_redis(aioredis.Redis.from_url(settings.redis_url))
    sync_client = tracing.instrument_redis(redis.Redis.from_url(settings.redis_url))
    channels = mesh.Channels(settings)
    # No retries towards inventory: when it is down the check answers
    # without stock at once rather than after a retry back-off.
    inventory = inventory_pb2_grpc.InventoryServiceStub(channels.get("inventory"))
    users = users_pb2_grpc.UserServiceStub(channels.get(
        "users", idempotent=["ecom.users.v1.UserService/ListAddresses"]))
    producer = make_producer(settings.kafka_bootstrap, client_id="svc_tat")
    topic = settings.topic(consumers.INVALIDATIONS)

    async def send(envelope: events_pb2.EventEnvelope) -> None:
        event = OutgoingEvent(topic, envelope.entity_key.encode(), envelope.SerializeToString(),
                              envelope.event_id, envelope.event_type)
        [report] = await publish(producer, [event], timeout=10)
        if not report.delivered:
            raise RuntimeError(f"kafka refused the event: {report.error}")

    async def rebuild(only_if_missing: bool) -> object | None:
        # numpy and the sync Redis pipeline run in a thread: the loop keeps serving.
        return await asyncio.to_thread(
            functools.partial(build_locked, sync_client, settings.redis_key, warehouses,
                              only_if_missing=only_if_missing,
                              # A periodic refresh: once per period across replicas.
                              fresher_than=None if only_if_missing
                              else settings.tat_refresh_seconds / 2))

    service = TatService(
        warehouses=warehouses,
        matrix=MatrixStore(client, settings.redis_key),
        disruptions=DisruptionStore(client, settings.redis_key),
        stock=StockCache(inventory_fetcher(inventory, settings.tat_inventory_timeout_seconds),
                         ttl=settings.tat_stock_cache_seconds),
        publish=send,
        rebuild=rebuild,
        clock=frozen_clock(settings.tat_clock) if settings.tat_clock else system_clock,
    )

    svc = mesh.Service("tat", settings)
    svc.add_servicer(ServiceabilityApi(service, DefaultAddressPincode(users)),
                     serviceability_pb2_grpc.add_ServiceabilityServiceServicer_to_server)
    svc.add_dependency("redis", client.ping)

    @svc.on_startup
    async def prepare() -> None:
        await asyncio.to_thread(
            ensure_topics, make_admin(settings.kafka_bootstrap),
            [consumers.INVALIDATIONS, consumers.STOCK], prefix=settings.topic_prefix)
        await asyncio.to_thread(bus.assign_at_end)
        await service.ensure_matrix()
        # After the assignment: a disruption raised in between is seen twice,
        # never missed.
        await service.reload_overlay()

    bus = consumers.BroadcastListener(
        settings.kafka_bootstrap, [topic, settings.topic(consumers.STOCK)],
        group_prefix=settings.topic_prefix)
    svc.add_task("broadcast-consumer", lambda: bus.run(service))
    svc.add_task("matrix-refresh", lambda: every(
        settings.tat_refresh_seconds, service.rebuild_matrix, "matrix-refresh"))
    svc.add_task("overlay-reload", lambda: every(
        settings.tat_overlay_reload_seconds, service.reload_overlay, "overlay-reload"))
    svc.add_task("version-poll", lambda: every(
        settings.tat_version_poll_seconds, service.matrix.refresh_version, "version-poll"))
    svc.on_shutdown(client.aclose)
    svc.on_shutdown(sync_client.close)
    svc.on_shutdown(channels.close)
    svc.on_shutdown(lambda: producer.flush(5))
    return svc


if __name__ == "__main__":
    mesh.serve(build)
