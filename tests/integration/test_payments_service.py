"""svc_payments as a real process against the real MariaDB and Kafka: every
test token's branch, idempotent retries, the late success after the hold,
refunds, the events on `payments.events`, and crash safety (kill -9 with a
late success pending; a payment accepted but never sent to the gateway).

Run: ECOM_TEST_SERVERS=mariadb,kafka .venv/bin/python -m pytest \
     tests/integration/test_payments_service.py -q
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import sqlalchemy as sa
from ecom.events.v1 import events_pb2
from ecom.payments.v1 import payments_pb2 as pb
from ecom.payments.v1 import payments_pb2_grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2
from google.type.money_pb2 import Money
from grpc_status import rpc_status
from sqlalchemy.ext.asyncio import AsyncEngine

from mesh.auth import Caller, encode_jwt_payload
from mesh.db import make_engine
from mesh.errors import error_details
from mesh.kafka import make_consumer
from tests.conftest import RunningService, Services, Stack

pytestmark = pytest.mark.integration

HOLD, LATE, GATEWAY_TIMEOUT = 2.0, 3.0, 1.0


def start_payments(services: Services) -> RunningService:
    """svc_payments with a 2 s hold, late success at 3 s, gateway timeout 1 s."""
    return services.start(
        "payments",
        ECOM_ORDER_HOLD_SECONDS="2",
        ECOM_PAYMENTS_LATE_SUCCESS_SECONDS="3",
        ECOM_PAYMENTS_GATEWAY_TIMEOUT_SECONDS="1",
    )


ORDERS = (("x-jwt-payload", encode_jwt_payload(Caller("svc_orders", frozenset({"service"})))),)
CUSTOMER = (("x-jwt-payload", encode_jwt_payload(Caller("user-1", frozenset({"customer"})))),)
S = pb.PaymentStatus


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def inr(rupees: int, paise: int = 0) -> Money:
    return Money(currency_code="INR", units=rupees, nanos=paise * 10_000_000)


class EventLog:
    """Every envelope on payments.events since the fixture started, by key."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.by_key: dict[str, list[events_pb2.EventEnvelope]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # The topic's own prefix (the run's) names the group, so the
        # session's clean-up drops it.
        self._consumer = make_consumer(bootstrap, new_id(f"{topic}.payments-test"))
        self._consumer.subscribe([topic])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            env = events_pb2.EventEnvelope.FromString(msg.value())
            with self._lock:
                self.by_key[(msg.key() or b"").decode()].append(env)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()

    async def wait_for(
        self, order_id: str, kinds: list[str], timeout: float = 20
    ) -> list[events_pb2.EventEnvelope]:
        """The order's events once their payload kinds are exactly ``kinds``
        (in order); fails on a timeout or on anything extra."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = list(self.by_key.get(order_id, []))
            seen = [e.WhichOneof("payload") for e in got]
            if len(seen) >= len(kinds) or time.monotonic() > deadline:
                assert seen == kinds, f"events for {order_id}: {seen}"
                return got
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def payments(services: Services) -> RunningService:
    return start_payments(services)


@pytest.fixture(scope="module")
def events(stack: Stack, payments: RunningService) -> Iterator[EventLog]:
    log = EventLog(stack.env["ECOM_KAFKA_BOOTSTRAP"], stack.topic("payments.events"))
    yield log
    log.close()


@pytest.fixture
async def stub(payments: RunningService) -> AsyncIterator[payments_pb2_grpc.PaymentServiceStub]:
    # Per test: the kill -9 test restarts the process on the same address.
    channel = grpc.aio.insecure_channel(payments.addr)
    yield payments_pb2_grpc.PaymentServiceStub(channel)
    await channel.close()


@pytest.fixture(scope="module")
async def db(stack: Stack, payments: RunningService) -> AsyncIterator[AsyncEngine]:
    engine = await make_engine(
        stack.env["ECOM_MYSQL_URL"], stack.mysql_db("payments"), create=False
    )
    yield engine
    await engine.dispose()


async def create(
    stub: payments_pb2_grpc.PaymentServiceStub,
    token: str,
    *,
    order_id: str | None = None,
    request_id: str | None = None,
    amount: Money | None = None,
    wait: float | None = None,
) -> pb.Payment:
    req = pb.CreatePaymentRequest(
        order_id=order_id or new_id("ord"),
        user_id="user-1",
        amount=amount or inr(1499, 50),
        payment_token=token,
        request_id=request_id or new_id("rq"),
    )
    if wait is not None:
        req.wait_timeout.CopyFrom(Duration(seconds=int(wait), nanos=int(wait % 1 * 1e9)))
    return await stub.CreatePayment(req, metadata=ORDERS, timeout=30)


async def wait_status(
    stub: payments_pb2_grpc.PaymentServiceStub, payment_id: str, status: int, timeout: float = 15
) -> pb.Payment:
    deadline = time.monotonic() + timeout
    while True:
        got = await stub.GetPayment(pb.GetPaymentRequest(payment_id=payment_id), metadata=ORDERS)
        if got.status == status or time.monotonic() > deadline:
            assert S.Name(got.status) == S.Name(status)
            return got
        await asyncio.sleep(0.1)


def failure(exc: grpc.aio.AioRpcError) -> tuple[grpc.StatusCode, str, set[str]]:
    """(code, ErrorInfo reason, fields named by BadRequest)."""
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    details = error_details(status)
    reason = next(d.reason for d in details if isinstance(d, error_details_pb2.ErrorInfo))
    fields = {
        v.field
        for d in details
        if isinstance(d, error_details_pb2.BadRequest)
        for v in d.field_violations
    }
    return exc.code(), reason, fields


# -- each token --------------------------------------------------------------
async def test_success_is_captured_and_announced(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog
) -> None:
    order = new_id("ord")
    paid = await create(stub, "tok_success", order_id=order, amount=inr(250, 75))
    assert paid.status == S.PAYMENT_STATUS_SUCCEEDED
    assert paid.gateway == "testgateway"
    assert paid.gateway_reference.startswith("tg_ch_")
    assert (paid.amount.units, paid.amount.nanos, paid.amount.currency_code) == (
        250,
        750_000_000,
        "INR",
    )
    assert paid.HasField("resolve_time") and not paid.HasField("refunded_amount")
    again = await stub.GetPayment(pb.GetPaymentRequest(payment_id=paid.payment_id), metadata=ORDERS)
    assert again == paid
    (env,) = await events.wait_for(order, ["payment_succeeded"])
    assert env.entity_key == order and env.producer == "svc_payments"
    assert env.event_type == "ecom.events.v1.PaymentSucceeded"
    assert env.payment_succeeded.payment.payment_id == paid.payment_id
    assert env.payment_succeeded.late is False


async def test_decline_carries_a_code(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog
) -> None:
    order = new_id("ord")
    declined = await create(stub, "tok_decline", order_id=order)
    assert declined.status == S.PAYMENT_STATUS_DECLINED
    assert declined.decline_code == "card_declined" and declined.decline_message
    (env,) = await events.wait_for(order, ["payment_declined"])
    assert env.payment_declined.payment.decline_code == "card_declined"


async def test_timeout_stays_pending_until_the_hold_expires_then_times_out(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog
) -> None:
    order = new_id("ord")
    pending = await create(stub, "tok_timeout", order_id=order)
    assert pending.status == S.PAYMENT_STATUS_PENDING
    assert not pending.HasField("resolve_time")
    timed_out = await wait_status(stub, pending.payment_id, S.PAYMENT_STATUS_TIMED_OUT)
    # Timed out by the hold, as the service's own clock recorded it.
    waited = timed_out.resolve_time.ToDatetime() - pending.create_time.ToDatetime()
    assert waited >= timedelta(seconds=HOLD - 0.2), waited
    (env,) = await events.wait_for(order, ["payment_timed_out"])
    assert env.payment_timed_out.payment.payment_id == pending.payment_id
    # The gateway's ledger says nothing was charged: no answer ever follows.
    await asyncio.sleep(LATE - HOLD + 1)
    still = await stub.GetPayment(
        pb.GetPaymentRequest(payment_id=pending.payment_id), metadata=ORDERS
    )
    assert (
        still.status == S.PAYMENT_STATUS_TIMED_OUT and still.resolve_time == timed_out.resolve_time
    )
    await events.wait_for(order, ["payment_timed_out"])


async def test_late_success_arrives_after_the_hold(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog
) -> None:
    order = new_id("ord")
    started = time.monotonic()
    pending = await create(stub, "tok_late_success", order_id=order)
    assert pending.status == S.PAYMENT_STATUS_PENDING
    await wait_status(stub, pending.payment_id, S.PAYMENT_STATUS_TIMED_OUT)
    paid = await wait_status(stub, pending.payment_id, S.PAYMENT_STATUS_SUCCEEDED)
    assert time.monotonic() - started >= LATE - 0.2
    assert paid.gateway_reference.startswith("tg_ch_")
    timed_out, succeeded = await events.wait_for(order, ["payment_timed_out", "payment_succeeded"])
    assert succeeded.payment_succeeded.late is True
    assert succeeded.entity_version > timed_out.entity_version


async def test_short_wait_returns_pending_and_the_answer_follows_as_late(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog
) -> None:
    order = new_id("ord")
    got = await create(stub, "tok_success", order_id=order, wait=0)
    assert got.status == S.PAYMENT_STATUS_PENDING
    await wait_status(stub, got.payment_id, S.PAYMENT_STATUS_SUCCEEDED)
    (env,) = await events.wait_for(order, ["payment_succeeded"])
    assert env.payment_succeeded.late is True


# -- validation and access ---------------------------------------------------
async def test_unknown_token_names_the_field(stub: payments_pb2_grpc.PaymentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(stub, "tok_bogus")
    code, _, fields = failure(err.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and fields == {"payment_token"}


async def test_every_bad_field_is_named(stub: payments_pb2_grpc.PaymentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.CreatePayment(
            pb.CreatePaymentRequest(amount=Money(currency_code="USD", units=1, nanos=5)),
            metadata=ORDERS,
        )
    code, _, fields = failure(err.value)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    # No request_id is fine (mesh gives the call a fresh key); a service
    # caller must name the user.
    assert fields == {
        "order_id",
        "user_id",
        "payment_token",
        "amount.currency_code",
        "amount.nanos",
    }


async def test_customers_cannot_call_payments(stub: payments_pb2_grpc.PaymentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListPayments(pb.ListPaymentsRequest(), metadata=CUSTOMER)
    assert failure(err.value)[:2] == (grpc.StatusCode.PERMISSION_DENIED, "INTERNAL_ONLY")


async def test_unknown_payment_is_not_found(stub: payments_pb2_grpc.PaymentServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetPayment(pb.GetPaymentRequest(payment_id="pay_nope"), metadata=ORDERS)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


# -- idempotency -------------------------------------------------------------
async def test_retries_with_one_request_id_charge_once(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog, db: AsyncEngine
) -> None:
    order, rq = new_id("ord"), new_id("rq")
    results = await asyncio.gather(
        *(create(stub, "tok_success", order_id=order, request_id=rq) for _ in range(5))
    )
    assert len({r.payment_id for r in results}) == 1
    final = await wait_status(stub, results[0].payment_id, S.PAYMENT_STATUS_SUCCEEDED)
    retry = await create(stub, "tok_success", order_id=order, request_id=rq)
    assert retry == final
    async with db.connect() as conn:
        charged = (
            await conn.execute(
                sa.text("SELECT COUNT(*) FROM testgateway_charges WHERE charge_id = :p"),
                {"p": final.payment_id},
            )
        ).scalar()
    assert charged == 1
    await asyncio.sleep(1)
    await events.wait_for(order, ["payment_succeeded"])


async def test_request_id_reused_for_another_payment_is_refused(
    stub: payments_pb2_grpc.PaymentServiceStub,
) -> None:
    rq = new_id("rq")
    await create(stub, "tok_decline", request_id=rq)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await create(stub, "tok_success", request_id=rq)
    code, reason, _ = failure(err.value)
    assert (code, reason) == (grpc.StatusCode.ABORTED, "REQUEST_ID_REUSED")
    assert rq in (err.value.details() or "")


# -- refunds -----------------------------------------------------------------
async def test_full_refund_happens_once(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog
) -> None:
    order = new_id("ord")
    paid = await create(stub, "tok_success", order_id=order, amount=inr(999))
    req = pb.RefundPaymentRequest(
        payment_id=paid.payment_id, reason="order_cancelled", request_id=new_id("rf")
    )
    first, second = await asyncio.gather(
        stub.RefundPayment(req, metadata=ORDERS), stub.RefundPayment(req, metadata=ORDERS)
    )
    assert first.status == second.status == S.PAYMENT_STATUS_REFUNDED
    assert len(first.refunds) == len(second.refunds) == 1
    (refund,) = first.refunds
    assert refund.status == pb.REFUND_STATUS_SUCCEEDED and refund.reason == "order_cancelled"
    assert refund.amount.units == 999 and refund.gateway_reference.startswith("tg_re_")
    assert first.refunded_amount.units == 999
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RefundPayment(
            pb.RefundPaymentRequest(payment_id=paid.payment_id, request_id=new_id("rf")),
            metadata=ORDERS,
        )
    assert failure(err.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "PAYMENT_NOT_REFUNDABLE")
    _, refunded = await events.wait_for(order, ["payment_succeeded", "payment_refunded"])
    assert refunded.payment_refunded.refund.refund_id == refund.refund_id
    assert refunded.payment_refunded.payment.status == S.PAYMENT_STATUS_REFUNDED


async def test_partial_refunds_never_exceed_the_capture(
    stub: payments_pb2_grpc.PaymentServiceStub,
) -> None:
    paid = await create(stub, "tok_success", amount=inr(100))

    async def refund(amount: Money | None) -> pb.Payment:
        req = pb.RefundPaymentRequest(payment_id=paid.payment_id, request_id=new_id("rf"))
        if amount is not None:
            req.amount.CopyFrom(amount)
        return await stub.RefundPayment(req, metadata=ORDERS)

    part = await refund(inr(30, 50))
    assert part.status == S.PAYMENT_STATUS_PARTIALLY_REFUNDED
    assert (part.refunded_amount.units, part.refunded_amount.nanos) == (30, 500_000_000)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await refund(inr(70))
    assert failure(err.value)[:2] == (grpc.StatusCode.FAILED_PRECONDITION, "REFUND_EXCEEDS_BALANCE")
    rest = await refund(None)
    assert rest.status == S.PAYMENT_STATUS_REFUNDED
    assert [(r.amount.units, r.amount.nanos) for r in rest.refunds] == [
        (30, 500_000_000),
        (69, 500_000_000),
    ]


async def test_declined_payment_cannot_be_refunded(
    stub: payments_pb2_grpc.PaymentServiceStub,
) -> None:
    declined = await create(stub, "tok_decline")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RefundPayment(
            pb.RefundPaymentRequest(payment_id=declined.payment_id, request_id=new_id("rf")),
            metadata=ORDERS,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# -- listing -----------------------------------------------------------------
async def test_list_an_orders_payments_newest_first_in_pages(
    stub: payments_pb2_grpc.PaymentServiceStub,
) -> None:
    order = new_id("ord")
    made = [
        await create(stub, tok, order_id=order)
        for tok in ("tok_decline", "tok_decline", "tok_success")
    ]
    want = [p.payment_id for p in reversed(made)]
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.ListPayments(
            pb.ListPaymentsRequest(order_id=order, page_size=2, page_token=token), metadata=ORDERS
        )
        seen += [p.payment_id for p in page.payments]
        token = page.next_page_token
        if not token:
            break
    assert seen == want
    declined = await stub.ListPayments(
        pb.ListPaymentsRequest(order_id=order, status=S.PAYMENT_STATUS_DECLINED), metadata=ORDERS
    )
    assert [p.payment_id for p in declined.payments] == want[1:]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListPayments(pb.ListPaymentsRequest(page_token="garbage!"), metadata=ORDERS)
    assert failure(err.value)[2] == {"page_token"}


# -- crash safety ------------------------------------------------------------
async def test_accepted_payment_never_sent_to_the_gateway_is_resubmitted(
    stub: payments_pb2_grpc.PaymentServiceStub, events: EventLog, db: AsyncEngine
) -> None:
    """What a crash between the payment's commit and the gateway call leaves
    behind: the reconciler finds no ledger entry and submits it again."""
    order, pid = new_id("ord"), f"pay_{uuid.uuid4().hex}"
    now = datetime.now(UTC).replace(tzinfo=None)
    async with db.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO payments (payment_id, order_id, user_id, request_id, amount_paise,"
                " status, payment_token, gateway, attempts, version, next_check_time,"
                " window_close_time, create_time, update_time) VALUES (:p, :o, 'user-1', :r,"
                " 50000, 'PENDING', 'tok_success', 'testgateway', 1, 1, :now, :close, :now, :now)"
            ),
            {
                "p": pid,
                "o": order,
                "r": new_id("rq"),
                "now": now,
                "close": now + timedelta(seconds=60),
            },
        )
    paid = await wait_status(stub, pid, S.PAYMENT_STATUS_SUCCEEDED)
    assert paid.gateway_reference
    (env,) = await events.wait_for(order, ["payment_succeeded"])
    assert env.payment_succeeded.late is True


async def test_kill_9_with_a_late_success_pending_still_delivers_it(
    services: Services, payments: RunningService, events: EventLog
) -> None:
    channel = grpc.aio.insecure_channel(payments.addr)
    stub = payments_pb2_grpc.PaymentServiceStub(channel)
    order, rq = new_id("ord"), new_id("rq")
    pending = await create(stub, "tok_late_success", order_id=order, request_id=rq)
    assert pending.status == S.PAYMENT_STATUS_PENDING
    await channel.close()
    payments.kill()  # the late callback exists only in the gateway's ledger now
    restarted = start_payments(services)
    assert restarted.proc.pid != payments.proc.pid
    channel = grpc.aio.insecure_channel(restarted.addr)
    stub = payments_pb2_grpc.PaymentServiceStub(channel)
    try:
        paid = await wait_status(stub, pending.payment_id, S.PAYMENT_STATUS_SUCCEEDED, timeout=20)
        assert paid.gateway_reference.startswith("tg_ch_")
        # Whether the window closed before the restart decides if a
        # PaymentTimedOut comes first; the late success always arrives.
        deadline = time.monotonic() + 20
        while True:
            kinds = [e.WhichOneof("payload") for e in events.by_key.get(order, [])]
            if "payment_succeeded" in kinds or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert kinds in (["payment_succeeded"], ["payment_timed_out", "payment_succeeded"]), kinds
        last = events.by_key[order][-1]
        assert last.payment_succeeded.late is True
        # The original call, retried after the crash, returns the same payment.
        retry = await create(stub, "tok_late_success", order_id=order, request_id=rq)
        assert retry.payment_id == pending.payment_id
        assert retry.status == S.PAYMENT_STATUS_SUCCEEDED
    finally:
        await channel.close()
