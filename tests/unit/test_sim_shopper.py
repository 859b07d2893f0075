"""The shopper simulator's plain parts (sim/shopper.py, sim/__main__.py,
sim/burst.py): profiles, choices, the knobs, the Locust command line, and
the background burst `make up` starts, run here against an edge that is
down (it must end on its own and say how it went)."""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sim import __main__ as sim_main
from sim import burst, shopper


def test_profiles_are_reproducible_and_plausible() -> None:
    a = shopper.make_profile(7, "run1", random.Random("seed:7"))
    b = shopper.make_profile(7, "run1", random.Random("seed:7"))
    assert a == b
    assert a.pincode in a.city.pincodes
    assert 2 <= len(a.favourites) <= 3 and len(set(a.favourites)) == len(a.favourites)
    assert set(a.favourites) <= set(shopper.CATEGORIES)
    assert a.email.endswith(".7.run1@shoppers.example.com")
    assert len(a.phone) == 10 and a.phone[0] in "6789"
    emails = {shopper.make_profile(n, "run1", random.Random(n)).email for n in range(200)}
    assert len(emails) == 200


def test_categories_and_words_match_the_demo_catalog() -> None:
    from svc_catalog.demo import GENERATORS, demo_items

    assert set(shopper.CATEGORIES) == set(GENERATORS)
    titles: dict[str, list[str]] = {}
    for item in demo_items(1200):
        titles.setdefault(item.fields.category, []).append(item.fields.title.lower())
    for category, words in shopper.CATEGORIES.items():
        for word in words:
            assert any(word.lower() in t for t in titles[category]), (category, word)


def test_every_pincode_is_a_known_deliverable_pincode() -> None:
    from pipelines.serviceability import load_pincodes

    known = set(load_pincodes().pincodes)
    for city in shopper.CITIES:
        for pin in city.pincodes:
            assert pin in known, (city.name, pin)


def test_choices_follow_the_favourites() -> None:
    rng = random.Random(1)
    profile = shopper.make_profile(1, "r", rng)
    picks = Counter(shopper.pick_category(profile, rng, 0.85) for _ in range(4000))
    share = sum(picks[c] for c in profile.favourites) / 4000
    assert 0.85 <= share <= 0.95  # the 15% elsewhere also lands on favourites now and then
    assert all(shopper.pick_category(profile, rng, 1.0) in profile.favourites
               for _ in range(500))
    queries = [shopper.search_query("mobiles", rng) for _ in range(2000)]
    assert all(cat in ("mobiles", "") for _, cat in queries)
    assert any(q in shopper.UNSOLD for q, _ in queries)
    assert any(q == "" and cat == "mobiles" for q, cat in queries)
    tokens = Counter(shopper.payment_token(rng, 0.1) for _ in range(5000))
    assert set(tokens) == {"tok_success", "tok_decline"}
    assert 0.07 <= tokens["tok_decline"] / 5000 <= 0.13


def test_a_typo_swaps_two_neighbouring_letters() -> None:
    rng = random.Random(3)
    for word in ("Samsung", "Sneakers", "Haldiram's"):
        t = shopper.typo(word, rng)
        assert t != word and sorted(t) == sorted(word) and len(t) == len(word)
    assert shopper.typo("LG", rng) == "LG"


def test_each_shopper_gets_its_own_loopback_address() -> None:
    addresses = {shopper.source_address(n) for n in range(1, 5001)}
    assert len(addresses) == 5000
    assert all(a.startswith("127.77.") and not a.endswith(".0") for a in addresses)
    assert shopper.is_loopback_url("http://127.0.0.1:8080")
    assert shopper.is_loopback_url("http://localhost:8080")
    assert not shopper.is_loopback_url("https://shop.example.com")


