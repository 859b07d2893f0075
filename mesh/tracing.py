"""OpenTelemetry tracing across services, Kafka hops and datastore calls.

Off unless ``ECOM_OTLP_ENDPOINT`` names an OTLP/gRPC collector
(``127.0.0.1:4317`` or ``http://127.0.0.1:4317``). Off means no tracer
exists at all: every hook below checks one module variable and returns, so
a service without a collector pays nothing measurable (the edge benchmark
prints both).

When on, a process started with :func:`mesh.serve` (through
:meth:`mesh.Service.start`) traces:

* each served gRPC call: a SERVER span named after the method, child of the
  W3C ``traceparent`` the caller sent in its metadata (Envoy sends one when
  its own tracing is on, see ``edge/config.py``);
* each outgoing call made through :mod:`mesh.channels`: the current span's
  ``traceparent`` goes into the call's metadata;
* Kafka: :func:`mesh.outbox.add_event` stores the current ``traceparent`` in
  the outbox row's headers; the relay publishes each row under a PRODUCER
  span (child of that context) whose own ``traceparent`` travels as a Kafka
  header; :mod:`mesh.consumer` handles the message under a CONSUMER span;
* SQL statements of every engine made with :func:`mesh.db.make_engine`
  (CLIENT spans named after the statement's verb and table).

Spans are batched and exported over OTLP/gRPC by the SDK; the tracer
provider is flushed at shutdown.
"""

from __future__ import annotations

import contextlib
import logging
import re
import weakref
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

    from mesh.kafka import OutgoingEvent

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# The one switch: None while tracing is off.
_tracer: Tracer | None = None
_provider: Any = None
_pending_engines: weakref.WeakSet[Any] = weakref.WeakSet()
_NULL = contextlib.nullcontext(None)


def enabled() -> bool:
    """True when spans are recorded and exported."""
    return _tracer is not None


def _endpoint(value: str) -> str:
    return value if "://" in value else f"http://{value}"


def setup(service: str, endpoint: str, *, schedule_delay_ms: int = 500) -> Callable[[], None]:
    """Turn tracing on for this process, exporting to ``endpoint`` as
    ``service``; returns the shutdown callback (flushes what is batched).
    A no-op returning a no-op when ``endpoint`` is empty."""
    global _tracer, _provider
    if not endpoint:
        return lambda: None
    if _tracer is not None:
        return lambda: None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=_endpoint(endpoint), insecure=True),
            schedule_delay_millis=schedule_delay_ms,
        )
    )
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("ecom.mesh")
    for engine in list(_pending_engines):
        _instrument(engine)
    log.info("tracing on", extra={"otlp_endpoint": endpoint})

    def shutdown() -> None:
        global _tracer, _provider
        provider.shutdown()
        _tracer, _provider = None, None

    return shutdown


# --------------------------------------------------------------------------
# context on the wire (W3C trace context)
# --------------------------------------------------------------------------


def _extract(carrier: Mapping[str, str]) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract(carrier)


def _inject(carrier: MutableMapping[str, str], context: Any = None) -> None:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    TraceContextTextMapPropagator().inject(carrier, context=context)


def inject_metadata(metadata: Any) -> None:
    """Add the current span's ``traceparent`` to outgoing gRPC metadata."""
    if _tracer is None:
        return
    carrier: dict[str, str] = {}
    _inject(carrier)
    for key, value in carrier.items():
        if key not in metadata:
            metadata.add(key, value)


def trace_headers(headers: Mapping[str, bytes] | None) -> Mapping[str, bytes] | None:
    """``headers`` plus the current ``traceparent`` (for an outbox row)."""
    if _tracer is None:
        return headers
    carrier: dict[str, str] = {}
    _inject(carrier)
    if not carrier:
        return headers
    return {**(headers or {}), **{k: v.encode() for k, v in carrier.items()}}


