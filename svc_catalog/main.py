"""Wiring: `python -m svc_catalog.main` serves CatalogService on
ECOM_CATALOG_ADDR, with the event relay and the feed consumer as tasks."""

from __future__ import annotations

from ecom.catalog.v1 import catalog_pb2_grpc

import mesh
from mesh.kafka import ensure_topics, make_admin, make_consumer
from svc_catalog import codec
from svc_catalog.api import CatalogApi
from svc_catalog.consumers import EventRelay, FeedApplier
from svc_catalog.service import CatalogService
from svc_catalog.store import ItemStore, connect

# A 100,000-row feed arrives as one message of tens of MB.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024


async def build() -> mesh.Service:
    """The catalog service process."""
    settings = mesh.load_settings(mesh.ServiceSettings)
    mesh.configure_logging(settings.log_level, service="catalog")
    client = connect(settings.mongo_url)
    store = ItemStore(client[settings.database("catalog")])
    await store.create_indexes()
    await store.build_lookup_indexes()  # once per database, after an upgrade
    items_topic, feeds_topic = (settings.topic(codec.ITEMS_TOPIC),
                                settings.topic(codec.FEEDS_TOPIC))
    ensure_topics(make_admin(settings.kafka_bootstrap), [items_topic, feeds_topic])
    service = CatalogService(store)
    relay = EventRelay(store, settings.kafka_bootstrap, items_topic=items_topic,
                       feeds_topic=feeds_topic)
    applier = FeedApplier(service, make_consumer(
        settings.kafka_bootstrap, settings.topic("svc_catalog.feed-applier"),
        client_id="svc_catalog-feeds"), feeds_topic, bootstrap=settings.kafka_bootstrap,
        items_topic=items_topic)
    svc = mesh.Service("catalog", settings, options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)])
    svc.add_servicer(CatalogApi(service), catalog_pb2_grpc.add_CatalogServiceServicer_to_server)
    svc.add_dependency("mongodb", store.ping)
    svc.add_task("event-relay", relay.run)
    svc.add_task("feed-applier", applier.run)
    svc.on_shutdown(client.close)
    svc.on_shutdown(relay.release)  # runs before client.close (last registered first)
    svc.on_shutdown(relay.close)
    svc.on_shutdown(applier.close)
    return svc


if __name__ == "__main__":
    mesh.serve(build)
