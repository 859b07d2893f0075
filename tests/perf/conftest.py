"""Benchmarks print figures and assert nothing about wall time. They are not
part of `make test`: run them with `make bench` (ECOM_BENCH=1).

Each benchmark also records its figures with `tests.perf.report.record`; at
the end of the session they are printed as one table (path, ours, baseline,
ratio) and written as JSON under .bench/ (see tests/perf/report.py)."""

import os

import pytest

if not os.environ.get("ECOM_BENCH"):
    collect_ignore_glob = ["*.py"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not os.environ.get("ECOM_BENCH"):
        return
    from tests.perf import report

    figs = report.figures()
    if not figs:
        return
    out = report.write(figs)
    terminalreporter.write_sep("=", "benchmark report")
    for line in report.table(figs).splitlines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(f"written to {out} (compare runs: make bench-compare A B)")
