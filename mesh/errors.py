"""Domain exceptions and their one mapping to gRPC status.

Service code raises these; the server interceptor turns them into a gRPC
status with ``google.rpc.Status`` rich details (AIP-193): every error
carries an ``ErrorInfo`` (machine-readable ``reason`` in UPPER_SNAKE_CASE,
``domain`` :data:`ERROR_DOMAIN`, string metadata) and a ``RequestInfo`` with
the request id; validation errors add ``BadRequest`` field violations,
precondition failures ``PreconditionFailure``, not-found/already-exists
``ResourceInfo``, and throttling/unavailability ``RetryInfo``.

Anything that is not a :class:`DomainError` is a bug or an outage: the
caller gets INTERNAL with a generic message and the request id, never the
exception text (which may hold SQL or a stack trace); the interceptor logs
the full exception server-side under the same request id.

Clients decode details with ``grpc_status.rpc_status.from_call(call)`` (or
:func:`error_details` on the resulting status).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "ecom.dev"
INTERNAL_REASON = "INTERNAL"


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field: ``field`` is a path such as ``address.pincode``."""

    field: str
    description: str


@dataclass(frozen=True)
class PreconditionViolation:
    """One failed precondition: ``type`` e.g. ``ORDER_STATE``, ``subject`` e.g. an order id."""

    type: str
    subject: str
    description: str


class DomainError(Exception):
    """Base of every error a service raises on purpose.

    ``message`` is for humans (developers reading a response), ``reason`` for
    programs; ``metadata`` adds context to ``ErrorInfo`` (string values only).
    """

    code: ClassVar[grpc.StatusCode] = grpc.StatusCode.UNKNOWN
    default_reason: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}

    def extra_details(self) -> list[Message]:
        """Detail messages beyond ErrorInfo; subclasses add their own."""
        return []

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, reason={self.reason!r})"


class InvalidArgument(DomainError):
    """The request is malformed; name each bad field in ``violations``."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str | None = None,
        *,
        violations: Sequence[FieldViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.violations = list(violations)
        if message is None:
            message = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(message or "invalid request", reason=reason, metadata=metadata)

    @classmethod
    def for_field(
        cls, field: str, description: str, *, reason: str | None = None
    ) -> InvalidArgument:
        """Shorthand for the common single-field case."""
        return cls(violations=[FieldViolation(field, description)], reason=reason)

    def extra_details(self) -> list[Message]:
        if not self.violations:
            return []
        return [
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=v.field, description=v.description
                    )
                    for v in self.violations
                ]
            )
        ]


class _ResourceError(DomainError):
    """An error about one resource, described by ``ResourceInfo`` when named."""

    def __init__(
        self,
        message: str,
        *,
        resource_type: str = "",
        resource_name: str = "",
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.resource_type = resource_type
        self.resource_name = resource_name

    def extra_details(self) -> list[Message]:
        if not (self.resource_type or self.resource_name):
            return []
        return [
            error_details_pb2.ResourceInfo(
                resource_type=self.resource_type,
                resource_name=self.resource_name,
                description=self.message,
            )
        ]


class NotFound(_ResourceError):
    """The resource does not exist (or the caller may not know it exists)."""

    code = grpc.StatusCode.NOT_FOUND
    default_reason = "NOT_FOUND"


class AlreadyExists(_ResourceError):
    """A create collided with an existing resource (e.g. email taken)."""

    code = grpc.StatusCode.ALREADY_EXISTS
    default_reason = "ALREADY_EXISTS"


class FailedPrecondition(DomainError):
    """The system is not in a state that allows the operation (e.g. paying a
    cancelled order); retrying the same call will not help."""

    code = grpc.StatusCode.FAILED_PRECONDITION
    default_reason = "FAILED_PRECONDITION"

    def __init__(
        self,
        message: str,
        *,
        violations: Sequence[PreconditionViolation] = (),
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = list(violations)

    def extra_details(self) -> list[Message]:
        if not self.violations:
            return []
        return [
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=v.type, subject=v.subject, description=v.description
                    )
                    for v in self.violations
                ]
            )
        ]


class Conflict(DomainError):
    """A concurrent change won (optimistic concurrency, etag mismatch, lock
    timeout); the client may retry the whole read-modify-write."""

    code = grpc.StatusCode.ABORTED
    default_reason = "CONFLICT"


Aborted = Conflict


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""

    code = grpc.StatusCode.PERMISSION_DENIED
    default_reason = "PERMISSION_DENIED"


class Unauthenticated(DomainError):
    """No (valid) caller identity on a call that needs one."""

    code = grpc.StatusCode.UNAUTHENTICATED
    default_reason = "UNAUTHENTICATED"


class _RetryableError(DomainError):
    """An error the client may retry after ``retry_after`` seconds (``RetryInfo``)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after

    def extra_details(self) -> list[Message]:
        if self.retry_after is None:
            return []
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(self.retry_after * 1e9))
        return [error_details_pb2.RetryInfo(retry_delay=delay)]


