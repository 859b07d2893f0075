"""Kafka handlers of the payments service: none.

Payments consumes no topic. Orders calls it over gRPC (CreatePayment at
PayOrder, RefundPayment on cancellation or a late success after expiry),
because a checkout must know at once whether the money was taken. What
payments tells others goes out through the outbox on ``payments.events``
(see :mod:`svc_payments.store`); the gateway's own late answers arrive as
callbacks (:mod:`svc_payments.gateway`), not as Kafka messages.
"""
