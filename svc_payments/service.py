"""Use cases: create a payment and drive it to an answer, read and list
payments, refund, and reconcile what a timeout or a crash left open.

How a payment survives timeouts and crashes:

1. CreatePayment commits the PENDING payment *before* calling the gateway,
   with ``next_check_time`` = now + gateway timeout (+ slack). An accepted
   payment is therefore on disk whatever happens next.
2. The gateway call runs as a task bounded by the gateway timeout; the RPC
   waits for it at most ``wait_timeout``. A definite answer is recorded
   (status + event, one transaction). A timeout records nothing: the
   payment stays PENDING, because the gateway may still have charged.
3. The reconciler picks up PENDING payments whose check is due (after a
   timeout, or left behind by a crash) and asks the gateway what happened:
   a definite answer is recorded; a charge the gateway never received is
   resubmitted (the gateway is idempotent per payment id); a charge still
   processing waits until the payment window (the order hold) closes, then
   becomes TIMED_OUT.
4. The gateway's own later answer (a webhook) moves PENDING or TIMED_OUT to
   SUCCEEDED/DECLINED with ``late=True``; orders refunds a late success
   when the order is gone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mesh.context import remaining_time
from mesh.errors import FailedPrecondition, InvalidArgument, NotFound, PreconditionViolation
from mesh.idempotency import request_id_reused
from mesh.lease import mariadb_lock
from svc_payments.domain import (
    GatewayAnswer,
    NewPayment,
    PaymentRecord,
    PaymentStatus,
    RefundRecord,
    RefundRefused,
    RefundStatus,
    can_transition,
    plan_refund,
    status_after_refunds,
    status_for_answer,
)
from svc_payments.gateway import Charge, GatewayResult, PaymentGateway
from svc_payments.store import (
    DuplicateRequest,
    PaymentStore,
    decode_page_token,
    encode_page_token,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Timing:
    """The clocks a payment runs on (seconds)."""

    # How long one gateway call may take before we stop waiting for it.
    gateway_timeout: float
    # How long CreatePayment waits for the answer when the request says nothing.
    default_wait: float
    # How long a payment may stay PENDING before it is TIMED_OUT (the order hold).
    payment_window: float
    # How often the reconciler re-asks the gateway about a PENDING payment.
    recheck_interval: float
    # Slack after a gateway timeout before the reconciler looks, so it does
    # not race the call that is still timing out.
    check_slack: float = 0.5


class PaymentsService:
    """The use cases behind PaymentService."""

    def __init__(
        self,
        store: PaymentStore,
        gateway: PaymentGateway,
        timing: Timing,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.gateway = gateway
        self.timing = timing
        self.clock = clock
        # Gateway calls still running after their RPC returned; cancelled at
        # shutdown (the reconciler finishes their work after a restart).
        self._inflight: set[asyncio.Task[None]] = set()

    # -- create ------------------------------------------------------------
    async def create_payment(self, new: NewPayment) -> PaymentRecord:
        """Create and submit a payment, or return the one ``new.request_id``
        already created (never a second charge)."""
        now = self.clock()
        rec = PaymentRecord(
            payment_id=f"pay_{uuid.uuid4().hex}",
            order_id=new.order_id,
            user_id=new.user_id,
            request_id=new.request_id,
            amount_paise=new.amount_paise,
            refunded_paise=0,
            status=PaymentStatus.PENDING,
            payment_token=new.payment_token,
            gateway=self.gateway.name,
            gateway_reference="",
            decline_code="",
            decline_message="",
            attempts=1,
            version=1,
            next_check_time=self._after_gateway_timeout(now),
            window_close_time=now + timedelta(seconds=self.timing.payment_window),
            create_time=now,
            resolve_time=None,
            update_time=now,
        )
        try:
            await self.store.insert_payment(rec)
        except DuplicateRequest:
            return await self._replay_create(new)
        returned_pending = asyncio.Event()
        task = self._spawn(self._submit(rec, returned_pending))
        wait = self.timing.default_wait if new.wait_seconds is None else new.wait_seconds
        left = remaining_time()
        if left is not None:
            # Answer PENDING before the caller's deadline rather than fail it.
            wait = min(wait, max(left - 0.2, 0.0))
        done, _ = await asyncio.wait({task}, timeout=wait)
        if not done:
            returned_pending.set()
        return await self.get_payment(rec.payment_id)

    async def _replay_create(self, new: NewPayment) -> PaymentRecord:
        payment_id = await self.store.payment_id_for_request(new.request_id)
        found = None if payment_id is None else await self.store.get(payment_id)
        if found is None:  # pragma: no cover - the unique key said it exists
            raise FailedPrecondition("request_id is in use; retry the call")
        if (found.order_id, found.amount_paise, found.payment_token) != (
            new.order_id,
            new.amount_paise,
            new.payment_token,
        ):
            raise request_id_reused(
                new.request_id, f"payment {found.payment_id} of order {found.order_id}"
            )
        return found

    def _after_gateway_timeout(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.timing.gateway_timeout + self.timing.check_slack)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)
        return task

    async def _submit(self, rec: PaymentRecord, returned_pending: asyncio.Event) -> None:
        """One gateway call for ``rec``; records a definite answer. Errors
        and timeouts leave the payment PENDING for the reconciler."""
        charge = Charge(rec.payment_id, rec.payment_token, rec.amount_paise)
        try:
            result = await asyncio.wait_for(
                self.gateway.authorize(charge), self.timing.gateway_timeout
            )
        except TimeoutError:
            log.info("gateway did not answer in time", extra={"payment_id": rec.payment_id})
            return
        except Exception:  # noqa: BLE001 - the reconciler asks again later
            log.warning("gateway call failed", extra={"payment_id": rec.payment_id}, exc_info=True)
            return
        try:
            await self.record_answer(
                rec.payment_id, result, late=returned_pending.is_set(), request_id=rec.request_id
            )
        except Exception:  # noqa: BLE001 - the reconciler re-queries and records it
            log.warning("could not record gateway answer", exc_info=True)

    async def record_answer(
        self, payment_id: str, result: GatewayResult, *, late: bool, request_id: str = ""
    ) -> bool:
        """Apply a definite gateway answer (idempotent: an answer for a
        payment already resolved changes nothing). Returns True when it
        changed the payment."""
        target = status_for_answer(result.answer)
        if target is None:
            return False
        now = self.clock()
        async with self.store.transaction() as conn:
            current = await self.store.get(payment_id, conn, for_update=True)
            if current is None or not can_transition(current.status, target):
                return False
            # An answer after the window closed is late by definition.
            late = late or current.status is PaymentStatus.TIMED_OUT
            values: dict[str, object] = {
                "gateway_reference": result.reference,
                "resolve_time": now,
                "next_check_time": None,
            }
            if target is PaymentStatus.DECLINED:
                values.update(
                    decline_code=result.decline_code or "declined",
                    decline_message=result.decline_message,
                )
            if not await self.store.transition(conn, payment_id, target, now, **values):
                return False
            after = await self.store.get(payment_id, conn)
            assert after is not None
            await self.store.add_event(conn, after, now, late=late, request_id=request_id)
        log.info(
            "payment resolved",
            extra={"payment_id": payment_id, "status": target.value, "late": late},
        )
        return True

    async def on_gateway_callback(self, payment_id: str, result: GatewayResult) -> None:
        """The gateway answered on its own (webhook): always late."""
        await self.record_answer(payment_id, result, late=True)

    # -- read --------------------------------------------------------------
    async def get_payment(self, payment_id: str) -> PaymentRecord:
        """One payment; NOT_FOUND when there is none."""
        found = await self.store.get(payment_id)
        if found is None:
            raise NotFound(
                f"payment {payment_id} not found",
                resource_type="ecom.payments.v1.Payment",
                resource_name=payment_id,
            )
        return found

    async def list_payments(
        self, order_id: str, status: PaymentStatus | None, size: int, page_token: str
    ) -> tuple[list[PaymentRecord], str]:
        """One page, newest first, and the next page's token."""
        after = None
        if page_token:
            try:
                after = decode_page_token(page_token)
            except ValueError:
                raise InvalidArgument.for_field(
                    "page_token", "is not a token from a previous page"
                ) from None
        page, more = await self.store.list_page(order_id, status, size, after)
        token = encode_page_token(page[-1].create_time, page[-1].payment_id) if more else ""
        return page, token

    # -- refund ------------------------------------------------------------
    async def refund_payment(
        self, payment_id: str, requested_paise: int | None, reason: str, request_id: str
    ) -> PaymentRecord:
        """Refund (part of) a captured payment once per ``request_id``."""
        known = await self.store.refund_for_request(request_id)
        if known is None:
            known = await self._start_refund(payment_id, requested_paise, reason, request_id)
        elif known.payment_id != payment_id:
            raise request_id_reused(request_id, f"a refund of payment {known.payment_id}")
        if known.status is RefundStatus.PENDING:
            await self.complete_refund(known)
        return await self.get_payment(payment_id)

    async def _start_refund(
        self, payment_id: str, requested_paise: int | None, reason: str, request_id: str
    ) -> RefundRecord:
        now = self.clock()
        async with self.store.transaction() as conn:
            current = await self.store.get(payment_id, conn, for_update=True)
            if current is None:
                raise NotFound(
                    f"payment {payment_id} not found",
                    resource_type="ecom.payments.v1.Payment",
                    resource_name=payment_id,
                )
            # A concurrent retry may have committed while we waited for the
            # payment's lock: its refund is the answer, not a second one.
            for existing in current.refunds:
                if existing.request_id == request_id:
                    return existing
            try:
                plan = plan_refund(
                    current.status,
                    current.amount_paise,
                    current.committed_refund_paise,
                    requested_paise,
                )
            except RefundRefused as exc:
                raise FailedPrecondition(
                    str(exc),
                    reason=exc.reason,
                    violations=[PreconditionViolation("PAYMENT_STATUS", payment_id, str(exc))],
                ) from None
            refund = RefundRecord(
                refund_id=f"re_{uuid.uuid4().hex}",
                payment_id=payment_id,
                request_id=request_id,
                amount_paise=plan.amount_paise,
                status=RefundStatus.PENDING,
                reason=reason or "admin",
                gateway_reference="",
                create_time=now,
                update_time=now,
            )
            try:
                await self.store.insert_refund(conn, refund)
            except DuplicateRequest:
                pass  # a concurrent retry won; read its refund below
            else:
                return refund
        known = await self.store.refund_for_request(request_id)
        assert known is not None
        return known

    async def complete_refund(self, refund: RefundRecord) -> bool:
        """Ask the gateway to return the money and record the answer with
        the PaymentRefunded event; True when this call completed it. Safe to
        repeat: the gateway is idempotent per refund id and only a PENDING
        refund is completed."""
        try:
            result = await asyncio.wait_for(
                self.gateway.refund(refund.refund_id, refund.payment_id, refund.amount_paise),
                self.timing.gateway_timeout,
            )
        except (TimeoutError, Exception):  # noqa: BLE001 - left PENDING for the reconciler
            log.warning(
                "gateway refund failed", extra={"refund_id": refund.refund_id}, exc_info=True
            )
            return False
        now = self.clock()
        async with self.store.transaction() as conn:
            # Payment first, then refund: the same lock order as _start_refund.
            payment = await self.store.get(refund.payment_id, conn, for_update=True)
            locked = await self.store.lock_refund(conn, refund.refund_id)
            if payment is None or locked is None or locked.status is not RefundStatus.PENDING:
                return False
            if not result.succeeded:
                await self.store.finish_refund(conn, refund.refund_id, RefundStatus.FAILED, "", now)
                return False
            await self.store.finish_refund(
                conn, refund.refund_id, RefundStatus.SUCCEEDED, result.reference, now
            )
            refunded = payment.refunded_paise + refund.amount_paise
            target = status_after_refunds(payment.amount_paise, refunded)
            if not await self.store.transition(
                conn, refund.payment_id, target, now, refunded_paise=refunded
            ):
                raise RuntimeError(f"payment {payment.payment_id} is {payment.status}")
            after = await self.store.get(refund.payment_id, conn)
            assert after is not None
            done = next(r for r in after.refunds if r.refund_id == refund.refund_id)
            await self.store.add_event(conn, after, now, refund=done, request_id=refund.request_id)
        return True

    # -- reconcile ---------------------------------------------------------
    async def reconcile_forever(self, interval: float) -> None:
        """Run :meth:`reconcile_once` every ``interval`` seconds, for ever.
        With several payments processes one reconciles at a time (a MariaDB
        named lock, freed by the server if its holder dies), so a payment is
        never asked about twice at once."""
        while True:
            try:
                async with mariadb_lock(self.store.engine, "payments.reconciler") as held:
                    if held:
                        await self.reconcile_once()
            except Exception:  # noqa: BLE001 - a database blip must not end the loop
                log.warning("reconciliation round failed; retrying", exc_info=True)
            await asyncio.sleep(interval)

    async def reconcile_once(self, limit: int = 100) -> int:
        """One pass over due PENDING payments and stuck refunds; returns how
        many items it looked at."""
        now = self.clock()
        due = await self.store.due_for_check(now, limit)
        stuck = await self.store.stale_pending_refunds(self._before_gateway_timeout(now), limit)
        gate = asyncio.Semaphore(10)

        async def check(rec: PaymentRecord) -> None:
            async with gate:
                await self._check_payment(rec)

        async def redo(refund: RefundRecord) -> None:
            async with gate:
                await self.complete_refund(refund)

        await asyncio.gather(*(check(r) for r in due), *(redo(r) for r in stuck))
        return len(due) + len(stuck)

    def _before_gateway_timeout(self, now: datetime) -> datetime:
        return now - timedelta(seconds=self.timing.gateway_timeout + self.timing.check_slack)

    async def _check_payment(self, rec: PaymentRecord) -> None:
        try:
            result: GatewayResult | None = await asyncio.wait_for(
                self.gateway.query(rec.payment_id), self.timing.gateway_timeout
            )
        except (TimeoutError, Exception):  # noqa: BLE001 - treated as no answer yet
            log.warning("gateway query failed", extra={"payment_id": rec.payment_id}, exc_info=True)
            result = None
        now = self.clock()
        if result is not None and status_for_answer(result.answer) is not None:
            await self.record_answer(rec.payment_id, result, late=True, request_id=rec.request_id)
            return
        window_open = now < rec.window_close_time
        if result is not None and result.answer is GatewayAnswer.UNKNOWN and window_open:
            # Accepted by us, never seen by the gateway (we crashed before
            # the call): submit it again.
            log.info("resubmitting payment", extra={"payment_id": rec.payment_id})
            await self.store.set_next_check(
                rec.payment_id, self._after_gateway_timeout(now), attempts_delta=1
            )
            event = asyncio.Event()
            event.set()  # whoever created it has long had its answer
            self._spawn(self._submit(rec, event))
            return
        if not window_open:
            await self.time_out(rec.payment_id)
            return
        recheck = now + timedelta(seconds=self.timing.recheck_interval)
        await self.store.set_next_check(rec.payment_id, min(recheck, rec.window_close_time))

    async def time_out(self, payment_id: str) -> bool:
        """Close the payment window of a still-PENDING payment: TIMED_OUT
        plus PaymentTimedOut. A later gateway answer can still resolve it."""
        now = self.clock()
        async with self.store.transaction() as conn:
            if not await self.store.transition(
                conn,
                payment_id,
                PaymentStatus.TIMED_OUT,
                now,
                resolve_time=now,
                next_check_time=None,
            ):
                return False
            after = await self.store.get(payment_id, conn)
            assert after is not None
            await self.store.add_event(conn, after, now, request_id=after.request_id)
        log.info("payment timed out", extra={"payment_id": payment_id})
        return True

    async def close(self) -> None:
        """Cancel gateway calls still in flight (their payments stay
        PENDING on disk; the reconciler resumes them after a restart)."""
        for task in list(self._inflight):
            task.cancel()
        await asyncio.gather(*self._inflight, return_exceptions=True)
