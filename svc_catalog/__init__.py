"""Item service: the catalog's source of truth on the MongoDB-wire server
(FerretDB), with supplier inbound feeds.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``); ``codec.py`` translates to and from
protobuf and feed formats, ``demo.py`` generates and loads the demo catalog.
"""
