"""Serviceability and turnaround time: a precomputed warehouse x pincode
matrix, cached, answering deliverable? and when.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``), plus ``warehouses.py`` (the
warehouse network as data). The matrix itself is built by
``pipelines/serviceability.py``.
"""
