"""Users domain: accounts, profiles and saved addresses, and their rules.

Pure: no I/O. Validation raises :class:`mesh.errors.InvalidArgument` naming
each bad field with its request path (``email``, ``user.phone``,
``address.pincode``) so callers can point at the exact input. Whether a
well-formed pincode really exists is a lookup in reference data, passed in
as a ``pincode_known`` callable so these rules stay testable without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum

from mesh import validation
from mesh.errors import FieldViolation, InvalidArgument

MAX_ADDRESSES_PER_USER = 20
PASSWORD_MIN_CHARS = 8
PASSWORD_MAX_CHARS = 128
NAME_MAX_CHARS = 100
ADDRESS_LINE_MAX_CHARS = 100
ADDRESS_MAX_LINES = 3
EMAIL_MAX_CHARS = 254

# Deliberately simple (one @, a dot in the domain, no spaces): full RFC 5322
# accepts addresses no mail system delivers to, and the real test of an
# address is a confirmation mail, not a regex.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_PHONE = re.compile(r"^(?:\+91)?([6-9][0-9]{9})$")
_PINCODE = validation.PINCODE
# Spaces, dashes and brackets people type inside phone numbers.
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")


class Role(Enum):
    """What an account may do; the value is the token's role name."""

    CUSTOMER = "customer"
    ADMIN = "admin"


@dataclass(frozen=True)
class Address:
    """A saved delivery address (``address_id``/``create_time`` set once stored)."""

    name: str
    lines: tuple[str, ...]
    city: str
    state: str
    pincode: str
    phone: str
    landmark: str = ""
    address_id: str = ""
    is_default: bool = False
    create_time: datetime | None = None


@dataclass(frozen=True)
class User:
    """An account as the profile API shows it (never the password hash)."""

    user_id: str
    email: str
    name: str
    phone: str
    role: Role
    create_time: datetime
    update_time: datetime
    default_address: Address | None = None
    # Order and payment updates by SMS (transactional email is always on).
    sms_notifications: bool = True


@dataclass(frozen=True)
class ProfileChange:
    """The validated new values of an UpdateUser; None means unchanged."""

    name: str | None = None
    phone: str | None = None
    sms_notifications: bool | None = None

    @property
    def empty(self) -> bool:
        return self.name is None and self.phone is None and self.sms_notifications is None


@dataclass
class _Violations:
    """Collects every bad field so one response names them all."""

    items: list[FieldViolation] = field(default_factory=list)

    def add(self, path: str, description: str) -> None:
        self.items.append(FieldViolation(path, description))

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(violations=self.items)


# -- single fields ---------------------------------------------------------


def normalize_email(raw: str) -> str:
    """Trimmed and lowercased. The whole address is lowercased, local part
    too: in practice every mailbox provider treats it case-insensitively, and
    two accounts differing only in case would be a support nightmare."""
    return raw.strip().lower()


def email_problem(email: str) -> str | None:
    """Why a (normalized) email is unacceptable, or None."""
    if not email:
        return "is required"
    if len(email) > EMAIL_MAX_CHARS:
        return f"must be at most {EMAIL_MAX_CHARS} characters"
    if not _EMAIL.match(email):
        return "must be an email address like name@example.com"
    return None


def password_problem(password: str) -> str | None:
    """Why a password breaks the policy (8-128 characters, not blank), or None.

    Length is the rule that matters (NIST SP 800-63B); composition rules
    ("one digit, one symbol") are deliberately absent.
    """
    if len(password) < PASSWORD_MIN_CHARS:
        return f"must be at least {PASSWORD_MIN_CHARS} characters"
    if len(password) > PASSWORD_MAX_CHARS:
        return f"must be at most {PASSWORD_MAX_CHARS} characters"
    if not password.strip():
        return "must not be only whitespace"
    return None


def normalize_phone(raw: str) -> str | None:
    """``+91`` followed by the ten digits, or None when it is not an Indian
    mobile number (ten digits starting 6-9, optionally prefixed with +91)."""
    match = _PHONE.match(_PHONE_SEPARATORS.sub("", raw))
    return f"+91{match.group(1)}" if match else None


def is_well_formed_pincode(pincode: str) -> bool:
    """Six digits, the first 1-9."""
    return bool(_PINCODE.match(pincode))


def _check_name(v: _Violations, path: str, raw: str) -> str:
    name = raw.strip()
    if not name:
        v.add(path, "is required")
    elif len(name) > NAME_MAX_CHARS:
        v.add(path, f"must be at most {NAME_MAX_CHARS} characters")
    return name


def _check_phone(v: _Violations, path: str, raw: str, *, required: bool) -> str:
    if not raw.strip():
        if required:
            v.add(path, "is required")
        return ""
    phone = normalize_phone(raw)
    if phone is None:
        v.add(path, "must be ten digits starting 6-9, optionally prefixed with +91")
        return ""
    return phone


# -- whole requests ----------------------------------------------------------


@dataclass(frozen=True)
class SignUp:
    """A validated sign-up: normalized email and phone, trimmed name."""

    email: str
    password: str
    name: str
    phone: str


