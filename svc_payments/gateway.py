"""Gateway adapters: the interface svc_payments charges through, and the
simulated "testgateway" driven by the test tokens.

A real adapter (Razorpay, Stripe, ...) would implement :class:`PaymentGateway`
over HTTP. The simulated one behaves like a real gateway where it matters:

* it answers after a realistic latency (uniform 50-300 ms by default);
* it is idempotent per charge id (our payment id), as real gateways are per
  idempotency key: authorising the same payment twice charges once;
* it keeps its own ledger (table ``testgateway_charges``), so a status query
  after a timed-out call answers what really happened;
* ``tok_timeout`` never answers: the ledger records the charge as
  PROCESSING with nothing captured, forever;
* ``tok_late_success`` does not answer the call either, then captures the
  money ``late_success_seconds`` later and calls us back (a webhook); the
  pending callback is a ledger row, so a restart of svc_payments re-arms it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import DATETIME
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from mesh.lease import mariadb_lock, schema_lock
from svc_payments.domain import (
    TOK_DECLINE,
    TOK_LATE_SUCCESS,
    TOK_SUCCESS,
    TOK_TIMEOUT,
    GatewayAnswer,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Charge:
    """What we ask a gateway to capture."""

    payment_id: str
    payment_token: str
    amount_paise: int


@dataclass(frozen=True)
class GatewayResult:
    """A gateway's answer about one charge."""

    answer: GatewayAnswer
    reference: str = ""
    decline_code: str = ""
    decline_message: str = ""


@dataclass(frozen=True)
class RefundResult:
    """A gateway's answer about one refund."""

    succeeded: bool
    reference: str = ""


# Called with (payment_id, result) when the gateway answers a charge on its
# own, after the call that submitted it gave up.
Callback = Callable[[str, GatewayResult], Awaitable[None]]


class PaymentGateway(Protocol):
    """What svc_payments needs from a payment gateway."""

    #: Stored on each payment (``Payment.gateway``).
    name: str

    async def authorize(self, charge: Charge) -> GatewayResult:
        """Capture ``charge``; idempotent per ``payment_id``. May never
        return: callers bound it with a timeout and then :meth:`query`."""
        ...

    async def query(self, payment_id: str) -> GatewayResult:
        """What the gateway knows about a charge now (UNKNOWN when it never
        received it)."""
        ...

    async def refund(self, refund_id: str, payment_id: str, amount_paise: int) -> RefundResult:
        """Return money of a captured charge; idempotent per ``refund_id``."""
        ...

    async def run_callbacks(self, deliver: Callback) -> None:
        """Deliver the gateway's own later answers (webhooks) until
        cancelled."""
        ...


metadata = sa.MetaData()
_MICROS = sa.DateTime().with_variant(DATETIME(fsp=6), "mysql", "mariadb")

# The simulated gateway's side of the world. It lives in the payments
# database only because the simulation runs in-process; nothing else reads it.
charges = sa.Table(
    "testgateway_charges",
    metadata,
    sa.Column("charge_id", sa.String(64), primary_key=True),
    sa.Column("payment_token", sa.String(64), nullable=False),
    sa.Column("amount_paise", sa.BigInteger, nullable=False),
    # CAPTURED | DECLINED | PROCESSING
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("reference", sa.String(64), nullable=False, server_default=""),
    sa.Column("decline_code", sa.String(64), nullable=False, server_default=""),
    # When the gateway will capture and call back; NULL when it never will.
    sa.Column("callback_time", _MICROS, nullable=True),
    # When the callback was acknowledged by svc_payments.
    sa.Column("callback_delivered_time", _MICROS, nullable=True),
    sa.Column("create_time", _MICROS, nullable=False),
    sa.Index("ix_testgateway_callbacks_due", "callback_delivered_time", "callback_time"),
    mysql_engine="InnoDB",
)

gateway_refunds = sa.Table(
    "testgateway_refunds",
    metadata,
    sa.Column("refund_id", sa.String(64), primary_key=True),
    sa.Column("charge_id", sa.String(64), nullable=False),
    sa.Column("amount_paise", sa.BigInteger, nullable=False),
    sa.Column("reference", sa.String(64), nullable=False),
    sa.Column("create_time", _MICROS, nullable=False),
    mysql_engine="InnoDB",
)

DECLINE_CODE = "card_declined"
DECLINE_MESSAGE = "The card was declined by the issuing bank."


