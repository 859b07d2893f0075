"""``python -m infra.demo``: load the demo data into a running system and
print where to reach it.

The demo catalog (``svc_catalog.demo``: 5,000+ items over a dozen
categories) is bulk-loaded through the catalog's own store, with each item's
creation event published to Kafka. Stock for every item goes through
svc_inventory's BatchSetStock as an admin (its rules, its outbox: one
`inventory.stock` event per row), 1000 rows a call, with deterministic
request ids per row, so loading twice changes nothing (a replayed row returns
its first result instead of resetting stock that shoppers have since
bought). Progress is printed per phase as rows go in.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import grpc

from infra.core import REPO, log

# Rows per BatchSetStock call (the RPC takes up to 1000).
STOCK_BATCH = 1000


class Progress:
    """Prints `phase: done/total rows` as a phase advances: at every tenth
    of the way and at the end, so a slow load is visibly moving."""

    def __init__(self, phase: str, total: int) -> None:
        self.phase, self.total, self.done = phase, total, 0
        self.t0 = time.monotonic()
        self.next_mark = 0.1

    def advance(self, rows: int, note: str = "") -> None:
        self.done += rows
        if self.done >= self.total or self.done >= self.next_mark * self.total:
            while self.next_mark * self.total <= self.done:
                self.next_mark += 0.1
            log(f"demo: {self.phase} {self.done}/{self.total} rows"
                f"{' (' + note + ')' if note else ''}, {time.monotonic() - self.t0:.1f}s")


async def load_stock(inventory_addr: str, *, batch: int = STOCK_BATCH,
                     concurrency: int = 2) -> tuple[int, int]:
    """Set every demo item's stock through BatchSetStock as an admin, in
    batches of `batch` rows; returns (rows, rows replayed from an earlier
    load). Row request ids are deterministic, so a second load changes
    nothing."""
    from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc

    from mesh.auth import Caller, encode_jwt_payload
    from svc_catalog.demo import demo_item_ids, demo_stock

    admin = (("x-jwt-payload", encode_jwt_payload(Caller("demo-loader", frozenset({"admin"})))),)
    plan = [
        inventory_pb2.SetStockRequest(item_id=item, warehouse_id=wh, available=qty,
                                      request_id=f"demo-stock-{item}-{wh}")
        for item in demo_item_ids() for wh, qty in demo_stock(item).items()
    ]
    batches = [plan[i:i + batch] for i in range(0, len(plan), batch)]
    progress = Progress("stock", len(plan))
    replayed = 0
    sem = asyncio.Semaphore(concurrency)
    from mesh.config import grpc_target

    async with grpc.aio.insecure_channel(grpc_target(inventory_addr)) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)

        async def one(rows: list[inventory_pb2.SetStockRequest]) -> None:
            nonlocal replayed
            async with sem:
                resp = await stub.BatchSetStock(
                    inventory_pb2.BatchSetStockRequest(requests=rows), metadata=admin, timeout=60)
            replayed += sum(r.replayed for r in resp.results)
            progress.advance(len(rows), f"{replayed} already set" if replayed else "")

        await asyncio.gather(*(one(b) for b in batches))
    return len(plan), replayed


def main() -> int:
    import mesh

    settings = mesh.load_settings()
    t0 = time.monotonic()
    log("demo: catalog (items into svc_catalog's store, their events to Kafka)")
    subprocess.run([sys.executable, "-m", "svc_catalog.demo"], cwd=REPO, check=True)
    t1 = time.monotonic()
    log(f"demo: catalog done in {t1 - t0:.1f}s; stock through svc_inventory's BatchSetStock")
    n, replayed = asyncio.run(load_stock(settings.addr_of("inventory")))
    t2 = time.monotonic()
    log(f"demo: stock done in {t2 - t1:.1f}s ({n} rows, {n - replayed} set, "
        f"{replayed} already set by an earlier load)")
    log(f"demo: demo data ready in {t2 - t0:.1f}s")
    edge = f"http://127.0.0.1:{settings.edge_port}"
    from svc_catalog.demo import demo_item_ids

    item = demo_item_ids()[0]
    from infra import stack

    mailpit = stack.env()["ECOM_MAILPIT_URL"]
    print(f"""
ecom is up. The REST edge: {edge}   (OpenAPI: {edge}/openapi.json)
The storefront: {edge}/   (the operations page, for admins: {edge}/#/ops)

  curl -s {edge}/healthz
  curl -s '{edge}/v1/warehouses'
  curl -s '{edge}/v1/items:batchGet?item_ids={item}'
  curl -s '{edge}/v1/serviceability?item_id={item}&pincode=560001'
  curl -s -XPOST {edge}/v1/users -d '{{"email":"shopper@example.com",
       "password":"correct horse","name":"Demo Shopper","requestId":"signup-1"}}'
  curl -s -XPOST {edge}/v1/auth:login \\
       -d '{{"email":"shopper@example.com","password":"correct horse"}}'

The first admin comes from ECOM_ADMIN_EMAIL / ECOM_ADMIN_PASSWORD
(local defaults admin@ecom.local / ecom-admin-local).
Order emails land in Mailpit: curl -s {mailpit}/api/v1/messages
(after login: curl -s -H "Authorization: Bearer $TOKEN" {edge}/v1/users/me/notifications);
SMS reach Kannel's fake SMSC, logged in .stack/logs/kannel.log ("Got message").
Services speak gRPC on 127.0.0.1:50051-50061 (grpcurl -plaintext ADDR list);
Envoy's admin interface is on 127.0.0.1:19901. `make status` shows everything; `make down` stops it.
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