def _headers_context(headers: Mapping[str, bytes]) -> Any:
    carrier = {
        k: (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in headers.items()
        if k in (TRACEPARENT, TRACESTATE)
    }
    return _extract(carrier)


# --------------------------------------------------------------------------
# spans
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _server_span(method: str, metadata: Any) -> Iterator[Span]:
    from opentelemetry.trace import SpanKind

    assert _tracer is not None
    carrier = {
        k: (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in (metadata or ())
        if k in (TRACEPARENT, TRACESTATE)
    }
    service, _, rpc = method.lstrip("/").partition("/")
    with _tracer.start_as_current_span(
        method.lstrip("/"),
        context=_extract(carrier),
        kind=SpanKind.SERVER,
        attributes={"rpc.system": "grpc", "rpc.service": service, "rpc.method": rpc},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def server_span(method: str, metadata: Any) -> contextlib.AbstractContextManager[Span | None]:
    """The span of one served call (nothing while tracing is off)."""
    if _tracer is None:
        return _NULL
    return _server_span(method, metadata)


def end_server_span(span: Span | None, code: Any) -> None:
    """Record the call's final gRPC status on its span."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", int(code.value[0]))
    if code.name != "OK":
        span.set_status(Status(StatusCode.ERROR, code.name))


def span(name: str, *, kind: str = "INTERNAL", attributes: Mapping[str, Any] | None = None,
         headers: Mapping[str, bytes] | None = None) -> contextlib.AbstractContextManager[Any]:
    """A span around a block (``kind`` INTERNAL, CLIENT, CONSUMER...); with
    ``headers``, a child of the trace context they carry (a Kafka message)."""
    if _tracer is None:
        return _NULL
    from opentelemetry.trace import SpanKind

    context = _headers_context(headers) if headers else None
    return _tracer.start_as_current_span(
        name, context=context, kind=SpanKind[kind], attributes=dict(attributes or {})
    )


def relay_spans(
    events: Sequence[OutgoingEvent],
) -> tuple[list[OutgoingEvent], Callable[[Sequence[bool]], None]]:
    """PRODUCER spans for events the outbox relay is about to publish: each a
    child of the context stored with its row, and each event's outgoing
    ``traceparent`` replaced by its span's. Returns the events to publish and
    ``finish(delivered)``, which ends the spans."""
    if _tracer is None:
        return list(events), lambda _delivered: None
    import dataclasses

    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode

    spans: list[Any] = []
    out: list[OutgoingEvent] = []
    for event in events:
        parent = _headers_context(event.headers) if TRACEPARENT in event.headers else None
        sp = _tracer.start_span(
            f"outbox.publish {event.topic}",
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": event.topic,
                "messaging.message.id": event.event_id,
                "ecom.event_type": event.event_type,
            },
        )
        carrier: dict[str, str] = {}
        _inject(carrier, trace.set_span_in_context(sp))
        headers = {**event.headers, **{k: v.encode() for k, v in carrier.items()}}
        spans.append(sp)
        out.append(dataclasses.replace(event, headers=headers))

    def finish(delivered: Sequence[bool]) -> None:
        for sp, ok in zip(spans, delivered, strict=False):
            if not ok:
                sp.set_status(Status(StatusCode.ERROR, "not delivered"))
            sp.end()

    return out, finish


# --------------------------------------------------------------------------
# SQL statements
# --------------------------------------------------------------------------

_VERB_TABLE = re.compile(
    r"^\s*(SELECT|INSERT|UPDATE|DELETE|REPLACE)\b(?:.*?\b(?:FROM|INTO|UPDATE)\s+`?(\w+)`?)?",
    re.IGNORECASE | re.DOTALL,
)


def _statement_name(statement: str) -> str:
    match = _VERB_TABLE.match(statement)
    if not match:
        return statement.split(None, 1)[0].upper() if statement.strip() else "SQL"
    verb, table = match.group(1).upper(), match.group(2)
    if verb == "UPDATE":
        table = statement.split()[1].strip("`") if len(statement.split()) > 1 else table
    return f"{verb} {table}" if table else verb


def instrument_engine(engine: Any) -> None:
    """Trace the SQL statements of ``engine`` (an AsyncEngine or Engine) once
    tracing is on; engines made before :func:`setup` are instrumented then."""
    sync_engine = getattr(engine, "sync_engine", engine)
    if _tracer is None:
        _pending_engines.add(sync_engine)
        return
    _instrument(sync_engine)


def _instrument(sync_engine: Any) -> None:
    from sqlalchemy import event

    if getattr(sync_engine, "_ecom_traced", False):
        return
    sync_engine._ecom_traced = True
    database = sync_engine.url.database or ""

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
               executemany: bool) -> None:
        if _tracer is None or context is None:
            return
        from opentelemetry.trace import SpanKind

        context._ecom_span = _tracer.start_span(
            _statement_name(statement),
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "mysql",
                "db.name": database,
                "db.statement": statement[:500],
            },
        )

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
              executemany: bool) -> None:
        sp = getattr(context, "_ecom_span", None)
        if sp is not None:
            sp.end()
            context._ecom_span = None

    def failed(exception_context: Any) -> None:
        context = exception_context.execution_context
        sp = getattr(context, "_ecom_span", None)
        if sp is not None:
            from opentelemetry.trace import Status, StatusCode

            sp.set_status(Status(StatusCode.ERROR, type(exception_context.original_exception)
                                 .__name__))
            sp.end()
            context._ecom_span = None

    event.listen(sync_engine, "before_cursor_execute", before)
    event.listen(sync_engine, "after_cursor_execute", after)
    event.listen(sync_engine, "handle_error", failed)
