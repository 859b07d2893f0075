"""The order state machine and money rules of svc_orders.domain, without I/O.

A hypothesis RuleBasedStateMachine drives an order through random actions
and checks it against docs/architecture.md's table after every step."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from svc_orders import codec, domain
from svc_orders.domain import (
    Action,
    IllegalTransition,
    OrderState,
    PaymentStatus,
    ReservationState,
    WantedLine,
)

# docs/architecture.md "Order states", written out independently of domain.py.
ALLOWED = {
    ("CREATED", "PLACED"),
    ("PLACED", "SHIPPED"),
    ("SHIPPED", "DELIVERED"),
    ("CREATED", "CANCELLED"),
    ("PLACED", "CANCELLED"),
}
TERMINAL = {"DELIVERED", "CANCELLED"}


class OrderLifecycle(RuleBasedStateMachine):
    """One order; every rule is an action a user, admin, payment or clock
    may take at any time, legal or not."""

    def __init__(self) -> None:
        super().__init__()
        self.state = domain.next_state(OrderState.PENDING, Action.RESERVED)
        assert self.state is OrderState.CREATED
        self.history: list[tuple[str, str]] = []
        self.paid = False

    def _apply(self, action: Action) -> None:
        before = self.state
        assert before is not None
        try:
            after = domain.next_state(before, action)
        except IllegalTransition as exc:
            assert exc.state is before
            # Refused only when the table has no such edge from here.
            assert not any(a == before.value for a, _ in ALLOWED if self._edge(action, a))
            return
        if after is None:  # idempotent repeat: nothing changes
            return
        self.history.append((before.value, after.value))
        self.state = after
        if action is Action.PAYMENT_SUCCEEDED:
            self.paid = True

    @staticmethod
    def _edge(action: Action, state: str) -> bool:
        """Whether docs/architecture.md lets ``action`` move an order out of ``state``."""
        leaves = {
            Action.PAYMENT_SUCCEEDED: {"CREATED"},
            Action.PAYMENT_DECLINED: {"CREATED"},
            Action.EXPIRE: {"CREATED"},
            Action.CANCEL: {"CREATED", "PLACED"},
            Action.SHIP: {"PLACED"},
            Action.DELIVER: {"SHIPPED"},
        }
        return state in leaves.get(action, set())

    @rule()
    def pay_succeeds(self) -> None:
        self._apply(Action.PAYMENT_SUCCEEDED)

    @rule()
    def pay_declined(self) -> None:
        self._apply(Action.PAYMENT_DECLINED)

    @rule()
    def hold_expires(self) -> None:
        self._apply(Action.EXPIRE)

    @rule()
    def cancel(self) -> None:
        self._apply(Action.CANCEL)

    @rule()
    def ship(self) -> None:
        self._apply(Action.SHIP)

    @rule()
    def deliver(self) -> None:
        self._apply(Action.DELIVER)

    @rule()
    def reserve_again(self) -> None:
        self._apply(Action.RESERVED)

    @invariant()
    def only_architecture_transitions(self) -> None:
        assert all(step in ALLOWED for step in self.history), self.history

    @invariant()
    def terminal_states_stay(self) -> None:
        for i, (_, to) in enumerate(self.history):
            if to in TERMINAL:
                assert i == len(self.history) - 1, self.history

    @invariant()
    def shipped_only_after_payment(self) -> None:
        assert self.state is not None
        if self.state in (OrderState.SHIPPED, OrderState.DELIVERED):
            assert self.paid

    @invariant()
    def reservation_follows_state(self) -> None:
        assert self.state is not None
        wanted = domain.wanted_reservation(self.state)
        if self.state is OrderState.CREATED:
            assert wanted is ReservationState.HELD
        elif self.state is OrderState.CANCELLED:
            assert wanted is ReservationState.RELEASED
        else:
            assert wanted is ReservationState.COMMITTED


TestOrderLifecycle = OrderLifecycle.TestCase


def test_allowed_transitions_are_exactly_the_architecture_table() -> None:
    visible = {
        (a.value, b.value)
        for a, b in domain.allowed_transitions()
        if a in domain.VISIBLE_STATES and b in domain.VISIBLE_STATES
    }
    assert visible == ALLOWED


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (OrderState.CREATED, Action.SHIP),
        (OrderState.CREATED, Action.DELIVER),
        (OrderState.SHIPPED, Action.CANCEL),
        (OrderState.DELIVERED, Action.CANCEL),
        (OrderState.CANCELLED, Action.PAYMENT_SUCCEEDED),
        (OrderState.PLACED, Action.EXPIRE),
    ],
)
def test_illegal_transitions_are_refused(state: OrderState, action: Action) -> None:
    with pytest.raises(IllegalTransition):
        domain.next_state(state, action)


@pytest.mark.parametrize(
    ("state", "action"),
    [
        (OrderState.CANCELLED, Action.CANCEL),
        (OrderState.SHIPPED, Action.SHIP),
        (OrderState.DELIVERED, Action.DELIVER),
    ],
)
def test_repeats_are_no_ops(state: OrderState, action: Action) -> None:
    assert domain.next_state(state, action) is None


def test_refund_is_due_only_for_a_captured_payment_on_a_cancelled_order() -> None:
    assert domain.refund_due(OrderState.CANCELLED, PaymentStatus.SUCCEEDED)
    assert not domain.refund_due(OrderState.CANCELLED, PaymentStatus.DECLINED)
    assert not domain.refund_due(OrderState.PLACED, PaymentStatus.SUCCEEDED)
    assert not domain.refund_due(OrderState.CANCELLED, PaymentStatus.REFUNDED)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_paise_money_round_trip(paise: int) -> None:
    units, nanos = domain.paise_to_money(paise)
    assert (units >= 0 and nanos >= 0) or (units <= 0 and nanos <= 0)
    assert abs(nanos) < 1_000_000_000
    assert domain.money_to_paise(units, nanos) == paise


@given(st.lists(st.tuples(st.integers(1, 10), st.integers(1, 10**9)), min_size=1, max_size=50))
def test_order_total_is_the_exact_sum_of_lines(lines: list[tuple[int, int]]) -> None:
    priced = [domain.PricedLine(f"i{i}", q, "t", p) for i, (q, p) in enumerate(lines)]
    total, count = domain.order_totals(priced)
    money = codec.money(total)  # what the API and the events show
    assert money.currency_code == "INR"
    assert money.units * 100 + money.nanos // 10_000_000 == sum(q * p for q, p in lines)
    assert count == sum(q for q, _ in lines)


def test_line_validation_names_the_field() -> None:
    problems = domain.validate_lines(
        [WantedLine("a", 1), WantedLine("a", 2), WantedLine("b", 11), WantedLine("", 1)]
    )
    fields = {p.field for p in problems}
    assert fields == {"lines[1].item_id", "lines[2].quantity", "lines[3].item_id"}
    assert domain.validate_lines([])[0].field == "lines"
    assert not domain.validate_lines([WantedLine("x", 10)])


def test_address_validation() -> None:
    ok = domain.validate_address("A", ["1 Rd"], "Pune", "Maharashtra", "411001", "+919876543210")
    assert ok == []
    bad = domain.validate_address("", [], "", "", "011001", "12345")
    assert {p.field.split(".")[1] for p in bad} == {
        "name",
        "lines",
        "city",
        "state",
        "pincode",
        "phone",
    }
