"""Read the contracts from the descriptor set (``generated/ecom.protoset``).

The edge configuration and the OpenAPI document are both derived from here:
which services exist, which RPCs carry a ``google.api.http`` annotation, their
verb, path template and body, and the comments written in the ``.proto``
files (kept in the descriptor set's source info).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
DESCRIPTOR_SET = ROOT / "generated" / "ecom.protoset"

# FileDescriptorProto / DescriptorProto field numbers used in source-info paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM = 2, 3, 4
_SERVICE_METHOD = 2
_ENUM_VALUE = 2

_VERBS = ("get", "put", "post", "delete", "patch")
# `{name}` or `{name=pattern}` inside a path template.
_TEMPLATE_VAR = re.compile(r"\{([a-zA-Z0-9_.]+)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class HttpBinding:
    """One REST binding of an RPC: ``GET /v1/items/{item_id}``."""

    verb: str  # upper case: GET, POST, PUT, PATCH, DELETE
    path: str  # the template as written in the proto
    body: str  # "" (no body), "*" (whole request) or a field name

    @property
    def path_params(self) -> list[str]:
        """Field paths bound by the template, in order (``item_id``)."""
        return [m.group(1) for m in _TEMPLATE_VAR.finditer(self.path)]

    def path_regex(self) -> str:
        """An RE2 regex matching request paths of this template (no query).

        A plain ``{var}`` matches one segment; ``{var=**}`` anything."""
        out, pos = [], 0
        for m in _TEMPLATE_VAR.finditer(self.path):
            out.append(re.escape(self.path[pos : m.start()]))
            pattern = m.group(2) or "*"
            out.append(".+" if "**" in pattern else "[^/]+")
            pos = m.end()
        out.append(re.escape(self.path[pos:]))
        # re.escape escapes ':' and '/' needlessly; RE2 accepts both forms but
        # the unescaped regex is easier to read in the generated YAML.
        return "".join(out).replace("\\/", "/").replace("\\:", ":").replace("\\-", "-")

    @property
    def openapi_path(self) -> str:
        """The template in OpenAPI form: ``{var=pattern}`` becomes ``{var}``."""
        return _TEMPLATE_VAR.sub(lambda m: "{" + m.group(1) + "}", self.path)


@dataclass(frozen=True)
class Rpc:
    """One RPC of a service, with its REST bindings (empty: gRPC only)."""

    service: str  # full name, ecom.users.v1.UserService
    name: str  # GetUser
    input_type: str  # full name without the leading dot
    output_type: str
    bindings: tuple[HttpBinding, ...]
    comment: str

    @property
    def full_name(self) -> str:
        return f"{self.service}.{self.name}"

    @property
    def grpc_path(self) -> str:
        """The HTTP/2 path of the gRPC call: ``/ecom.users.v1.UserService/GetUser``."""
        return f"/{self.service}/{self.name}"

    @property
    def is_read(self) -> bool:
        """True when every REST binding is a GET: safe to retry."""
        return bool(self.bindings) and all(b.verb == "GET" for b in self.bindings)


class Contracts:
    """The descriptor set, indexed by full name, with comments."""

    def __init__(self, fds: descriptor_pb2.FileDescriptorSet) -> None:
        self.fds = fds
        self.files = {f.name: f for f in fds.file}
        self.messages: dict[str, descriptor_pb2.DescriptorProto] = {}
        self.enums: dict[str, descriptor_pb2.EnumDescriptorProto] = {}
        self.services: dict[str, descriptor_pb2.ServiceDescriptorProto] = {}
        self._comments: dict[tuple[str, ...], str] = {}
        for f in fds.file:
            comments = {
                tuple(loc.path): _clean(loc.leading_comments or loc.trailing_comments)
                for loc in f.source_code_info.location
                if loc.leading_comments or loc.trailing_comments
            }
            prefix = f.package
            for i, msg in enumerate(f.message_type):
                self._index_message(f"{prefix}.{msg.name}", msg, (_FILE_MESSAGE, i), comments)
            for i, enum in enumerate(f.enum_type):
                self._index_enum(f"{prefix}.{enum.name}", enum, (_FILE_ENUM, i), comments)
            for i, svc in enumerate(f.service):
                name = f"{prefix}.{svc.name}"
                self.services[name] = svc
                self._keep(("svc", name), comments.get((_FILE_SERVICE, i)))
                for j, m in enumerate(svc.method):
                    self._keep(
                        ("rpc", name, m.name), comments.get((_FILE_SERVICE, i, _SERVICE_METHOD, j))
                    )

    def _keep(self, key: tuple[str, ...], comment: str | None) -> None:
        if comment:
            self._comments[key] = comment

    def _index_message(
        self,
        name: str,
        msg: descriptor_pb2.DescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        self.messages[name] = msg
        self._keep(("msg", name), comments.get(path))
        for k, fld in enumerate(msg.field):
            self._keep(("field", name, fld.name), comments.get((*path, _MESSAGE_FIELD, k)))
        for k, nested in enumerate(msg.nested_type):
            self._index_message(
                f"{name}.{nested.name}", nested, (*path, _MESSAGE_NESTED, k), comments
            )
        for k, enum in enumerate(msg.enum_type):
            self._index_enum(f"{name}.{enum.name}", enum, (*path, _MESSAGE_ENUM, k), comments)

    def _index_enum(
        self,
        name: str,
        enum: descriptor_pb2.EnumDescriptorProto,
        path: tuple[int, ...],
        comments: dict[tuple[int, ...], str],
    ) -> None:
        self.enums[name] = enum
        self._keep(("enum", name), comments.get(path))
        for k, value in enumerate(enum.value):
            self._keep(("value", name, value.name), comments.get((*path, _ENUM_VALUE, k)))

    def comment(self, *key: str) -> str:
        """The proto comment of ``("msg", name)``, ``("field", msg, field)``,
        ``("rpc", service, method)``, ``("svc", name)``, ``("enum", name)`` or
        ``("value", enum, value)``; "" when there is none."""
        return self._comments.get(key, "")

    def rpcs(self, service: str) -> list[Rpc]:
        """Every RPC of ``service`` (full name) in declaration order."""
        svc = self.services[service]
        return [
            Rpc(
                service=service,
                name=m.name,
                input_type=m.input_type.lstrip("."),
                output_type=m.output_type.lstrip("."),
                bindings=tuple(_bindings(m.options.Extensions[annotations_pb2.http])),
                comment=self.comment("rpc", service, m.name),
            )
            for m in svc.method
        ]

    def all_rpcs(self) -> Iterator[Rpc]:
        for service in sorted(self.services):
            yield from self.rpcs(service)


def _clean(comment: str) -> str:
    """A proto comment without the space after each ``//``."""
    return "\n".join(line[1:] if line.startswith(" ") else line
                     for line in comment.splitlines()).strip()


def _bindings(rule: http_pb2.HttpRule) -> Iterator[HttpBinding]:
    verb = rule.WhichOneof("pattern")
    if verb in _VERBS:
        yield HttpBinding(verb.upper(), getattr(rule, verb), rule.body)
    elif verb == "custom":
        yield HttpBinding(rule.custom.kind.upper(), rule.custom.path, rule.body)
    for extra in rule.additional_bindings:
        yield from _bindings(extra)


def load(path: Path = DESCRIPTOR_SET) -> Contracts:
    """Parse a FileDescriptorSet file (with source info for comments)."""
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(path.read_bytes())
    return Contracts(fds)
