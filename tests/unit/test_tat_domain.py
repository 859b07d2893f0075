"""svc_tat rules without servers: pincodes, ETA and cutoff, disruptions,
warehouse choice, the packed row, and the numpy matrix job."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesh.errors import InvalidArgument
from pipelines.serviceability import PincodeTable, load_pincodes, transit_matrix
from svc_tat import domain
from svc_tat.domain import (
    NO_ROUTE,
    DisruptionKind,
    DisruptionRule,
    Overlay,
    Reason,
    WarehouseTerms,
)
from svc_tat.warehouses import DEMO_WAREHOUSES, WarehouseConfig, load_warehouses

IST = domain.IST
TERMS = {
    "WH-A": WarehouseTerms("WH-A", cutoff_hour=14, processing_days=0),
    "WH-B": WarehouseTerms("WH-B", cutoff_hour=16, processing_days=1),
    "WH-C": WarehouseTerms("WH-C", cutoff_hour=12, processing_days=0),
}
COLUMNS = ("WH-A", "WH-B", "WH-C")
MORNING = dt.datetime(2025, 3, 10, 10, 0, tzinfo=IST)


def row(days: tuple[int, int, int], state: str = "Karnataka", delivery: bool = True):
    flags = domain.FLAG_DELIVERY if delivery else 0
    return domain.decode_row(domain.encode_row(flags, days, state))


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "012345", "56o001", "56 001"])
def test_malformed_pincodes_are_invalid_argument(bad: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        domain.validate_pincode(bad)
    assert err.value.violations[0].field == "pincode"


def test_valid_pincode_is_stripped() -> None:
    assert domain.validate_pincode(" 560100 ") == "560100"


@given(st.integers(0, 255), st.lists(st.integers(0, 255), max_size=40), st.text(max_size=30))
def test_row_round_trips(flags: int, days: list[int], state: str) -> None:
    r = domain.decode_row(domain.encode_row(flags, days, state))
    assert (r.flags, list(r.days), r.state) == (flags, days, state)


def test_cutoff_moves_the_promised_date() -> None:
    before = domain.eta(
        MORNING.replace(hour=13, minute=59), cutoff_hour=14, processing_days=1, transit_days=2
    )
    after = domain.eta(MORNING.replace(hour=14), cutoff_hour=14, processing_days=1, transit_days=2)
    assert before.days == 3 and before.promised == dt.date(2025, 3, 13)
    assert after.days == 4 and after.promised == dt.date(2025, 3, 14)


def test_eta_uses_the_ist_date_not_utc() -> None:
    # 23:00 UTC on the 9th is 04:30 IST on the 10th.
    at = dt.datetime(2025, 3, 9, 23, 0, tzinfo=dt.UTC)
    e = domain.eta(at, cutoff_hour=14, processing_days=0, transit_days=1)
    assert e.promised == dt.date(2025, 3, 11)


def test_transit_days_grow_with_distance_and_remoteness() -> None:
    near = domain.transit_days_for(10, metro=True, remote=False)
    mid = domain.transit_days_for(500, metro=True, remote=False)
    far = domain.transit_days_for(2500, metro=False, remote=True)
    assert near == 1 and near < mid < far
    assert domain.transit_days_for(500, metro=False, remote=False) == mid + 1


def test_routes_are_fastest_first_with_ties_by_id() -> None:
    r = domain.routes_for("560100", row((2, 1, 2)), COLUMNS, TERMS, Overlay(), MORNING)
    # WH-A 0+2, WH-B 1+1, WH-C 0+2: all 2 days, so by id.
    assert [x.warehouse_id for x in r.live] == ["WH-A", "WH-B", "WH-C"]
    r = domain.routes_for("560100", row((3, 1, NO_ROUTE)), COLUMNS, TERMS, Overlay(), MORNING)
    assert [x.warehouse_id for x in r.live] == ["WH-B", "WH-A"]


def test_non_delivery_pincode_has_no_routes() -> None:
    r = domain.routes_for(
        "380014", row((1, 1, 1), delivery=False), COLUMNS, TERMS, Overlay(), MORNING
    )
    assert r.live == () and domain.choose(r, None, 1).reason is Reason.NOT_SERVICEABLE


def _rule(kind: DisruptionKind, **kw) -> DisruptionRule:
    return DisruptionRule(disruption_id=kw.pop("id", "d1"), kind=kind, **kw)


def test_disruptions_overlay() -> None:
    base = row((1, 2, 3), state="Assam")
    closed = Overlay((_rule(DisruptionKind.WAREHOUSE_CLOSED, warehouse_id="WH-A"),))
    r = domain.routes_for("781026", base, COLUMNS, TERMS, closed, MORNING)
    assert [x.warehouse_id for x in r.live] == ["WH-B", "WH-C"]  # both 3 days: by id
    for overlay in (
        Overlay((_rule(DisruptionKind.CARRIER_OUTAGE, state="assam"),)),
        Overlay((_rule(DisruptionKind.CARRIER_OUTAGE, pincodes=("78",)),)),
        Overlay((_rule(DisruptionKind.PINCODE_BLOCKED, pincodes=("781026",)),)),
    ):
        r = domain.routes_for("781026", base, COLUMNS, TERMS, overlay, MORNING)
        assert r.live == ()
        assert domain.choose(r, None, 1).reason is Reason.DISRUPTED
    other = Overlay((_rule(DisruptionKind.CARRIER_OUTAGE, pincodes=("79",)),))
    assert domain.routes_for("781026", base, COLUMNS, TERMS, other, MORNING).live


def test_disruption_windows_and_clearing() -> None:
    later = MORNING + dt.timedelta(hours=1)
    rule = _rule(DisruptionKind.PINCODE_BLOCKED, pincodes=("560100",), start=later)
    assert not rule.in_force(MORNING) and rule.in_force(later)
    ended = _rule(DisruptionKind.PINCODE_BLOCKED, pincodes=("560100",), end=MORNING)
    assert not ended.in_force(MORNING)
    cleared = _rule(DisruptionKind.PINCODE_BLOCKED, pincodes=("560100",), cleared=later)
    assert not cleared.in_force(MORNING)
    overlay = Overlay((rule,)).with_rule(cleared)
    assert len(overlay.rules) == 1 and not overlay.pincode_blocked("560100", "", later)
    # The creation broadcast arriving after the clear does not revive it.
    assert overlay.with_rule(rule) is overlay
    assert not overlay.with_rule(rule).pincode_blocked("560100", "", later)


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        (_rule(DisruptionKind.WAREHOUSE_CLOSED), "disruption.warehouse_id"),
        (_rule(DisruptionKind.WAREHOUSE_CLOSED, warehouse_id="WH-Z"), "disruption.warehouse_id"),
        (_rule(DisruptionKind.CARRIER_OUTAGE), "disruption.state"),
        (_rule(DisruptionKind.CARRIER_OUTAGE, pincodes=("7",)), "disruption.pincodes[0]"),
        (_rule(DisruptionKind.PINCODE_BLOCKED, pincodes=("78",)), "disruption.pincodes[0]"),
        (_rule(DisruptionKind.PINCODE_BLOCKED), "disruption.pincodes"),
    ],
)
def test_incomplete_disruptions_are_rejected(rule: DisruptionRule, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        domain.validate_disruption(rule, ["WH-A"])
    assert err.value.violations[0].field == field


def test_choose_respects_stock() -> None:
    r = domain.routes_for("560100", row((1, 2, NO_ROUTE)), COLUMNS, TERMS, Overlay(), MORNING)

    def warehouse(stock: dict[str, int] | None, quantity: int) -> str:
        route = domain.choose(r, stock, quantity).route
        assert route is not None
        return route.warehouse_id

    assert warehouse(None, 1) == "WH-A"  # stock unknown
    assert warehouse({"WH-B": 3}, 1) == "WH-B"
    assert warehouse({"WH-A": 1, "WH-B": 3}, 2) == "WH-B"
    assert domain.choose(r, {"WH-A": 0}, 1).reason is Reason.OUT_OF_STOCK
    assert domain.choose(r, {}, 1).reason is Reason.NOT_SERVICEABLE
    assert domain.choose(r, {"WH-C": 9}, 1).reason is Reason.NOT_SERVICEABLE
    closed = Overlay((_rule(DisruptionKind.WAREHOUSE_CLOSED, warehouse_id="WH-B"),))
    r = domain.routes_for("560100", row((1, 2, NO_ROUTE)), COLUMNS, TERMS, closed, MORNING)
    assert domain.choose(r, {"WH-B": 3}, 1).reason is Reason.DISRUPTED


def test_page_size_bounds() -> None:
    assert domain.page_size(0, default=100, maximum=1000) == 100
    with pytest.raises(InvalidArgument):
        domain.page_size(1001, default=100, maximum=1000)


def test_warehouse_config_validation_and_file(tmp_path) -> None:
    with pytest.raises(ValueError):
        WarehouseConfig("W", "n", "c", "s", "56010", 1, 1, 10, 0, 100)
    path = tmp_path / "wh.json"
    path.write_text(
        '[{"warehouse_id": "WH-X", "name": "X", "city": "Pune", "state": '
        '"Maharashtra", "pincode": "411001", "latitude": 18.5, "longitude": 73.8, '
        '"cutoff_hour": 12, "processing_days": 1, "max_distance_km": 50, '
        '"states": ["Maharashtra"]}]'
    )
    [w] = load_warehouses(path)
    assert w.warehouse_id == "WH-X" and w.states == ("Maharashtra",)
    assert [w.warehouse_id for w in load_warehouses()] == sorted(
        w.warehouse_id for w in DEMO_WAREHOUSES
    )


def test_matrix_on_a_tiny_table() -> None:
    table = PincodeTable(
        pincodes=["560100", "560200", "194101", "380014"],
        states=["Karnataka", "Karnataka", "Ladakh", "Gujarat"],
        lat=np.array([12.845, 14.5, 34.15, 23.04]),
        lon=np.array([77.66, 77.6, 77.58, 72.57]),
        has_delivery=np.array([True, True, True, False]),
        remote=np.array([False, False, True, False]),
    )
    near = WarehouseConfig(
        "WH-N", "n", "Bengaluru", "Karnataka", "560100", 12.8452, 77.6602, 16, 0, 3500
    )
    local = WarehouseConfig(
        "WH-L",
        "l",
        "Bengaluru",
        "Karnataka",
        "560100",
        12.8452,
        77.6602,
        16,
        0,
        100,
        states=("Karnataka",),
    )
    m = transit_matrix(table, [near, local])
    assert m[0].tolist() == [1, 1]
    assert m[1, 0] == domain.transit_days_for(185, metro=False, remote=False)
    assert m[1, 1] == NO_ROUTE  # beyond 100 km
    assert m[2, 0] > m[1, 0] and m[2, 1] == NO_ROUTE
    assert m[3].tolist() == [NO_ROUTE, NO_ROUTE]  # no delivery office


def test_real_dataset_loads_every_pincode() -> None:
    table = load_pincodes()
    assert 19_000 < len(table) < 20_500
    assert not np.isnan(table.lat).any()
    idx = {p: i for i, p in enumerate(table.pincodes)}
    assert not table.has_delivery[idx["380014"]]
    assert table.has_delivery[idx["560100"]]
