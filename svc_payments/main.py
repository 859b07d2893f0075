"""Wiring: `python -m svc_payments.main` serves PaymentService on
ECOM_PAYMENTS_ADDR, with its tables in the `payments` database, the
simulated gateway, the reconciler, the gateway's callbacks and an outbox
relay publishing `payments.events`."""

from __future__ import annotations

import asyncio

from ecom.payments.v1 import payments_pb2_grpc
from pydantic import Field

import mesh
from mesh.db import make_engine, utcnow
from mesh.kafka import ensure_topics, make_admin
from mesh.outbox import OutboxRelay, purge_sent_forever
from svc_payments.api import PaymentsApi
from svc_payments.gateway import SimulatedGateway
from svc_payments.service import PaymentsService, Timing
from svc_payments.store import PAYMENTS_TOPIC, PaymentStore


class PaymentsSettings(mesh.ServiceSettings):
    """Shared settings plus payments' own (ECOM_PAYMENTS_*)."""

    # How long one gateway call may take before the payment is left PENDING.
    payments_gateway_timeout_seconds: float = Field(default=5.0, gt=0)
    # How long CreatePayment waits for the gateway when the request says nothing.
    payments_default_wait_seconds: float = Field(default=5.0, ge=0, le=30)
    # When tok_late_success answers; unset = the order hold plus 5 s, so the
    # answer lands after the order expired, as the token promises.
    payments_late_success_seconds: float | None = Field(default=None, gt=0)
    # How long a payment may stay PENDING; unset = ECOM_ORDER_HOLD_SECONDS.
    payments_window_seconds: float | None = Field(default=None, gt=0)
    payments_gateway_latency_min_ms: int = Field(default=50, ge=0)
    payments_gateway_latency_max_ms: int = Field(default=300, ge=0)
    payments_reconcile_interval_seconds: float = Field(default=0.5, gt=0)
    payments_recheck_seconds: float = Field(default=5.0, gt=0)
    payments_db_pool_size: int = Field(default=10, ge=1)
    payments_outbox_retention_seconds: int = Field(default=86_400, ge=0)
    payments_outbox_purge_interval_seconds: float = Field(default=600, gt=0)


async def build() -> mesh.Service:
    settings = mesh.load_settings(PaymentsSettings)
    mesh.configure_logging(settings.log_level, service="payments")
    engine = await make_engine(
        settings.mysql_url,
        settings.database("payments"),
        pool_size=settings.payments_db_pool_size,
        max_overflow=settings.payments_db_pool_size,
    )
    store = PaymentStore(engine)
    await store.create_tables()
    hold = float(settings.order_hold_seconds)
    gateway = SimulatedGateway(
        engine,
        late_success_seconds=settings.payments_late_success_seconds or hold + 5,
        latency_ms=(
            settings.payments_gateway_latency_min_ms,
            max(settings.payments_gateway_latency_min_ms, settings.payments_gateway_latency_max_ms),
        ),
        clock=utcnow,
    )
    await gateway.create_tables()
    admin = make_admin(settings.kafka_bootstrap)
    await asyncio.to_thread(ensure_topics, admin, [PAYMENTS_TOPIC], prefix=settings.topic_prefix)

    service = PaymentsService(
        store,
        gateway,
        Timing(
            gateway_timeout=settings.payments_gateway_timeout_seconds,
            default_wait=settings.payments_default_wait_seconds,
            payment_window=settings.payments_window_seconds or hold,
            recheck_interval=settings.payments_recheck_seconds,
        ),
        clock=utcnow,
    )
    relay = OutboxRelay(
        engine,
        settings.kafka_bootstrap,
        topic_prefix=settings.topic_prefix,
        client_id="svc_payments-outbox",
    )

    svc = mesh.Service("payments", settings)
    svc.add_servicer(PaymentsApi(service), payments_pb2_grpc.add_PaymentServiceServicer_to_server)
    svc.add_dependency("mariadb", store.ping)
    svc.add_task("outbox-relay", relay.run)
    svc.add_task(
        "reconciler",
        lambda: service.reconcile_forever(settings.payments_reconcile_interval_seconds),
    )
    svc.add_task("gateway-callbacks", lambda: gateway.run_callbacks(service.on_gateway_callback))
    svc.add_task(
        "outbox-purge",
        lambda: purge_sent_forever(
            engine,
            older_than_seconds=settings.payments_outbox_retention_seconds,
            interval=settings.payments_outbox_purge_interval_seconds,
        ),
    )
    svc.on_shutdown(engine.dispose)
    svc.on_shutdown(relay.close)
    svc.on_shutdown(service.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
