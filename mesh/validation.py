"""Input checks every service shares: Indian pincodes and AIP-155 request
ids. Each returns the violations naming the field (empty when fine), for
:class:`mesh.errors.InvalidArgument`."""

from __future__ import annotations

import re

from mesh.errors import FieldViolation

# Six digits, the first 1-9 (India Post's PIN format).
PINCODE = re.compile(r"^[1-9][0-9]{5}$")
PINCODE_RULE = "must be 6 digits, first 1-9"

# The request-id columns of orders, payments and inventory. A service whose
# column is wider (cart and users keep 128) passes its own bound.
REQUEST_ID_MAX_LENGTH = 64


def is_pincode(value: str) -> bool:
    """True for a well-formed pincode."""
    return bool(PINCODE.match(value))


def pincode_violations(field: str, value: str, rule: str = PINCODE_RULE) -> list[FieldViolation]:
    """``field`` is not a well-formed pincode."""
    return [] if is_pincode(value) else [FieldViolation(field, rule)]


def request_id_violations(
    value: str, *, field: str = "request_id", max_length: int = REQUEST_ID_MAX_LENGTH
) -> list[FieldViolation]:
    """A request id (AIP-155) that does not fit its column; never empty on
    a served call (mesh.idempotency gives a call without a key a fresh one)."""
    if len(value) > max_length:
        return [FieldViolation(field, f"at most {max_length} characters")]
    return []
