"""Kafka handlers of the inventory service: none yet.

Inventory consumes no topic. Orders drives reservations synchronously over
gRPC (Reserve at checkout, Commit on payment, Release on failure, expiry or
cancellation), because a checkout must know at once whether stock was held.
What inventory tells others goes out through the outbox as `StockChanged`
on `inventory.stock` (see :mod:`svc_inventory.store`).
"""
