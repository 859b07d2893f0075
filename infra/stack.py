"""The set of servers that make up the local stack, their project ports, and
the environment that points services at them."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from infra.core import InfraError, Server, ensure_service_user, log

# Project ports: never the standard ones, so a user's own servers do not collide.
PORTS = {
    "mariadb": 13306,
    "redis": 16379,
    "kafka": 19092,  # + controller 19093
    "elasticsearch": 19200,  # + transport 19300
    "cassandra": 19042,  # + storage 17000
    "ferretdb": 17017,
    "mailpit": 12025,  # SMTP
    "mailpit_http": 18025,  # HTTP API
    "kannel_sendsms": 13013,  # smsbox sendsms HTTP
    "kannel_admin": 13010,  # bearerbox admin HTTP
    "kannel_smsbox": 13011,  # bearerbox <- smsbox
    "kannel_fake": 13012,  # bearerbox <- fakesmsc
}


def all_servers() -> list[Server]:
    """Every server, in dependency order (none of ours depend on each other)."""
    from infra.servers.cassandra import Cassandra
    from infra.servers.elasticsearch import Elasticsearch
    from infra.servers.ferretdb import FerretDB
    from infra.servers.kafka import Kafka
    from infra.servers.kannel import Kannel
    from infra.servers.mailpit import Mailpit
    from infra.servers.mariadb import MariaDB
    from infra.servers.redis import Redis

    return [MariaDB(), Redis(), FerretDB(), Kafka(), Elasticsearch(), Cassandra(), Mailpit(),
            Kannel()]


def select(names: list[str] | None) -> list[Server]:
    servers = all_servers()
    if not names:
        return servers
    known = {s.name: s for s in servers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InfraError(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]


def up(names: list[str] | None = None) -> None:
    """Install what is missing, then start every server concurrently and wait
    until each answers its protocol. Idempotent."""
    from infra import tools

    servers = select(names)
    # Installs are sequential (they share the network and the CPU for builds);
    # starts run side by side because most of a start is JVM warm-up.
    if not names:
        tools.install_all()
    for s in servers:
        if not s.external():
            s.install()
    # The account servers that refuse root run as is created here, once,
    # before the starts below run side by side (each of them asks for it).
    if any(not s.external() for s in servers):
        ensure_service_user()
    errors: list[str] = []
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        futures = {pool.submit(s.start): s for s in servers}
        for fut, s in futures.items():
            try:
                fut.result()
            except InfraError as exc:
                errors.append(f"{s.name}: {exc}")
    if errors:
        raise InfraError("\n\n".join(errors))
    log("stack is up")


def down(names: list[str] | None = None) -> None:
    servers = select(names)
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        list(pool.map(lambda s: s.stop(), servers))


def env() -> dict[str, str]:
    """ECOM_* variables for the local stack (external ones pass through)."""
    local = {
        "ECOM_MYSQL_URL": f"mysql://root@127.0.0.1:{PORTS['mariadb']}",
        "ECOM_REDIS_URL": f"redis://127.0.0.1:{PORTS['redis']}/0",
        "ECOM_KAFKA_BOOTSTRAP": f"127.0.0.1:{PORTS['kafka']}",
        "ECOM_ES_URL": f"http://127.0.0.1:{PORTS['elasticsearch']}",
        "ECOM_CASSANDRA_HOSTS": f"127.0.0.1:{PORTS['cassandra']}",
        "ECOM_MONGO_URL": f"mongodb://127.0.0.1:{PORTS['ferretdb']}/",
        "ECOM_SMTP_URL": f"smtp://127.0.0.1:{PORTS['mailpit']}",
        # Mailpit's HTTP API: where tests (and people) read the mail sent.
        "ECOM_MAILPIT_URL": f"http://127.0.0.1:{PORTS['mailpit_http']}",
        "ECOM_SMS_URL": _kannel_url(),
    }
    return {k: os.environ.get(k, v) for k, v in local.items()}


def _kannel_url() -> str:
    from infra.servers.kannel import Kannel

    return Kannel().url
