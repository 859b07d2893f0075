"""Wiring: `python -m svc_analytics.main` serves AnalyticsService on
ECOM_ANALYTICS_ADDR, reading the report tables in the
`<ECOM_KEYSPACE_PREFIX>analytics` Cassandra keyspace."""

from __future__ import annotations

import asyncio

from ecom.analytics.v1 import analytics_pb2_grpc

import mesh
from svc_analytics import store as report_store
from svc_analytics.api import AnalyticsApi
from svc_analytics.service import AnalyticsService


async def build() -> mesh.Service:
    """The analytics service process."""
    settings = mesh.load_settings()
    mesh.configure_logging(settings.log_level, service="analytics")
    session = await asyncio.to_thread(
        report_store.connect, settings.cassandra_contact_points,
        settings.keyspace(report_store.KEYSPACE))
    # The job creates the tables too; creating them here lets the service
    # answer (empty reports) before the job's first batch.
    await asyncio.to_thread(report_store.create_schema, session)
    store = report_store.ReportStore(session)

    svc = mesh.Service("analytics", settings)
    svc.add_servicer(AnalyticsApi(AnalyticsService(store)),
                     analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server)
    svc.add_dependency("cassandra", store.ping)
    svc.on_shutdown(lambda: session.cluster.shutdown())
    return svc


if __name__ == "__main__":
    mesh.serve(build)
