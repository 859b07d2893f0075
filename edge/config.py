"""Build Envoy's bootstrap configuration for the REST edge.

Everything is derived, never hand-written: the routes and the transcoder's
service list from the descriptor set and the registry (:mod:`edge.registry`),
the JWT keys from the signing key (:mod:`mesh.tokens`), the addresses from
``ECOM_<SVC>_ADDR`` (or an explicit map, for tests). The output is plain data
(dicts) written as JSON, which is valid YAML for Envoy; the tests check it
with ``envoy --mode validate``.

Request path through the listener's HTTP filters, in order:

1. ``health_check``: ``GET /healthz`` answered by Envoy (503 while draining).
2. ``header_mutation``: drop any client-sent ``x-jwt-payload``, so only
   ``jwt_authn`` below can set it (services trust that header, see mesh.auth).
3. ``cors``: answers preflights, decorates responses.
4. ``local_ratelimit``: a token bucket per client address.
5. ``jwt_authn``: verifies ``Authorization: Bearer`` against the local JWKS
   and forwards the claims as ``x-jwt-payload``; optional on public routes,
   required everywhere else.
6. ``grpc_json_transcoder``: REST <-> gRPC from the ``google.api.http``
   annotations, gRPC status -> HTTP status with a JSON ``google.rpc.Status``.
7. ``router``: one route per REST binding (verb + path) to its service's
   cluster, with a timeout and, for reads only, retries; anything else is a
   JSON 404.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2
from google.rpc import error_details_pb2, status_pb2
from pydantic import Field

from edge import descriptors, registry
from mesh.auth import JWT_PAYLOAD_HEADER
from mesh.config import ServiceSettings, split_addrs
from mesh.tokens import AUDIENCE, ISSUER

# The largest REST request body: a 100,000-row supplier feed as JSON.
MAX_REQUEST_BODY_BYTES = 128 * 1024 * 1024

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_FILE = ROOT / "generated" / "openapi.json"
JWT_PROVIDER = "ecom"
TYPE = "type.googleapis.com/"

# HTTP status of a local reply (Envoy's own answer) -> google.rpc.Code, so
# errors produced by the edge itself have the same JSON shape as errors
# transcoded from a service.
LOCAL_REPLY_CODES: dict[int, int] = {
    400: 3,  # INVALID_ARGUMENT (bad JSON, unknown field or query parameter)
    401: 16,  # UNAUTHENTICATED (no, expired or bad token)
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND (no such route)
    405: 12,  # UNIMPLEMENTED
    408: 4,  # DEADLINE_EXCEEDED
    413: 3,  # body too large
    429: 8,  # RESOURCE_EXHAUSTED (rate limited)
    431: 3,
    500: 13,  # INTERNAL
    502: 14,  # UNAVAILABLE
    503: 14,  # UNAVAILABLE (no healthy upstream)
    504: 4,  # DEADLINE_EXCEEDED (route timeout)
}


class EdgeSettings(ServiceSettings):
    """The edge's knobs (``ECOM_EDGE_*``), on top of the service addresses."""

    edge_host: str = "127.0.0.1"
    edge_admin_port: int = Field(default=19901, ge=1, le=65535)
    # Requests per minute per client address before 429.
    edge_rate_limit_per_minute: int = Field(default=600, gt=0)
    # Comma-separated allowed CORS origins; "*" allows any.
    edge_cors_origins: str = "*"
    # Seconds between active gRPC health checks of each service.
    edge_health_check_interval_seconds: float = Field(default=5.0, gt=0)
    # Key whose public half verifies tokens (ECOM_JWT_KEY_FILE; see mesh.tokens).
    jwt_key_file: str | None = None
    # The storefront's file server (edge.static), routed at `/` (ECOM_WEB_ADDR).
    web_addr: str = "127.0.0.1:18088"