class SimulatedGateway:
    """The test gateway; see the module docstring for its behaviour."""

    name = "testgateway"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        late_success_seconds: float,
        latency_ms: tuple[int, int] = (50, 300),
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        max_callback_wait: float = 0.5,
    ) -> None:
        self.engine = engine
        self.late_success_seconds = late_success_seconds
        self.latency_ms = latency_ms
        self.clock = clock
        self.rng = rng or random.Random()
        self.max_callback_wait = max_callback_wait

    async def create_tables(self) -> None:
        """Create the ledger tables if missing."""
        async with schema_lock(self.engine), self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def _latency(self) -> None:
        low, high = self.latency_ms
        await asyncio.sleep(self.rng.uniform(low, high) / 1000)

    async def authorize(self, charge: Charge) -> GatewayResult:
        """Record the charge in the ledger (once) and answer as its token
        says; PROCESSING charges never answer."""
        await self._latency()
        now = self.clock()
        row = _initial_row(charge, now, self.late_success_seconds)
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.insert(charges).values(**row))
        except IntegrityError:
            pass  # a retried charge: the ledger already has its answer
        result = await self.query(charge.payment_id, latency=False)
        if result.answer is GatewayAnswer.PROCESSING:
            # What tok_timeout / tok_late_success model: a gateway that
            # holds the connection and never replies. The caller's timeout
            # cancels this wait.
            await asyncio.Event().wait()
        return result

    async def query(self, payment_id: str, *, latency: bool = True) -> GatewayResult:
        """The ledger's truth about a charge."""
        if latency:
            await self._latency()
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(sa.select(charges).where(charges.c.charge_id == payment_id))
            ).one_or_none()
        if row is None:
            return GatewayResult(GatewayAnswer.UNKNOWN)
        answer = GatewayAnswer(row.state)
        return GatewayResult(
            answer,
            reference=row.reference,
            decline_code=row.decline_code,
            decline_message=DECLINE_MESSAGE if answer is GatewayAnswer.DECLINED else "",
        )

    async def refund(self, refund_id: str, payment_id: str, amount_paise: int) -> RefundResult:
        """Refund a captured charge once per refund id; the test gateway
        refuses only refunds of charges it never captured."""
        await self._latency()
        async with self.engine.begin() as conn:
            state = (
                await conn.execute(
                    sa.select(charges.c.state).where(charges.c.charge_id == payment_id)
                )
            ).scalar_one_or_none()
            if state != GatewayAnswer.CAPTURED:
                return RefundResult(False)
            existing = (
                await conn.execute(
                    sa.select(gateway_refunds.c.reference).where(
                        gateway_refunds.c.refund_id == refund_id
                    )
                )
            ).scalar_one_or_none()
            if existing is not None:
                return RefundResult(True, existing)
            reference = f"tg_re_{uuid.uuid4().hex[:20]}"
            await conn.execute(
                sa.insert(gateway_refunds).values(
                    refund_id=refund_id,
                    charge_id=payment_id,
                    amount_paise=amount_paise,
                    reference=reference,
                    create_time=self.clock(),
                )
            )
        return RefundResult(True, reference)

    async def run_callbacks(self, deliver: Callback) -> None:
        """Fire due late-success callbacks, forever. Due callbacks are read
        from the ledger each round, so a restarted process picks up the
        ones a crashed one never delivered (at least once: the receiver's
        transition is idempotent)."""
        while True:
            try:
                # One process delivers at a time: the gateway calls back once.
                async with mariadb_lock(self.engine, "payments.gateway-callbacks") as held:
                    wait = await self.deliver_due(deliver) if held else self.max_callback_wait
            except Exception:  # noqa: BLE001 - a database blip must not end the loop
                log.warning("gateway callback round failed; retrying", exc_info=True)
                wait = self.max_callback_wait
            await asyncio.sleep(wait)

    async def deliver_due(self, deliver: Callback) -> float:
        """Capture and deliver every callback due now; returns how long to
        sleep until the next one is due (at most ``max_callback_wait``)."""
        now = self.clock()
        async with self.engine.connect() as conn:
            due = (
                await conn.execute(
                    sa.select(charges.c.charge_id, charges.c.callback_time)
                    .where(
                        charges.c.callback_delivered_time.is_(None),
                        charges.c.callback_time.is_not(None),
                    )
                    .order_by(charges.c.callback_time)
                    .limit(100)
                )
            ).all()
        wait = self.max_callback_wait
        for charge_id, callback_time in due:
            if callback_time > now:
                wait = min(wait, (callback_time - now).total_seconds())
                break
            async with self.engine.begin() as conn:
                # The capture itself: from now on a query says CAPTURED too.
                await conn.execute(
                    sa.update(charges)
                    .where(
                        charges.c.charge_id == charge_id,
                        charges.c.state == GatewayAnswer.PROCESSING.value,
                    )
                    .values(
                        state=GatewayAnswer.CAPTURED.value,
                        reference=f"tg_ch_{uuid.uuid4().hex[:20]}",
                    )
                )
            result = await self.query(charge_id, latency=False)
            await deliver(charge_id, result)
            async with self.engine.begin() as conn:
                await conn.execute(
                    sa.update(charges)
                    .where(charges.c.charge_id == charge_id)
                    .values(callback_delivered_time=self.clock())
                )
        return max(wait, 0.01)


def _initial_row(charge: Charge, now: datetime, late_success_seconds: float) -> dict[str, object]:
    """The ledger row a fresh charge gets, by token."""
    row: dict[str, object] = {
        "charge_id": charge.payment_id,
        "payment_token": charge.payment_token,
        "amount_paise": charge.amount_paise,
        "create_time": now,
        "callback_time": None,
    }
    if charge.payment_token == TOK_SUCCESS:
        row.update(state=GatewayAnswer.CAPTURED.value, reference=f"tg_ch_{uuid.uuid4().hex[:20]}")
    elif charge.payment_token == TOK_DECLINE:
        row.update(
            state=GatewayAnswer.DECLINED.value,
            reference=f"tg_ch_{uuid.uuid4().hex[:20]}",
            decline_code=DECLINE_CODE,
        )
    elif charge.payment_token == TOK_LATE_SUCCESS:
        row.update(
            state=GatewayAnswer.PROCESSING.value,
            callback_time=now + timedelta(seconds=late_success_seconds),
        )
    elif charge.payment_token == TOK_TIMEOUT:
        row.update(state=GatewayAnswer.PROCESSING.value)
    else:
        # Validation upstream refuses unknown tokens; a real gateway would
        # decline an unknown payment method rather than hang.
        row.update(state=GatewayAnswer.DECLINED.value, decline_code="invalid_payment_method")
    return row
