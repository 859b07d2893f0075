"""``python -m infra.demo``: load the demo data into a running system and
print where to reach it.

The demo catalog (``svc_catalog.demo``: 5,000+ items over a dozen
categories) is bulk-loaded through the catalog's own store, with each item's
creation event pending so the catalog relays it to Kafka. Stock for every
item goes through svc_inventory's SetStock as an admin, with deterministic
request ids, so loading twice changes nothing (a retried SetStock returns its
first result instead of resetting stock that shoppers have since bought).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import grpc

from infra.core import REPO, log


async def load_stock(inventory_addr: str, concurrency: int = 16) -> int:
    """SetStock for every demo item and warehouse; returns the calls made."""
    from ecom.inventory.v1 import inventory_pb2, inventory_pb2_grpc

    from mesh.auth import Caller, encode_jwt_payload
    from svc_catalog.demo import demo_item_ids, demo_stock

    admin = (("x-jwt-payload", encode_jwt_payload(Caller("demo-loader", frozenset({"admin"})))),)
    plan = [(item, wh, qty) for item in demo_item_ids() for wh, qty in demo_stock(item).items()]
    sem = asyncio.Semaphore(concurrency)
    async with grpc.aio.insecure_channel(inventory_addr) as channel:
        stub = inventory_pb2_grpc.InventoryServiceStub(channel)

        async def one(item: str, wh: str, qty: int) -> None:
            async with sem:
                await stub.SetStock(
                    inventory_pb2.SetStockRequest(item_id=item, warehouse_id=wh, available=qty,
                                                  request_id=f"demo-stock-{item}-{wh}"),
                    metadata=admin, timeout=30)

        await asyncio.gather(*(one(*p) for p in plan))
    return len(plan)


def main() -> int:
    import mesh

    settings = mesh.load_settings()
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-m", "svc_catalog.demo"], cwd=REPO, check=True)
    log("demo: loading stock through svc_inventory")
    n = asyncio.run(load_stock(settings.addr_of("inventory")))
    log(f"demo: {n} stock rows set; demo data ready in {time.monotonic() - t0:.1f}s")
    edge = f"http://127.0.0.1:{settings.edge_port}"
    from svc_catalog.demo import demo_item_ids

    item = demo_item_ids()[0]
    print(f"""
ecom is up. The REST edge: {edge}   (OpenAPI: {edge}/openapi.json)

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
Services speak gRPC on 127.0.0.1:50051-50061 (grpcurl -plaintext ADDR list);
Envoy's admin interface is on 127.0.0.1:19901. `make status` shows everything; `make down` stops it.
""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