@dataclass
class EdgeOptions:
    """Everything the bootstrap depends on, resolved."""

    jwks: Mapping[str, Any]
    addresses: Mapping[str, str]  # process name -> host:port
    processes: Sequence[registry.ServiceProcess]
    descriptor_file: Path  # the descriptor set Envoy loads (see write_edge_descriptor)
    openapi_file: Path | None = OPENAPI_FILE
    host: str = "127.0.0.1"
    port: int = 8080
    admin_port: int = 19901
    rate_limit_per_minute: int = 600
    cors_origins: Sequence[str] = ("*",)
    health_check_interval_seconds: float = 5.0
    access_log_path: str | None = None  # None: stdout
    # The storefront's file server (edge.static); None: no `/` route.
    web_addr: str | None = None
    # OTLP/gRPC collector for Envoy's own spans (ECOM_OTLP_ENDPOINT); "" is off.
    otlp_endpoint: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# descriptor set for Envoy
# ---------------------------------------------------------------------------


def write_edge_descriptor(source: Path, target: Path) -> Path:
    """Copy the contracts' descriptor set to ``target``, adding
    ``google/rpc/status.proto`` and ``error_details.proto``.

    The transcoder prints the ``details`` of an error (``BadRequest``,
    ``ErrorInfo``...) as JSON only when it knows their types; the contracts do
    not import them, so without this the field violations would be lost."""
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(source.read_bytes())
    have = {f.name for f in fds.file}
    for module in (status_pb2, error_details_pb2):
        for dep in [*module.DESCRIPTOR.dependencies, module.DESCRIPTOR]:
            if dep.name not in have:
                proto = descriptor_pb2.FileDescriptorProto()
                dep.CopyToProto(proto)
                fds.file.append(proto)
                have.add(dep.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    data = fds.SerializeToString(deterministic=True)
    if not target.exists() or target.read_bytes() != data:
        target.write_bytes(data)
    return target


# ---------------------------------------------------------------------------
# pieces
# ---------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _socket(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def cluster(process: registry.ServiceProcess, addr: str, interval: float) -> dict[str, Any]:
    """One upstream cluster per service: HTTP/2, gRPC health checks, one
    endpoint per replica (``addr`` may list several, comma-separated),
    balanced round-robin among the healthy ones."""
    sockets = [_socket(a) for a in split_addrs(addr)]
    return {
        "name": process.cluster,
        "type": "STATIC" if all(_is_ip(h) for h, _ in sockets) else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": process.cluster,
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {
                            "address": host, "port_value": port}}}}
                        for host, port in sockets
                    ]
                }
            ],
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": _seconds(interval),
                # Check again soon after a failure so a restarted service is
                # back in rotation within a second or two.
                "unhealthy_interval": _seconds(min(interval, 1.0)),
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "grpc_health_check": {},
            }
        ],
    }


WEB_CLUSTER = "web"
# The storefront's files: the page itself and its hashed build assets. Only
# these paths go to the file server, so every other unknown path keeps the
# JSON 404 of the REST API.
WEB_PATH_REGEX = r"^/(index\.html)?$|^/assets/[A-Za-z0-9._-]+$"
WEB_MATCH: dict[str, Any] = {
    "safe_regex": {"regex": WEB_PATH_REGEX},
    "headers": [{"name": ":method", "string_match": {"safe_regex": {"regex": "^(GET|HEAD)$"}}}],
}


def web_cluster(addr: str, interval: float) -> dict[str, Any]:
    """The storefront's file server (plain HTTP/1.1, health-checked on ``/``)."""
    host, port = _socket(addr)
    return {
        "name": WEB_CLUSTER,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": WEB_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                "address": host, "port_value": port}}}}]}],
        },
        "health_checks": [
            {
                "timeout": "1s",
                "interval": _seconds(interval),
                "unhealthy_interval": _seconds(min(interval, 1.0)),
                "unhealthy_threshold": 2,
                "healthy_threshold": 1,
                "http_health_check": {"path": "/"},
            }
        ],
    }


def web_route() -> dict[str, Any]:
    """GET/HEAD of the storefront's files -> the file server; reads are
    retried like API reads."""
    return {
        "name": "storefront",
        "match": WEB_MATCH,
        "route": {
            "cluster": WEB_CLUSTER,
            "timeout": _seconds(registry.READ_TIMEOUT_SECONDS),
            "retry_policy": {"retry_on": "reset,connect-failure,refused-stream,5xx",
                             "num_retries": 2},
        },
    }