def test_error_reason_and_deliverable_hits() -> None:
    body = {"code": 9, "message": "no stock", "details": [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INSUFFICIENT_STOCK"}]}
    assert shopper.error_reason(body) == "INSUFFICIENT_STOCK"
    assert shopper.error_reason({"code": 5}) == "" and shopper.error_reason(None) == ""
    hits = {"hits": [{"itemId": "a", "delivery": {"deliverable": True}},
                     {"itemId": "b", "delivery": {"deliverable": False}}, {"itemId": "c"}]}
    assert [h["itemId"] for h in shopper.deliverable_hits(hits)] == ["a"]
    assert shopper.deliverable_hits("nope") == []


def test_knobs_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOM_SIM_DECLINE_RATE", "0.25")
    monkeypatch.setenv("ECOM_SIM_THINK_SECONDS", "0.5,2")
    monkeypatch.setenv("ECOM_SIM_SOURCE_ADDRESSES", "0")
    knobs = shopper.Knobs.from_env()
    assert (knobs.decline_rate, knobs.think_min, knobs.think_max) == (0.25, 0.5, 2.0)
    assert knobs.source_addresses is False and knobs.run_tag
    monkeypatch.setenv("ECOM_SIM_DECLINE_RATE", "1.5")
    with pytest.raises(ValueError, match="ECOM_SIM_DECLINE_RATE"):
        shopper.Knobs.from_env()
    monkeypatch.setenv("ECOM_SIM_DECLINE_RATE", "0.1")
    monkeypatch.setenv("ECOM_SIM_THINK_SECONDS", "3,1")
    with pytest.raises(ValueError, match="ECOM_SIM_THINK_SECONDS"):
        shopper.Knobs.from_env()


def test_journal_lines_and_summary(tmp_path: Path) -> None:
    journal = shopper.Journal(str(tmp_path / "j.jsonl"))
    journal.record("signed_up", user_id="u1")
    journal.record("placed", order_id="o1")
    journal.record("placed", order_id="o2")
    lines = shopper.read_journal(tmp_path / "j.jsonl")
    assert [(x["kind"], x.get("order_id")) for x in lines] == [
        ("signed_up", None), ("placed", "o1"), ("placed", "o2")]
    assert journal.summary() == "shoppers: signed_up 1, placed 2"


def test_the_locust_command_is_bounded_and_headless() -> None:
    cmd = sim_main.locust_command(5, 1.5, "90s", "http://127.0.0.1:8080", csv="/tmp/x")
    assert cmd[:3] == [sys.executable, "-m", "locust"]
    for flag, value in (("--users", "5"), ("--spawn-rate", "1.5"), ("--run-time", "90s"),
                        ("--host", "http://127.0.0.1:8080"), ("--csv", "/tmp/x")):
        assert cmd[cmd.index(flag) + 1] == value
    assert "--headless" in cmd and "--only-summary" in cmd


def test_the_burst_runs_in_the_background_and_reports(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Against an edge where nothing listens: start returns at once, the
    burst ends by itself after its duration, and status says how it went."""
    import socket

    monkeypatch.setattr(burst, "PID_FILE", tmp_path / "run" / "sim-burst.pid")
    monkeypatch.setattr(burst, "LOG_FILE", tmp_path / "logs" / "sim-burst.log")
    monkeypatch.setattr(burst, "STACK", tmp_path)
    monkeypatch.setenv("ECOM_SIM_BURST_USERS", "2")
    monkeypatch.setenv("ECOM_SIM_BURST_DURATION", "3s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"

    monkeypatch.setenv("ECOM_SIM_BURST", "0")
    assert "off" in burst.start(dead)
    monkeypatch.delenv("ECOM_SIM_BURST")
    assert burst.status_lines() == ["demo traffic: not run yet"]

    line = burst.start(dead)
    assert "2 simulated shoppers for 3s" in line and str(burst.LOG_FILE) in line
    pid = burst.running_pid()
    assert pid is not None
    assert "already running" in burst.start(dead)
    assert burst.status_lines()[0].startswith("demo traffic: running")
    deadline = time.monotonic() + 120
    while burst.running_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.3)
    (status,) = burst.status_lines()
    assert status.startswith("demo traffic: finished, shoppers: "), status
    log = burst.LOG_FILE.read_text()
    assert "Response time percentiles" in log and "/v1/users" in log


def test_recommendation_routes_and_answers() -> None:
    # The edge asks for a token on any path it does not know as public, and
    # gives a bare 404 when no route matches; a service's NOT_FOUND is JSON.
    assert not shopper.route_served(401, "application/json", b'{"code":16}')
    assert not shopper.route_served(404, "", b"")
    assert not shopper.route_served(0, "", b"")
    assert shopper.route_served(200, "application/json", b'{"recommendations":[]}')
    assert shopper.route_served(404, "application/json", b'{"code":5,"message":"no item"}')
    assert shopper.route_served(503, "application/json", b'{"code":14}')
    body = {"recommendations": [{"itemId": "a", "score": 0.9}, {"score": 0.1}, "x",
                                {"itemId": "b"}], "fallback": True}
    assert shopper.recommended_ids(body) == ["a", "b"]
    assert shopper.recommended_ids({}) == [] and shopper.recommended_ids(None) == []


def test_make_up_reports_but_never_fails_on_the_burst(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from infra import up_all

    def broken(edge_url: str) -> str:
        raise OSError("no space left on device")

    monkeypatch.setattr(burst, "start", broken)
    up_all.demo_traffic()  # does not raise
    assert "demo traffic: not started (OSError: no space left on device)" in \
        capsys.readouterr().out
    monkeypatch.setattr(burst, "start", lambda url: f"demo traffic: started against {url}")
    up_all.demo_traffic()
    assert "demo traffic: started against http://127.0.0.1:" in capsys.readouterr().out
