"""The pure parts of archival and the merged history: the archive age, exact
microsecond keys, month buckets, the CQL file splitter, page tokens and the
merge of live and archived pages (checked against a brute-force merge)."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta

import pytest
from ecom.common.v1 import common_pb2
from ecom.orders.v1 import orders_pb2 as pb
from hypothesis import given
from hypothesis import strategies as st

from mesh.errors import InvalidArgument
from svc_orders.archive import parse_age
from svc_orders.archive_store import CQL_DIR, cql_statements, from_us, month_of, to_us
from svc_orders.history import decode_token, encode_token, merge_pages, order_key


def test_archive_age_accepts_units_and_refuses_garbage() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age("12h") == timedelta(hours=12)
    assert parse_age("90m") == timedelta(minutes=90)
    assert parse_age("0s") == timedelta(0)
    assert parse_age("45") == timedelta(seconds=45)
    for bad in ("", "-1d", "30 days", "1w", "d"):
        with pytest.raises(ValueError):
            parse_age(bad)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_microsecond_keys_round_trip_exactly(value: datetime) -> None:
    assert from_us(to_us(value)) == value
    assert month_of(to_us(value)) == value.strftime("%Y-%m")


def test_the_schema_files_split_into_idempotent_statements() -> None:
    statements = [s for p in sorted(CQL_DIR.glob("*.cql")) for s in cql_statements(p.read_text())]
    assert len(statements) == 4
    assert all(s.startswith("CREATE TABLE IF NOT EXISTS") for s in statements)
    assert cql_statements("-- note; with a semicolon\nSELECT 1;\n\nSELECT 2") == [
        "SELECT 1",
        "SELECT 2",
    ]


def test_page_tokens_round_trip_and_are_bound_to_their_list() -> None:
    token = encode_token((1_700_000_000_123_456, "abc"), "user-1")
    assert decode_token(token, "user-1") == (1_700_000_000_123_456, "abc")
    assert decode_token("", "user-1") is None
    # A cursor in a year no datetime can hold.
    raw = common_pb2.PageCursor(after_id="abc", request_hash="user-1")
    raw.after_time.seconds = 10**12
    far = base64.urlsafe_b64encode(raw.SerializeToString()).rstrip(b"=").decode()
    for bad_scope, bad_token in (
        ("user-2", token),
        ("user-1", "not-a-token!"),
        ("user-1", "AA"),
        ("user-1", far),
    ):
        with pytest.raises(InvalidArgument):
            decode_token(bad_token, bad_scope)


def _order(oid: str, us: int, archived: bool) -> pb.Order:
    o = pb.Order(order_id=oid, archived=archived)
    o.create_time.FromMicroseconds(us)
    return o


@given(
    st.dictionaries(
        st.text("0123456789abcdef", min_size=4, max_size=4),
        st.tuples(st.integers(0, 5), st.sampled_from(["live", "archived", "both"])),
        max_size=40,
    ),
    st.integers(1, 12),
)
def test_merged_pages_equal_a_brute_force_merge(
    orders: dict[str, tuple[int, str]], size: int
) -> None:
    """Walk every page the way the service does (each store asked for
    size + 1 after the cursor); orders in both stores appear once, live."""
    live = sorted(
        (_order(k, t, False) for k, (t, where) in orders.items() if where != "archived"),
        key=order_key,
        reverse=True,
    )
    archived = sorted(
        (_order(k, t, True) for k, (t, where) in orders.items() if where != "live"),
        key=order_key,
        reverse=True,
    )
    seen: list[pb.Order] = []
    cursor = None
    while True:
        after_live = [o for o in live if cursor is None or order_key(o) < cursor][: size + 1]
        after_arch = [o for o in archived if cursor is None or order_key(o) < cursor][: size + 1]
        page, cursor = merge_pages(after_live, after_arch, size)
        assert len(page) == size or cursor is None
        seen += page
        if cursor is None:
            break
    expected = sorted(orders, key=lambda k: (orders[k][0], k), reverse=True)
    assert [o.order_id for o in seen] == expected
    assert all(o.archived == (orders[o.order_id][1] == "archived") for o in seen)
