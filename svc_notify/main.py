"""Wiring: `python -m svc_notify.main` serves NotificationService on
ECOM_NOTIFY_ADDR, with its tables in the `notify` database, one idempotent
consumer of `orders.lifecycle`, `payments.events` and `notify.requests`,
the dispatcher that sends over SMTP (ECOM_SMTP_URL) and Kannel
(ECOM_SMS_URL), and the HTTP endpoint for SMS delivery reports
(ECOM_NOTIFY_DLR_ADDR)."""

from __future__ import annotations

import asyncio
import os
import secrets
from pathlib import Path

from ecom.notifications.v1 import notifications_pb2_grpc
from ecom.users.v1 import users_pb2_grpc
from pydantic import Field

import mesh
from mesh.config import _split_host_port, split_addrs
from mesh.consumer import IdempotentConsumer
from mesh.db import make_engine
from mesh.kafka import ensure_topics, make_admin, make_consumer, topic_name
from svc_notify.api import NotificationApi
from svc_notify.channels import DeliveryChannel, EmailChannel, SmsChannel
from svc_notify.consumers import CONSUMER_NAME, TOPICS, DeliveryReportServer, NotifyEvents
from svc_notify.domain import Channel, RetryPolicy
from svc_notify.service import DispatchSettings, NotifyService, UsersClient
from svc_notify.store import NotifyStore

REPO = Path(__file__).resolve().parent.parent


class NotifySettings(mesh.ServiceSettings):
    """Shared settings plus notify's own (ECOM_NOTIFY_*, ECOM_SMTP_URL, ECOM_SMS_URL)."""

    smtp_url: str = "smtp://127.0.0.1:12025"
    sms_url: str = ""
    notify_from: str = "ecom <orders@ecom.local>"
    notify_sms_sender: str = "ECOM"
    # Where Kannel's delivery reports come in, and the URL Kannel is given
    # for it (defaults to http://<ECOM_NOTIFY_DLR_ADDR>/dlr).
    notify_dlr_addr: str = "127.0.0.1:50070"
    notify_dlr_url: str = ""
    # Signs the delivery-report URLs; default: a key kept in the stack's
    # secrets folder, shared by every process on this machine.
    notify_dlr_secret: str = ""
    notify_max_attempts: int = Field(default=8, ge=1)
    notify_backoff_seconds: float = Field(default=1.0, gt=0)
    notify_backoff_cap_seconds: float = Field(default=300.0, gt=0)
    notify_email_lease_seconds: float = Field(default=30.0, gt=0)
    notify_sms_lease_seconds: float = Field(default=30.0, gt=0)
    notify_batch: int = Field(default=16, ge=1)
    notify_poll_seconds: float = Field(default=0.2, gt=0)
    notify_send_timeout_seconds: float = Field(default=10.0, gt=0)
    # Kafka consumers per process, in one group: each applies the events of
    # its own partitions in order, so their waits on users, MariaDB and
    # Kafka overlap.
    notify_consumers: int = Field(default=3, ge=1, le=16)


def dlr_secret(settings: NotifySettings) -> bytes:
    if settings.notify_dlr_secret:
        return settings.notify_dlr_secret.encode()
    stack = os.environ.get("ECOM_STACK_DIR")
    path = (Path(stack) if stack else REPO / ".stack") / "secrets" / "notify-dlr-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic create-if-absent: two processes agree
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip().encode()


async def build() -> mesh.Service:
    settings = mesh.load_settings(NotifySettings)
    mesh.configure_logging(settings.log_level, service="notify")
    engine = await make_engine(settings.mysql_url, settings.database("notify"),
                               isolation_level="READ COMMITTED", pool_size=10, max_overflow=10)
    store = NotifyStore(engine)
    await store.create_tables()
    await asyncio.to_thread(ensure_topics, make_admin(settings.kafka_bootstrap), list(TOPICS),
                            prefix=settings.topic_prefix)
    channels = mesh.Channels(settings)
    users = UsersClient(users_pb2_grpc.UserServiceStub(channels.get("users")),
                        settings.call_timeout_seconds)

    timeout = settings.notify_send_timeout_seconds
    senders: dict[Channel, DeliveryChannel] = {
        Channel.EMAIL: EmailChannel(settings.smtp_url, settings.notify_from, timeout=timeout),
    }
    # One delivery-report address per replica (a list, like ECOM_<SVC>_ADDR):
    # each replica listens on its own and gives Kannel its own URL.
    dlr_addrs = split_addrs(settings.notify_dlr_addr)
    if settings.replica_index >= len(dlr_addrs):
        raise mesh.ConfigError(f"ECOM_NOTIFY_DLR_ADDR lists {len(dlr_addrs)} address(es); "
                               f"replica {settings.replica_index} needs its own")
    host, port = _split_host_port(dlr_addrs[settings.replica_index])
    secret = dlr_secret(settings)
    if settings.sms_url:
        dlr_url = settings.notify_dlr_url or f"http://{host}:{port}/dlr"
        senders[Channel.SMS] = SmsChannel(settings.sms_url, dlr_url, secret,
                                          sender=settings.notify_sms_sender, timeout=timeout)
    service = NotifyService(store, users, senders, DispatchSettings(
        batch=settings.notify_batch, poll_seconds=settings.notify_poll_seconds,
        email_lease_seconds=settings.notify_email_lease_seconds,
        sms_lease_seconds=settings.notify_sms_lease_seconds,
        retry=RetryPolicy(max_attempts=settings.notify_max_attempts,
                          base_seconds=settings.notify_backoff_seconds,
                          cap_seconds=settings.notify_backoff_cap_seconds),
    ))
    events = NotifyEvents(service)
    consumers = [
        IdempotentConsumer(
            make_consumer(settings.kafka_bootstrap, settings.topic_prefix + CONSUMER_NAME,
                          client_id=f"svc_notify-{i}"),
            engine, name=CONSUMER_NAME,
            topics=[topic_name(t, settings.topic_prefix) for t in TOPICS],
            handler=events.handle,
        )
        for i in range(settings.notify_consumers)
    ]
    reports = DeliveryReportServer(service, secret, host, port)
    await reports.start()

    svc = mesh.Service("notify", settings)
    svc.add_servicer(NotificationApi(service),
                     notifications_pb2_grpc.add_NotificationServiceServicer_to_server)
    svc.add_dependency("mariadb", store.ping)
    for i, consumer in enumerate(consumers):
        svc.add_task(f"events-consumer-{i}", lambda c=consumer: events.run(c))  # type: ignore[misc]
    svc.add_task("dispatcher", service.dispatch_forever)
    svc.add_task("delivery-reports", reports.run)
    svc.on_shutdown(engine.dispose)
    svc.on_shutdown(channels.close)
    for consumer in consumers:
        svc.on_shutdown(consumer.close)
    svc.on_shutdown(reports.close)
    for sender in senders.values():
        svc.on_shutdown(sender.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
