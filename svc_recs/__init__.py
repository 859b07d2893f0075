"""Recommendations per user and per category, served from Cassandra, trained by
Spark ALS in pipelines/.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``). The modules are added with the issue
that implements the service; the contract is already in ``proto/``.
"""
