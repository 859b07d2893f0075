"""An OpenAPI 3 document of the public REST surface, from the descriptor set.

Paths, verbs and parameters come from the ``google.api.http`` annotations of
the services the edge exposes (:data:`edge.registry.PROCESSES`), schemas from
the messages in canonical proto3 JSON (lowerCamelCase names, 64-bit integers
as strings, enums as names, well-known types in their JSON forms),
descriptions from the proto comments, and the bearer-JWT requirement from
:data:`edge.registry.PUBLIC_RPCS`. ``make proto`` writes it to
``generated/openapi.json`` and the edge serves it at ``GET /openapi.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from google.api import field_behavior_pb2
from google.protobuf import descriptor_pb2

from edge import descriptors, registry

FD = descriptor_pb2.FieldDescriptorProto
OPENAPI_VERSION = "3.0.3"
STATUS_SCHEMA = "google.rpc.Status"

_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FD.TYPE_FLOAT: {"type": "number", "format": "float"},
    # proto3 JSON prints 64-bit integers as strings (they overflow JS numbers).
    FD.TYPE_INT64: {"type": "string", "format": "int64"},
    FD.TYPE_UINT64: {"type": "string", "format": "uint64"},
    FD.TYPE_SINT64: {"type": "string", "format": "int64"},
    FD.TYPE_FIXED64: {"type": "string", "format": "uint64"},
    FD.TYPE_SFIXED64: {"type": "string", "format": "int64"},
    FD.TYPE_INT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FD.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte"},
}

# Well-known types have their own JSON forms.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "example": "1.5s"},
    "google.protobuf.FieldMask": {"type": "string", "example": "name,phone"},
    "google.protobuf.Struct": {"type": "object", "additionalProperties": True},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array", "items": {}},
    "google.protobuf.Empty": {"type": "object"},
    "google.protobuf.Any": {
        "type": "object",
        "properties": {"@type": {"type": "string"}},
        "additionalProperties": True,
    },
    "google.protobuf.StringValue": {"type": "string", "nullable": True},
    "google.protobuf.BoolValue": {"type": "boolean", "nullable": True},
    "google.protobuf.Int32Value": {"type": "integer", "format": "int32", "nullable": True},
    "google.protobuf.UInt32Value": {"type": "integer", "format": "int64", "nullable": True},
    "google.protobuf.Int64Value": {"type": "string", "format": "int64", "nullable": True},
    "google.protobuf.UInt64Value": {"type": "string", "format": "uint64", "nullable": True},
    "google.protobuf.DoubleValue": {"type": "number", "nullable": True},
    "google.protobuf.FloatValue": {"type": "number", "nullable": True},
    "google.protobuf.BytesValue": {"type": "string", "format": "byte", "nullable": True},
}

_STATUS = {
    "type": "object",
    "description": "An error: a google.rpc.Status (AIP-193) in proto3 JSON. `code` is the "
    "google.rpc.Code; `details` hold ErrorInfo (machine-readable `reason`), BadRequest "
    "(field violations) and RequestInfo (the request id).",
    "properties": {
        "code": {"type": "integer", "format": "int32"},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"@type": {"type": "string"}},
                "additionalProperties": True,
            },
        },
    },
    "required": ["code", "message"],
}


class _Builder:
    def __init__(self, contracts: descriptors.Contracts) -> None:
        self.c = contracts
        self.schemas: dict[str, Any] = {STATUS_SCHEMA: _STATUS}

    # -- schemas -----------------------------------------------------------
    def ref(self, type_name: str) -> dict[str, Any]:
        """A schema for the message ``type_name``: inline for well-known types,
        a ``$ref`` (registering the component) otherwise."""
        if type_name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[type_name])
        if type_name not in self.schemas:
            self.schemas[type_name] = {}  # placeholder: breaks recursion
            self.schemas[type_name] = self.message_schema(type_name)
        return {"$ref": f"#/components/schemas/{type_name}"}

    def message_schema(self, type_name: str, *, skip: frozenset[str] = frozenset()) -> dict:
        msg = self.c.messages[type_name]
        props: dict[str, Any] = {}
        required: list[str] = []
        for fld in msg.field:
            if fld.name in skip:
                continue
            schema = self.field_schema(type_name, fld)
            behaviors = set(fld.options.Extensions[field_behavior_pb2.field_behavior])
            if field_behavior_pb2.OUTPUT_ONLY in behaviors:
                schema = {**schema, "readOnly": True} if "$ref" not in schema else {
                    "allOf": [schema], "readOnly": True}
            if field_behavior_pb2.REQUIRED in behaviors:
                required.append(fld.json_name)
            doc = self.c.comment("field", type_name, fld.name)
            if doc:
                schema = {**schema, "description": doc} if "$ref" not in schema else {
                    "allOf": [schema], "description": doc, **{
                        k: v for k, v in schema.items() if k != "$ref"}}
            props[fld.json_name] = schema
        out: dict[str, Any] = {"type": "object", "properties": props}
        if required:
            out["required"] = required
        doc = self.c.comment("msg", type_name)
        if doc:
            out["description"] = doc
        return out

    def field_schema(self, owner: str, fld: descriptor_pb2.FieldDescriptorProto) -> dict:
        type_name = fld.type_name.lstrip(".")
        if fld.label == FD.LABEL_REPEATED and fld.type == FD.TYPE_MESSAGE:
            entry = self.c.messages.get(type_name)
            if entry is not None and entry.options.map_entry:
                value = next(f for f in entry.field if f.name == "value")
                return {"type": "object",
                        "additionalProperties": self.single_schema(value)}
        single = self.single_schema(fld)
        if fld.label == FD.LABEL_REPEATED:
            return {"type": "array", "items": single}
        return single

    def single_schema(self, fld: descriptor_pb2.FieldDescriptorProto) -> dict:
        type_name = fld.type_name.lstrip(".")
        if fld.type == FD.TYPE_MESSAGE:
            return self.ref(type_name)
        if fld.type == FD.TYPE_ENUM:
            enum = self.c.enums[type_name]
            doc = "\n".join(
                f"- `{v.name}`: {self.c.comment('value', type_name, v.name)}"
                for v in enum.value
                if self.c.comment("value", type_name, v.name)
            )
            schema: dict[str, Any] = {"type": "string", "enum": [v.name for v in enum.value]}
            if doc:
                schema["description"] = doc
            return schema
        return dict(_SCALARS[fld.type])

    # -- parameters ----------------------------------------------------------
    def query_params(self, type_name: str, skip: set[str], prefix: str = "",
                     depth: int = 0) -> list[dict[str, Any]]:
        """Request fields not bound to the path or body, as query parameters
        (proto field names, dotted for nested messages)."""
        out = []
        for fld in self.c.messages[type_name].field:
            name = prefix + fld.name
            if name in skip:
                continue
            sub = fld.type_name.lstrip(".")
            if fld.type == FD.TYPE_MESSAGE and sub not in _WELL_KNOWN:
                if depth < 2 and fld.label != FD.LABEL_REPEATED:
                    out.extend(self.query_params(sub, skip, name + ".", depth + 1))
                continue
            param: dict[str, Any] = {
                "name": name,
                "in": "query",
                "required": False,
                "schema": self.field_schema(type_name, fld),
            }
            if fld.label == FD.LABEL_REPEATED:
                param["style"], param["explode"] = "form", True
            doc = self.c.comment("field", type_name, fld.name)
            if doc:
                param["description"] = doc
            out.append(param)
        return out

    def path_param(self, type_name: str, field_path: str) -> dict[str, Any]:
        msg_name, fld = type_name, None
        for part in field_path.split("."):
            fld = next(f for f in self.c.messages[msg_name].field if f.name == part)
            msg_name = fld.type_name.lstrip(".")
        assert fld is not None
        param: dict[str, Any] = {
            "name": field_path,
            "in": "path",
            "required": True,
            # Path segments never contain '/' and are never empty.
            "schema": {**self.single_schema(fld), "pattern": "^[^/]+$"}
            if fld.type == FD.TYPE_STRING else self.single_schema(fld),
        }
        doc = self.c.comment("field", type_name, field_path.split(".")[-1])
        if doc:
            param["description"] = doc
        return param

    # -- operations ------------------------------------------------------------
    def operation(self, rpc: descriptors.Rpc, b: descriptors.HttpBinding) -> dict[str, Any]:
        short_service = rpc.service.rsplit(".", 1)[-1]
        doc = rpc.comment or f"{short_service}.{rpc.name}"
        op: dict[str, Any] = {
            "operationId": f"{short_service}_{rpc.name}",
            "summary": doc.split("\n")[0].rstrip("."),
            "description": doc + f"\n\ngRPC: `{rpc.service}/{rpc.name}`.",
            "tags": [short_service],
        }
        bound = set(b.path_params)
        params = [self.path_param(rpc.input_type, p) for p in b.path_params]
        if b.body == "*":
            if bound:
                name = f"{rpc.input_type}.Body"
                self.schemas[name] = self.message_schema(
                    rpc.input_type, skip=frozenset(p.split(".")[0] for p in bound))
                body_schema: dict[str, Any] = {"$ref": f"#/components/schemas/{name}"}
            else:
                body_schema = self.ref(rpc.input_type)
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": body_schema}},
            }
        else:
            skip = set(bound)
            if b.body:
                fld = next(f for f in self.c.messages[rpc.input_type].field if f.name == b.body)
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": self.field_schema(
                        rpc.input_type, fld)}},
                }
                skip.add(b.body)
            params += self.query_params(rpc.input_type, skip)
        keyed = any(f.name == "request_id" for f in self.c.messages[rpc.input_type].field)
        if keyed:
            params.append({
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 64},
                "description": "Idempotency key (AIP-155), the same as `request_id`: a retry "
                               "with the same key returns the first result; the key reused "
                               "for another request is refused with 409. Without a key the "
                               "call is not deduplicated.",
            })
        if params:
            op["parameters"] = params
        error = {"description": "An error as google.rpc.Status.",
                 "content": {"application/json": {
                     "schema": {"$ref": f"#/components/schemas/{STATUS_SCHEMA}"}}}}
        op["responses"] = {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": self.ref(rpc.output_type)}},
            },
            "400": {**error, "description": "Bad JSON, unknown parameter or invalid field."},
            **({"409": {**error, "description": "The idempotency key was used for another "
                                                "request (REQUEST_ID_REUSED), or a concurrent "
                                                "change won."}} if keyed else {}),
            "default": error,
        }
        if rpc.full_name in registry.PUBLIC_RPCS:
            # Public, but a token is still used when sent (e.g. default address).
            op["security"] = [{}, {"bearer": []}]
        else:
            op["responses"]["401"] = {**error, "description": "Missing or invalid token."}
            op["security"] = [{"bearer": []}]
        return op


def build(contracts: descriptors.Contracts | None = None) -> dict[str, Any]:
    """The OpenAPI document as a dict."""
    contracts = contracts or descriptors.load()
    builder = _Builder(contracts)
    paths: dict[str, dict[str, Any]] = {}
    tags = []
    for process in registry.PROCESSES:
        for service in process.public_services:
            if service not in contracts.services:
                continue
            tags.append({"name": service.rsplit(".", 1)[-1],
                         "description": contracts.comment("svc", service)})
            for rpc in contracts.rpcs(service):
                for b in rpc.bindings:
                    paths.setdefault(b.openapi_path, {})[b.verb.lower()] = builder.operation(rpc, b)
    paths[registry.HEALTH_PATH] = {
        "get": {
            "operationId": "Edge_Health",
            "summary": "Edge health: 200 while the edge is live and not draining",
            "tags": ["Edge"],
            "security": [{}],
            "responses": {"200": {"description": "Live"},
                          "503": {"description": "Draining or failed"}},
        }
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "ecom REST API",
            "version": "v1",
            "description": (
                "The public REST surface of ecom, served by the Envoy edge, which transcodes "
                "each call to the gRPC service named in its description. JSON is canonical "
                "proto3 JSON (lowerCamelCase names are printed; proto names are accepted "
                "too). Errors are google.rpc.Status objects. Send `Authorization: Bearer "
                "<accessToken>` from `POST /v1/auth:login`."
            ),
        },
        "tags": [*tags, {"name": "Edge", "description": "Answered by the edge itself."}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": dict(sorted(builder.schemas.items())),
        },
    }


def render(doc: dict[str, Any]) -> str:
    """Deterministic text of the document (stable diffs, stale checks)."""
    return json.dumps(doc, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def write(out: Path, descriptor_set: Path = descriptors.DESCRIPTOR_SET) -> Path:
    """Build from ``descriptor_set`` and write to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(build(descriptors.load(descriptor_set))))
    return out