def _match(binding: descriptors.HttpBinding, *, preflight: bool = False) -> dict[str, Any]:
    """Route/rule match for one REST binding: its path (a regex when it has
    variables; never the query string) and its verb (or, with ``preflight``,
    also OPTIONS: the cors filter only sees a policy on a route that forwards
    somewhere, so preflights must match the real routes)."""
    match: dict[str, Any] = (
        {"safe_regex": {"regex": binding.path_regex()}}
        if binding.path_params
        else {"path": binding.path}
    )
    method: dict[str, Any] = (
        {"safe_regex": {"regex": f"^({binding.verb}|OPTIONS)$"}}
        if preflight
        else {"exact": binding.verb}
    )
    match["headers"] = [{"name": ":method", "string_match": method}]
    return match


# Retry on another replica than the one that failed.
_PREVIOUS_HOSTS: dict[str, Any] = {
    "name": "envoy.retry_host_predicates.previous_hosts",
    "typed_config": {
        "@type": TYPE + "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"},
}


def _routes(rpc: descriptors.Rpc, process: registry.ServiceProcess) -> list[dict[str, Any]]:
    """One route per REST binding of ``rpc``. Routes match the request as the
    client sent it (the transcoder keeps that route), so the route table is
    exactly the public REST surface: raw gRPC through the edge has no route."""
    timeout = registry.timeout_for(rpc.full_name, rpc.is_read)
    action: dict[str, Any] = {"cluster": process.cluster, "timeout": _seconds(timeout)}
    if rpc.is_read:
        # Only idempotent reads are retried: a write retried after a reset
        # could apply twice (request_id dedupe is the service's job, but
        # the edge should not create the duplicate in the first place).
        action["retry_policy"] = {
            "retry_on": "unavailable,reset,connect-failure,refused-stream",
            "num_retries": 2,
            "per_try_timeout": _seconds(max(timeout / 3, 1.0)),
            "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
            "retry_host_predicate": [_PREVIOUS_HOSTS],
        }
    else:
        # A write is retried only when it never reached a service (the
        # connection was refused, e.g. a replica just died): on another
        # replica, which cannot apply it twice.
        action["retry_policy"] = {
            "retry_on": "connect-failure,refused-stream",
            "num_retries": 2,
            "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
            "retry_host_predicate": [_PREVIOUS_HOSTS],
        }
    return [
        {
            "name": f"{rpc.full_name}:{b.verb} {b.path}",
            "match": _match(b, preflight=True),
            "route": action,
            # A deadline for the service slightly inside the route timeout, so
            # the service gives up first and answers DEADLINE_EXCEEDED (a JSON
            # error) instead of Envoy cutting the stream; mesh.channels
            # propagates it downstream.
            "request_headers_to_add": [
                {
                    "header": {"key": "grpc-timeout", "value": f"{int(timeout * 950)}m"},
                    "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                }
            ],
        }
        for b in rpc.bindings
    ]


def routed_rpcs(
    contracts: descriptors.Contracts, processes: Sequence[registry.ServiceProcess]
) -> list[tuple[descriptors.Rpc, registry.ServiceProcess]]:
    """Every RPC with a REST binding of the given processes, with its process."""
    out = []
    for process in processes:
        for service in process.public_services:
            for rpc in contracts.rpcs(service):
                if rpc.bindings:
                    out.append((rpc, process))
    return out


def jwt_rules(
    routed: Sequence[tuple[descriptors.Rpc, registry.ServiceProcess]], *, web: bool = False
) -> list[dict]:
    """jwt_authn rules: the token is optional (verified when sent) on public
    REST routes and the storefront's files, required everywhere else
    (including raw gRPC paths and unknown routes)."""
    optional = {
        "requires_any": {"requirements": [{"provider_name": JWT_PROVIDER}, {"allow_missing": {}}]}
    }
    rules: list[dict[str, Any]] = [{"match": {"path": registry.OPENAPI_PATH}, "requires": optional}]
    if web:
        rules.append({"match": WEB_MATCH, "requires": optional})
    # CORS preflights carry no token; the cors filter answers them first when
    # the origin is allowed, and a refused one should get a CORS answer, not 401.
    rules.append({
        "match": {"prefix": "/", "headers": [{"name": ":method",
                                              "string_match": {"exact": "OPTIONS"}}]},
        "requires": optional,
    })
    for rpc, _process in routed:
        if rpc.full_name in registry.PUBLIC_RPCS:
            rules.extend({"match": _match(b), "requires": optional} for b in rpc.bindings)
    rules.append({"match": {"prefix": "/"}, "requires": {"provider_name": JWT_PROVIDER}})
    return rules


def _local_reply_config() -> dict[str, Any]:
    # Envoy's own 404 has an empty body: name what was asked instead.
    no_route = {
        "filter": {"response_flag_filter": {"flags": ["NR"]}},
        "body_format_override": {
            "json_format": {
                "code": 5,
                "message": "no such route: %REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
            },
            "content_type": "application/json",
        },
    }
    mappers = [no_route] + [
        {
            "filter": {"status_code_filter": {"comparison": {
                "op": "EQ",
                "value": {"default_value": status, "runtime_key": f"edge.lr.{status}"},
            }}},
            "body_format_override": {
                "json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%"},
                "content_type": "application/json",
            },
        }
        for status, code in sorted(LOCAL_REPLY_CODES.items())
    ]
    # Any other error status Envoy produces: still JSON, code UNKNOWN.
    mappers.append(
        {
            "filter": {"status_code_filter": {"comparison": {
                "op": "GE", "value": {"default_value": 400, "runtime_key": "edge.lr.other"}}}},
            "body_format_override": {
                "json_format": {"code": 2, "message": "%LOCAL_REPLY_BODY%"},
                "content_type": "application/json",
            },
        }
    )
    return {"mappers": mappers}


