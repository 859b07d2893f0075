"""Payment rules without servers: the status state machine (property-based),
refund arithmetic, money in paise, request validation and page tokens."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from svc_payments import domain
from svc_payments.domain import GatewayAnswer, PaymentStatus, RefundRefused
from svc_payments.store import decode_page_token, encode_page_token

P = PaymentStatus


def fields(violations: list[domain.FieldViolation]) -> set[str]:
    return {v.field for v in violations}


# -- the state machine -------------------------------------------------------
def test_transition_table() -> None:
    assert domain.can_transition(P.PENDING, P.SUCCEEDED)
    assert domain.can_transition(P.PENDING, P.TIMED_OUT)
    assert domain.can_transition(P.TIMED_OUT, P.SUCCEEDED)  # the late success
    assert domain.can_transition(P.TIMED_OUT, P.DECLINED)
    assert not domain.can_transition(P.SUCCEEDED, P.DECLINED)
    assert not domain.can_transition(P.SUCCEEDED, P.TIMED_OUT)
    assert not domain.can_transition(P.DECLINED, P.SUCCEEDED)
    assert not domain.can_transition(P.TIMED_OUT, P.PENDING)
    assert domain.sources_of(P.SUCCEEDED) == {P.PENDING, P.TIMED_OUT}
    assert domain.sources_of(P.REFUNDED) == {P.SUCCEEDED, P.PARTIALLY_REFUNDED}


@given(st.sampled_from(list(P)), st.sampled_from(list(P)))
def test_sources_of_agrees_with_can_transition(src: PaymentStatus, dst: PaymentStatus) -> None:
    assert (src in domain.sources_of(dst)) == domain.can_transition(src, dst)


@given(st.sampled_from(sorted(domain.TERMINAL)), st.sampled_from(list(P)))
def test_terminal_statuses_never_move(src: PaymentStatus, dst: PaymentStatus) -> None:
    assert not domain.can_transition(src, dst)


def test_only_definite_answers_resolve_a_payment() -> None:
    assert domain.status_for_answer(GatewayAnswer.CAPTURED) is P.SUCCEEDED
    assert domain.status_for_answer(GatewayAnswer.DECLINED) is P.DECLINED
    # A timeout or "still processing" must never fail a payment: the
    # gateway may yet charge.
    assert domain.status_for_answer(GatewayAnswer.PROCESSING) is None
    assert domain.status_for_answer(GatewayAnswer.UNKNOWN) is None


# One step of the world around a payment, as the service applies it.
steps = st.one_of(
    st.tuples(st.just("answer"), st.sampled_from(list(GatewayAnswer))),
    st.tuples(st.just("window_closed"), st.none()),
    st.tuples(st.just("refund"), st.one_of(st.none(), st.integers(-5, 20_000))),
)


def _step(
    status: P, captured: int, refunded: int, kind: str, arg: object
) -> tuple[P, int]:
    """One event of the property below applied by the domain's rules: the
    status and the amount refunded after it."""
    if kind == "answer":
        assert isinstance(arg, GatewayAnswer)
        target = domain.status_for_answer(arg)
        if target is not None and domain.can_transition(status, target):
            return target, refunded
        return status, refunded
    if kind == "window_closed":
        return (P.TIMED_OUT if domain.can_transition(status, P.TIMED_OUT) else status), refunded
    requested = arg if isinstance(arg, int) else None
    if requested is not None and requested <= 0:
        return status, refunded  # validation refuses these before any rule runs
    try:
        plan = domain.plan_refund(status, captured, refunded, requested)
    except RefundRefused:
        return status, refunded
    refunded += plan.amount_paise
    after = domain.status_after_refunds(captured, refunded)
    assert after is plan.status_after
    return after, refunded


@given(st.integers(1, 10_000), st.lists(steps, max_size=30))
def test_any_sequence_of_events_keeps_the_money_straight(
    captured: int, events: list[tuple[str, object]]
) -> None:
    status, refunded, ever_captured = P.PENDING, 0, False
    for kind, arg in events:
        before = status
        status, refunded = _step(status, captured, refunded, kind, arg)
        assert status is before or domain.can_transition(before, status)
        ever_captured = ever_captured or status is P.SUCCEEDED
        # Never more back than was taken, and nothing back unless taken.
        assert 0 <= refunded <= captured
        assert refunded == 0 or ever_captured
        if status is P.REFUNDED:
            assert refunded == captured
        if status is P.PARTIALLY_REFUNDED:
            assert 0 < refunded < captured
        # Captured money is never forgotten: no way back to a "no money" status.
        if ever_captured:
            assert status not in (P.PENDING, P.TIMED_OUT, P.DECLINED)


def test_refund_rules() -> None:
    full = domain.plan_refund(P.SUCCEEDED, 1000, 0, None)
    assert (full.amount_paise, full.status_after) == (1000, P.REFUNDED)
    part = domain.plan_refund(P.SUCCEEDED, 1000, 0, 300)
    assert (part.amount_paise, part.status_after) == (300, P.PARTIALLY_REFUNDED)
    rest = domain.plan_refund(P.PARTIALLY_REFUNDED, 1000, 300, None)
    assert (rest.amount_paise, rest.status_after) == (700, P.REFUNDED)
    with pytest.raises(RefundRefused) as too_much:
        domain.plan_refund(P.PARTIALLY_REFUNDED, 1000, 300, 701)
    assert too_much.value.reason == "REFUND_EXCEEDS_BALANCE"
    for status in (P.PENDING, P.TIMED_OUT, P.DECLINED, P.REFUNDED):
        with pytest.raises(RefundRefused) as refused:
            domain.plan_refund(status, 1000, 0, None)
        assert refused.value.reason == "PAYMENT_NOT_REFUNDABLE"
    # Refunds in flight count: a second refund cannot take the same money.
    with pytest.raises(RefundRefused) as nothing:
        domain.plan_refund(P.SUCCEEDED, 1000, 1000, None)
    assert nothing.value.reason == "NOTHING_TO_REFUND"


# -- money -------------------------------------------------------------------
@given(st.integers(-(10**12), 10**12))
def test_paise_round_trip_through_money(paise: int) -> None:
    units, nanos = domain.paise_to_money(paise)
    assert (units >= 0 and nanos >= 0) or (units <= 0 and nanos <= 0)
    assert abs(nanos) < 1_000_000_000
    back, problems = domain.money_to_paise("amount", "INR", units, nanos)
    assert (back, problems) == (paise, [])


def test_money_problems_are_named() -> None:
    assert fields(domain.money_to_paise("amount", "USD", 1, 0)[1]) == {"amount.currency_code"}
    assert fields(domain.money_to_paise("amount", "INR", 1, 5)[1]) == {"amount.nanos"}
    assert fields(domain.money_to_paise("amount", "INR", 1, -10_000_000)[1]) == {"amount.nanos"}
    assert domain.money_to_paise("amount", "", 12, 500_000_000) == (1250, [])
    assert domain.format_paise(1250) == "INR 12.50"


# -- validation --------------------------------------------------------------
def test_valid_create() -> None:
    new, problems = domain.validate_create(
        "ord-1", "u-1", ("INR", 10, 0), "tok_success", "rq-1", 99.0
    )
    assert problems == [] and new is not None
    assert new.amount_paise == 1000
    assert new.wait_seconds == domain.MAX_WAIT_SECONDS  # capped


def test_create_names_every_bad_field() -> None:
    new, problems = domain.validate_create("", "u 1", ("INR", 0, 0), "tok_nope", "x" * 65, -1)
    assert new is None
    assert fields(problems) == {
        "order_id",
        "user_id",
        "request_id",
        "amount",
        "payment_token",
        "wait_timeout",
    }
    _, missing = domain.validate_create("o", "u", None, "", "r", None)
    assert fields(missing) == {"amount", "payment_token"}


def test_refund_validation() -> None:
    assert domain.validate_refund("p", None, "admin", "r") == (None, [])
    assert domain.validate_refund("p", ("INR", 5, 0), "", "r") == (500, [])
    _, problems = domain.validate_refund("", ("INR", -5, 0), "x" * 201, "")
    assert fields(problems) == {"payment_id", "request_id", "amount", "reason"}


def test_page_size() -> None:
    assert domain.page_size(0) == (domain.DEFAULT_PAGE_SIZE, [])
    assert domain.page_size(10_000) == (domain.MAX_PAGE_SIZE, [])
    assert fields(domain.page_size(-1)[1]) == {"page_size"}


def test_page_token_round_trip_and_garbage() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, 678901)
    assert decode_page_token(encode_page_token(when, "pay_1")) == (when, "pay_1")
    for bad in ("garbage!", "", "bm9waXBl"):
        with pytest.raises(ValueError):
            decode_page_token(bad)
