"""svc_notify against real Kafka, MariaDB, svc_users, Mailpit and Kannel.

Order and payment events are published to the run's topics as svc_orders
and svc_payments would; mail is read back from Mailpit's HTTP API and SMS
from the fake SMSC's log (and the delivery reports Kannel sends back).

Run: ECOM_TEST_SERVERS=mariadb,redis,kafka,mailpit,kannel
     .venv/bin/python -m pytest tests/integration/test_notify_service.py
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from ecom.notifications.v1 import notifications_pb2 as npb
from ecom.notifications.v1 import notifications_pb2_grpc
from ecom.orders.v1 import orders_pb2 as opb
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.protobuf import field_mask_pb2

from infra.servers.kannel import Kannel
from infra.servers.mailpit import Mailpit as MailpitServer
from tests.conftest import TEST_REPLICAS, RunningService, Services, Stack
from tests.integration.notify_support import (
    ADMIN,
    SETTLED,
    FakeSmsc,
    Mailpit,
    Publisher,
    as_user,
    notifications_of,
    order,
    refunded,
    sign_up,
    transition,
    wait_for,
)
from tests.ports import free_port

pytestmark = pytest.mark.integration
LIFECYCLE = "orders.lifecycle"
EMAIL, SMS = npb.CHANNEL_EMAIL, npb.CHANNEL_SMS


# One delivery-report address per replica of svc_notify.
DLR_ADDRS = ",".join(f"127.0.0.1:{free_port()}" for _ in range(TEST_REPLICAS))
DLR_ADDR = DLR_ADDRS.split(",")[0]
BASE_ENV = {
    "ECOM_NOTIFY_DLR_ADDR": DLR_ADDRS,
    "ECOM_NOTIFY_EMAIL_LEASE_SECONDS": "5",
    "ECOM_NOTIFY_SMS_LEASE_SECONDS": "10",
}


@pytest.fixture(scope="module")
def running(services: Services) -> dict[str, RunningService]:
    users = services.start("users")
    notify = services.start("notify", **BASE_ENV)
    return {"users": users, "notify": notify}


@pytest.fixture
async def stubs(
    running: dict[str, RunningService],
) -> AsyncIterator[tuple[users_pb2_grpc.UserServiceStub,
                         notifications_pb2_grpc.NotificationServiceStub]]:
    async with running["users"].channel() as u, running["notify"].channel() as n:
        yield users_pb2_grpc.UserServiceStub(u), notifications_pb2_grpc.NotificationServiceStub(n)


@pytest.fixture(scope="module")
def publisher(stack: Stack) -> Publisher:
    return Publisher(stack)


@pytest.fixture(scope="module")
def mailpit(stack: Stack) -> Mailpit:
    return Mailpit(stack.env["ECOM_MAILPIT_URL"])


@pytest.fixture(scope="module")
def smsc() -> FakeSmsc:
    return FakeSmsc(Kannel().log_file)


def _for_order(notes: list[npb.Notification], order_id: str, template: str = "order_placed",
               ) -> dict[int, npb.Notification]:
    return {n.channel: n for n in notes if n.order_id == order_id and n.template == template}


async def _settled(stub, user_id: str, order_id: str, template: str = "order_placed",  # type: ignore[no-untyped-def]
                   channels: tuple[int, ...] = (EMAIL, SMS)) -> dict[int, npb.Notification]:
    async def done() -> dict[int, npb.Notification] | None:
        found = _for_order(await notifications_of(stub, user_id), order_id, template)
        if all(ch in found and found[ch].status in SETTLED for ch in channels):
            return found
        return None

    result: dict[int, npb.Notification] = await wait_for(
        done, 60, f"{template} of {order_id} sent")
    return result


async def test_order_placed_sends_one_email_and_one_sms_even_when_repeated(
    stubs, publisher: Publisher, mailpit: Mailpit, smsc: FakeSmsc  # type: ignore[no-untyped-def]
) -> None:
    users, notify = stubs
    user = await sign_up(users)
    o = order(user.user_id)
    placed = transition(o, opb.ORDER_STATE_PLACED)
    publisher.send(LIFECYCLE, placed)
    found = await _settled(notify, user.user_id, o.order_id)

    email, sms = found[EMAIL], found[SMS]
    assert email.recipient == user.email and sms.recipient == user.phone
    assert o.order_id in email.body and "Pixel Phone 128GB" in email.body
    assert "₹2,599.00" in email.body and "Tue, 8 Dec 2026" in email.body
    assert email.send_time.seconds > 0 and email.subject.startswith("Your order ORD-")
    # The fake SMSC acknowledged: Kannel's delivery report marks it delivered.
    await wait_for(lambda: _status(notify, user.user_id, o.order_id, SMS,
                                   npb.NOTIFICATION_STATUS_DELIVERED), 30, "SMS delivered")

    # The same event again, and the same fact under a new event id.
    publisher.send(LIFECYCLE, placed)
    publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_PLACED))
    # A later event of the same order (same partition): once it is handled,
    # the duplicates before it have been too.
    publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_SHIPPED, opb.ORDER_STATE_PLACED))
    await _settled(notify, user.user_id, o.order_id, "order_shipped")

    notes = await notifications_of(notify, user.user_id)
    assert len([n for n in notes if n.template == "order_placed"]) == 2  # email + SMS
    mails = mailpit.to(user.email)
    subjects = sorted(m["Subject"] for m in mails)
    assert subjects == sorted([email.subject, found_subject(notes, "order_shipped")]), subjects
    placed_mail = mailpit.message(next(m["ID"] for m in mails if m["Subject"] == email.subject))
    assert o.order_id in placed_mail["Text"]
    texts = smsc.to(user.phone)
    assert len([t for t in texts if "confirmed" in t]) == 1, texts
    assert len([t for t in texts if "shipped" in t]) == 1, texts


def found_subject(notes: list[npb.Notification], template: str) -> str:
    return next(n.subject for n in notes if n.template == template and n.channel == EMAIL)


async def _status(stub, user_id: str, order_id: str, channel: int, status: int) -> bool:  # type: ignore[no-untyped-def]
    found = _for_order(await notifications_of(stub, user_id), order_id)
    return channel in found and found[channel].status == status


async def test_user_name_is_escaped_in_the_html_email(
    stubs, publisher: Publisher, mailpit: Mailpit  # type: ignore[no-untyped-def]
) -> None:
    users, notify = stubs
    user = await sign_up(users, name='<script>alert("x")</script> Rao')
    o = order(user.user_id)
    publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_PLACED))
    await _settled(notify, user.user_id, o.order_id, channels=(EMAIL,))
    (mail,) = mailpit.to(user.email)
    full = mailpit.message(mail["ID"])
    assert "<script>" not in full["HTML"]
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; Rao" in full["HTML"]
    assert o.order_id in full["HTML"]


async def test_a_user_who_turned_sms_off_gets_email_only(
    stubs, publisher: Publisher, mailpit: Mailpit, smsc: FakeSmsc  # type: ignore[no-untyped-def]
) -> None:
    users, notify = stubs
    user = await sign_up(users)
    updated = await users.UpdateUser(users_pb2.UpdateUserRequest(
        user_id=user.user_id, request_id=uuid.uuid4().hex,
        user=users_pb2.User(notification_preferences=users_pb2.NotificationPreferences(
            sms_enabled=False)),
        update_mask=field_mask_pb2.FieldMask(paths=["notification_preferences"]),
    ), metadata=as_user(user.user_id))
    assert updated.notification_preferences.sms_enabled is False
    assert user.notification_preferences.sms_enabled is True

    o = order(user.user_id)
    publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_PLACED))
    found = await _settled(notify, user.user_id, o.order_id, channels=(EMAIL,))
    await wait_for(lambda: _status(notify, user.user_id, o.order_id, SMS,
                                   npb.NOTIFICATION_STATUS_SUPPRESSED), 10, "SMS suppressed")
    assert len(mailpit.to(user.email)) == 1
    assert found[EMAIL].status in SETTLED
    assert smsc.to(user.phone) == []


async def test_cancellation_reason_and_late_payment_refund(
    stubs, publisher: Publisher, mailpit: Mailpit  # type: ignore[no-untyped-def]
) -> None:
    users, notify = stubs
    user = await sign_up(users)
    o = order(user.user_id)
    publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_CANCELLED, opb.ORDER_STATE_CREATED,
                                         cancel_reason=opb.CANCEL_REASON_HOLD_EXPIRED))
    publisher.send("payments.events", refunded(o, "late_payment_after_expiry"))
    cancelled = await _settled(notify, user.user_id, o.order_id, "order_cancelled")
    refund = await _settled(notify, user.user_id, o.order_id, "payment_refunded")
    assert "no payment arrived before the hold expired" in cancelled[EMAIL].body
    assert "the payment arrived after the order had expired" in refund[EMAIL].body
    assert "₹2,599.00" in refund[EMAIL].body and "Rs.2,599.00" in refund[SMS].body
    assert len(mailpit.to(user.email)) == 2


async def test_send_notification_is_internal_and_idempotent(
    stubs, mailpit: Mailpit  # type: ignore[no-untyped-def]
) -> None:
    users, notify = stubs
    user = await sign_up(users, name="Ravi")
    req = npb.SendNotificationRequest(user_id=user.user_id, channel=EMAIL, template="welcome",
                                      request_id=uuid.uuid4().hex)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await notify.SendNotification(req, metadata=as_user(user.user_id))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    first = await notify.SendNotification(req, metadata=ADMIN)
    again = await notify.SendNotification(req, metadata=ADMIN)
    assert first.notification_id == again.notification_id
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await notify.SendNotification(npb.SendNotificationRequest(
            user_id=user.user_id, channel=EMAIL, template="nope", request_id="r"),
            metadata=ADMIN)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "template" in (bad.value.details() or "")

    async def one_mail() -> bool:
        return len(mailpit.to(user.email)) == 1

    await wait_for(one_mail, 30, "welcome email")
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await notify.ListUserNotifications(
            npb.ListUserNotificationsRequest(user_id=user.user_id),
            metadata=as_user("someone-else"))
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    own = await notify.ListUserNotifications(
        npb.ListUserNotificationsRequest(user_id="me"), metadata=as_user(user.user_id))
    assert [n.template for n in own.notifications] == ["welcome"]


async def test_a_request_on_notify_requests_is_sent_once(
    stubs, publisher: Publisher, smsc: FakeSmsc  # type: ignore[no-untyped-def]
) -> None:
    from ecom.events.v1 import events_pb2

    users, notify = stubs
    user = await sign_up(users, name="Meera")
    env = events_pb2.EventEnvelope(
        event_id=uuid.uuid4().hex, event_type="ecom.events.v1.NotificationRequested",
        entity_key=user.user_id, producer="svc_users",
        notification_requested=events_pb2.NotificationRequested(
            user_id=user.user_id, channel=SMS, template="welcome"))
    publisher.send("notify.requests", env)
    publisher.send("notify.requests", env)  # delivered twice
    # Another request after them on the same partition (key user_id): once
    # it is handled, so were the two before it.
    barrier = events_pb2.EventEnvelope()
    barrier.CopyFrom(env)
    barrier.event_id = uuid.uuid4().hex
    barrier.notification_requested.channel = EMAIL
    publisher.send("notify.requests", barrier)

    async def settled() -> list[npb.Notification] | None:
        notes = await notifications_of(notify, user.user_id)
        ok = len(notes) == 2 and {n.status for n in notes} == {
            npb.NOTIFICATION_STATUS_DELIVERED, npb.NOTIFICATION_STATUS_SENT}
        return notes if ok else None

    notes = await wait_for(settled, 60, "requested SMS delivered and email sent")
    assert sorted((n.channel, n.template) for n in notes) == [(EMAIL, "welcome"),
                                                              (SMS, "welcome")]
    assert smsc.to(user.phone) == ["ecom: welcome, Meera."]


# --------------------------------------------------------------------------
# The mail server down: retries with backoff, then sent once; or FAILED
# after the last attempt, listed for an admin, who retries it.
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_mailpit(stack: Stack) -> Iterator[MailpitServer]:
    """A Mailpit of this module's own, which it stops and starts."""
    server = MailpitServer(name=f"mailpit-test-{stack.run_id}", smtp_port=free_port(),
                           http_port=free_port(), env_var="ECOM_TEST_NO_SUCH_VARIABLE")
    server.start()
    yield server
    server.stop()
    import shutil

    shutil.rmtree(server.data_dir, ignore_errors=True)
    server.log_file.unlink(missing_ok=True)


