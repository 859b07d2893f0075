"""Search: the indexer that consumes catalog.items and inventory.stock into
Elasticsearch, and the Search API that annotates each hit with
deliverability for the shopper's pincode.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``).
"""
