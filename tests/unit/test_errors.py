"""The one mapping from domain exceptions to gRPC status with rich details."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from mesh import errors
from mesh.errors import (
    ERROR_DOMAIN,
    AlreadyExists,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    PreconditionViolation,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    error_details,
    to_grpc_status,
    to_rpc_status,
)


def _detail(status, cls):  # type: ignore[no-untyped-def]
    found = [d for d in error_details(status) if isinstance(d, cls)]
    assert len(found) == 1, f"expected one {cls.__name__} in {error_details(status)}"
    return found[0]


@pytest.mark.parametrize(
    ("exc", "code", "reason"),
    [
        (NotFound("item 7 not found"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        (InvalidArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (AlreadyExists("email taken"), grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
        (FailedPrecondition("order cancelled"), grpc.StatusCode.FAILED_PRECONDITION, None),
        (Conflict("version moved"), grpc.StatusCode.ABORTED, "CONFLICT"),
        (errors.Aborted("version moved"), grpc.StatusCode.ABORTED, "CONFLICT"),
        (PermissionDenied("not yours"), grpc.StatusCode.PERMISSION_DENIED, None),
        (Unauthenticated("sign in"), grpc.StatusCode.UNAUTHENTICATED, None),
        (ResourceExhausted("slow down"), grpc.StatusCode.RESOURCE_EXHAUSTED, None),
        (Unavailable("db down"), grpc.StatusCode.UNAVAILABLE, None),
        (DeadlineExceeded("gateway slow"), grpc.StatusCode.DEADLINE_EXCEEDED, None),
    ],
)
def test_each_domain_error_maps_to_its_code_with_error_info(
    exc: errors.DomainError, code: grpc.StatusCode, reason: str | None
) -> None:
    status = to_rpc_status(exc, "req-1")
    assert status.code == code.value[0]
    assert status.message == exc.message
    info = _detail(status, error_details_pb2.ErrorInfo)
    assert info.domain == ERROR_DOMAIN
    assert info.reason == (reason or code.name)
    assert _detail(status, error_details_pb2.RequestInfo).request_id == "req-1"


def test_custom_reason_and_metadata_reach_error_info() -> None:
    exc = NotFound("no item 42", reason="ITEM_NOT_FOUND", metadata={"item_id": "42"})
    info = _detail(to_rpc_status(exc), error_details_pb2.ErrorInfo)
    assert info.reason == "ITEM_NOT_FOUND"
    assert dict(info.metadata) == {"item_id": "42"}


def test_invalid_argument_carries_field_violations_and_names_them() -> None:
    exc = InvalidArgument(
        violations=[
            FieldViolation("email", "must contain '@'"),
            FieldViolation("address.pincode", "must be 6 digits"),
        ]
    )
    assert exc.message == "email: must contain '@'; address.pincode: must be 6 digits"
    bad = _detail(to_rpc_status(exc), error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("email", "must contain '@'"),
        ("address.pincode", "must be 6 digits"),
    ]


def test_for_field_shorthand() -> None:
    exc = InvalidArgument.for_field("page_size", "must be between 1 and 100")
    assert exc.violations == [FieldViolation("page_size", "must be between 1 and 100")]
    assert "page_size" in exc.message


def test_precondition_resource_and_retry_details() -> None:
    pre = FailedPrecondition(
        "order is cancelled",
        violations=[PreconditionViolation("ORDER_STATE", "orders/9", "order is CANCELLED")],
    )
    violation = _detail(to_rpc_status(pre), error_details_pb2.PreconditionFailure).violations[0]
    assert (violation.type, violation.subject) == ("ORDER_STATE", "orders/9")

    missing = NotFound("no such item", resource_type="item", resource_name="items/9")
    assert (
        _detail(to_rpc_status(missing), error_details_pb2.ResourceInfo).resource_name == "items/9"
    )

    throttled = ResourceExhausted("too many logins", retry_after=1.5)
    delay = _detail(to_rpc_status(throttled), error_details_pb2.RetryInfo).retry_delay
    assert delay.ToNanoseconds() == 1_500_000_000


def test_unexpected_exception_becomes_generic_internal() -> None:
    secret = "SELECT password_hash FROM users WHERE id=1"
    status = to_rpc_status(RuntimeError(secret), "req-9")
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert status.message == "internal error (request id req-9)"
    assert secret not in str(status)
    assert _detail(status, error_details_pb2.ErrorInfo).reason == "INTERNAL"


def _rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def test_downstream_unavailable_passes_through_without_its_details() -> None:
    status = to_rpc_status(_rpc_error(grpc.StatusCode.UNAVAILABLE, "connect to 10.0.0.5 failed"))
    assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "10.0.0.5" not in status.message


def test_downstream_other_errors_become_internal() -> None:
    status = to_rpc_status(_rpc_error(grpc.StatusCode.NOT_FOUND, "no row"))
    assert status.code == grpc.StatusCode.INTERNAL.value[0]


def test_grpc_status_carries_rich_details_in_trailing_metadata() -> None:
    rich = to_rpc_status(InvalidArgument.for_field("qty", "must be positive"), "r")
    status = to_grpc_status(rich)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == "qty: must be positive"
    [(key, value)] = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    assert value == rich.SerializeToString()