async def test_mail_server_down_then_back_sends_once(
    services: Services, stubs, publisher: Publisher,  # type: ignore[no-untyped-def]
    private_mailpit: MailpitServer,
) -> None:
    users, _ = stubs
    notify_svc = services.start(
        "notify", **BASE_ENV, ECOM_SMTP_URL=private_mailpit.url,
        ECOM_NOTIFY_BACKOFF_SECONDS="0.3", ECOM_NOTIFY_BACKOFF_CAP_SECONDS="1",
        ECOM_NOTIFY_MAX_ATTEMPTS="100",
    )
    box = Mailpit(private_mailpit.api_url)
    private_mailpit.stop()
    try:
        async with notify_svc.channel() as ch:
            notify = notifications_pb2_grpc.NotificationServiceStub(ch)
            user = await sign_up(users)
            o = order(user.user_id)
            publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_PLACED))

            async def retrying() -> bool:
                found = _for_order(await notifications_of(notify, user.user_id), o.order_id)
                e = found.get(EMAIL)
                return bool(e and e.attempts >= 3 and e.status == npb.NOTIFICATION_STATUS_QUEUED
                            and "unreachable" in e.failure_reason)

            await wait_for(retrying, 60, "email retried while the mail server is down")
            private_mailpit.start()
            found = await _settled(notify, user.user_id, o.order_id, channels=(EMAIL,))
            assert found[EMAIL].attempts >= 3
            assert len(box.to(user.email)) == 1
    finally:
        if private_mailpit.pid() is None:
            private_mailpit.start()


