"""mesh.idempotency and the caller defaults of mesh.auth, on real contract
messages and fake effects: no servers, milliseconds."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager

import pytest
from ecom.cart.v1 import cart_pb2
from ecom.orders.v1 import orders_pb2

from mesh.auth import Caller, apply_caller_defaults
from mesh.context import CallContext, activate
from mesh.errors import Conflict, InvalidArgument, Unauthenticated
from mesh.idempotency import (
    AUTO_KEY_PREFIX,
    IdempotencyGuard,
    MemoryFingerprints,
    fingerprint,
    has_key_field,
)

METHOD = "/ecom.cart.v1.CartService/AddCartItem"


class Effects:
    """A fake side effect that counts how often it ran."""

    def __init__(self) -> None:
        self.runs = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def apply(self, answer: str) -> str:
        self.runs += 1
        await self.gate.wait()
        return f"{answer}#{self.runs}"


def add(quantity: int = 1, key: str = "") -> cart_pb2.AddCartItemRequest:
    return cart_pb2.AddCartItemRequest(
        user_id="u1", item_id="i1", quantity=quantity, request_id=key
    )


async def test_no_key_runs_every_time_with_a_fresh_key() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    first, second = add(), add()
    a = await guard.run(METHOD, first, None, "u1", lambda: fx.apply("a"))
    b = await guard.run(METHOD, second, None, "u1", lambda: fx.apply("b"))
    assert (a, b, fx.runs) == ("a#1", "b#2", 2)
    assert first.request_id.startswith(AUTO_KEY_PREFIX)
    assert second.request_id.startswith(AUTO_KEY_PREFIX)
    assert first.request_id != second.request_id


async def test_the_header_fills_the_field() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    req = add()
    await guard.run(METHOD, req, "key-1", "u1", lambda: fx.apply("a"))
    assert req.request_id == "key-1"


async def test_field_and_header_must_agree() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    with pytest.raises(InvalidArgument) as err:
        await guard.run(METHOD, add(key="k1"), "k2", "u1", lambda: fx.apply("a"))
    assert [v.field for v in err.value.violations] == ["request_id"]
    assert fx.runs == 0
    # The same key in both is fine.
    await guard.run(METHOD, add(key="k1"), "k1", "u1", lambda: fx.apply("a"))
    assert fx.runs == 1


async def test_same_key_and_body_is_one_effect_for_the_guard() -> None:
    """The guard lets a sequential retry through to the service (which
    replays its stored result); only a different body is refused here."""
    guard, fx = IdempotencyGuard(), Effects()
    await guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a"))
    await guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a"))
    with pytest.raises(Conflict) as err:
        await guard.run(METHOD, add(3, "k"), None, "u1", lambda: fx.apply("b"))
    assert err.value.reason == "REQUEST_ID_REUSED"
    assert "'k'" in err.value.message
    assert fx.runs == 2


async def test_a_key_reused_on_another_method_is_refused() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    await guard.run(METHOD, add(1, "k"), None, "u1", lambda: fx.apply("a"))
    with pytest.raises(Conflict):
        await guard.run(METHOD + "X", add(1, "k"), None, "u1", lambda: fx.apply("b"))


async def test_keys_are_scoped_by_caller() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    await guard.run(METHOD, add(1, "k"), None, "u1", lambda: fx.apply("a"))
    await guard.run(METHOD, add(5, "k"), None, "u2", lambda: fx.apply("b"))
    assert fx.runs == 2


async def test_a_failed_call_is_not_remembered() -> None:
    guard = IdempotencyGuard()

    async def refuse() -> str:
        raise InvalidArgument.for_field("quantity", "must be 1-10")

    with pytest.raises(InvalidArgument):
        await guard.run(METHOD, add(99, "k"), None, "u1", refuse)
    fx = Effects()
    assert await guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a")) == "a#1"


async def test_concurrent_calls_with_one_key_share_the_final_answer() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    fx.gate.clear()
    first = asyncio.create_task(guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a")))
    second = asyncio.create_task(
        guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a"))
    )
    await asyncio.sleep(0.01)
    assert fx.runs == 1  # the second waits for the first instead of running
    fx.gate.set()
    assert await first == await second == "a#1"


async def test_concurrent_call_with_another_body_is_refused() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    fx.gate.clear()
    first = asyncio.create_task(guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a")))
    await asyncio.sleep(0.01)
    with pytest.raises(Conflict):
        await guard.run(METHOD, add(3, "k"), None, "u1", lambda: fx.apply("b"))
    fx.gate.set()
    assert await first == "a#1"


async def test_a_waiter_runs_itself_when_the_first_caller_goes_away() -> None:
    guard, fx = IdempotencyGuard(), Effects()
    fx.gate.clear()
    first = asyncio.create_task(guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a")))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(
        guard.run(METHOD, add(2, "k"), None, "u1", lambda: fx.apply("a"))
    )
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.sleep(0.01)
    fx.gate.set()
    assert await second == "a#2"
    assert first.cancelled()


async def test_memory_store_keeps_the_first_value() -> None:
    store = MemoryFingerprints()
    assert await store.put_if_absent("k", "one", 60) is None
    assert await store.put_if_absent("k", "two", 60) == "one"
    assert await store.get("k") == "one"


def test_fingerprint_ignores_the_key_but_not_the_body() -> None:
    assert fingerprint(METHOD, add(1, "a")) == fingerprint(METHOD, add(1, "b"))
    assert fingerprint(METHOD, add(1, "a")) != fingerprint(METHOD, add(2, "a"))
    assert has_key_field(add()) and not has_key_field(cart_pb2.GetCartRequest())


# -- the caller as the default user -------------------------------------------


def as_caller(caller: Caller | None) -> AbstractContextManager[None]:
    return activate(CallContext(request_id="r", caller=caller))


def test_me_and_empty_mean_the_caller() -> None:
    alice = Caller("u-alice", frozenset({"customer"}))
    with as_caller(alice):
        mine = cart_pb2.GetCartRequest(user_id="me")
        apply_caller_defaults(mine)
        omitted = orders_pb2.CreateOrderRequest()
        apply_caller_defaults(omitted)
        named = cart_pb2.GetCartRequest(user_id="u-bob")
        apply_caller_defaults(named)
    assert mine.user_id == omitted.user_id == "u-alice"
    # Naming someone else is left to the service's owner check.
    assert named.user_id == "u-bob"


def test_me_without_a_caller_is_unauthenticated() -> None:
    with as_caller(None):
        with pytest.raises(Unauthenticated):
            apply_caller_defaults(cart_pb2.GetCartRequest(user_id="me"))
        empty = cart_pb2.GetCartRequest()
        apply_caller_defaults(empty)
    assert empty.user_id == ""


def test_a_service_caller_must_name_the_user() -> None:
    orders = Caller("svc_orders", frozenset({"service"}))
    with as_caller(orders):
        empty = cart_pb2.GetCartRequest()
        apply_caller_defaults(empty)
    assert empty.user_id == ""
