"""`make up` (python -m infra.up_all) prints each phase's duration and the total,
and stops at a failing phase naming it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from infra import up_all
from infra.core import InfraError


def test_phases_run_in_order_with_durations_and_total(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []
    def phase(name: str) -> Callable[[], None]:
        return lambda: ran.append(name)

    phases = [(name, phase(name)) for name in ("servers", "services", "demo data")]
    assert up_all.run(phases) == 0
    assert ran == ["servers", "services", "demo data"]
    out = capsys.readouterr().out
    for name in ("servers", "services", "demo data"):
        assert re.search(rf"{name} done in \d+\.\ds", out)
    assert re.search(r"servers \d+\.\ds, services \d+\.\ds, demo data \d+\.\ds; total \d+\.\ds",
                     out)


def test_time_before_the_first_phase_counts(capsys: pytest.CaptureFixture[str]) -> None:
    import time

    assert up_all.run([("servers", lambda: None)], since=time.time() - 42) == 0
    out = capsys.readouterr().out
    assert re.search(r"prerequisites 42\.\ds, servers 0\.\ds; total 42\.\ds", out), out


def test_a_failing_phase_stops_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[str] = []

    def broken() -> None:
        raise InfraError("mariadb: port 127.0.0.1:13306 is already taken")

    phases = [("servers", broken), ("services", lambda: ran.append("services"))]
    assert up_all.run(phases) == 1
    assert ran == []
    captured = capsys.readouterr()
    assert "port 127.0.0.1:13306 is already taken" in captured.err
    assert re.search(r"servers FAILED after \d+\.\ds", captured.out)


def test_make_up_runs_the_doctor_then_the_phases() -> None:
    from infra.core import REPO

    makefile = (REPO / "Makefile").read_text()
    up = re.search(r"^up: (.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert up is not None
    assert up.group(1).split()[0] == "doctor"
    assert "infra.up_all" in up.group(2)
    test = re.search(r"^test: (.*)\n", makefile, re.M)
    assert test is not None and test.group(1).split()[0] == "doctor-test"