async def test_failed_after_max_attempts_then_admin_retry(
    services: Services, stubs, publisher: Publisher,  # type: ignore[no-untyped-def]
    private_mailpit: MailpitServer,
) -> None:
    users, _ = stubs
    notify_svc = services.start(
        "notify", **BASE_ENV, ECOM_SMTP_URL=private_mailpit.url,
        ECOM_NOTIFY_BACKOFF_SECONDS="0.2", ECOM_NOTIFY_BACKOFF_CAP_SECONDS="0.5",
        ECOM_NOTIFY_MAX_ATTEMPTS="3",
    )
    box = Mailpit(private_mailpit.api_url)
    private_mailpit.stop()
    try:
        async with notify_svc.channel() as ch:
            notify = notifications_pb2_grpc.NotificationServiceStub(ch)
            user = await sign_up(users)
            o = order(user.user_id)
            publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_PLACED))

            async def failed() -> npb.Notification | None:
                resp = await notify.ListNotifications(npb.ListNotificationsRequest(
                    status=npb.NOTIFICATION_STATUS_FAILED, page_size=100), metadata=ADMIN)
                return next((n for n in resp.notifications
                             if n.order_id == o.order_id and n.channel == EMAIL), None)

            note = await wait_for(failed, 60, "email FAILED after 3 attempts")
            assert note.attempts == 3 and "gave up after 3 attempts" in note.failure_reason
            with pytest.raises(grpc.aio.AioRpcError) as denied:
                await notify.ListNotifications(npb.ListNotificationsRequest(),
                                               metadata=as_user(user.user_id))
            assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED

            private_mailpit.start()
            retried = await notify.RetryNotification(
                npb.RetryNotificationRequest(notification_id=note.notification_id),
                metadata=ADMIN)
            assert retried.status == npb.NOTIFICATION_STATUS_QUEUED
            found = await _settled(notify, user.user_id, o.order_id, channels=(EMAIL,))
            assert found[EMAIL].notification_id == note.notification_id
            assert len(box.to(user.email)) == 1
            with pytest.raises(grpc.aio.AioRpcError) as not_failed:
                await notify.RetryNotification(
                    npb.RetryNotificationRequest(notification_id=note.notification_id),
                    metadata=ADMIN)
            assert not_failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        if private_mailpit.pid() is None:
            private_mailpit.start()


