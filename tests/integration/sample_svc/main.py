"""A sample service wired through mesh exactly as a real one would be.

Started as its own process by tests/integration/test_mesh_sample_service.py,
with the stubs for ``ecom.sample.v1`` compiled at test time and put on
PYTHONPATH. Its one "dependency" is a marker file: the service is healthy
while the file named by ECOM_SAMPLE_DEPENDENCY_FILE exists.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from mesh_sample.v1 import echo_pb2, echo_pb2_grpc  # compiled at test time

import mesh
from mesh.errors import InvalidArgument

log = logging.getLogger("sample")


class SampleSettings(mesh.ServiceSettings):
    """The shared settings plus this service's own (ECOM_SAMPLE_*)."""

    sample_addr: str = "127.0.0.1:0"
    sample_dependency_file: str = ""


class EchoApi(echo_pb2_grpc.EchoServiceServicer):
    """The servicer: validate, answer, raise domain errors; mesh does the rest."""

    async def Echo(self, request: echo_pb2.EchoRequest, context: object) -> echo_pb2.EchoResponse:
        if not request.message:
            raise InvalidArgument.for_field("message", "must not be empty")
        if len(request.message) > 100:
            raise InvalidArgument.for_field("message", "must be at most 100 characters")
        return echo_pb2.EchoResponse(
            message=request.message, request_id=mesh.current_request_id() or ""
        )

    async def Slow(self, request: echo_pb2.SlowRequest, context: object) -> echo_pb2.SlowResponse:
        log.info("slow call started", extra={"millis": request.millis})
        await asyncio.sleep(request.millis / 1000)
        return echo_pb2.SlowResponse(slept_millis=request.millis)


async def build() -> mesh.Service:
    settings = mesh.load_settings(SampleSettings)
    mesh.configure_logging(settings.log_level, service="sample")
    marker = Path(settings.sample_dependency_file)

    async def marker_exists() -> bool:
        return marker.exists()

    svc = mesh.Service("sample", settings)
    svc.add_servicer(EchoApi(), echo_pb2_grpc.add_EchoServiceServicer_to_server)
    svc.add_dependency("marker-file", marker_exists)
    svc.on_shutdown(lambda: log.info("cleanup ran"))
    return svc


if __name__ == "__main__":
    mesh.serve(build)
