"""ECOM_* settings: local defaults, overrides, and errors that name the variable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mesh.config import SERVICE_PORTS, ConfigError, ServiceSettings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Start every test from an environment without ECOM_* variables."""
    import os

    for key in list(os.environ):
        if key.startswith("ECOM_"):
            monkeypatch.delenv(key)
    yield monkeypatch


def test_defaults_point_at_the_local_stack() -> None:
    s = load_settings()
    assert s.mysql_url == "mysql://root@127.0.0.1:13306"
    assert s.redis_url == "redis://127.0.0.1:16379/0"
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.es_url == "http://127.0.0.1:19200"
    assert s.cassandra_hosts == "127.0.0.1:19042"
    assert s.mongo_url == "mongodb://127.0.0.1:17017/"
    assert s.order_hold_seconds == 600
    assert s.log_level == "INFO"
    assert (s.topic_prefix, s.index_prefix, s.db_prefix) == ("", "", "")


def test_every_service_has_a_loopback_address_on_its_own_port() -> None:
    s = load_settings()
    expected = ["catalog", "search", "tat", "users", "cart"]
    expected += ["inventory", "orders", "payments", "recs", "notify", "analytics"]
    assert list(SERVICE_PORTS) == expected
    assert sorted(SERVICE_PORTS.values()) == list(range(50051, 50062))
    for name, port in SERVICE_PORTS.items():
        assert s.addr_of(name) == f"127.0.0.1:{port}"
    with pytest.raises(KeyError, match="ECOM_NOPE_ADDR"):
        s.addr_of("nope")


def test_environment_overrides(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ECOM_CART_ADDR", "10.0.0.7:6000")
    clean_env.setenv("ECOM_ORDER_HOLD_SECONDS", "30")
    clean_env.setenv("ECOM_LOG_LEVEL", "debug")
    clean_env.setenv("ECOM_TOPIC_PREFIX", "t1.")
    clean_env.setenv("ECOM_CASSANDRA_HOSTS", "c1:9042, c2:9043")
    s = load_settings()
    assert s.addr_of("cart") == "10.0.0.7:6000"
    assert s.order_hold_seconds == 30
    assert s.log_level == "DEBUG"
    assert s.topic("orders.lifecycle") == "t1.orders.lifecycle"
    assert s.cassandra_contact_points == [("c1", 9042), ("c2", 9043)]


def test_invalid_values_are_reported_by_variable_name(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ECOM_ORDER_HOLD_SECONDS", "ten minutes")
    clean_env.setenv("ECOM_CART_ADDR", "localhost")
    clean_env.setenv("ECOM_LOG_LEVEL", "loud")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    text = str(caught.value)
    assert "ECOM_ORDER_HOLD_SECONDS" in text and "'ten minutes'" in text
    assert "ECOM_CART_ADDR: expected host:port" in text
    assert "ECOM_LOG_LEVEL" in text


def test_range_checks(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ECOM_ORDER_HOLD_SECONDS", "0")
    with pytest.raises(ConfigError, match="ECOM_ORDER_HOLD_SECONDS"):
        load_settings()


def test_services_extend_the_base_settings(clean_env: pytest.MonkeyPatch) -> None:
    class UsersSettings(ServiceSettings):
        admin_email: str = "admin@ecom.local"

    clean_env.setenv("ECOM_ADMIN_EMAIL", "root@shop.example")
    s = load_settings(UsersSettings)
    assert s.admin_email == "root@shop.example"
    assert s.addr_of("users") == "127.0.0.1:50054"


def test_overrides_win_over_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ECOM_DB_PREFIX", "env_")
    assert load_settings(db_prefix="t_").database("users") == "t_users"


def test_replica_lists_balance_and_each_replica_listens_on_its_own() -> None:
    from mesh.config import grpc_target

    s = load_settings(catalog_addr="127.0.0.1:7001, 127.0.0.1:7101", replica_index=1)
    assert s.addrs_of("catalog") == ["127.0.0.1:7001", "127.0.0.1:7101"]
    assert s.listen_addr_of("catalog") == "127.0.0.1:7101"
    assert grpc_target(s.addr_of("catalog")) == "ipv4:127.0.0.1:7001,127.0.0.1:7101"
    assert grpc_target("catalog.internal:7001") == "catalog.internal:7001"
    with pytest.raises(ValueError):
        grpc_target("a.example:1,b.example:2")  # a list must name IPs
    with pytest.raises(ConfigError):
        load_settings(catalog_addr="127.0.0.1:7001", replica_index=1).listen_addr_of("catalog")
    with pytest.raises(ConfigError):
        load_settings(catalog_addr="127.0.0.1:7001,nope")


def test_the_supervisor_spreads_one_address_over_replicas() -> None:
    from infra.services import replica_addresses

    assert replica_addresses("127.0.0.1:50051", 2) == "127.0.0.1:50051,127.0.0.1:50151"
    assert replica_addresses("127.0.0.1:50051", 1) == "127.0.0.1:50051"
    assert replica_addresses("127.0.0.1:1,127.0.0.1:2", 3) == "127.0.0.1:1,127.0.0.1:2"
