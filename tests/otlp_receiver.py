"""A small real OTLP/gRPC trace receiver for tests (and a look at traces by
hand): it serves ``opentelemetry.proto.collector.trace.v1.TraceService``,
decodes every export with opentelemetry-proto and keeps the spans.

    .venv/bin/python -m tests.otlp_receiver --port 4317   # prints spans as they come

Services export to it with ``ECOM_OTLP_ENDPOINT=127.0.0.1:<port>``; Envoy
with the same variable when its config is generated.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as exported, with its resource's service name."""

    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, object]
    status_code: int


def _value(any_value) -> object:  # type: ignore[no-untyped-def]
    field = any_value.WhichOneof("value")
    return getattr(any_value, field) if field else None


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, sink: Callable[[list[ReceivedSpan]], None]) -> None:
        self.sink = sink

    def Export(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        spans = []
        for rs in request.resource_spans:
            attrs = {a.key: _value(a.value) for a in rs.resource.attributes}
            service = str(attrs.get("service.name", ""))
            for ss in rs.scope_spans:
                for sp in ss.spans:
                    spans.append(ReceivedSpan(
                        service=service, name=sp.name, kind=sp.kind,
                        trace_id=sp.trace_id.hex(), span_id=sp.span_id.hex(),
                        parent_span_id=sp.parent_span_id.hex(),
                        attributes={a.key: _value(a.value) for a in sp.attributes},
                        status_code=sp.status.code,
                    ))
        self.sink(spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class OtlpReceiver:
    """Listens on ``127.0.0.1:<port>`` (0: a free one) and keeps every span."""

    def __init__(self, port: int = 0, *, echo: bool = False) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._echo = echo
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            _TraceService(self._keep), self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.endpoint = f"127.0.0.1:{self.port}"

    def _keep(self, spans: list[ReceivedSpan]) -> None:
        with self._lock:
            self.spans.extend(spans)
        if self._echo:
            for s in spans:
                print(f"{s.trace_id} {s.span_id} <- {s.parent_span_id or '-':16} "
                      f"{s.service:<10} {s.name}", flush=True)

    def start(self) -> OtlpReceiver:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop(grace=1)

    def snapshot(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self.spans)

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.snapshot() if s.trace_id == trace_id]

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool],
                 timeout: float = 30.0) -> list[ReceivedSpan]:
        """Poll until ``predicate(spans)`` holds; returns the spans either way."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.snapshot()
            if predicate(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=4317)
    args = parser.parse_args()
    receiver = OtlpReceiver(args.port, echo=True).start()
    print(f"OTLP/gRPC receiver on {receiver.endpoint}", flush=True)
    receiver.server.wait_for_termination()


if __name__ == "__main__":
    main()
