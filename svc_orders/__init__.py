"""Orders: order taking and processing, hold expiry, reconciliation, archival
to Cassandra and the merged order history.

Every service has the same shape (see docs/architecture.md): ``domain.py`` (pure
rules, no I/O), ``store.py`` (persistence), ``service.py`` (use cases),
``api.py`` (the gRPC servicer), ``consumers.py`` (Kafka handlers) and
``main.py`` (wiring through ``mesh``); ``codec.py`` turns stored orders into
the contract's messages. Archival and history live in their own modules:
``archive.py`` (the archiver), ``archive_store.py`` (Cassandra, schema in
``cql/``) and ``history.py`` (live + archived reads, OrderHistoryService);
see docs/orderhistory.md.
"""
