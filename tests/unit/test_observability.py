"""Metrics ports, the access-log policy, tracing while off, consumer lag
from librdkafka statistics, and the benchmark report (no servers)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from mesh import metrics, tracing
from mesh.config import ConfigError, load_settings, metrics_port
from mesh.interceptors import AccessLogPolicy
from mesh.kafka import OutgoingEvent
from tests.perf import report


def test_metrics_port_is_the_grpc_port_plus_1000(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ECOM_ORDERS_METRICS_ADDR", raising=False)
    assert metrics_port("orders") == 51057
    settings = load_settings()
    assert settings.metrics_addr_of("orders") == "127.0.0.1:51057"
    assert load_settings(orders_addr="127.0.0.1:0").metrics_addr_of("orders") == "127.0.0.1:0"
    assert load_settings(orders_addr="10.0.0.5:65000").metrics_addr_of("orders") == "10.0.0.5:0"
    monkeypatch.setenv("ECOM_ORDERS_METRICS_ADDR", "127.0.0.1:9999")
    assert load_settings().metrics_addr_of("orders") == "127.0.0.1:9999"


def test_bad_access_log_and_loop_settings_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="ECOM_ACCESS_LOG"):
        load_settings(access_log="some")
    with pytest.raises(ConfigError, match="ECOM_EVENT_LOOP"):
        load_settings(event_loop="trio")


def test_access_log_policy() -> None:
    ok, bad = grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND
    assert AccessLogPolicy("all").wants(ok, 0.001)
    errors = AccessLogPolicy("errors", slow_ms=100)
    assert not errors.wants(ok, 0.001)
    assert errors.wants(ok, 0.2)
    assert errors.wants(bad, 0.001)
    assert not AccessLogPolicy("off").wants(bad, 5.0)


def test_tracing_off_changes_nothing() -> None:
    assert not tracing.enabled()
    with tracing.server_span("/x.Y/Z", ()) as span:
        assert span is None
    headers = {"a": b"1"}
    assert tracing.trace_headers(headers) is headers
    events = [OutgoingEvent(topic="t", key=b"k", payload=b"p", event_id="e", event_type="T")]
    out, finish = tracing.relay_spans(events)
    assert out == events
    finish([True])
    with tracing.span("x", kind="CONSUMER", headers={"traceparent": b"bad"}) as sp:
        assert sp is None


@pytest.mark.parametrize(("sql", "name"), [
    ("SELECT * FROM `stock` WHERE item_id = %s", "SELECT stock"),
    ("UPDATE stock SET available = available - 1", "UPDATE stock"),
    ("INSERT INTO outbox (id) VALUES (%s)", "INSERT outbox"),
    ("SELECT 1", "SELECT"),
    ("COMMIT", "COMMIT"),
])
def test_sql_span_names(sql: str, name: str) -> None:
    assert tracing._statement_name(sql) == name


def test_consumer_lag_from_librdkafka_statistics() -> None:
    callback = metrics.consumer_stats_callback("unit-group")
    stats = {"topics": {"unit.topic": {"partitions": {
        "0": {"fetch_state": "active", "committed_offset": 7, "ls_offset": 10, "hi_offset": 10,
              "lo_offset": 0},
        "1": {"fetch_state": "active", "committed_offset": -1001, "ls_offset": 4,
              "hi_offset": 4, "lo_offset": 1},
        "2": {"fetch_state": "none", "committed_offset": 0, "ls_offset": 9},
        "-1": {"fetch_state": "none"},
    }}}}
    callback(json.dumps(stats))
    lag = metrics.CONSUMER_LAG
    assert lag.labels("unit-group", "unit.topic", "0")._value.get() == 3
    assert lag.labels("unit-group", "unit.topic", "1")._value.get() == 3
    sampled = {s.labels["partition"] for fam in metrics.REGISTRY.collect()
               for s in fam.samples
               if s.name == "ecom_consumer_lag" and s.labels["consumer"] == "unit-group"}
    assert sampled == {"0", "1"}
    callback("not json")  # never raises


def test_report_table_json_and_compare(tmp_path: Path) -> None:
    a = [report.Figure("Check p99", 2.0, 1.0, "ms", "lower"),
         report.Figure("orders/s", 100.0, 1000.0, "orders/s", "higher")]
    table = report.table(a)
    assert "Check p99" in table and "2.000x" in table and "0.100x" in table
    first = report.write(a, tmp_path)
    assert report.load(first) == a
    assert json.loads((tmp_path / "latest.json").read_text())["figures"][0]["ratio"] == 2.0
    b = [report.Figure("Check p99", 1.0, 1.0, "ms", "lower"),
         report.Figure("orders/s", 90.0, 1000.0, "orders/s", "higher")]
    lines = report.compare(a, b).splitlines()
    check = next(line for line in lines if line.startswith("Check p99"))
    rate = next(line for line in lines if line.startswith("orders/s"))
    assert check.endswith("better") and "-50.0%" in check
    assert rate.endswith("worse")
    assert report.resolve(first.name, tmp_path) == first
    with pytest.raises(SystemExit):
        report.resolve("previous", tmp_path)
