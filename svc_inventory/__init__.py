"""Inventory: stock per item and warehouse, all-or-nothing reservations, on
MariaDB with CHECK constraints.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``).
"""
