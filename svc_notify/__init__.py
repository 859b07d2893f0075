"""Notifications: one API over email and SMS channels, with a record of what
was sent to each user.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``). The modules are added with the issue
that implements the service; the contract is already in ``proto/``.
"""