ACCESS_LOG_FORMAT: dict[str, str] = {
    "time": "%START_TIME%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "client": "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%",
    "method": "%REQ(:METHOD)%",
    # The transcoder rewrites :path to the gRPC method; log what the client asked.
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "rpc": "%REQ(:PATH)%",
    "status": "%RESPONSE_CODE%",
    "grpc_status": "%GRPC_STATUS%",
    "flags": "%RESPONSE_FLAGS%",
    "details": "%RESPONSE_CODE_DETAILS%",
    "upstream": "%UPSTREAM_CLUSTER%",
    "duration_ms": "%DURATION%",
    "upstream_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "bytes_in": "%BYTES_RECEIVED%",
    "bytes_out": "%BYTES_SENT%",
    "user_agent": "%REQ(USER-AGENT)%",
}


def _access_log(path: str | None) -> list[dict[str, Any]]:
    log_format = {"json_format": ACCESS_LOG_FORMAT}
    if path is None:
        typed = {
            "@type": TYPE + "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
            "log_format": log_format,
        }
        return [{"name": "envoy.access_loggers.stdout", "typed_config": typed}]
    typed = {
        "@type": TYPE + "envoy.extensions.access_loggers.file.v3.FileAccessLog",
        "path": path,
        "log_format": log_format,
    }
    return [{"name": "envoy.access_loggers.file", "typed_config": typed}]


def _cors_policy(origins: Sequence[str]) -> dict[str, Any]:
    matchers: list[dict[str, Any]] = [
        {"safe_regex": {"regex": ".*"}} if o == "*" else {"exact": o} for o in origins
    ]
    return {
        "@type": TYPE + "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        "allow_origin_string_match": matchers,
        "allow_methods": "GET, POST, PUT, PATCH, DELETE, OPTIONS",
        "allow_headers": "authorization, content-type, x-request-id, idempotency-key",
        "expose_headers": "x-request-id, grpc-status, grpc-message, retry-after",
        "max_age": "600",
        # Envoy answers every preflight itself; a refused origin gets no
        # CORS headers (the browser blocks), never a trip to a service.
        "forward_not_matching_preflights": False,
    }