# --------------------------------------------------------------------------
# The crash window itself: the provider accepted, the process died before
# recording SENT. Staged exactly: the row is claimed (SENDING, attempt 1,
# with the lease a real attempt takes) and sent while svc_notify is down.
# --------------------------------------------------------------------------

CRASH_SECRET = "crash-window-test-secret"


async def test_a_send_hidden_by_a_crash_is_not_repeated(
    services: Services, stubs, stack: Stack, mailpit: Mailpit,  # type: ignore[no-untyped-def]
    smsc: FakeSmsc,
) -> None:
    from mesh.db import make_engine
    from svc_notify.channels import EmailChannel, Outgoing, SmsChannel
    from svc_notify.domain import Channel, Status
    from svc_notify.store import NewNotification, NotifyStore

    users, _ = stubs
    env = {**BASE_ENV, "ECOM_NOTIFY_DLR_SECRET": CRASH_SECRET}
    services.start("notify", **env).stop()  # tables exist; nothing runs now
    user = await sign_up(users)
    oid = str(uuid.uuid4())
    engine = await make_engine(stack.env["ECOM_MYSQL_URL"], stack.mysql_db("notify"))
    store = NotifyStore(engine)
    try:
        ids: dict[Channel, str] = {}
        async with store.transaction() as conn:
            for ch, to, body in ((Channel.EMAIL, user.email, f"crash test {oid}"),
                                 (Channel.SMS, user.phone, f"crash test {oid[:8]}")):
                nid = await store.add(conn, NewNotification(
                    user_id=user.user_id, channel=ch, template="order_placed",
                    dedupe_key=f"crash/{oid}", source="test", order_id=oid, recipient=to,
                    subject=f"Crash window {oid}", body=body, html=None))
                assert nid
                ids[ch] = nid
        claimed = await store.claim_due(1000, {Channel.EMAIL: 0.0, Channel.SMS: 15.0})
        mine = {r.channel: r for r in claimed if r.notification_id in ids.values()}
        assert {c: r.status for c, r in mine.items()} == {Channel.EMAIL: Status.SENDING,
                                                          Channel.SMS: Status.SENDING}
        # The attempts that "crashed": both providers accept.
        email_ch = EmailChannel(stack.env["ECOM_SMTP_URL"], "ecom <orders@ecom.local>")
        sms_ch = SmsChannel(stack.env["ECOM_SMS_URL"], f"http://{DLR_ADDR}/dlr",
                            CRASH_SECRET.encode())
        for ch, sender in ((Channel.EMAIL, email_ch), (Channel.SMS, sms_ch)):
            r = mine[ch]
            await sender.send(Outgoing(r.notification_id, r.message_id, r.recipient, r.subject,
                                       r.body, None, oid))
            await sender.close()
        sms_lease_end = mine[Channel.SMS].next_attempt_at

        notify_svc = services.start("notify", **env)
        async with notify_svc.channel() as ch:
            stub = notifications_pb2_grpc.NotificationServiceStub(ch)

            async def settled() -> dict[int, npb.Notification] | None:
                found = {n.channel: n for n in await notifications_of(stub, user.user_id)
                         if n.order_id == oid}
                if (found.get(EMAIL) and found[EMAIL].status == npb.NOTIFICATION_STATUS_SENT
                        and found.get(SMS)
                        and found[SMS].status == npb.NOTIFICATION_STATUS_DELIVERED):
                    return found
                return None

            found = await wait_for(settled, 60, "email resent and SMS report applied")
            # Email: sent again (its lease had ended) with the same Message-ID.
            assert found[EMAIL].attempts == 2
            # SMS: the delivery report, retried by smsbox while svc_notify was
            # down, settled it inside its lease; it is never sent again.
            assert found[SMS].attempts == 1

            async def lease_over() -> bool:
                from mesh.db import utcnow
                return utcnow() > sms_lease_end

            await wait_for(lease_over, 30, "the SMS lease to end")
            await asyncio.sleep(1.0)  # one more dispatcher pass after the lease
            again = {n.channel: n for n in await notifications_of(stub, user.user_id)
                     if n.order_id == oid}
            assert again[SMS].attempts == 1
        mails = mailpit.to(user.email)
        assert [m["Subject"] for m in mails] == [f"Crash window {oid}"]
        assert len(smsc.to(user.phone)) == 1
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------
# Two processes on one database and consumer group
# --------------------------------------------------------------------------


