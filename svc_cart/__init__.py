"""Cart and wishlist on MariaDB; changes go to cart.events for recommendations.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``).
"""