def validate_sign_up(email: str, password: str, name: str, phone: str) -> SignUp:
    """Check a sign-up request; raise InvalidArgument naming every bad field."""
    v = _Violations()
    normalized = normalize_email(email)
    if problem := email_problem(normalized):
        v.add("email", problem)
    if problem := password_problem(password):
        v.add("password", problem)
    clean_name = _check_name(v, "name", name)
    clean_phone = _check_phone(v, "phone", phone, required=False)
    v.raise_if_any()
    return SignUp(normalized, password, clean_name, clean_phone)


UPDATABLE_PROFILE_FIELDS = (
    "name", "phone", "notification_preferences", "notification_preferences.sms_enabled"
)


def validate_profile_change(
    mask_paths: Sequence[str], name: str, phone: str, *, prefix: str = "user.",
    sms_enabled: bool | None = None,
) -> ProfileChange:
    """The change an UpdateUser asks for.

    ``mask_paths`` names the fields to change (``name``, ``phone``); an empty
    mask means every updatable field given a non-empty value. A masked
    ``phone`` may be empty (clears it); a masked ``name`` may not.
    ``sms_enabled`` is the request's ``notification_preferences.sms_enabled``,
    None when the request carries no preferences.
    """
    v = _Violations()
    if mask_paths:
        unknown = [p for p in mask_paths if p not in UPDATABLE_PROFILE_FIELDS]
        if unknown:
            v.add(
                "update_mask",
                f"cannot update {', '.join(unknown)}; updatable fields: "
                + ", ".join(UPDATABLE_PROFILE_FIELDS),
            )
            v.raise_if_any()
        paths = set(mask_paths)
    else:
        paths = {p for p, val in (("name", name), ("phone", phone)) if val.strip()}
        if sms_enabled is not None:
            paths.add("notification_preferences")
    new_sms = None
    if paths & {"notification_preferences", "notification_preferences.sms_enabled"}:
        new_sms = bool(sms_enabled)
    new_name = _check_name(v, prefix + "name", name) if "name" in paths else None
    new_phone = (
        _check_phone(v, prefix + "phone", phone, required=False) if "phone" in paths else None
    )
    v.raise_if_any()
    return ProfileChange(name=new_name, phone=new_phone, sms_notifications=new_sms)


def validate_address(
    address: Address,
    pincode_known: Callable[[str], bool],
    *,
    prefix: str = "address.",
) -> Address:
    """A cleaned copy of ``address``; raise InvalidArgument naming every bad
    field. The pincode must be well formed *and* known to ``pincode_known``
    (India Post's directory): an unknown one is INVALID_ARGUMENT too, with
    reason ``UNKNOWN_PINCODE`` when it is the only problem."""
    v = _Violations()
    name = _check_name(v, prefix + "name", address.name)
    lines = tuple(line.strip() for line in address.lines)
    if not lines:
        v.add(prefix + "lines", "needs at least one street line")
    elif len(lines) > ADDRESS_MAX_LINES:
        v.add(prefix + "lines", f"at most {ADDRESS_MAX_LINES} lines")
    for i, line in enumerate(lines[:ADDRESS_MAX_LINES]):
        if not line:
            v.add(f"{prefix}lines[{i}]", "must not be empty")
        elif len(line) > ADDRESS_LINE_MAX_CHARS:
            v.add(f"{prefix}lines[{i}]", f"must be at most {ADDRESS_LINE_MAX_CHARS} characters")
    landmark = address.landmark.strip()
    if len(landmark) > NAME_MAX_CHARS:
        v.add(prefix + "landmark", f"must be at most {NAME_MAX_CHARS} characters")
    city = _check_name(v, prefix + "city", address.city)
    state = _check_name(v, prefix + "state", address.state)
    pincode = address.pincode.strip()
    unknown_pincode = False
    if not is_well_formed_pincode(pincode):
        v.add(prefix + "pincode", "must be six digits, the first 1-9 (e.g. 560001)")
    elif not pincode_known(pincode):
        unknown_pincode = True
        v.add(prefix + "pincode", f"{pincode} is not a known Indian PIN code")
    phone = _check_phone(v, prefix + "phone", address.phone, required=True)
    if v.items:
        only_unknown = unknown_pincode and len(v.items) == 1
        raise InvalidArgument(
            violations=v.items, reason="UNKNOWN_PINCODE" if only_unknown else None
        )
    return replace(
        address,
        name=name,
        lines=lines,
        landmark=landmark,
        city=city,
        state=state,
        pincode=pincode,
        phone=phone,
    )


# -- default address rules ----------------------------------------------------


def new_address_is_default(existing_count: int, requested_default: bool) -> bool:
    """A user's first address is always the default; later ones only when asked."""
    return existing_count == 0 or requested_default


def successor_default(remaining: Iterable[Address]) -> Address | None:
    """After the default is deleted, the newest remaining address takes over."""
    candidates = [a for a in remaining if a.create_time is not None]
    if not candidates:
        return None
    return max(candidates, key=lambda a: (a.create_time, a.address_id))


def list_order(addresses: Iterable[Address]) -> list[Address]:
    """Default first, then newest first (ties broken by id, for stable paging)."""
    return sorted(
        addresses,
        key=lambda a: (
            not a.is_default,
            -(a.create_time.timestamp() if a.create_time else 0.0),
            a.address_id,
        ),
    )