# HTTP allows header names and values that gRPC does not (``*``, ``~``,
# uppercase, non-ASCII values...); the services' gRPC servers fail such a
# call with INTERNAL ("Illegal header key"), which the client would see as a
# 500 for a header no service reads. Drop them at the edge, after jwt_authn
# (which has read Authorization) and before the transcoder.
# gRPC: keys 1*[0-9a-z_.-]; values of non "-bin" keys printable ASCII.
GRPC_SAFE_HEADERS_LUA = """
function envoy_on_request(handle)
  local headers = handle:headers()
  local drop = {}
  for key, value in pairs(headers) do
    if string.sub(key, 1, 1) ~= ":" then
      if not string.find(key, "^[0-9a-z_.%-]+$") then
        drop[#drop + 1] = key
      elseif string.sub(key, -4) ~= "-bin" and string.find(value, "[^\\032-\\126]") then
        drop[#drop + 1] = key
      end
    end
  end
  for _, key in ipairs(drop) do
    headers:remove(key)
  end
end
"""


def _http_filters(opts: EdgeOptions, transcoded: list[str], rules: list[dict]) -> list[dict]:
    every = {"default_value": {"numerator": 100, "denominator": "HUNDRED"}}
    per_minute = opts.rate_limit_per_minute
    return [
        {
            "name": "envoy.filters.http.health_check",
            "typed_config": {
                "@type": TYPE + "envoy.extensions.filters.http.health_check.v3.HealthCheck",
                # Answered by Envoy itself: 200 while live, 503 once draining
                # or failed via the admin's /healthcheck/fail.
                "pass_through_mode": False,
                "headers": [{"name": ":path", "string_match": {"exact": registry.HEALTH_PATH}}],
            },
        },
        {
            "name": "envoy.filters.http.header_mutation",
            "typed_config": {
                "@type": TYPE + "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
                # Before jwt_authn: a client must never choose its own identity.
                "mutations": {"request_mutations": [{"remove": JWT_PAYLOAD_HEADER}]},
            },
        },
        {
            "name": "envoy.filters.http.cors",
            "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.cors.v3.Cors"},
        },
        {
            "name": "envoy.filters.http.local_ratelimit",
            "typed_config": {
                "@type": TYPE
                + "envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit",
                "stat_prefix": "edge_rate_limit",
                # A generous shared bucket that only applies when no client
                # descriptor matched (never, in practice).
                "token_bucket": {
                    "max_tokens": 1_000_000,
                    "tokens_per_fill": 1_000_000,
                    "fill_interval": "60s",
                },
                "filter_enabled": {**every, "runtime_key": "edge.rate_limit.enabled"},
                "filter_enforced": {**every, "runtime_key": "edge.rate_limit.enforced"},
                "rate_limits": [{"actions": [{"remote_address": {}}]}],
                # No value on the entry: one bucket per distinct client address.
                "descriptors": [
                    {
                        "entries": [{"key": "remote_address"}],
                        "token_bucket": {
                            "max_tokens": per_minute,
                            "tokens_per_fill": per_minute,
                            "fill_interval": "60s",
                        },
                    }
                ],
                "max_dynamic_descriptors": 10_000,
                "always_consume_default_token_bucket": False,
                "enable_x_ratelimit_headers": "DRAFT_VERSION_03",
            },
        },
        {
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": TYPE + "envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": {
                    JWT_PROVIDER: {
                        "issuer": ISSUER,
                        "audiences": [AUDIENCE],
                        "local_jwks": {"inline_string": json.dumps(opts.jwks, sort_keys=True)},
                        # Only the Authorization header (the default would also
                        # read an access_token query parameter).
                        "from_headers": [{"name": "Authorization", "value_prefix": "Bearer "}],
                        "forward_payload_header": JWT_PAYLOAD_HEADER,
                        "clock_skew_seconds": 30,
                    }
                },
                "rules": rules,
            },
        },
        {
            "name": "envoy.filters.http.lua",
            "typed_config": {
                "@type": TYPE + "envoy.extensions.filters.http.lua.v3.Lua",
                "default_source_code": {"inline_string": GRPC_SAFE_HEADERS_LUA},
            },
        },
        {
            "name": "envoy.filters.http.grpc_json_transcoder",
            "typed_config": {
                "@type": TYPE
                + "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
                "proto_descriptor": str(opts.descriptor_file),
                "services": transcoded,
                # Canonical proto3 JSON: lowerCamelCase out (both accepted in),
                # every field printed so clients see zeros and empty lists.
                "print_options": {
                    "add_whitespace": False,
                    "always_print_primitive_fields": True,
                    "always_print_enums_as_ints": False,
                    "preserve_proto_field_names": False,
                },
                "convert_grpc_status": True,
                # Keep the route chosen for the REST request (see _routes).
                "match_incoming_request_route": True,
                "case_insensitive_enum_parsing": True,
                # A query parameter no request field has would make the
                # request unmappable: passed through untranscoded, the gRPC
                # server resets it and the client saw a 503. Answer 400
                # naming the parameter instead. (Unknown paths never get
                # here: they have no route, and the router's 404 says so.)
                "request_validation_options": {"reject_unknown_query_parameters": True},
                # A supplier feed of 100,000 rows is one JSON body of tens
                # of MB (SubmitFeedRequest.content). Without this the limit
                # is the connection's 1 MiB buffer and such a POST got 413
                # whenever Envoy read faster than it could forward. The same
                # bound as svc_catalog's gRPC message limit.
                "max_request_body_size": MAX_REQUEST_BODY_BYTES,
            },
        },
        {
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": TYPE + "envoy.extensions.filters.http.router.v3.Router"},
        },
    ]


