"""Shared test fixtures.

`stack` makes sure the real servers are running (starting the ones that are
not, stopping at the end exactly those it started) and hands out names that
isolate this test run from any other: own MariaDB databases, Kafka topic
prefix, Elasticsearch index prefix, Cassandra keyspace, Mongo database and
Redis key prefix. Set ECOM_TEST_SERVERS=kafka,redis to start only some
servers while working on one area; ECOM_KEEP_STACK=1 leaves them running.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from infra import stack as infra_stack
from infra.core import Server


class Stack:
    """The running stack as seen by one test session."""

    def __init__(self) -> None:
        self.run_id = uuid.uuid4().hex[:8]
        self.started: list[Server] = []
        self.env = infra_stack.env()

    def ensure(self, names: list[str] | None) -> None:
        servers = infra_stack.select(names)
        todo = [s for s in servers if not s.external() and s.pid() is None]
        infra_stack.up([s.name for s in servers])
        self.started.extend(todo)

    # -- isolation: names unique to this run ------------------------------
    def mysql_db(self, name: str) -> str:
        return f"t_{self.run_id}_{name}"

    def topic(self, name: str) -> str:
        return f"t{self.run_id}.{name}"

    @property
    def topic_prefix(self) -> str:
        return f"t{self.run_id}."

    @property
    def es_prefix(self) -> str:
        return f"t{self.run_id}-"

    @property
    def keyspace(self) -> str:
        return f"t_{self.run_id}"

    @property
    def mongo_db(self) -> str:
        return f"t_{self.run_id}"

    @property
    def redis_prefix(self) -> str:
        return f"t:{self.run_id}:"


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    st = Stack()
    wanted = os.environ.get("ECOM_TEST_SERVERS")
    st.ensure([n for n in wanted.split(",") if n] if wanted else None)
    yield st
    if not os.environ.get("ECOM_KEEP_STACK"):
        for s in st.started:
            s.stop()
