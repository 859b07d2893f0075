"""Building event envelopes as the services publish them, and running the
streaming analytics job as a process, for the analytics tests and benchmark."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ecom.catalog.v1 import catalog_pb2
from ecom.events.v1 import events_pb2
from ecom.orders.v1 import orders_pb2
from ecom.payments.v1 import payments_pb2

from infra.core import REPO, tail
from mesh import money
from mesh.kafka import OutgoingEvent
from tests.waiting import wait_until

STATES = {
    "CREATED": orders_pb2.ORDER_STATE_CREATED,
    "PLACED": orders_pb2.ORDER_STATE_PLACED,
    "CANCELLED": orders_pb2.ORDER_STATE_CANCELLED,
    "": orders_pb2.ORDER_STATE_UNSPECIFIED,
}


def envelope(case: str, payload: Any, *, at: datetime, key: str,
             event_id: str | None = None, version: int = 0) -> events_pb2.EventEnvelope:
    env = events_pb2.EventEnvelope(
        event_id=event_id or str(uuid.uuid4()),
        event_type=f"ecom.events.v1.{type(payload).__name__}",
        entity_key=key, entity_version=version, producer="tests")
    env.occurred_at.FromDatetime(at)
    getattr(env, case).CopyFrom(payload)
    return env


def item_upserted(item_id: str, category: str, price_paise: int, *,
                  at: datetime) -> events_pb2.EventEnvelope:
    item = catalog_pb2.Item(item_id=item_id, title=item_id, category=category, version=1,
                            price=money.from_paise(price_paise))
    return envelope("item_upserted", events_pb2.ItemUpserted(item=item, created=True),
                    at=at, key=item_id, version=1)


def order_transition(order_id: str, frm: str, to: str, lines: list[tuple[str, int, int]], *,
                     at: datetime, event_id: str | None = None,
                     user_id: str = "u-1") -> events_pb2.EventEnvelope:
    """``lines``: (item_id, quantity, unit price in paise)."""
    order = orders_pb2.Order(order_id=order_id, user_id=user_id, state=STATES[to])
    total = 0
    for item_id, qty, unit in lines:
        order.lines.add(item_id=item_id, quantity=qty, unit_price=money.from_paise(unit),
                        line_total=money.from_paise(unit * qty))
        total += unit * qty
    order.total.CopyFrom(money.from_paise(total))
    order.item_count = sum(q for _, q, _ in lines)
    payload = events_pb2.OrderTransitioned(
        order_id=order_id, user_id=user_id, from_state=STATES[frm], to_state=STATES[to],
        order=order)
    return envelope("order_transitioned", payload, at=at, key=order_id, event_id=event_id)


def payment_refunded(order_id: str, paid_paise: int, refund_paise: int, *,
                     at: datetime) -> events_pb2.EventEnvelope:
    pay = payments_pb2.Payment(payment_id=f"pay-{order_id}", order_id=order_id,
                               amount=money.from_paise(paid_paise),
                               status=payments_pb2.PAYMENT_STATUS_PARTIALLY_REFUNDED)
    refund = payments_pb2.Refund(refund_id=f"rf-{uuid.uuid4().hex[:8]}",
                                 amount=money.from_paise(refund_paise))
    return envelope("payment_refunded", events_pb2.PaymentRefunded(payment=pay, refund=refund),
                    at=at, key=order_id)


def cart_added(user_id: str, item_id: str, qty: int, *, at: datetime,
               event_id: str | None = None) -> events_pb2.EventEnvelope:
    return envelope("cart_item_added", events_pb2.CartItemAdded(
        user_id=user_id, item_id=item_id, quantity=qty, line_quantity=qty),
        at=at, key=user_id, event_id=event_id)


def cart_removed(user_id: str, item_id: str, *, at: datetime) -> events_pb2.EventEnvelope:
    return envelope("cart_item_removed", events_pb2.CartItemRemoved(
        user_id=user_id, item_id=item_id, quantity=1), at=at, key=user_id)


def searched(query: str, hits: int, *, at: datetime) -> events_pb2.EventEnvelope:
    return envelope("search_query_recorded", events_pb2.SearchQueryRecorded(
        query=query, total_size=hits), at=at, key="anon")


TOPIC_OF = {
    "item_upserted": "catalog.items", "order_transitioned": "orders.lifecycle",
    "payment_refunded": "payments.events", "cart_item_added": "cart.events",
    "cart_item_removed": "cart.events", "search_query_recorded": "search.queries",
}


def outgoing(env: events_pb2.EventEnvelope, prefix: str) -> OutgoingEvent:
    topic = prefix + TOPIC_OF[env.WhichOneof("payload") or ""]
    return OutgoingEvent(topic=topic, key=env.entity_key.encode(),
                         payload=env.SerializeToString(), event_id=env.event_id,
                         event_type=env.event_type)


@dataclass
class JobRunner:
    """Runs ``python -m pipelines.analytics`` as a process for one test run."""

    env: dict[str, str]
    log: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, *, once: bool, **extra: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "pipelines.analytics"] + (["--once"] if once else [])
        with open(self.log, "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                    env={**self.env, **extra}, start_new_session=True)
        self.procs.append(proc)
        return proc

    def run_once(self, timeout: float = 400, extra: dict[str, str] | None = None) -> None:
        proc = self.start(once=True, **(extra or {}))
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill(proc)
            raise AssertionError(f"analytics job still running after {timeout}s:\n"
                                 f"{tail(self.log, 40)}") from None
        assert code == 0, f"analytics job exited with {code}:\n{tail(self.log, 60)}"

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """kill -9 of the job and its Spark JVM (its own process group)."""
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
                proc.wait()


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.5) -> Any:
    """Poll ``predicate`` until truthy (tests/waiting.py)."""
    return wait_until(predicate, what, timeout=timeout, interval=interval)
