"""svc_users domain rules, without servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mesh.errors import InvalidArgument
from svc_users.domain import (
    Address,
    email_problem,
    list_order,
    new_address_is_default,
    normalize_email,
    normalize_phone,
    password_problem,
    successor_default,
    validate_address,
    validate_profile_change,
    validate_sign_up,
)

KNOWN = {"560001", "110001"}


def known(pincode: str) -> bool:
    return pincode in KNOWN


def addr(**kw: object) -> Address:
    fields: dict[str, object] = dict(
        name="Asha",
        lines=("12 MG Road",),
        city="Bengaluru",
        state="Karnataka",
        pincode="560001",
        phone="9845012345",
    )
    fields.update(kw)
    return Address(**fields)  # type: ignore[arg-type]


def fields_of(exc: pytest.ExceptionInfo[InvalidArgument]) -> list[str]:
    return [v.field for v in exc.value.violations]


# -- emails, passwords, phones --------------------------------------------------


@pytest.mark.parametrize(
    "raw,expected",
    [("  Asha@Example.COM ", "asha@example.com"), ("a.b+tag@x.in", "a.b+tag@x.in")],
)
def test_email_normalised_lowercase_trimmed(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected
    assert email_problem(normalize_email(raw)) is None


@pytest.mark.parametrize(
    "bad", ["", "asha", "asha@", "@x.in", "a b@x.in", "a@b", "a@@b.in", "a@" + "x" * 250 + ".in"]
)
def test_bad_emails_rejected(bad: str) -> None:
    assert email_problem(normalize_email(bad)) is not None


@pytest.mark.parametrize(
    "password,ok",
    [
        ("1234567", False),
        ("12345678", True),
        ("x" * 128, True),
        ("x" * 129, False),
        (" " * 10, False),
        ("pass phrase with spaces", True),
        ("पासवर्डपासवर्ड", True),
    ],
)
def test_password_policy_length_only(password: str, ok: bool) -> None:
    assert (password_problem(password) is None) is ok


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("9845012345", "+919845012345"),
        ("+91 98450-12345", "+919845012345"),
        ("(984) 501 2345", "+919845012345"),
        ("5845012345", None),
        ("984501234", None),
        ("+44 9845012345", None),
        ("98450123456", None),
    ],
)
def test_phone_normalised_to_plus91(raw: str, expected: str | None) -> None:
    assert normalize_phone(raw) == expected


def test_sign_up_collects_every_violation() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_sign_up("nope", "short", "   ", "123")
    assert fields_of(exc) == ["email", "password", "name", "phone"]
    ok = validate_sign_up(" A@B.in ", "longenough", " Asha ", "")
    assert (ok.email, ok.name, ok.phone) == ("a@b.in", "Asha", "")


# -- profile updates ---------------------------------------------------------------


def test_profile_change_mask_rules() -> None:
    assert validate_profile_change(["name"], "New", "ignored").phone is None
    change = validate_profile_change([], "New", "")  # empty mask: only set fields
    assert change.name == "New" and change.phone is None
    cleared = validate_profile_change(["phone"], "", "")
    assert cleared.phone == "" and cleared.name is None
    assert validate_profile_change([], "", "").empty
    with pytest.raises(InvalidArgument) as exc:
        validate_profile_change(["email"], "", "")
    assert fields_of(exc) == ["update_mask"]
    with pytest.raises(InvalidArgument) as exc:
        validate_profile_change(["name", "phone"], "", "123")
    assert fields_of(exc) == ["user.name", "user.phone"]


# -- addresses -----------------------------------------------------------------------


def test_valid_address_is_cleaned() -> None:
    clean = validate_address(addr(lines=(" 12 MG Road ",), pincode=" 560001 "), known)
    assert clean.lines == ("12 MG Road",) and clean.pincode == "560001"
    assert clean.phone == "+919845012345"


@pytest.mark.parametrize("pincode", ["56001", "0560001", "056001", "56000a", ""])
def test_malformed_pincode_names_the_field(pincode: str) -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_address(addr(pincode=pincode), known)
    assert fields_of(exc) == ["address.pincode"]
    assert exc.value.reason == "INVALID_ARGUMENT"


def test_unknown_pincode_has_its_own_reason() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_address(addr(pincode="999999"), known)
    assert fields_of(exc) == ["address.pincode"]
    assert exc.value.reason == "UNKNOWN_PINCODE"
    assert "999999" in exc.value.message


def test_address_lines_and_required_fields() -> None:
    with pytest.raises(InvalidArgument) as exc:
        validate_address(addr(lines=("a", " ", "c", "d"), city="", phone=""), known)
    assert fields_of(exc) == ["address.lines", "address.lines[1]", "address.city", "address.phone"]
    with pytest.raises(InvalidArgument) as exc:
        validate_address(addr(lines=()), known)
    assert fields_of(exc) == ["address.lines"]


# -- default-address rules ---------------------------------------------------------------


def test_first_address_is_default_later_only_when_asked() -> None:
    assert new_address_is_default(0, False)
    assert new_address_is_default(0, True)
    assert not new_address_is_default(3, False)
    assert new_address_is_default(3, True)


def test_successor_is_newest_remaining() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    older = addr(address_id="a", create_time=t0)
    newer = addr(address_id="b", create_time=t0 + timedelta(days=1))
    assert successor_default([older, newer]) == newer
    assert successor_default([]) is None


def test_list_order_default_first_then_newest() -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    a = addr(address_id="a", create_time=t0)
    b = addr(address_id="b", create_time=t0 + timedelta(hours=1), is_default=True)
    c = addr(address_id="c", create_time=t0 + timedelta(hours=2))
    assert [x.address_id for x in list_order([a, b, c])] == ["b", "c", "a"]
