"""Alembic environment for svc_users.

Migrations run in-process at service start-up (``svc_users.store.migrate``),
which hands over an open connection in ``config.attributes["connection"]``.
For the ``alembic`` command line, set ``sqlalchemy.url`` to a synchronous
URL (``mysql+pymysql://root@127.0.0.1:13306/users``) with ``-x url=...``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Upgrade on the connection given by the caller, or on ``-x url=``."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("no connection: run via svc_users.store.migrate or pass -x url=...")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


main()
