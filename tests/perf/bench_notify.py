"""Benchmark: order events to emails accepted by the SMTP server (Mailpit),
next to plain `smtplib` sends to the same Mailpit in the same run.

* burst: 500 `OrderTransitioned(PLACED)` events published at once to
  `orders.lifecycle`; notifications per second from the first publish to
  the last SMTP acceptance (the row's `send_time`, recorded when the server
  answered 250), and event-to-accepted latency percentiles;
* one at a time: 50 events, each published after the previous one's email
  was accepted: the unloaded event-to-accepted latency;
* baseline: the same number of messages of the same shape sent with
  `smtplib` over one connection, no Kafka, no database, no templates.

The users have no phone, so SMS is suppressed and only email is measured.
Prints figures; asserts nothing about time. Run with::

    ECOM_BENCH=1 ECOM_TEST_SERVERS=mariadb,redis,kafka,mailpit,kannel \\
        .venv/bin/python -m pytest -s -p no:cacheprovider tests/perf/bench_notify.py
"""

from __future__ import annotations

import asyncio
import smtplib
import time
import uuid

import pytest
from ecom.notifications.v1 import notifications_pb2 as npb
from ecom.notifications.v1 import notifications_pb2_grpc
from ecom.orders.v1 import orders_pb2 as opb
from ecom.users.v1 import users_pb2, users_pb2_grpc

from svc_notify.channels import Outgoing, build_email, parse_smtp_url
from tests.conftest import TEST_REPLICAS, Services, Stack
from tests.integration.notify_support import Publisher, notifications_of, order, transition
from tests.perf import stats
from tests.ports import free_port as _free_port

USERS = 50
BURST = 500
SERIAL = 50


async def _sign_up(users: users_pb2_grpc.UserServiceStub) -> users_pb2.User:
    return await users.CreateUser(users_pb2.CreateUserRequest(
        email=f"bench-{uuid.uuid4().hex[:12]}@example.com", password="benchmark password",
        name="Bench Shopper", request_id=uuid.uuid4().hex))


async def _sent_times(stub, user_ids: list[str]) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """order id -> when its email was accepted (epoch seconds)."""
    out = {}
    for uid in user_ids:
        for n in await notifications_of(stub, uid):
            if n.channel == npb.CHANNEL_EMAIL and n.status == npb.NOTIFICATION_STATUS_SENT:
                out[n.order_id] = n.send_time.seconds + n.send_time.nanos / 1e9
    return out


@pytest.mark.integration
async def test_events_to_accepted_email(services: Services, stack: Stack) -> None:
    users_svc = services.start("users")
    notify_svc = services.start("notify", ECOM_NOTIFY_DLR_ADDR=",".join(
                f"127.0.0.1:{_free_port()}" for _ in range(TEST_REPLICAS)))
    publisher = Publisher(stack)
    async with users_svc.channel() as uch, notify_svc.channel() as nch:
        users = users_pb2_grpc.UserServiceStub(uch)
        notify = notifications_pb2_grpc.NotificationServiceStub(nch)
        people = [await _sign_up(users) for _ in range(USERS)]
        ids = [p.user_id for p in people]

        # One at a time: unloaded latency.
        serial: list[float] = []
        for i in range(SERIAL):
            o = order(ids[i % USERS])
            t0 = time.time()
            publisher.send("orders.lifecycle", transition(o, opb.ORDER_STATE_PLACED))
            while True:
                got = await _sent_times(notify, [o.user_id])
                if o.order_id in got:
                    serial.append(got[o.order_id] - t0)
                    break
                await asyncio.sleep(0.02)

        # Burst.
        orders = [order(ids[i % USERS]) for i in range(BURST)]
        published: dict[str, float] = {}
        start = time.time()
        for o in orders:
            publisher.send("orders.lifecycle", transition(o, opb.ORDER_STATE_PLACED), flush=False)
            published[o.order_id] = time.time()
        publisher.flush()
        deadline = time.monotonic() + 600
        while True:
            sent = await _sent_times(notify, ids)
            if all(o.order_id in sent for o in orders) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    burst = [sent[o.order_id] - published[o.order_id] for o in orders if o.order_id in sent]
    assert len(burst) == BURST, f"only {len(burst)} of {BURST} emails were sent"
    elapsed = max(sent[o.order_id] for o in orders) - start
    rate = BURST / elapsed

    # Baseline: plain smtplib, one connection, messages of the same shape.
    target = parse_smtp_url(stack.env["ECOM_SMTP_URL"])
    mails = [build_email(Outgoing(str(uuid.uuid4()), f"<{uuid.uuid4()}@bench.ecom.local>",
                                  f"baseline-{i}@example.com", "Your order ORD-X is confirmed",
                                  "text body " * 40, "<p>html body</p>" * 20, "o"),
                         "ecom <orders@ecom.local>") for i in range(BURST)]
    smtp = smtplib.SMTP(target.host, target.port, timeout=10)
    t0 = time.perf_counter()
    plain: list[float] = []
    for mail in mails:
        t = time.perf_counter()
        smtp.send_message(mail)
        plain.append(time.perf_counter() - t)
    plain_elapsed = time.perf_counter() - t0
    smtp.quit()
    plain_rate = BURST / plain_elapsed

    print()
    print(f"burst of {BURST} order events -> emails accepted by Mailpit: "
          f"{rate:8.1f} notifications/s ({elapsed:.1f} s)")
    print(f"plain smtplib, one connection, {BURST} messages:        "
          f"{plain_rate:8.1f} messages/s ({plain_elapsed:.1f} s)")
    print(f"ratio svc_notify / plain smtplib: {rate / plain_rate:.2f}")
    from tests.perf import report

    report.record("notify burst emails vs plain smtplib", rate, plain_rate,
                  unit="messages/s", better="higher")
    print(f"event -> accepted, burst         {stats.line([s * 1000 for s in burst])}")
    print(f"event -> accepted, one at a time {stats.line([s * 1000 for s in serial])}")
    print(f"plain smtplib send               {stats.line([s * 1000 for s in plain])}")
