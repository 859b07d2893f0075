"""Wiring: `python -m svc_orders.main` serves OrderService on ECOM_ORDERS_ADDR,
with its tables in the `orders` database, an outbox relay publishing
`orders.lifecycle`, the `payments.events` consumer, the Redis hold listener,
the expiry sweeper, periodic reconciliation, and the archiver (terminal
orders to Cassandra, OrderHistoryService) with the merged order history."""

from __future__ import annotations

import asyncio
import logging
import uuid

import redis.asyncio as aioredis
from ecom.cart.v1 import cart_pb2_grpc
from ecom.catalog.v1 import catalog_pb2_grpc
from ecom.inventory.v1 import inventory_pb2_grpc
from ecom.orderhistory.v1 import orderhistory_pb2_grpc
from ecom.orders.v1 import orders_pb2_grpc
from ecom.payments.v1 import payments_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2_grpc
from ecom.users.v1 import users_pb2_grpc
from pydantic import Field, field_validator

import mesh
from mesh import tracing
from mesh.consumer import IdempotentConsumer
from mesh.db import make_engine
from mesh.kafka import ensure_topics, make_admin, make_consumer, topic_name
from mesh.lease import exclusively_every
from mesh.outbox import OutboxRelay, purge_sent_forever
from svc_orders.adapters import grpc_peers
from svc_orders.api import OrderApi
from svc_orders.archive import Archiver, ArchiveSettings, parse_age
from svc_orders.archive_store import ArchiveStore
from svc_orders.consumers import CONSUMER_NAME, PaymentEvents
from svc_orders.history import OrderHistory, OrderHistoryApi
from svc_orders.reconcile import Reconciler
from svc_orders.service import OrderService
from svc_orders.store import HoldStore, OrderStore
from svc_orders.transitions import LIFECYCLE_TOPIC, PAYMENTS_TOPIC, OrderSettings

log = logging.getLogger(__name__)

INV = "ecom.inventory.v1.InventoryService"
PAY = "ecom.payments.v1.PaymentService"


class OrdersSettings(mesh.ServiceSettings):
    """Shared settings plus orders' own (ECOM_ORDERS_*)."""

    orders_db_pool_size: int = Field(default=10, ge=1)
    # The database sweep behind the Redis fast path.
    orders_sweep_interval_seconds: float = Field(default=1.0, gt=0)
    orders_pending_grace_seconds: float = Field(default=30.0, gt=0)
    orders_reconcile_interval_seconds: float = Field(default=300.0, gt=0)
    orders_payment_wait_seconds: float = Field(default=5.0, gt=0)
    # Published outbox rows are kept this long (for inspection), then purged.
    orders_outbox_retention_seconds: int = Field(default=86_400, ge=0)
    # Archival (svc_orders/archive.py). ECOM_ORDER_ARCHIVE_AGE: terminal
    # orders whose last transition is older than this move to Cassandra
    # ("30d", "12h", "0s" or seconds).
    order_archive_age: str = "30d"
    orders_archive_enabled: bool = True
    orders_archive_interval_seconds: float = Field(default=600.0, gt=0)
    orders_archive_retry_seconds: float = Field(default=30.0, gt=0)
    orders_archive_batch_size: int = Field(default=500, ge=1, le=5000)
    # The keyspace (with ECOM_KEYSPACE_PREFIX) and its replication: RF 1
    # locally; on a 3-node cluster {'class': 'NetworkTopologyStrategy',
    # '<dc>': 3} with the LOCAL_QUORUM defaults below.
    orders_archive_keyspace: str = "orderhistory"
    orders_archive_replication: str = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    orders_archive_write_consistency: str = "LOCAL_QUORUM"
    orders_archive_read_consistency: str = "LOCAL_QUORUM"
    orders_archive_timeout_seconds: float = Field(default=5.0, gt=0)
    # Crash tests only: stop between the Cassandra write and the MariaDB
    # delete (see ArchiveSettings.pause_before_delete_file).
    orders_archive_pause_before_delete_file: str = ""

    @field_validator("order_archive_age")
    @classmethod
    def _age(cls, value: str) -> str:
        parse_age(value)
        return value

    @field_validator("orders_archive_write_consistency", "orders_archive_read_consistency")
    @classmethod
    def _consistency(cls, value: str) -> str:
        from cassandra import ConsistencyLevel

        if value.upper() not in ConsistencyLevel.name_to_value:
            raise ValueError("must be a Cassandra consistency level, e.g. LOCAL_QUORUM")
        return value.upper()


