"""A scripted shop history for the recommendations tests: catalog items in
svc_catalog, stock in svc_inventory, and the interaction events on Kafka,
which the streaming job lands in a lake the training job reads."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from ecom.catalog.v1 import catalog_pb2, catalog_pb2_grpc
from ecom.events.v1 import events_pb2
from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2 as spb
from ecom.serviceability.v1 import serviceability_pb2_grpc
from google.protobuf import struct_pb2
from google.type import money_pb2

from infra.core import REPO, tail
from mesh.auth import Caller, encode_jwt_payload
from mesh.kafka import OutgoingEvent, ensure_topics, make_admin, make_producer, publish
from tests.integration import analytics_support as ev

ADMIN = (("x-jwt-payload", encode_jwt_payload(Caller("admin-1", frozenset({"admin"})))),)
WAREHOUSE = "blr-1"


def warehouses_server() -> tuple[grpc.Server, str]:
    """A serviceability stand-in inventory asks when stock is set."""
    from concurrent.futures import ThreadPoolExecutor

    server = grpc.server(ThreadPoolExecutor(max_workers=2))
    serviceability_pb2_grpc.add_ServiceabilityServiceServicer_to_server(Warehouses(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def caller(user_id: str) -> tuple[tuple[str, str], ...]:
    return (("x-jwt-payload", encode_jwt_payload(Caller(user_id, frozenset({"customer"})))),)


class Warehouses(serviceability_pb2_grpc.ServiceabilityServiceServicer):
    """The one RPC inventory asks serviceability when stock is set."""

    def GetWarehouse(self, request: Any, context: Any) -> Any:  # noqa: N802
        return spb.Warehouse(warehouse_id=request.warehouse_id, name=request.warehouse_id)


@dataclass
class History:
    """Who bought what: phone fans, book fans, and user A who bought phones."""

    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])

    def __post_init__(self) -> None:
        self.phones = [f"rx-phone-{n}-{self.tag}" for n in range(6)]
        self.books = [f"rx-book-{n}-{self.tag}" for n in range(6)]
        self.user_a = f"rx-a-{self.tag}"
        self.phone_fans = [f"rx-pf{n}-{self.tag}" for n in range(8)]
        self.book_fans = [f"rx-bf{n}-{self.tag}" for n in range(8)]
        # Bought by A; and a phone A's taste points at (bought by the fans
        # who bought A's phones), out of stock everywhere.
        self.a_bought = self.phones[:2]
        self.out_of_stock = self.phones[2]

    def category_of(self, item: str) -> str:
        return "mobiles" if item in self.phones else "books"

    def purchases(self) -> dict[str, list[str]]:
        out = {self.user_a: list(self.a_bought)}
        for n, u in enumerate(self.phone_fans):
            out[u] = [self.phones[(n + k) % 6] for k in range(3)]
        for n, u in enumerate(self.book_fans):
            out[u] = [self.books[(n + k) % 6] for k in range(3)]
        return out

    def events(self, start: datetime) -> list[OutgoingEvent]:
        envs: list[tuple[str, events_pb2.EventEnvelope]] = []
        for item in self.phones + self.books:
            envs.append(("catalog.items", ev.item_upserted(
                item, self.category_of(item), 1_000_000, at=start - timedelta(days=1))))
        minute = 0
        for user, items in self.purchases().items():
            minute += 1
            order = f"o-{uuid.uuid4().hex[:10]}"
            lines = [(i, 1, 1_000_000) for i in items]
            envs.append(("orders.lifecycle", ev.order_transition(
                order, "", "CREATED", lines, at=start + timedelta(minutes=minute),
                user_id=user)))
            envs.append(("orders.lifecycle", ev.order_transition(
                order, "CREATED", "PLACED", lines, at=start + timedelta(minutes=minute, seconds=5),
                user_id=user)))
        envs.append(("cart.events", ev.envelope("wishlist_item_added", events_pb2.WishlistItemAdded(
            user_id=self.user_a, item_id=self.phones[3]), at=start + timedelta(minutes=minute + 1),
            key=self.user_a)))
        return [as_outgoing(topic, e) for topic, e in envs]


def as_outgoing(topic: str, env: events_pb2.EventEnvelope) -> OutgoingEvent:
    return OutgoingEvent(topic=topic, key=env.entity_key.encode(),
                         payload=env.SerializeToString(), event_id=env.event_id,
                         event_type=env.event_type)


def send(bootstrap: str, prefix: str, events: list[OutgoingEvent]) -> None:
    from pipelines.events import TOPICS

    ensure_topics(make_admin(bootstrap), list(TOPICS), prefix=prefix)
    prefixed = [OutgoingEvent(topic=prefix + e.topic, key=e.key, payload=e.payload,
                              event_id=e.event_id, event_type=e.event_type) for e in events]
    reports = asyncio.run(publish(make_producer(bootstrap), prefixed))
    assert all(r.delivered for r in reports)


def load_catalog_and_stock(catalog_addr: str, inventory_addr: str, history: History) -> None:
    """Every item in the catalog, in stock except the out-of-stock phone."""
    with grpc.insecure_channel(catalog_addr) as ch:
        stub = catalog_pb2_grpc.CatalogServiceStub(ch)
        for item in history.phones + history.books:
            attrs = struct_pb2.Struct()
            if item in history.phones:
                attrs.update({"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5})
            else:
                attrs.update({"author": "A. Writer", "language": "english"})
            stub.CreateItem(catalog_pb2.CreateItemRequest(
                item_id=item, item=catalog_pb2.Item(
                    title=f"Title of {item}", category=history.category_of(item), brand="Acme",
                    price=money_pb2.Money(currency_code="INR", units=10_000),
                    attributes=attrs)), metadata=ADMIN, timeout=30)
    with grpc.insecure_channel(inventory_addr) as ch:
        inv = inventory_pb2_grpc.InventoryServiceStub(ch)
        for item in history.phones + history.books:
            units = 0 if item == history.out_of_stock else 10
            inv.SetStock(inventory_pb2.SetStockRequest(
                item_id=item, warehouse_id=WAREHOUSE, available=units,
                request_id=str(uuid.uuid4())), metadata=ADMIN, timeout=30)


def run_training(env: dict[str, str], log: Path, timeout: float = 600) -> dict[str, Any]:
    """``python -m pipelines.recs --once``; its JSON line."""
    import json

    with open(log, "ab") as err:
        proc = subprocess.run([sys.executable, "-m", "pipelines.recs", "--once"], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=err, timeout=timeout,
                              start_new_session=True)
    assert proc.returncode == 0, f"training exited with {proc.returncode}:\n{tail(log, 60)}"
    return dict(json.loads(proc.stdout.decode().strip().splitlines()[-1]))


def recent(hours: float) -> datetime:
    return (datetime.now(UTC) - timedelta(hours=hours)).replace(microsecond=0)
