"""Recommendation rules without servers: page sizes and tokens, which hits a
shopper is shown, time decay, top-k, similar items from factors, the
popularity lists and the offline metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mesh.errors import InvalidArgument
from pipelines import recs
from pipelines.recs_eval import score
from svc_recs import domain
from svc_recs.store import ALL, Ranked


def test_page_size_defaults_and_bounds() -> None:
    assert domain.page_size(0) == 20
    assert domain.page_size(50) == 50
    for bad in (-1, 51):
        with pytest.raises(InvalidArgument) as err:
            domain.page_size(bad)
        assert err.value.violations[0].field == "page_size"


def test_page_tokens_round_trip_and_belong_to_one_list() -> None:
    token = domain.encode_token(domain.Page("als-1", 20), "u:alice:")
    assert domain.decode_token(token, "u:alice:") == domain.Page("als-1", 20)
    assert domain.decode_token("", "u:alice:") is None
    for scope, tok in (("u:bob:", token), ("u:alice:", "garbage!"), ("u:alice:", "e30")):
        with pytest.raises(InvalidArgument) as err:
            domain.decode_token(tok, scope)
        assert err.value.violations[0].field == "page_token"


def test_category_and_ids_are_validated_by_name() -> None:
    assert domain.category(" Mobiles ", required=True) == "mobiles"
    assert domain.category("", required=False) == ""
    for bad in ("", "a/b", "*", "x" * 101):
        with pytest.raises(InvalidArgument) as err:
            domain.category(bad, required=True)
        assert err.value.violations[0].field == "category"
    with pytest.raises(InvalidArgument) as err:
        domain.required_id("item_id", " ")
    assert err.value.violations[0].field == "item_id"


def test_shown_drops_unknown_inactive_out_of_stock_bought_and_repeats() -> None:
    def fact(active: bool = True, stock: bool = True) -> domain.Sellable:
        return domain.Sellable("t", 100, "", active, stock)

    hits = [domain.Hit(i, 1.0) for i in ("a", "gone", "off", "empty", "bought", "b", "a")]
    facts = {"a": fact(), "off": fact(active=False), "empty": fact(stock=False),
             "bought": fact(), "b": fact()}
    assert [h.item_id for h in domain.shown(hits, facts, {"bought"})] == ["a", "b"]


def test_decay_halves_every_half_life() -> None:
    assert recs.decay_factor(0, 30) == 1.0
    assert recs.decay_factor(30 * 86_400, 30) == pytest.approx(0.5)
    assert recs.decay_factor(90 * 86_400, 30) == pytest.approx(0.125)
    assert recs.decay_factor(-5, 30) == 1.0


def test_weights_rank_orders_above_carts_above_wishlists() -> None:
    assert recs.WEIGHTS["order"] > recs.WEIGHTS["cart"] > recs.WEIGHTS["wishlist"] > 0


def test_top_k_is_best_first() -> None:
    idx, vals = recs.top_k(np.array([[0.1, 0.9, 0.5, 0.7]]), 3)
    assert idx.tolist() == [[1, 3, 2]]
    assert vals[0].tolist() == pytest.approx([0.9, 0.7, 0.5])


def _factors() -> recs.Factors:
    # Two taste groups: phones along the first axis, books along the second.
    return recs.Factors(
        users=["phone-fan", "book-fan"],
        user_factors=np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32),
        items=["p1", "p2", "p3", "b1", "b2"],
        item_factors=np.array([[0.9, 0.0], [0.8, 0.1], [0.7, 0.0], [0.0, 0.9], [0.1, 0.8]],
                              dtype=np.float32))


def test_recommend_excludes_bought_and_low_scores() -> None:
    out = recs.recommend(_factors(), 5, {"phone-fan": {"p1"}}, min_score=0.5)
    assert [r.item_id for r in out["phone-fan"]] == ["p2", "p3"]
    assert [r.item_id for r in out["book-fan"]] == ["b1", "b2"]


def test_similar_items_come_from_the_factors() -> None:
    out = recs.similar_items(_factors(), 2)
    assert [r.item_id for r in out["p1"]] == ["p3", "p2"]
    assert {r.item_id for r in out["b1"]} == {"b2", "p2"}
    assert "p1" not in [r.item_id for r in out["p1"]]


def test_popularity_per_category_and_overall() -> None:
    rows = [("u1", "p1", 5.0), ("u2", "p1", 2.0), ("u1", "b1", 6.0), ("u3", "p2", 1.0)]
    lists = recs.popularity(rows, {"p1": "mobiles", "p2": "mobiles", "b1": "books"}, 10)
    assert lists[ALL] == [Ranked("p1", 7.0), Ranked("b1", 6.0), Ranked("p2", 1.0)]
    assert [r.item_id for r in lists["mobiles"]] == ["p1", "p2"]
    assert [r.item_id for r in lists["books"]] == ["b1"]


def test_offline_metrics() -> None:
    held = {"u1": {"a", "b"}, "u2": {"z"}}
    recs_ = {"u1": ["a", "x", "b"], "u2": ["y"]}
    m = score(recs_, held, k=3)
    assert m.precision == pytest.approx((2 / 3 + 0) / 2)
    assert m.recall == pytest.approx((1.0 + 0) / 2)
    dcg = 1 + 1 / math.log2(4)
    ideal = 1 + 1 / math.log2(3)
    assert m.ndcg == pytest.approx((dcg / ideal) / 2)
    assert m.users == 2


def test_the_supervisor_runs_the_training_job_with_svc_recs_unless_told_not_to(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import services

    monkeypatch.setenv("ECOM_SERVICES", "recs")
    monkeypatch.delenv("ECOM_RECS_JOB", raising=False)
    children = {c.name: c for c in services.planned_children()}
    assert children[services.RECS_JOB].command[1:] == ["-m", "pipelines.recs", "--every", "0"]
    monkeypatch.setenv("ECOM_RECS_JOB", "0")
    assert services.RECS_JOB not in {c.name for c in services.planned_children()}
    monkeypatch.setenv("ECOM_SERVICES", "users")
    monkeypatch.delenv("ECOM_RECS_JOB")
    assert services.RECS_JOB not in {c.name for c in services.planned_children()}


def test_an_empty_local_lake_is_known_without_spark(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from svc_recs.service import lake_has_signals

    lake = tmp_path / "lake"
    assert not lake_has_signals(lake.as_uri())
    (lake / "catalog_items" / "_delta_log").mkdir(parents=True)
    assert not lake_has_signals(lake.as_uri())
    (lake / "cart_events" / "_delta_log").mkdir(parents=True)
    assert lake_has_signals(lake.as_uri())
    assert lake_has_signals("s3a://bucket/lake")


def test_the_schedule_retries_soon_while_the_lake_is_empty() -> None:
    settings = recs.RecsSettings(recs_empty_retry_seconds=60)

    def ran(interactions: int) -> recs.RunResult:
        return recs.RunResult("v", "t", 0, 0, interactions, 0, 0, 0, 0, 0.0)

    assert recs.pause_after(ran(0), settings, every=300) == 60
    assert recs.pause_after(ran(0), settings, every=30) == 30
    assert recs.pause_after(ran(166), settings, every=300) == 300
    # Another copy held the lease: its model is not ours to judge.
    assert recs.pause_after(None, settings, every=300) == 300
