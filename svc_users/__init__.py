"""Users: sign up, login (JWT issuing with a published JWKS), profiles and
addresses on MariaDB with a Redis read-through cache.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``).
"""