class ResourceExhausted(_RetryableError):
    """A quota or rate limit is hit (e.g. too many login attempts)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(_RetryableError):
    """A dependency is down; the same call may succeed later."""

    code = grpc.StatusCode.UNAVAILABLE
    default_reason = "UNAVAILABLE"


class DeadlineExceeded(DomainError):
    """The work could not finish in time (e.g. a payment gateway timed out)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED
    default_reason = "DEADLINE_EXCEEDED"


# Statuses from a downstream gRPC call that keep their meaning when passed on;
# anything else from downstream is our bug and becomes INTERNAL.
_PASS_THROUGH = {
    grpc.StatusCode.UNAVAILABLE: ("a dependency is unavailable", "DEPENDENCY_UNAVAILABLE"),
    grpc.StatusCode.DEADLINE_EXCEEDED: ("deadline exceeded", "DEADLINE_EXCEEDED"),
    grpc.StatusCode.CANCELLED: ("call cancelled", "CANCELLED"),
}


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _status(
    code: grpc.StatusCode,
    message: str,
    reason: str,
    request_id: str | None,
    metadata: Mapping[str, str] | None = None,
    extra: Sequence[Message] = (),
) -> status_pb2.Status:
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {}),
        *extra,
    ]
    if request_id:
        details.append(error_details_pb2.RequestInfo(request_id=request_id))
    return status_pb2.Status(
        code=code.value[0], message=message, details=[_pack(d) for d in details]
    )


def to_rpc_status(exc: BaseException, request_id: str | None = None) -> status_pb2.Status:
    """The ``google.rpc.Status`` a caller sees for ``exc``.

    Domain errors map to their code and details; a failed downstream gRPC
    call keeps UNAVAILABLE/DEADLINE_EXCEEDED/CANCELLED; everything else is
    INTERNAL with a generic message naming only the request id.
    """
    if isinstance(exc, DomainError):
        return _status(
            exc.code, exc.message, exc.reason, request_id, exc.metadata, exc.extra_details()
        )
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        downstream = exc.code()  # type: ignore[attr-defined]
        if downstream in _PASS_THROUGH:
            message, reason = _PASS_THROUGH[downstream]
            return _status(downstream, message, reason, request_id)
    return internal_rpc_status(request_id)


def internal_rpc_status(request_id: str | None) -> status_pb2.Status:
    """INTERNAL with nothing but the request id to quote to support."""
    message = "internal error" + (f" (request id {request_id})" if request_id else "")
    return _status(grpc.StatusCode.INTERNAL, message, INTERNAL_REASON, request_id)


def is_expected(exc: BaseException) -> bool:
    """True for errors that are part of normal operation (no stack trace logged)."""
    return isinstance(exc, DomainError)


def to_grpc_status(status: status_pb2.Status) -> grpc.Status:
    """A ``grpc.Status`` (code, details, trailing metadata carrying the rich
    status) ready for ``context.abort``."""
    return rpc_status.to_status(status)


def error_details(status: status_pb2.Status) -> list[Message]:
    """Unpack the details of a ``google.rpc.Status`` into their message types
    (ErrorInfo, BadRequest, ...); unknown types are skipped."""
    known: list[type[Message]] = [
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.PreconditionFailure,
        error_details_pb2.ResourceInfo,
        error_details_pb2.RetryInfo,
        error_details_pb2.RequestInfo,
    ]
    out: list[Message] = []
    for packed in status.details:
        for cls in known:
            if packed.Is(cls.DESCRIPTOR):
                msg = cls()
                packed.Unpack(msg)
                out.append(msg)
                break
    return out


__all__ = [
    "ERROR_DOMAIN",
    "Aborted",
    "AlreadyExists",
    "Conflict",
    "DeadlineExceeded",
    "DomainError",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "PreconditionViolation",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "error_details",
    "internal_rpc_status",
    "is_expected",
    "to_grpc_status",
    "to_rpc_status",
]
