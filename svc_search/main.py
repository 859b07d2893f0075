"""Wiring: ``python -m svc_search.main`` serves SearchService on
``ECOM_SEARCH_ADDR``, with the indexer (one consumer per source topic) and
the query recorder as background tasks.

Knobs: ``ECOM_SEARCH_ES_TIMEOUT_SECONDS`` (per Elasticsearch request: how
fast a dead cluster becomes UNAVAILABLE), ``ECOM_SEARCH_REFRESH_INTERVAL``
(index refresh, i.e. the floor of the index lag),
``ECOM_SEARCH_PEER_TIMEOUT_SECONDS`` (serviceability and users calls).
Elasticsearch may be down at start-up: the service starts NOT_SERVING and
creates its index once the cluster answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from ecom.common.v1.common_pb2 import DeliveryEstimate
from ecom.search.v1 import search_pb2_grpc
from ecom.serviceability.v1 import serviceability_pb2, serviceability_pb2_grpc
from ecom.users.v1 import users_pb2, users_pb2_grpc
from pydantic import Field

import mesh
from mesh.kafka import ensure_topics, make_admin, make_consumer
from svc_search.api import SearchApi
from svc_search.consumers import ITEMS_TOPIC, QUERIES_TOPIC, STOCK_TOPIC, IndexFeed, QueryRecorder
from svc_search.service import Indexer, SearchService
from svc_search.store import SearchIndex, connect

log = logging.getLogger("svc_search")
TAT = "ecom.serviceability.v1.ServiceabilityService"


class SearchSettings(mesh.ServiceSettings):
    """Shared settings plus search's own (ECOM_SEARCH_*)."""

    # Per Elasticsearch request. 1 s turned away some of the first searches
    # while `make up`'s Spark jobs started beside a cold index on two cores.
    search_es_timeout_seconds: float = Field(default=2.5, gt=0)
    # Open connections to each Elasticsearch node (concurrent searches).
    search_es_connections: int = Field(default=64, gt=0)
    search_refresh_interval: str = "500ms"
    search_peer_timeout_seconds: float = Field(default=1.0, gt=0)


class _Peers:
    """What search asks serviceability and users, within ``timeout``."""

    def __init__(
        self,
        tat: serviceability_pb2_grpc.ServiceabilityServiceStub,
        users: users_pb2_grpc.UserServiceStub,
        timeout: float,
    ) -> None:
        self.tat, self.users, self.timeout = tat, users, timeout

    async def check(self, item_ids: Sequence[str], pincode: str) -> dict[str, DeliveryEstimate]:
        request = serviceability_pb2.BatchCheckServiceabilityRequest(
            item_ids=item_ids, pincode=pincode)
        resp = await self.tat.BatchCheckServiceability(request, timeout=self.timeout)
        return {r.item_id: r.estimate for r in resp.results}

    async def default_pincode(self) -> str:
        caller = mesh.current_caller()
        if caller is None:
            return ""
        resp = await self.users.ListAddresses(
            users_pb2.ListAddressesRequest(user_id=caller.user_id), timeout=self.timeout)
        return next((a.pincode for a in resp.addresses if a.is_default), "")


def _user_id() -> str:
    caller = mesh.current_caller()
    return caller.user_id if caller else ""


async def _prepare_index(index: SearchIndex, ready: asyncio.Event) -> None:
    """Create the index; retried forever, because the service must come up
    (NOT_SERVING) without Elasticsearch."""
    delay = 0.5
    while True:
        try:
            await index.ensure()
            ready.set()
            return
        except Exception as exc:  # noqa: BLE001 - keep trying until ES answers
            log.warning("search index not ready: %s; retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def build() -> mesh.Service:
    """The search service process."""
    settings = mesh.load_settings(SearchSettings)
    mesh.configure_logging(settings.log_level, service="search")
    # One line per Elasticsearch request (health probes included) is noise.
    for noisy in ("httpx", "elastic_transport.transport"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    client = connect(settings.es_url, timeout=settings.search_es_timeout_seconds,
                     connections=settings.search_es_connections)
    index = SearchIndex(client, settings.index("items"),
                        refresh_interval=settings.search_refresh_interval)
    channels = mesh.Channels(settings)
    tat = serviceability_pb2_grpc.ServiceabilityServiceStub(channels.get(
        "tat", idempotent=[f"{TAT}/BatchCheckServiceability"]))
    users = users_pb2_grpc.UserServiceStub(channels.get(
        "users", idempotent=["ecom.users.v1.UserService/ListAddresses"]))
    peers = _Peers(tat, users, settings.search_peer_timeout_seconds)
    recorder = QueryRecorder(settings.kafka_bootstrap, settings.topic(QUERIES_TOPIC))
    service = SearchService(index, check=peers.check, default_pincode=peers.default_pincode,
                            record=recorder.record, user_id=_user_id)
    indexer = Indexer(index)
    ready = asyncio.Event()
    feeds = [IndexFeed(make_consumer(settings.kafka_bootstrap,
                                     settings.topic(f"svc_search.indexer.{topic}"),
                                     client_id="svc_search-indexer"),
                       settings.topic(topic), indexer, ready)
             for topic in (ITEMS_TOPIC, STOCK_TOPIC)]

    svc = mesh.Service("search", settings)
    svc.add_servicer(SearchApi(service), search_pb2_grpc.add_SearchServiceServicer_to_server)

    async def es_ready() -> bool:
        # SERVING only once the index exists and the cluster answers.
        return ready.is_set() and await index.ping()

    svc.add_dependency("elasticsearch", es_ready)

    @svc.on_startup
    async def topics() -> None:
        await asyncio.to_thread(ensure_topics, make_admin(settings.kafka_bootstrap),
                                [ITEMS_TOPIC, STOCK_TOPIC, QUERIES_TOPIC],
                                prefix=settings.topic_prefix)

    svc.add_task("index-setup", lambda: _prepare_index(index, ready))
    for feed in feeds:
        svc.add_task(f"indexer-{feed.topic}", feed.run)
        svc.on_shutdown(feed.close)
    svc.add_task("query-recorder", recorder.run)
    svc.on_shutdown(recorder.close)
    svc.on_shutdown(channels.close)
    svc.on_shutdown(client.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
