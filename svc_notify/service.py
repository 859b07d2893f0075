"""Use cases: accept a request to notify (from an event or a call), send
what is due, record delivery reports, list and retry.

One message per (fact, channel)
-------------------------------
1. `accept` runs inside the consumer's transaction (or its own, for a call):
   it looks the user up, renders the templates and inserts one row per
   channel, QUEUED, unique on (dedupe key, channel). A duplicate event, or
   the same fact under another event id, inserts nothing.
2. The dispatcher claims due rows (`FOR UPDATE SKIP LOCKED`, so several
   processes share the work and never take the same row), marks them
   SENDING with a lease, sends, and records SENT (or QUEUED with backoff, or
   FAILED after the last attempt). Every update is conditional on the row
   still being in that attempt.
3. A process killed between the provider's acceptance and step 2's update
   leaves a SENDING row; when its lease ends another attempt is made:
   * email is resent with the same Message-ID (Mailpit, run with
     `--ignore-duplicate-ids`, and mail systems drop the copy);
   * SMS has no such id at the gateway, so its lease is long enough for the
     delivery report (smsbox retries the callback while svc_notify is down)
     to arrive first and settle the row; only a message the gateway never
     reported on is sent again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from ecom.users.v1 import users_pb2, users_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncConnection

import mesh
from mesh.auth import Caller
from mesh.errors import FailedPrecondition, NotFound
from svc_notify import domain
from svc_notify.channels import ChannelDown, ChannelRefused, DeliveryChannel, Outgoing
from svc_notify.domain import Channel, Intent, RetryPolicy, Status
from svc_notify.store import NewNotification, NotificationRow, NotifyStore

log = logging.getLogger(__name__)
SERVICE_CALLER = Caller("svc_notify", frozenset({"service"}))


@dataclass(frozen=True)
class Recipient:
    """Where and whether a user is reached, from svc_users."""

    user_id: str
    name: str
    email: str
    phone: str
    sms_enabled: bool


class UserNotFound(Exception):
    """The user does not exist (any more): nothing can be sent."""


class UsersClient:
    """GetUser on svc_users under svc_notify's own identity."""

    def __init__(self, stub: users_pb2_grpc.UserServiceStub, timeout: float) -> None:
        self.stub = stub
        self.timeout = timeout

    async def recipient(self, user_id: str) -> Recipient:
        """Raises UserNotFound, or grpc errors (the caller retries later)."""
        with mesh.call_scope(caller=SERVICE_CALLER, timeout=self.timeout):
            try:
                user = await self.stub.GetUser(
                    users_pb2.GetUserRequest(user_id=user_id), timeout=self.timeout
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    raise UserNotFound(user_id) from exc
                raise
        prefs = user.notification_preferences if user.HasField("notification_preferences") \
            else users_pb2.NotificationPreferences(sms_enabled=True)
        return Recipient(user_id=user.user_id, name=user.name, email=user.email,
                         phone=user.phone, sms_enabled=prefs.sms_enabled)


@dataclass(frozen=True)
class DispatchSettings:
    """How the dispatcher paces itself."""

    batch: int = 16
    poll_seconds: float = 0.2
    # How long an attempt owns its row before another may retry it.
    email_lease_seconds: float = 30.0
    # For SMS also the wait for a delivery report before resending an
    # attempt whose outcome a crash hid.
    sms_lease_seconds: float = 30.0
    retry: RetryPolicy = RetryPolicy()


class NotifyService:
    """Accepting, sending and reading notifications."""

    def __init__(
        self,
        store: NotifyStore,
        users: UsersClient,
        channels: dict[Channel, DeliveryChannel],
        settings: DispatchSettings,
    ) -> None:
        self.store = store
        self.users = users
        self.channels = channels
        self.settings = settings
        self._wake = asyncio.Event()
        self.sent = 0

    # -- accepting ---------------------------------------------------------------

    async def accept(self, conn: AsyncConnection, intent: Intent) -> list[str]:
        """Record one notification per channel of `intent` in the caller's
        transaction; the ids created (none for a duplicate). Raises what
        svc_users raised when it could not answer (the event is retried)."""
        if await self.store.count_by_key(conn, intent.dedupe_key) >= len(intent.channels):
            return []  # a duplicate: no need to ask users again
        try:
            who = await self.users.recipient(intent.user_id)
        except UserNotFound:
            log.warning("notify: user %s not found; %s dropped", intent.user_id,
                        intent.dedupe_key)
            who = Recipient(intent.user_id, "", "", "", False)
        rendered = domain.render(intent.template, {"name": who.name, **intent.context})
        created = []
        for ch in intent.channels:
            status, reason = Status.QUEUED, ""
            if ch == Channel.EMAIL:
                address = intent.recipient or who.email
                body, html, subject = rendered.text, rendered.html, rendered.subject
            else:
                address = intent.recipient or who.phone
                body, html, subject = rendered.sms, None, ""
                if not who.sms_enabled and not intent.recipient:
                    status, reason = Status.SUPPRESSED, "the user turned SMS off"
            if not address and status == Status.QUEUED:
                status = Status.SUPPRESSED
                reason = "no email address" if ch == Channel.EMAIL else "no phone number"
                if not who.user_id or not (who.email or who.phone):
                    reason = "user not found"
            nid = await self.store.add(conn, NewNotification(
                user_id=intent.user_id, channel=ch, template=intent.template,
                dedupe_key=intent.dedupe_key, source=intent.source, order_id=intent.order_id,
                recipient=address, subject=subject, body=body, html=html, status=status,
                failure_reason=reason,
            ))
            if nid:
                created.append(nid)
        return created

    async def send_now(self, intent: Intent) -> NotificationRow:
        """SendNotification: accept one channel in its own transaction and
        return its row (the first one for a repeated request id)."""
        async with self.store.transaction() as conn:
            await self.accept(conn, intent)
            row = await self.store.get_by_key(conn, intent.dedupe_key, intent.channels[0])
        self.wake()
        assert row is not None
        return row

    def wake(self) -> None:
        """Something was queued: look for due work now."""
        self._wake.set()

    # -- sending ---------------------------------------------------------------

    def _lease(self) -> dict[Channel, float]:
        return {Channel.EMAIL: self.settings.email_lease_seconds,
                Channel.SMS: self.settings.sms_lease_seconds}

    async def dispatch_once(self) -> int:
        """Claim and send one batch; how many rows were claimed."""
        rows = await self.store.claim_due(
            self.settings.batch, self._lease(), channels=list(self.channels)
        )
        if rows:
            await asyncio.gather(*(self._attempt(r) for r in rows))
        return len(rows)

    async def _attempt(self, row: NotificationRow) -> None:
        channel = self.channels[row.channel]
        out = Outgoing(
            notification_id=row.notification_id, message_id=row.message_id,
            recipient=row.recipient, subject=row.subject, text=row.body, html=row.html,
            order_id=row.order_id,
        )
        try:
            await channel.send(out)
        except ChannelRefused as exc:
            log.warning("notify: %s %s refused: %s", row.channel, row.notification_id, exc)
            await self.store.mark_attempt_failed(row.notification_id, row.attempts, str(exc),
                                                 None)
            return
        except ChannelDown as exc:
            retry = self.settings.retry
            delay = None if retry.exhausted(row.attempts) else retry.delay_after(row.attempts)
            reason = f"attempt {row.attempts}: {exc}"
            if delay is None:
                reason = f"gave up after {row.attempts} attempts; last: {exc}"
            log.info("notify: %s %s: %s", row.channel, row.notification_id, reason)
            await self.store.mark_attempt_failed(row.notification_id, row.attempts, reason, delay)
            return
        self.sent += 1
        await self.store.mark_sent(row.notification_id, row.attempts)

    async def dispatch_forever(self) -> None:
        """The sending loop (one per process; processes share rows safely)."""
        while True:
            try:
                claimed = await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - MariaDB blip: try again shortly
                log.exception("notify: dispatch failed; retrying")
                claimed = 0
                await asyncio.sleep(1.0)
            if claimed:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
            except TimeoutError:
                pass

    # -- delivery reports ------------------------------------------------------

    async def on_delivery_report(self, nid: str, report: int) -> bool:
        """Apply a channel's report on one notification."""
        new_status = domain.status_after_report(report)
        if new_status is None:
            return False
        reason = f"delivery report {report}" if new_status == Status.FAILED else ""
        return await self.store.apply_report(nid, new_status, reason)

    # -- reads and admin -------------------------------------------------------

    async def list_for_user(
        self, user_id: str, channel: Channel | None, size: int, token: str
    ) -> tuple[list[NotificationRow], str]:
        return await self.store.list_page(user_id=user_id, channel=channel, size=size,
                                          token=token)

    async def list_by_status(
        self, status: Status, size: int, token: str
    ) -> tuple[list[NotificationRow], str]:
        return await self.store.list_page(status=status, size=size, token=token)

    async def retry(self, nid: str) -> NotificationRow:
        """Admin retry of a FAILED notification."""
        row = await self.store.get(nid)
        if row is None:
            raise NotFound("notification not found", resource_type="notification",
                           resource_name=nid)
        if row.status != Status.FAILED:
            if row.status in (Status.QUEUED, Status.SENDING):
                return row  # already being retried (a repeated call)
            raise FailedPrecondition(
                f"only FAILED notifications are retried; this one is {row.status.value}",
                reason="NOT_FAILED",
            )
        await self.store.requeue_failed(nid)
        self.wake()
        fresh = await self.store.get(nid)
        assert fresh is not None
        return fresh