async def build() -> mesh.Service:
    settings = mesh.load_settings(OrdersSettings)
    mesh.configure_logging(settings.log_level, service="orders")
    engine = await make_engine(
        settings.mysql_url,
        settings.database("orders"),
        pool_size=settings.orders_db_pool_size,
        max_overflow=settings.orders_db_pool_size,
        isolation_level="READ COMMITTED",
    )
    store = OrderStore(engine)
    await store.create_tables()
    await asyncio.to_thread(
        ensure_topics,
        make_admin(settings.kafka_bootstrap),
        [LIFECYCLE_TOPIC, PAYMENTS_TOPIC],
        prefix=settings.topic_prefix,
    )
    redis = tracing.instrument_redis(aioredis.Redis.from_url(settings.redis_url))
    holds = HoldStore(redis, settings.redis_key("orders:hold:"))
    channels = mesh.Channels(settings)
    catalog = catalog_pb2_grpc.CatalogServiceStub(channels.get("catalog"))
    peers = grpc_peers(
        catalog=catalog,
        tat=serviceability_pb2_grpc.ServiceabilityServiceStub(channels.get("tat")),
        users=users_pb2_grpc.UserServiceStub(channels.get("users")),
        # Every reservation and payment call is idempotent by order or
        # request id, so gRPC may retry them on UNAVAILABLE.
        inventory=inventory_pb2_grpc.InventoryServiceStub(
            channels.get("inventory", idempotent=[INV])
        ),
        payments=payments_pb2_grpc.PaymentServiceStub(channels.get("payments", idempotent=[PAY])),
        cart=cart_pb2_grpc.CartServiceStub(channels.get("cart")),
        call_timeout_seconds=settings.call_timeout_seconds,
    )
    service = OrderService(
        store,
        holds,
        peers,
        OrderSettings(
            hold_seconds=settings.order_hold_seconds,
            pending_grace_seconds=settings.orders_pending_grace_seconds,
            payment_wait_seconds=settings.orders_payment_wait_seconds,
            call_timeout_seconds=settings.call_timeout_seconds,
        ),
    )
    reconciler = Reconciler(service)
    archive = ArchiveStore(
        settings.cassandra_contact_points,
        settings.keyspace(settings.orders_archive_keyspace),
        replication=settings.orders_archive_replication,
        write_consistency=settings.orders_archive_write_consistency,
        read_consistency=settings.orders_archive_read_consistency,
        timeout_seconds=settings.orders_archive_timeout_seconds,
    )
    archiver = Archiver(
        store,
        archive,
        catalog,
        ArchiveSettings(
            age=parse_age(settings.order_archive_age),
            batch_size=settings.orders_archive_batch_size,
            interval_seconds=settings.orders_archive_interval_seconds,
            retry_seconds=settings.orders_archive_retry_seconds,
            call_timeout_seconds=settings.call_timeout_seconds,
            pause_before_delete_file=settings.orders_archive_pause_before_delete_file,
        ),
    )
    await archiver.prepare()
    history = OrderHistory(service, archive)
    relay = OutboxRelay(
        engine,
        settings.kafka_bootstrap,
        topic_prefix=settings.topic_prefix,
        client_id="svc_orders-outbox",
    )
    payments = PaymentEvents(service)
    consumer = IdempotentConsumer(
        make_consumer(settings.kafka_bootstrap, settings.topic_prefix + CONSUMER_NAME),
        engine,
        name=CONSUMER_NAME,
        topics=[topic_name(PAYMENTS_TOPIC, settings.topic_prefix)],
        handler=payments.handle,
    )

    svc = mesh.Service("orders", settings)
    svc.add_servicer(
        OrderApi(service, reconciler, history), orders_pb2_grpc.add_OrderServiceServicer_to_server
    )
    svc.add_servicer(
        OrderHistoryApi(history, archiver),
        orderhistory_pb2_grpc.add_OrderHistoryServiceServicer_to_server,
    )
    svc.add_dependency("mariadb", store.ping)
    svc.add_dependency("redis", holds.ping)
    svc.add_task("outbox-relay", relay.run)
    svc.add_task(
        "outbox-purge",
        lambda: purge_sent_forever(
            engine, older_than_seconds=settings.orders_outbox_retention_seconds
        ),
    )
    svc.add_task("payments-consumer", lambda: payments.run(consumer))
    svc.add_task("hold-listener", lambda: holds.listen(service.on_hold_expired))
    # With several orders processes, one sweeps and one reconciles at a
    # time (a MariaDB named lock per round; docs/architecture.md#scale-out).
    svc.add_task("sweeper", lambda: exclusively_every(
        engine, "orders.sweeper", settings.orders_sweep_interval_seconds, service.sweep_once))

    async def reconcile() -> None:
        report = await reconciler.run(False, 1000, f"auto-{uuid.uuid4().hex[:24]}")
        if report.repairs:
            log.warning("periodic reconciliation made %d repairs", len(report.repairs))

    svc.add_task("reconciler", lambda: exclusively_every(
        engine, "orders.reconciler", settings.orders_reconcile_interval_seconds, reconcile,
        wait_first=True))
    # Cassandra is not a health dependency: without it orders still serve
    # (history says the archive part is unavailable; archiving pauses).
    svc.add_task("archive-connect", archive.connect_in_background)
    if settings.orders_archive_enabled:
        svc.add_task("archiver", archiver.run_forever)
    svc.on_shutdown(engine.dispose)
    svc.on_shutdown(channels.close)
    svc.on_shutdown(relay.close)
    svc.on_shutdown(consumer.close)
    svc.on_shutdown(redis.aclose)
    svc.on_shutdown(archive.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