async def test_two_processes_share_the_work_and_send_each_message_once(
    services: Services, stubs, stack: Stack, publisher: Publisher,  # type: ignore[no-untyped-def]
    mailpit: Mailpit, smsc: FakeSmsc,
) -> None:
    import subprocess
    import sys

    from infra.core import REPO, STACK
    from tests.conftest import _wait_serving

    users, _ = stubs
    services.start("notify", **BASE_ENV)
    env = {**services.env, **BASE_ENV, "ECOM_NOTIFY_ADDR": f"127.0.0.1:{free_port()}",
           "ECOM_NOTIFY_DLR_ADDR": f"127.0.0.1:{free_port()}"}
    log = STACK / "logs" / f"test-{stack.run_id}-notify-second.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "svc_notify.main"], stdout=out,
                                stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                start_new_session=True)
    second = RunningService("notify", env["ECOM_NOTIFY_ADDR"], [proc], [log])
    try:
        _wait_serving(second, 90)
        people = [await sign_up(users) for _ in range(10)]
        orders = {p.user_id: [order(p.user_id) for _ in range(10)] for p in people}
        for os_ in orders.values():
            for o in os_:
                publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_PLACED), flush=False)
        publisher.flush()
        async with second.channel() as ch:
            stub = notifications_pb2_grpc.NotificationServiceStub(ch)

            async def all_settled() -> bool:
                n = 0
                for p in people:
                    n += sum(1 for x in await notifications_of(stub, p.user_id)
                             if x.status in SETTLED)
                return n == 200

            await wait_for(all_settled, 180, "200 messages sent by two processes")
        for p in people:
            assert len(mailpit.to(p.email)) == 10
            texts = smsc.to(p.phone)
            assert len(texts) == 10
            for o in orders[p.user_id]:
                number = o.order_id.replace("-", "")[:8].upper()
                assert sum(1 for t in texts if number in t) == 1, (number, texts)
    finally:
        second.stop()


