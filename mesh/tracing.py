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
  (CLIENT spans named after the statement's verb and table);
* Redis commands of clients passed to :func:`instrument_redis` (``redis
  GET``; a pipeline is one span ``redis pipeline``), FerretDB commands of
  pymongo clients given :func:`mongo_listeners` (``mongodb find items``,
  from pymongo's command monitoring) and Cassandra requests of sessions
  passed to :func:`instrument_cassandra` (``cassandra SELECT orders_by_id``,
  from the driver's request init listener): CLIENT spans with ``db.system``
  and the command's name, never keys, values or documents; an error sets
  the span's status. These are made only inside a span (a served call, a
  consumed message), so background loops and health probes make no traces.
  Clients are built before :func:`setup` runs, so these hooks are installed
  when ``ECOM_OTLP_ENDPOINT`` is set (and check the one variable per call
  until the tracer exists); without it they install nothing.

Spans are batched and exported over OTLP/gRPC by the SDK; the tracer
provider is flushed at shutdown.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
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
ENDPOINT_ENV = "ECOM_OTLP_ENDPOINT"

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


# --------------------------------------------------------------------------
# Redis, FerretDB (pymongo) and Cassandra calls
# --------------------------------------------------------------------------
#
# Clients are built before mesh.Service.start turns tracing on, so the hooks
# are installed when tracing is configured (ECOM_OTLP_ENDPOINT set) or on;
# otherwise they install nothing at all. Installed, each call checks the one
# module variable first. A datastore call is traced only inside a span (a
# served RPC, a consumed message...): background loops and health probes
# outside any span make no traces of their own.


def _wanted() -> bool:
    return _tracer is not None or bool(os.environ.get(ENDPOINT_ENV))


def _child_span(name: str, attributes: dict[str, Any]) -> Any:
    """A CLIENT span under the current span, not made current; None when
    tracing is off or no span is current."""
    if _tracer is None:
        return None
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    if not trace.get_current_span().get_span_context().is_valid:
        return None
    return _tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)


def _fail(sp: Any, reason: str) -> None:
    from opentelemetry.trace import Status, StatusCode

    sp.set_status(Status(StatusCode.ERROR, reason))


def _command_name(command: Any) -> str:
    if isinstance(command, bytes):
        command = command.decode("ascii", "replace")
    return str(command).upper()


def _pipeline_names(stack: Sequence[Any]) -> list[str]:
    names = []
    for item in stack[:64]:
        args = getattr(item, "args", None) or (item[0] if isinstance(item, tuple) else ())
        if args:
            names.append(_command_name(args[0]))
    return names


@contextlib.contextmanager
def _client_call(make_span: Callable[[], Any]) -> Iterator[None]:
    """The block runs inside the span ``make_span`` returns (None: no span,
    as when no span is current), which ends with it; an exception marks
    the span failed."""
    sp = make_span() if _tracer is not None else None
    if sp is None:
        yield
        return
    try:
        yield
    except BaseException as exc:
        _fail(sp, type(exc).__name__)
        raise
    finally:
        sp.end()


def _traced_async(call: Callable[..., Any], make_span: Callable[[], Any]) -> Callable[..., Any]:
    async def traced(*args: Any, **kwargs: Any) -> Any:
        with _client_call(make_span):
            return await call(*args, **kwargs)

    return traced


def _traced_sync(call: Callable[..., Any], make_span: Callable[[], Any]) -> Callable[..., Any]:
    def traced(*args: Any, **kwargs: Any) -> Any:
        with _client_call(make_span):
            return call(*args, **kwargs)

    return traced


def instrument_redis(client: Any) -> Any:
    """Trace the commands of a redis-py client (``redis.asyncio.Redis`` or
    ``redis.Redis``): each command a CLIENT span ``redis <COMMAND>``, each
    pipeline one span ``redis pipeline`` listing its commands' names. Only
    names are recorded, never keys or values. Returns ``client``; when
    tracing is neither configured nor on, returns it untouched."""
    if not _wanted() or getattr(client, "_ecom_traced", False):
        return client
    import inspect

    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    base = {"db.system": "redis", "db.redis.database_index": int(kwargs.get("db") or 0)}
    execute = client.execute_command
    make_pipeline = client.pipeline
    wrap = _traced_async if inspect.iscoroutinefunction(execute) else _traced_sync

    def execute_command(*args: Any, **options: Any) -> Any:
        if _tracer is None:
            return execute(*args, **options)
        name = _command_name(args[0]) if args else "COMMAND"
        return wrap(execute, lambda: _child_span(
            f"redis {name}", {**base, "db.operation": name}))(*args, **options)

    def pipeline(*args: Any, **kw: Any) -> Any:
        pipe = make_pipeline(*args, **kw)
        pipe.execute = wrap(pipe.execute, lambda: _child_span("redis pipeline", {
            **base, "db.operation": "pipeline",
            "db.redis.commands": " ".join(_pipeline_names(pipe.command_stack))}))
        return pipe

    client.execute_command = execute_command
    client.pipeline = pipeline
    client._ecom_traced = True
    return client


class _MongoListener:
    """pymongo command monitoring -> CLIENT spans ``mongodb <command>
    <collection>``. pymongo calls it synchronously in the task running the
    command, so the current span is the caller's."""

    def __init__(self) -> None:
        self._spans: dict[tuple[Any, int], Any] = {}

    def started(self, event: Any) -> None:
        if _tracer is None:
            return
        name = event.command_name
        target = event.command.get(name)
        if not isinstance(target, str):
            target = event.command.get("collection")
        attributes = {"db.system": "mongodb", "db.name": event.database_name,
                      "db.operation": name}
        if isinstance(target, str):
            attributes["db.mongodb.collection"] = target
            name = f"{name} {target}"
        sp = _child_span(f"mongodb {name}", attributes)
        if sp is not None:
            self._spans[(event.connection_id, event.request_id)] = sp

    def succeeded(self, event: Any) -> None:
        if not self._spans:
            return
        sp = self._spans.pop((event.connection_id, event.request_id), None)
        if sp is not None:
            sp.end()

    def failed(self, event: Any) -> None:
        if not self._spans:
            return
        sp = self._spans.pop((event.connection_id, event.request_id), None)
        if sp is not None:
            failure = event.failure if isinstance(event.failure, Mapping) else {}
            _fail(sp, str(failure.get("codeName") or failure.get("errmsg") or "failed"))
            sp.end()


def mongo_listeners() -> list[Any]:
    """``event_listeners`` for a pymongo client: one command listener when
    tracing is configured or on, none otherwise."""
    if not _wanted():
        return []
    from pymongo import monitoring

    class Listener(_MongoListener, monitoring.CommandListener):
        pass

    return [Listener()]


_CQL = re.compile(
    r"^\s*(\w+)\b(?:.*?\b(?:FROM|INTO|TABLE)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?\"?([\w.]+))?",
    re.IGNORECASE | re.DOTALL,
)


@functools.lru_cache(maxsize=512)
def _cql_name(statement: str) -> tuple[str, str]:
    """(verb, table) of a CQL statement; table may be empty."""
    match = _CQL.match(statement)
    if not match:
        return "CQL", ""
    verb, table = match.group(1).upper(), match.group(2) or ""
    if verb == "UPDATE":
        parts = statement.split()
        table = parts[1].strip('"') if len(parts) > 1 else ""
    return verb, table


def _cassandra_request(future: Any, session: Any) -> None:
    if _tracer is None:
        return
    query = future.query
    text = getattr(query, "query_string", None)
    if text is None:
        prepared = getattr(query, "prepared_statement", None)
        text = getattr(prepared, "query_string", None)
    verb, table = _cql_name(text) if isinstance(text, str) else ("BATCH", "")
    attributes = {"db.system": "cassandra", "db.name": session.keyspace or "",
                  "db.operation": verb}
    if table:
        attributes["db.cassandra.table"] = table
    sp = _child_span(f"cassandra {verb} {table}".rstrip(), attributes)
    if sp is not None:
        future.add_callbacks(_cassandra_done, _cassandra_failed,
                             callback_args=(sp,), errback_args=(sp,))


def _cassandra_done(_result: Any, sp: Any) -> None:
    if sp.is_recording():  # a paged result calls back once per page
        sp.end()


def _cassandra_failed(exc: BaseException, sp: Any) -> None:
    if sp.is_recording():
        _fail(sp, type(exc).__name__)
        sp.end()


def instrument_cassandra(session: Any) -> Any:
    """Trace the requests of a cassandra-driver session through its request
    init listener: CLIENT spans ``cassandra <VERB> <table>``, ended by the
    response's callbacks. Returns ``session``; untouched when tracing is
    neither configured nor on."""
    if _wanted() and not getattr(session, "_ecom_traced", False):
        session.add_request_init_listener(_cassandra_request, session)
        session._ecom_traced = True
    return session