OTLP_CLUSTER = "otlp_collector"


def _tracing() -> dict[str, Any]:
    """Envoy's OpenTelemetry tracer: a span per request, every request
    sampled, W3C ``traceparent`` sent upstream so the services' spans are its
    children (mesh.tracing picks it up from the gRPC metadata)."""
    return {
        "random_sampling": {"value": 100},
        "spawn_upstream_span": False,
        "provider": {
            "name": "envoy.tracers.opentelemetry",
            "typed_config": {
                "@type": TYPE + "envoy.config.trace.v3.OpenTelemetryConfig",
                "grpc_service": {
                    "envoy_grpc": {"cluster_name": OTLP_CLUSTER},
                    "timeout": "2s",
                },
                "service_name": "edge",
            },
        },
    }


def _otlp_cluster(endpoint: str) -> dict[str, Any]:
    """The collector Envoy exports its spans to, over OTLP/gRPC (HTTP/2)."""
    host, port = _socket(endpoint.split("://", 1)[-1].rstrip("/"))
    return {
        "name": OTLP_CLUSTER,
        "type": "STATIC" if _is_ip(host) else "STRICT_DNS",
        "connect_timeout": "1s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": TYPE + "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "load_assignment": {
            "cluster_name": OTLP_CLUSTER,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": host, "port_value": port}}}}]}],
        },
    }


