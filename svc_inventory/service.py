"""Inventory use cases: set and read stock; reserve, commit and release the
stock of an order. Each mutating use case is one MariaDB transaction that
also queues its `inventory.stock` events (transactional outbox).

Lock order, the same in every transaction: the reservation row first, then
the stock rows item by item in item-id order (all warehouses of an item at
once). Deadlocks between our own transactions are therefore impossible; the
store still retries a transaction MariaDB aborts as a deadlock victim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol, TypeVar

import grpc
from ecom.serviceability.v1 import serviceability_pb2, serviceability_pb2_grpc
from sqlalchemy.ext.asyncio import AsyncConnection

from mesh import current_request_id, outbox
from mesh.db import utcnow
from mesh.errors import (
    Conflict,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PreconditionViolation,
)
from svc_inventory import domain
from svc_inventory.domain import (
    HeldLine,
    RequestedLine,
    ReservationState,
    StockChangeReason,
    StockSetting,
    TransitionRefused,
)
from svc_inventory.store import (
    ConcurrentClaim,
    DuplicateReservation,
    InventoryStore,
    ReservationRecord,
    StockConstraintViolated,
    StockRow,
    after_delta,
    decode_page_token,
    encode_page_token,
    stock_changed_event,
)

log = logging.getLogger(__name__)

REASON_INSUFFICIENT_STOCK = "INSUFFICIENT_STOCK"
REASON_RESERVATION_RELEASED = "RESERVATION_RELEASED"
REASON_NOT_SERVICEABLE = "NOT_SERVICEABLE"

T = TypeVar("T")


class RouteSource(Protocol):
    """Where warehouses come from: serviceability (svc_tat)."""

    async def routes(self, pincode: str) -> list[str]:
        """Warehouse ids that can ship to ``pincode`` now, fastest first."""
        ...

    async def warehouse_exists(self, warehouse_id: str) -> bool:
        """Whether the warehouse is known."""
        ...


class TatRoutes:
    """RouteSource backed by svc_tat's ListRoutes and GetWarehouse.

    Routes are cached per pincode for ``ttl`` seconds: a hot item's
    checkouts then cost no extra hop each, and a disruption still takes
    effect within seconds. Known warehouse ids are remembered for good
    (warehouses are not deleted, only closed)."""

    def __init__(self, stub: serviceability_pb2_grpc.ServiceabilityServiceStub, ttl: float) -> None:
        self.stub = stub
        self.ttl = ttl
        self._routes: dict[str, tuple[float, list[str]]] = {}
        self._known: set[str] = set()

    async def routes(self, pincode: str) -> list[str]:
        now = time.monotonic()
        cached = self._routes.get(pincode)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        resp = await self.stub.ListRoutes(serviceability_pb2.ListRoutesRequest(pincode=pincode))
        found = [r.warehouse_id for r in resp.routes]
        if self.ttl > 0:
            if len(self._routes) > 50_000:  # bound memory: pincodes are ~20k
                self._routes.clear()
            self._routes[pincode] = (now, found)
        return found

    async def warehouse_exists(self, warehouse_id: str) -> bool:
        if warehouse_id in self._known:
            return True
        try:
            await self.stub.GetWarehouse(
                serviceability_pb2.GetWarehouseRequest(warehouse_id=warehouse_id)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        self._known.add(warehouse_id)
        return True


@dataclass(frozen=True)
class Shortage:
    """A reserve line no serving warehouse can satisfy."""

    item_id: str
    wanted: int
    best: int


class _ShortOfStock(Exception):
    """Raised inside the reserve transaction to roll it back."""

    def __init__(self, shortages: list[Shortage]) -> None:
        super().__init__("insufficient stock")
        self.shortages = shortages


class InventoryService:
    """The inventory use cases."""

    def __init__(self, store: InventoryStore, routes: RouteSource) -> None:
        self.store = store
        self.route_source = routes

    # -- stock -------------------------------------------------------------
    async def set_stock(
        self, item_id: str, warehouse_id: str, available: int, request_id: str
    ) -> StockRow:
        """Set the sellable units of an item at a warehouse (reserved units
        stay as they are). A retried request id changes nothing again."""
        problems = domain.validate_set_stock(item_id, warehouse_id, available, request_id)
        if problems:
            raise InvalidArgument(violations=problems)
        if not await self.route_source.warehouse_exists(warehouse_id):
            raise NotFound(
                f"warehouse {warehouse_id!r} does not exist",
                resource_type="warehouse",
                resource_name=warehouse_id,
            )

        async def work(conn: AsyncConnection) -> StockRow:
            now = utcnow()
            first = await self.store.claim_set_stock_request(
                conn, request_id, item_id, warehouse_id, now
            )
            if first is not None and first != (item_id, warehouse_id):
                raise InvalidArgument.for_field(
                    "request_id", "was already used for another item or warehouse"
                )
            rows = (await self.store.lock_items(conn, [item_id]))[item_id]
            before = rows.get(warehouse_id)
            if first is not None and before is not None:
                return before  # retry: the first call's effect stands
            await self.store.set_available(conn, item_id, warehouse_id, available, now)
            return await self.store.record_stock_change(
                conn,
                item_id=item_id,
                warehouse_id=warehouse_id,
                available_delta=available - (before.available if before else 0),
                reason=StockChangeReason.SET,
                request_id=request_id,
                now=now,
            )

        return await self._run(work)

    async def _checked_batch(
        self, rows: Sequence[StockSetting], batch_request_id: str
    ) -> Sequence[StockSetting]:
        """A batch's rows with their derived request ids, validated, every
        warehouse known (NotFound names the first row of a missing one)."""
        if batch_request_id:
            rows = [
                r if r.request_id else replace(
                    r, request_id=domain.row_request_id(batch_request_id, i)
                )
                for i, r in enumerate(rows)
            ]
        problems = domain.validate_batch_set_stock(rows, batch_request_id)
        if problems:
            raise _invalid(problems)
        first_row: dict[str, int] = {}
        for i, r in enumerate(rows):
            first_row.setdefault(r.warehouse_id, i)
        for warehouse_id, i in first_row.items():
            if not await self.route_source.warehouse_exists(warehouse_id):
                raise NotFound(
                    f"requests[{i}].warehouse_id: warehouse {warehouse_id!r} does not exist",
                    resource_type="warehouse",
                    resource_name=warehouse_id,
                )
        return rows

    async def batch_set_stock(
        self, rows: Sequence[StockSetting], batch_request_id: str
    ) -> list[tuple[StockRow, bool]]:
        """SetStock for many rows in one transaction, all or nothing: per
        row (in request order) the row after the call and whether it was a
        replay of an already applied request id (then nothing changed and
        no event was queued). Same rules, idempotency and events as
        set_stock, with a handful of statements for the whole batch."""
        rows = await self._checked_batch(rows, batch_request_id)

        async def work(conn: AsyncConnection) -> list[tuple[StockRow, bool]]:
            now = utcnow()
            seen = await self.store.claim_set_stock_requests(
                conn,
                [(r.request_id, r.item_id, r.warehouse_id) for r in rows if r.request_id],
                now,
            )
            reused = [
                FieldViolation(
                    f"requests[{i}].request_id", "was already used for another item or warehouse"
                )
                for i, r in enumerate(rows)
                if r.request_id in seen and seen[r.request_id] != (r.item_id, r.warehouse_id)
            ]
            if reused:
                raise _invalid(reused)
            locked = await self.store.lock_items(conn, [r.item_id for r in rows])
            results: list[tuple[StockRow, bool]] = []
            changed: list[StockRow] = []
            events = []
            for r in rows:
                item_rows = locked[r.item_id]
                before = item_rows.get(r.warehouse_id)
                if r.request_id in seen and before is not None:
                    results.append((before, True))  # retry: the first effect stands
                    continue
                after = StockRow(
                    item_id=r.item_id,
                    warehouse_id=r.warehouse_id,
                    available=r.available,
                    reserved=before.reserved if before else 0,
                    sold=before.sold if before else 0,
                    version=before.version + 1 if before else 1,
                    update_time=now,
                )
                item_rows[r.warehouse_id] = after
                changed.append(after)
                # The item's rows as they are after this row's change, so
                # several rows of one item give events in order, exactly as
                # the same SetStock calls one after another would.
                events.append(
                    stock_changed_event(
                        after,
                        list(item_rows.values()),
                        available_delta=r.available - (before.available if before else 0),
                        reason=StockChangeReason.SET,
                        request_id=r.request_id,
                        now=now,
                    )
                )
                results.append((after, False))
            await self.store.set_available_many(conn, changed, now)
            await outbox.add_events(conn, events)
            return results

        for _ in range(3):
            try:
                return await self._run(work)
            except ConcurrentClaim:
                continue  # the same ids were being claimed: now they are replays
        raise Conflict("the same request ids are being applied concurrently; retry",
                       reason="CONCURRENT_CHANGE")

    async def get_item_stock(self, item_id: str) -> list[StockRow]:
        """One item's stock rows by warehouse (empty when never stocked)."""
        problems = domain.check_id("item_id", item_id)
        if problems:
            raise InvalidArgument(violations=problems)
        return (await self.store.item_stock(None, [item_id]))[item_id]

    async def get_stock(self, item_ids: Sequence[str]) -> dict[str, list[StockRow]]:
        """Stock rows per item (request order, duplicates collapsed)."""
        if not item_ids:
            raise InvalidArgument.for_field("item_ids", "at least one item is required")
        items = domain.distinct_items(item_ids)
        if len(items) > domain.MAX_BATCH_ITEMS:
            raise InvalidArgument.for_field(
                "item_ids", f"at most {domain.MAX_BATCH_ITEMS} distinct items"
            )
        problems = [
            v for i, item in enumerate(items) for v in domain.check_id(f"item_ids[{i}]", item)
        ]
        if problems:
            raise InvalidArgument(violations=problems)
        return await self.store.item_stock(None, items)

    # -- reservations ------------------------------------------------------
    async def _hold_lines(
        self,
        conn: AsyncConnection,
        lines: Sequence[RequestedLine],
        routes: list[str],
        now: datetime,
    ) -> tuple[list[HeldLine], dict[str, dict[str, StockRow]]]:
        """Take each line's units at the fastest serving warehouse that has
        them, in lock order; the lines held and the locked rows as they are
        now. Raises _ShortOfStock naming every short line (the caller's
        transaction then rolls everything back)."""
        held: list[HeldLine] = []
        shortages: list[Shortage] = []
        ordered = domain.lock_order(lines)
        locked = await self.store.lock_items(conn, [line.item_id for line in ordered])
        for line in ordered:
            rows = locked[line.item_id]
            available = {wh: row.available for wh, row in rows.items()}
            warehouse = domain.choose_warehouse(routes, available, line.quantity)
            delta = domain.reserve_delta(line.quantity)
            if warehouse is None or not await self.store.apply_delta(
                conn, line.item_id, warehouse, delta, now
            ):
                best = domain.serviceable_units(routes, available)
                shortages.append(Shortage(line.item_id, line.quantity, best))
                continue  # keep going: the error names every short line
            rows[warehouse] = after_delta(rows[warehouse], delta, now)
            held.append(HeldLine(line.item_id, warehouse, line.quantity))
        if shortages:
            raise _ShortOfStock(shortages)
        return held, locked

    async def reserve(
        self,
        order_id: str,
        lines: Sequence[RequestedLine],
        pincode: str,
        hold_expire_time: datetime | None,
    ) -> ReservationRecord:
        """Hold stock for every line, all or nothing, each line at the
        fastest serving warehouse that has the units. Idempotent by order."""
        problems = domain.validate_reserve(order_id, lines, pincode)
        if problems:
            raise InvalidArgument(violations=problems)
        # Retries are answered by the reservation row's primary key inside
        # the transaction (DuplicateReservation below), so the first attempt
        # costs no extra read.
        routes = await self.route_source.routes(pincode)
        if not routes:
            existing = await self.store.get_reservation(None, order_id)
            if existing is not None:  # a retry after the routes went away
                return _replay_reserve(existing)
            raise FailedPrecondition(
                f"no warehouse delivers to pincode {pincode}",
                reason=REASON_NOT_SERVICEABLE,
                metadata={"pincode": pincode},
            )

        async def work(conn: AsyncConnection) -> ReservationRecord:
            now = utcnow()
            await self.store.insert_reservation(
                conn,
                order_id=order_id,
                state=ReservationState.HELD,
                pincode=pincode,
                hold_expire_time=hold_expire_time,
                now=now,
            )
            # The lines go in before the stock rows are locked, each at the
            # fastest serving warehouse; a line that ends up held elsewhere
            # is moved under the lock. So a hot item's rows stay locked only
            # for the decrement, the events and the commit.
            fastest = routes[0]
            await self.store.insert_lines(
                conn, order_id, [HeldLine(ln.item_id, fastest, ln.quantity) for ln in lines]
            )
            held, locked = await self._hold_lines(conn, lines, routes, now)
            await self.store.move_lines(
                conn, order_id, [h for h in held if h.warehouse_id != fastest]
            )
            request_id = current_request_id() or ""
            await self.store.add_stock_events(
                conn,
                [
                    stock_changed_event(
                        locked[h.item_id][h.warehouse_id],
                        list(locked[h.item_id].values()),
                        available_delta=-h.quantity,
                        reason=StockChangeReason.RESERVED,
                        order_id=order_id,
                        request_id=request_id,
                        now=now,
                    )
                    for h in held
                ],
            )
            return ReservationRecord(
                order_id=order_id,
                state=ReservationState.HELD,
                lines=tuple(sorted(held, key=lambda h: h.item_id)),
                pincode=pincode,
                hold_expire_time=hold_expire_time,
                release_reason="",
                create_time=now,
                update_time=now,
            )

        try:
            return await self._run(work)
        except DuplicateReservation:
            # A concurrent Reserve (or Release) for the order won the insert.
            existing = await self.store.get_reservation(None, order_id)
            if existing is None:  # it was rolled back meanwhile: try again
                return await self.reserve(order_id, lines, pincode, hold_expire_time)
            return _replay_reserve(existing)
        except _ShortOfStock as short:
            raise FailedPrecondition(
                "not enough stock for "
                + ", ".join(f"{s.item_id} (wanted {s.wanted})" for s in short.shortages),
                reason=REASON_INSUFFICIENT_STOCK,
                violations=[
                    PreconditionViolation(
                        type="STOCK",
                        subject=s.item_id,
                        description=f"wanted {s.wanted}, at most {s.best} available "
                        f"at a warehouse delivering to {pincode}",
                    )
                    for s in short.shortages
                ],
            ) from None

    async def commit(self, order_id: str) -> ReservationRecord:
        """HELD -> COMMITTED: the held units are sold. Idempotent."""
        _check_order_id(order_id)

        async def work(conn: AsyncConnection) -> ReservationRecord:
            rec = await self.store.get_reservation(conn, order_id, for_update=True)
            if rec is None:
                raise NotFound(
                    f"no reservation for order {order_id!r}",
                    resource_type="reservation",
                    resource_name=order_id,
                )
            try:
                deltas = [domain.commit_delta(rec.state, line.quantity) for line in rec.lines]
            except TransitionRefused:
                raise _released(order_id, rec.release_reason) from None
            if rec.state is ReservationState.COMMITTED:
                return rec
            return await self._move(conn, rec, ReservationState.COMMITTED, deltas, "")

        return await self._run(work)

    async def release(self, order_id: str, reason: str) -> ReservationRecord:
        """Units back to stock (HELD or COMMITTED -> RELEASED). Idempotent;
        with no reservation yet it records a tombstone so a late Reserve
        for the order is refused."""
        _check_order_id(order_id)
        if len(reason) > domain.MAX_REASON_LENGTH:
            raise InvalidArgument.for_field(
                "reason", f"must be at most {domain.MAX_REASON_LENGTH} characters"
            )

        async def work(conn: AsyncConnection) -> ReservationRecord:
            now = utcnow()
            rec = await self.store.get_reservation(conn, order_id, for_update=True)
            if rec is None:
                await self.store.insert_reservation(
                    conn,
                    order_id=order_id,
                    state=ReservationState.RELEASED,
                    pincode="",
                    hold_expire_time=None,
                    release_reason=reason,
                    now=now,
                )
                return ReservationRecord(
                    order_id, ReservationState.RELEASED, (), "", None, reason, now, now
                )
            if rec.state is ReservationState.RELEASED:
                return rec
            deltas = [domain.release_delta(rec.state, line.quantity) for line in rec.lines]
            return await self._move(conn, rec, ReservationState.RELEASED, deltas, reason)

        for _ in range(3):
            try:
                return await self._run(work)
            except DuplicateReservation:
                continue  # a Reserve inserted the row after we looked: release it
        raise Conflict("reservation changed concurrently; retry", reason="CONCURRENT_CHANGE")

    async def get_reservation(self, order_id: str) -> ReservationRecord:
        """The reservation of an order; NotFound when there is none."""
        _check_order_id(order_id)
        rec = await self.store.get_reservation(None, order_id)
        if rec is None:
            raise NotFound(
                f"no reservation for order {order_id!r}",
                resource_type="reservation",
                resource_name=order_id,
            )
        return rec

    async def list_reservations(
        self,
        state: ReservationState | None,
        update_before: datetime | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[ReservationRecord], str]:
        """One page of reservations, oldest update first, and the next token."""
        try:
            limit = domain.page_size(page_size)
        except ValueError:
            raise InvalidArgument.for_field("page_size", "must not be negative") from None
        after = None
        if page_token:
            try:
                after = decode_page_token(page_token)
            except ValueError:
                raise InvalidArgument.for_field(
                    "page_token", "is not a token this service issued"
                ) from None
        found = await self.store.list_reservations(
            state=state, update_before=update_before, after=after, limit=limit + 1
        )
        page = found[:limit]
        token = ""
        if len(found) > limit:
            last = page[-1]
            token = encode_page_token(last.update_time, last.order_id)
        return page, token

    # -- helpers -----------------------------------------------------------
    async def _move(
        self,
        conn: AsyncConnection,
        rec: ReservationRecord,
        to: ReservationState,
        deltas: Sequence[domain.RowDelta | None],
        release_reason: str,
    ) -> ReservationRecord:
        """Apply a transition's row deltas (items in lock order), queue an
        event per row, and store the new state."""
        now = utcnow()
        reason = (
            StockChangeReason.COMMITTED
            if to is ReservationState.COMMITTED
            else StockChangeReason.RELEASED
        )
        pairs = sorted(zip(rec.lines, deltas, strict=True), key=lambda p: p[0].item_id)
        locked = await self.store.lock_items(conn, [line.item_id for line, _ in pairs])
        for line, delta in pairs:
            if delta is None:
                continue
            rows = locked[line.item_id]
            row = rows.get(line.warehouse_id)
            if row is None or not await self.store.apply_delta(
                conn, line.item_id, line.warehouse_id, delta, now
            ):
                # The row no longer holds what the reservation says it does:
                # refuse rather than let counters drift; reconciliation
                # must look at it.
                log.error(
                    "stock row out of step with reservation",
                    extra={"order_id": rec.order_id, "item_id": line.item_id},
                )
                raise Conflict(
                    f"stock of {line.item_id} at {line.warehouse_id} does not match "
                    f"reservation {rec.order_id}",
                    reason="STOCK_MISMATCH",
                )
            rows[line.warehouse_id] = after_delta(row, delta, now)
            await self.store.record_stock_change(
                conn,
                item_id=line.item_id,
                warehouse_id=line.warehouse_id,
                available_delta=delta.available,
                reason=reason,
                order_id=rec.order_id,
                request_id=current_request_id() or "",
                now=now,
                rows_after=list(rows.values()),
            )
        await self.store.update_reservation_state(conn, rec.order_id, to, now, release_reason)
        return replace(rec, state=to, release_reason=release_reason, update_time=now)

    async def _run(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        try:
            return await self.store.run(work)
        except StockConstraintViolated:
            # Only reachable through a bug: the database refused to let a
            # counter go negative. Nothing changed; say so without SQL.
            log.exception("stock CHECK constraint refused a change")
            raise Conflict(
                "the stock change was refused by a consistency check; nothing changed",
                reason="STOCK_CONSTRAINT",
            ) from None


def _invalid(problems: Sequence[FieldViolation]) -> InvalidArgument:
    """INVALID_ARGUMENT naming at most MAX_VIOLATIONS_REPORTED fields."""
    shown = list(problems[: domain.MAX_VIOLATIONS_REPORTED])
    message = "; ".join(f"{v.field}: {v.description}" for v in shown[:3])
    if len(problems) > len(shown):
        message += f" ({len(problems)} problems; the first {len(shown)} are listed)"
    elif len(problems) > 3:
        message += f" (and {len(problems) - 3} more)"
    return InvalidArgument(message, violations=shown)


def _check_order_id(order_id: str) -> None:
    problems: list[FieldViolation] = domain.check_id("order_id", order_id)
    if problems:
        raise InvalidArgument(violations=problems)


def _released(order_id: str, release_reason: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the reservation of order {order_id!r} was already released",
        reason=REASON_RESERVATION_RELEASED,
        metadata={"order_id": order_id, "release_reason": release_reason},
    )


def _replay_reserve(existing: ReservationRecord) -> ReservationRecord:
    """What a repeated Reserve answers: the reservation, unless it was
    released (then a late retry must never hold stock again)."""
    if existing.state is ReservationState.RELEASED:
        raise _released(existing.order_id, existing.release_reason)
    return existing
