"""Use cases of svc_tat: checks, routes, warehouses, disruptions, refresh.

The service combines the precomputed matrix (Redis, via
:class:`svc_tat.store.MatrixStore`), the disruption overlay (kept in memory,
fed by ``serviceability.invalidations`` and reloaded from Redis), and stock
from svc_inventory (cached here, invalidated by ``inventory.stock``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc
from ecom.events.v1 import events_pb2
from ecom.inventory.v1 import inventory_pb2
from ecom.serviceability.v1 import serviceability_pb2 as pb
from ecom.users.v1 import users_pb2, users_pb2_grpc
from google.protobuf.timestamp_pb2 import Timestamp

from mesh import events, tasks
from mesh.auth import Caller
from mesh.errors import InvalidArgument, NotFound, Unavailable
from svc_tat import domain
from svc_tat.store import DisruptionStore, MatrixNotReady, MatrixStore
from svc_tat.warehouses import WarehouseConfig

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
StockMap = dict[str, dict[str, int]]


def system_clock() -> dt.datetime:
    """The real time, timezone-aware."""
    return dt.datetime.now(dt.UTC)


def frozen_clock(at: dt.datetime) -> Clock:
    """A clock stuck at ``at`` (ECOM_TAT_CLOCK, tests only)."""
    frozen = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
    return lambda: frozen


def _dt(ts: Timestamp, present: bool) -> dt.datetime | None:
    return ts.ToDatetime(tzinfo=dt.UTC) if present else None


def rule_of(d: pb.Disruption) -> domain.DisruptionRule:
    """The domain view of a Disruption message."""
    return domain.DisruptionRule(
        disruption_id=d.disruption_id,
        kind=domain.DisruptionKind(d.kind),
        warehouse_id=d.warehouse_id.strip(),
        state=d.state.strip(),
        pincodes=tuple(p.strip() for p in d.pincodes),
        start=_dt(d.start_time, d.HasField("start_time")),
        end=_dt(d.end_time, d.HasField("end_time")),
        cleared=_dt(d.clear_time, d.HasField("clear_time")),
    )


# --------------------------------------------------------------------------
# Stock from svc_inventory, cached
# --------------------------------------------------------------------------

FetchStock = Callable[[Sequence[str]], Awaitable[StockMap]]


class StockCache:
    """Per-item stock by warehouse, fetched in batches from inventory.

    Entries live ``ttl`` seconds at most and are dropped at once when an
    ``inventory.stock`` event names the item. When inventory cannot be
    reached, :meth:`get` returns None: the contract then says stock is not
    considered."""

    def __init__(self, fetch: FetchStock, *, ttl: float = 30.0, backoff: float = 3.0) -> None:
        self.fetch = fetch
        self.ttl = ttl
        # After a failure, skip inventory this long: every check would
        # otherwise pay the failed call's latency while inventory is down.
        self.backoff = backoff
        self._down_until = 0.0
        self._entries: dict[str, tuple[float, dict[str, int]]] = {}

    async def get(self, item_ids: Sequence[str]) -> StockMap | None:
        now = time.monotonic()
        found: StockMap = {}
        missing = []
        for item in item_ids:
            entry = self._entries.get(item)
            if entry is not None and now - entry[0] < self.ttl:
                found[item] = entry[1]
            else:
                missing.append(item)
        if missing:
            if now < self._down_until:
                return None
            try:
                fetched = await self.fetch(missing)
            except grpc.aio.AioRpcError as exc:
                log.warning("inventory unavailable; stock not considered",
                            extra={"code": exc.code().name})
                self._down_until = time.monotonic() + self.backoff
                return None
            for item in missing:
                stock = fetched.get(item, {})
                self._entries[item] = (now, stock)
                found[item] = stock
        return found

    def invalidate(self, item_id: str) -> None:
        """Forget an item (its stock changed)."""
        self._entries.pop(item_id, None)

    def clear(self) -> None:
        self._entries.clear()


def inventory_fetcher(stub: object, timeout: float) -> FetchStock:
    """A FetchStock over InventoryService.BatchGetStock (500 ids per call)."""

    async def fetch(item_ids: Sequence[str]) -> StockMap:
        out: StockMap = {}
        for start in range(0, len(item_ids), 500):
            resp = await stub.BatchGetStock(  # type: ignore[attr-defined]
                inventory_pb2.BatchGetStockRequest(item_ids=list(item_ids[start : start + 500])),
                timeout=timeout,
            )
            for item in resp.items:
                out[item.item_id] = {w.warehouse_id: int(w.available) for w in item.warehouses}
        return out

    return fetch


# --------------------------------------------------------------------------
# The caller's default pincode, from svc_users
# --------------------------------------------------------------------------

DefaultPincode = Callable[[Caller | None], Awaitable[str]]


class DefaultAddressPincode:
    """The pincode of the caller's default address, read from svc_users with
    ``ListAddresses`` (the contract's fallback when a check names no pincode).

    Every way of not knowing the pincode is an answer the client can act on:
    anonymous or no default address -> INVALID_ARGUMENT on ``pincode`` (pass
    one); svc_users unreachable or failing -> UNAVAILABLE, retry in a second
    or pass a pincode."""

    def __init__(self, users: users_pb2_grpc.UserServiceStub) -> None:
        self.users = users

    async def __call__(self, caller: Caller | None) -> str:
        if caller is None:
            # Not UNAUTHENTICATED: signing in is not needed, a pincode is.
            raise InvalidArgument.for_field(
                "pincode", "is required when the caller is not signed in "
                "(there is no default address to use)")
        try:
            # Default first (users' contract), and one page holds the
            # per-user limit, so the first page is enough.
            resp = await self.users.ListAddresses(
                users_pb2.ListAddressesRequest(user_id=caller.user_id))
        except grpc.aio.AioRpcError as exc:
            # Whatever users answered, we cannot tell the default address;
            # the client can still get an answer by naming the pincode.
            raise Unavailable("cannot read the caller's addresses; pass a pincode",
                              retry_after=1) from exc
        for address in resp.addresses:
            if address.is_default:
                return str(address.pincode)
        raise InvalidArgument.for_field(
            "pincode", "is required: the caller has no default address")


# --------------------------------------------------------------------------
# The service
# --------------------------------------------------------------------------

Publish = Callable[[events_pb2.EventEnvelope], Awaitable[None]]
Rebuild = Callable[[bool], Awaitable[object | None]]


@dataclass(frozen=True)
class ItemAnswer:
    """The verdict for one item at one pincode."""

    item_id: str
    pincode: str
    verdict: domain.Verdict


class TatService:
    """Serviceability use cases (see the module doc)."""

    def __init__(
        self,
        *,
        warehouses: Sequence[WarehouseConfig],
        matrix: MatrixStore,
        disruptions: DisruptionStore,
        stock: StockCache,
        publish: Publish,
        rebuild: Rebuild,
        clock: Clock = system_clock,
    ) -> None:
        self.warehouses = {w.warehouse_id: w for w in warehouses}
        self.terms = {
            w.warehouse_id: domain.WarehouseTerms(w.warehouse_id, w.cutoff_hour, w.processing_days)
            for w in warehouses
        }
        self.matrix = matrix
        self.disruptions = disruptions
        self.stock = stock
        self.publish = publish
        self._rebuild = rebuild
        self.clock = clock
        self.overlay = domain.Overlay()

    # -- matrix ------------------------------------------------------------
    async def ensure_matrix(self) -> None:
        """Build the matrix when no version exists yet (start-up)."""
        await self._rebuild(True)
        await self.matrix.refresh_version()

    async def rebuild_matrix(self) -> None:
        """Rebuild now and tell every instance (MATRIX_REBUILT)."""
        report = await self._rebuild(False)
        await self.matrix.refresh_version()
        if report is not None:
            await self.publish(self._envelope(
                "matrix",
                events_pb2.ServiceabilityInvalidated(
                    change=events_pb2.INVALIDATION_CHANGE_MATRIX_REBUILT),
            ))

    async def _row(self, pincode: str) -> domain.PinRow:
        try:
            row = await self.matrix.row(pincode)
        except MatrixNotReady as exc:
            raise Unavailable(str(exc), reason="MATRIX_NOT_READY", retry_after=5) from None
        if row is None:
            raise NotFound(
                f"pincode {pincode} is not a known Indian pincode",
                reason="PINCODE_NOT_FOUND",
                resource_type="pincode",
                resource_name=pincode,
            )
        return row

    # -- checks --------------------------------------------------------------
    async def routes(self, pincode: str) -> domain.Routes:
        """Routes to a validated pincode, after disruptions; stock ignored."""
        row = await self._row(pincode)
        return domain.routes_for(
            pincode, row, self.matrix.columns, self.terms, self.overlay, self.clock()
        )

    async def check(
        self, item_ids: Sequence[str], pincode: str, quantity: int = 1
    ) -> list[ItemAnswer]:
        """Deliverability of each item (distinct, in order) to ``pincode``."""
        routes = await self.routes(pincode)
        # Without live routes stock cannot change the verdict: skip inventory.
        stock = await self.stock.get(item_ids) if routes.live else None
        answers = []
        for item in item_ids:
            item_stock = None if stock is None else stock.get(item, {})
            answers.append(ItemAnswer(item, pincode, domain.choose(routes, item_stock, quantity)))
        return answers

    # -- warehouses -----------------------------------------------------------
    def warehouse_status(self, warehouse_id: str) -> bool:
        """True when the warehouse is open now."""
        return warehouse_id not in self.overlay.closed_warehouses(self.clock())

    def get_warehouse(self, warehouse_id: str) -> WarehouseConfig:
        w = self.warehouses.get(warehouse_id)
        if w is None:
            raise NotFound(
                f"warehouse {warehouse_id!r} does not exist",
                reason="WAREHOUSE_NOT_FOUND",
                resource_type="warehouse",
                resource_name=warehouse_id,
            )
        return w

    def list_warehouses(self, after_id: str, limit: int) -> tuple[list[WarehouseConfig], bool]:
        """A page ordered by id after ``after_id``; and whether more follow."""
        ordered = [self.warehouses[k] for k in sorted(self.warehouses) if k > after_id]
        return ordered[:limit], len(ordered) > limit

    # -- disruptions -----------------------------------------------------------
    async def create_disruption(self, d: pb.Disruption, request_id: str) -> pb.Disruption:
        """Validate, store, apply locally and broadcast a disruption."""
        domain.validate_disruption(rule_of(d), self.warehouses)
        stored, created = await self.disruptions.create(d, request_id, self.clock())
        self.overlay = self.overlay.with_rule(rule_of(stored))
        if created:
            await self._announce(stored, events_pb2.INVALIDATION_CHANGE_RAISED, request_id)
        return stored

    async def clear_disruption(self, disruption_id: str, request_id: str) -> pb.Disruption:
        """Lift a disruption (idempotent) and broadcast it."""
        try:
            cleared, changed = await self.disruptions.clear(disruption_id, self.clock())
        except KeyError:
            raise NotFound(
                f"disruption {disruption_id!r} does not exist",
                reason="DISRUPTION_NOT_FOUND",
                resource_type="disruption",
                resource_name=disruption_id,
            ) from None
        self.overlay = self.overlay.with_rule(rule_of(cleared))
        if changed:
            await self._announce(cleared, events_pb2.INVALIDATION_CHANGE_CLEARED, request_id)
        return cleared

    async def list_disruptions(self, active_only: bool) -> list[pb.Disruption]:
        """Every disruption (or only those in force), newest first."""
        items = await self.disruptions.all()
        if active_only:
            now = self.clock()
            items = [d for d in items if rule_of(d).in_force(now)]
        return items

    async def reload_overlay(self) -> None:
        """Rebuild the overlay from the store (start-up, periodic safety net
        for an event lost between the store write and the broadcast)."""
        now = self.clock()
        rules = tuple(
            rule_of(d) for d in await self.disruptions.all()
            if not d.HasField("clear_time") and not _ended(d, now)
        )
        self.overlay = domain.Overlay(rules)

    # -- events -----------------------------------------------------------------
    async def on_invalidation(self, event: events_pb2.ServiceabilityInvalidated) -> None:
        """Apply a broadcast from any instance (including this one)."""
        if event.change == events_pb2.INVALIDATION_CHANGE_MATRIX_REBUILT:
            await self.matrix.refresh_version()
        elif event.HasField("disruption") and event.disruption.disruption_id:
            self.overlay = self.overlay.with_rule(rule_of(event.disruption))

    def on_stock_changed(self, event: events_pb2.StockChanged) -> None:
        """Stock of an item moved: forget what we cached for it."""
        self.stock.invalidate(event.item_id)

    async def _announce(
        self, d: pb.Disruption, change: events_pb2.InvalidationChange, request_id: str
    ) -> None:
        envelope = self._envelope(
            d.disruption_id,
            events_pb2.ServiceabilityInvalidated(change=change, disruption=d),
            request_id,
        )
        try:
            await self.publish(envelope)
        except Exception:  # noqa: BLE001 - stored already; peers' periodic reload catches up
            log.exception("could not broadcast disruption; peers catch up on reload")

    def _envelope(
        self, key: str, payload: events_pb2.ServiceabilityInvalidated, request_id: str = ""
    ) -> events_pb2.EventEnvelope:
        return events.envelope(
            "serviceability_invalidated",
            payload,
            entity_key=key,
            producer="svc_tat",
            occurred_at=self.clock(),
            request_id=request_id,
        )


def _ended(d: pb.Disruption, now: dt.datetime) -> bool:
    return d.HasField("end_time") and d.end_time.ToDatetime(tzinfo=dt.UTC) <= now


# Periodic jobs (mesh.tasks).
every = tasks.every