def build_bootstrap(opts: EdgeOptions, contracts: descriptors.Contracts) -> dict[str, Any]:
    """The complete Envoy bootstrap for the given options."""
    processes = list(opts.processes)
    transcoded = [s for p in processes for s in p.public_services]
    missing = [s for s in transcoded if s not in contracts.services]
    if missing:
        # Envoy would refuse to start; say why here instead.
        raise ValueError(f"services not in the descriptor set: {', '.join(missing)}")
    routed = routed_rpcs(contracts, processes)
    routes: list[dict[str, Any]] = []
    if opts.openapi_file is not None:
        routes.append(
            {
                "name": "openapi",
                "match": {"path": registry.OPENAPI_PATH},
                "direct_response": {
                    "status": 200,
                    "body": {"filename": str(opts.openapi_file)},
                },
                "response_headers_to_add": [
                    {
                        "header": {"key": "content-type", "value": "application/json"},
                        "append_action": "OVERWRITE_IF_EXISTS_OR_ADD",
                    }
                ],
            }
        )
    if opts.web_addr:
        routes.append(web_route())
    for rpc, process in routed:
        routes.extend(_routes(rpc, process))
    hcm = {
        "@type": TYPE
        + "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "edge",
        "codec_type": "AUTO",
        # The client's address is the TCP peer (no trusted proxy in front):
        # that is what rate limiting and the access log key on.
        "use_remote_address": True,
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
        "access_log": _access_log(opts.access_log_path),
        "local_reply_config": _local_reply_config(),
        "route_config": {
            "name": "edge",
            "max_direct_response_body_size_bytes": 8 * 1024 * 1024,
            "virtual_hosts": [
                {
                    "name": "ecom",
                    "domains": ["*"],
                    "routes": routes,
                    "typed_per_filter_config": {
                        "envoy.filters.http.cors": _cors_policy(opts.cors_origins)
                    },
                }
            ],
        },
        "http_filters": _http_filters(opts, transcoded, jwt_rules(routed, web=bool(opts.web_addr))),
    }
    clusters = [
        cluster(p, opts.addresses[p.name], opts.health_check_interval_seconds)
        for p in processes
    ]
    if opts.otlp_endpoint:
        hcm["tracing"] = _tracing()
        clusters.append(_otlp_cluster(opts.otlp_endpoint))
    return {
        "node": {"id": "ecom-edge", "cluster": "ecom-edge"},
        "admin": {
            # Loopback only: the admin interface can stop the server.
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": opts.admin_port}}
        },
        "static_resources": {
            "listeners": [
                {
                    "name": "edge_http",
                    "address": {
                        "socket_address": {"address": opts.host, "port_value": opts.port}
                    },
                    "filter_chains": [
                        {
                            "filters": [
                                {
                                    "name": "envoy.filters.network.http_connection_manager",
                                    "typed_config": hcm,
                                }
                            ]
                        }
                    ],
                }
            ],
            "clusters": clusters
            + ([web_cluster(opts.web_addr, opts.health_check_interval_seconds)]
               if opts.web_addr else []),
        },
        # Bound open client connections so a flood cannot exhaust file
        # descriptors (Envoy warns at start-up when this is missing).
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": TYPE + "envoy.extensions.resource_monitors."
                        "downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": 10_000,
                    },
                }
            ]
        },
        **opts.extra,
    }


def options_from_settings(
    settings: EdgeSettings,
    *,
    out_dir: Path,
    addresses: Mapping[str, str] | None = None,
    processes: Sequence[registry.ServiceProcess] | None = None,
    descriptor_set: Path = descriptors.DESCRIPTOR_SET,
    openapi_file: Path | None = OPENAPI_FILE,
    web_addr: str | None = None,
) -> EdgeOptions:
    """Resolve settings into options: loads (or creates) the signing key for
    the JWKS and writes the edge's descriptor set into ``out_dir``.
    ``web_addr``: the storefront's file server to route ``/`` to (none
    when None)."""
    from mesh import tokens

    key = tokens.load_or_create_signing_key(tokens.signing_key_path(settings))
    addrs = dict(registry.default_addresses(settings))
    addrs.update(addresses or {})
    return EdgeOptions(
        jwks=tokens.public_jwks(key),
        addresses=addrs,
        processes=list(processes if processes is not None else registry.present_processes()),
        descriptor_file=write_edge_descriptor(descriptor_set, out_dir / "ecom-edge.protoset"),
        openapi_file=openapi_file if openapi_file and openapi_file.exists() else None,
        host=settings.edge_host,
        port=settings.edge_port,
        admin_port=settings.edge_admin_port,
        rate_limit_per_minute=settings.edge_rate_limit_per_minute,
        cors_origins=[o.strip() for o in settings.edge_cors_origins.split(",") if o.strip()],
        health_check_interval_seconds=settings.edge_health_check_interval_seconds,
        web_addr=web_addr,
        otlp_endpoint=settings.otlp_endpoint,
    )


def write_config(
    opts: EdgeOptions, out: Path, contracts: descriptors.Contracts | None = None
) -> Path:
    """Write the bootstrap for ``opts`` to ``out`` (JSON, which Envoy reads as YAML)."""
    bootstrap = build_bootstrap(opts, contracts or descriptors.load())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(bootstrap, indent=2) + "\n")
    os.replace(tmp, out)
    return out