# --------------------------------------------------------------------------
# kill -9 in the middle of a burst
# --------------------------------------------------------------------------

BURST_USERS = 20
ORDERS_PER_USER = 10  # 200 events


async def test_kill_9_mid_burst_leaves_exactly_one_message_per_event_and_channel(
    services: Services, stubs, publisher: Publisher, mailpit: Mailpit,  # type: ignore[no-untyped-def]
    smsc: FakeSmsc,
) -> None:
    users, _ = stubs
    notify_svc = services.start("notify", **BASE_ENV)
    people = [await sign_up(users) for _ in range(BURST_USERS)]
    orders = {p.user_id: [order(p.user_id) for _ in range(ORDERS_PER_USER)] for p in people}
    for os_ in orders.values():
        for o in os_:
            publisher.send(LIFECYCLE, transition(o, opb.ORDER_STATE_PLACED), flush=False)
    publisher.flush()
    total = 2 * BURST_USERS * ORDERS_PER_USER

    async def settled(stub) -> int:  # type: ignore[no-untyped-def]
        n = 0
        for p in people:
            n += sum(1 for x in await notifications_of(stub, p.user_id) if x.status in SETTLED)
        return n

    async with notify_svc.channel() as ch:
        stub = notifications_pb2_grpc.NotificationServiceStub(ch)

        async def some_sent() -> int:
            return await settled(stub) >= 20

        await wait_for(some_sent, 120, "the first messages sent")
        notify_svc.kill()
    restarted = services.start("notify", **BASE_ENV)
    async with restarted.channel() as ch:
        stub = notifications_pb2_grpc.NotificationServiceStub(ch)
        at_restart = await settled(stub)
        assert at_restart < total, "the burst finished before the kill; nothing was tested"

        async def all_sent() -> bool:
            return await settled(stub) == total

        await wait_for(all_sent, 240, f"all {total} messages sent after the restart")
        notes = [x for p in people for x in await notifications_of(stub, p.user_id)]
    assert len(notes) == total
    resent = sum(1 for n in notes if n.attempts > 1)
    print(f"\nkill -9 burst: {at_restart}/{total} settled when killed; "
          f"{resent} needed a second attempt after the restart")
    for p in people:
        numbers = sorted(n.subject for n in notes if n.user_id == p.user_id and n.channel == EMAIL)
        subjects = sorted(m["Subject"] for m in mailpit.to(p.email))
        assert subjects == numbers, (p.email, subjects)
        texts = smsc.to(p.phone)
        for o in orders[p.user_id]:
            number = o.order_id.replace("-", "")[:8].upper()
            assert sum(1 for t in texts if number in t) == 1, (p.phone, number, texts)
        assert len(texts) == ORDERS_PER_USER
