"""Recommendations end to end below the edge, on real Kafka, Spark (local[2]),
Delta and Cassandra, with the real catalog and inventory services:

a scripted history (phone fans, book fans, and user A who bought two phones)
goes to Kafka, the streaming job lands it in a lake, the ALS job trains from
the lake and publishes to Cassandra, and svc_recs answers:

- A's list is phones only, never one A bought, never the phone that is out
  of stock everywhere (which the model did rank: the service filters it);
- a new user gets popularity, overall or of a category, and says so;
- similar items of a phone are phones;
- a refresh (admin) during reads returns a new version with its counts, and
  every answer read meanwhile is exactly one version's list; many publishes
  in a row under reads never mix two versions, and older ones are dropped.

Needs Kafka, Cassandra, MariaDB and FerretDB:
ECOM_TEST_SERVERS=kafka,cassandra,mariadb,ferretdb,redis. Each Spark run takes
tens of seconds here.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from ecom.recommendations.v1 import recommendations_pb2 as pb
from ecom.recommendations.v1 import recommendations_pb2_grpc as pb_grpc

from infra.core import STACK
from svc_recs import store as recs_store
from tests.conftest import RunningService, Services, Stack
from tests.integration import analytics_support as ev
from tests.integration import recs_support as rs

# Each Spark run takes minutes on a busy 2-core machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3000)]


@pytest.fixture(scope="module")
def history() -> rs.History:
    return rs.History()


@pytest.fixture(scope="module")
def env(stack: Stack, tmp_path_factory: pytest.TempPathFactory, history: rs.History
        ) -> dict[str, str]:
    lake = tmp_path_factory.mktemp("recs-lake")
    return {
        **os.environ, **stack.env,
        "ECOM_TOPIC_PREFIX": f"{stack.topic_prefix}recs{history.tag}.",
        "ECOM_KEYSPACE_PREFIX": f"{stack.db_prefix}recs{history.tag}_",
        "ECOM_LAKE_URL": (lake / "lake").as_uri(),
        "ECOM_ANALYTICS_PROGRESS_FILE": str(lake / "progress.json"),
        "ECOM_ANALYTICS_TRIGGER_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def _log(stack: Stack, name: str) -> Path:
    log = STACK / "logs" / f"test-{stack.run_id}-{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    return log


@pytest.fixture(scope="module")
def cassandra(env: dict[str, str]) -> Iterator[Any]:
    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]))
             for h in env["ECOM_CASSANDRA_HOSTS"].split(",")]
    session = recs_store.connect(hosts, env["ECOM_KEYSPACE_PREFIX"] + recs_store.KEYSPACE)
    recs_store.create_schema(session)
    yield session
    session.cluster.shutdown()


@pytest.fixture(scope="module")
def recs(services: Services, env: dict[str, str], history: rs.History) -> Iterator[RunningService]:
    server, tat = rs.warehouses_server()
    catalog = services.start("catalog")
    inventory = services.start("inventory", ECOM_TAT_ADDR=tat)
    rs.load_catalog_and_stock(catalog.target, inventory.target, history)
    yield services.start("recs", ECOM_KEYSPACE_PREFIX=env["ECOM_KEYSPACE_PREFIX"],
                         ECOM_LAKE_URL=env["ECOM_LAKE_URL"])
    server.stop(0)


@pytest.fixture(scope="module")
def first_model(stack: Stack, env: dict[str, str], history: rs.History,
                recs: RunningService) -> dict[str, Any]:
    """History -> Kafka -> lake (streaming job, once) -> ALS -> Cassandra."""
    rs.send(env["ECOM_KAFKA_BOOTSTRAP"], env["ECOM_TOPIC_PREFIX"],
            history.events(rs.recent(hours=5)))
    ev.JobRunner(env, _log(stack, "recs-lake")).run_once(timeout=1500)
    return rs.run_training(env, _log(stack, "recs-train"))


@pytest.fixture(scope="module")
def stub(recs: RunningService) -> Iterator[pb_grpc.RecommendationServiceStub]:
    with grpc.insecure_channel(recs.target) as ch:
        yield pb_grpc.RecommendationServiceStub(ch)


def stored_user_list(cassandra: Any, version: str, user: str) -> list[str]:
    return [r.item_id for r in cassandra.execute(
        "SELECT item_id FROM user_recs WHERE model_version = %s AND user_id = %s",
        (version, user))]


def test_a_who_bought_phones_gets_phones_never_bought_never_out_of_stock(
        first_model: dict[str, Any], stub: pb_grpc.RecommendationServiceStub,
        history: rs.History, cassandra: Any) -> None:
    version = first_model["model_version"]
    assert first_model["users"] == 1 + len(history.phone_fans) + len(history.book_fans)
    assert first_model["items"] == len(history.phones) + len(history.books)
    assert first_model["user_lists"] >= 1

    stored = stored_user_list(cassandra, version, history.user_a)
    # The model itself ranks the out-of-stock phone for A; the bought ones
    # never reach the stored list.
    assert history.out_of_stock in stored, stored
    assert not set(stored) & set(history.a_bought)

    resp = stub.ListUserRecommendations(
        pb.ListUserRecommendationsRequest(user_id=history.user_a),
        metadata=rs.caller(history.user_a))
    got = [r.item_id for r in resp.recommendations]
    assert resp.model_version == version
    assert (resp.source, resp.fallback) == ("personal", False)
    assert got, "A's list is empty"
    assert all(i in history.phones for i in got), got
    assert not set(got) & set(history.a_bought)
    assert history.out_of_stock not in got
    # Hydrated by the catalog.
    assert all(r.title == f"Title of {r.item_id}" and r.price.units == 10_000
               for r in resp.recommendations)
    assert [r.item_id for r in resp.recommendations] == [
        i for i in stored if i != history.out_of_stock][:20]


def test_a_new_user_gets_popularity_and_says_so(
        first_model: dict[str, Any], stub: pb_grpc.RecommendationServiceStub,
        history: rs.History) -> None:
    new = f"rx-new-{history.tag}"
    resp = stub.ListUserRecommendations(pb.ListUserRecommendationsRequest(user_id=new),
                                        metadata=rs.caller(new))
    assert (resp.source, resp.fallback) == ("popularity", True)
    got = [r.item_id for r in resp.recommendations]
    assert set(got) == set(history.phones + history.books) - {history.out_of_stock}
    assert {r.reason for r in resp.recommendations} == {"popular"}

    resp = stub.ListUserRecommendations(
        pb.ListUserRecommendationsRequest(user_id=new, category="books", page_size=3),
        metadata=rs.caller(new))
    assert (resp.source, resp.fallback) == ("category_popularity", True)
    first = [r.item_id for r in resp.recommendations]
    assert len(first) == 3 and all(i in history.books for i in first)
    more = stub.ListUserRecommendations(
        pb.ListUserRecommendationsRequest(user_id=new, category="books", page_size=3,
                                          page_token=resp.next_page_token),
        metadata=rs.caller(new))
    rest = [r.item_id for r in more.recommendations]
    assert sorted(first + rest) == sorted(history.books) and not more.next_page_token

    cat = stub.ListCategoryRecommendations(pb.ListCategoryRecommendationsRequest(
        category="mobiles"))
    assert cat.source == "category_popularity"
    assert [r.item_id for r in cat.recommendations][:1] and all(
        r.item_id in history.phones for r in cat.recommendations)


def test_similar_items_of_a_phone_are_phones(
        first_model: dict[str, Any], stub: pb_grpc.RecommendationServiceStub,
        history: rs.History) -> None:
    resp = stub.ListItemRecommendations(
        pb.ListItemRecommendationsRequest(item_id=history.phones[2], page_size=3))
    got = [r.item_id for r in resp.recommendations]
    assert resp.source == "similar_items"
    assert len(got) == 3 and all(i in history.phones for i in got), got
    assert history.phones[2] not in got


def test_only_the_owner_or_an_admin_reads_a_users_list(
        first_model: dict[str, Any], stub: pb_grpc.RecommendationServiceStub,
        history: rs.History) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.ListUserRecommendations(pb.ListUserRecommendationsRequest(user_id=history.user_a),
                                     metadata=rs.caller(history.phone_fans[0]))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    resp = stub.ListUserRecommendations(
        pb.ListUserRecommendationsRequest(user_id=history.user_a), metadata=rs.ADMIN)
    assert resp.source == "personal"
    with pytest.raises(grpc.RpcError) as err:
        stub.RefreshRecommendations(pb.RefreshRecommendationsRequest(),
                                    metadata=rs.caller(history.user_a))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as err:
        stub.ListUserRecommendations(pb.ListUserRecommendationsRequest(
            user_id=history.user_a, page_size=51), metadata=rs.ADMIN)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_size" in (err.value.details() or "")


def test_a_refresh_during_reads_never_mixes_two_versions(
        stack: Stack, first_model: dict[str, Any], stub: pb_grpc.RecommendationServiceStub,
        history: rs.History, env: dict[str, str], cassandra: Any) -> None:
    answers: list[pb.ListUserRecommendationsResponse] = []
    done = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        while not done.is_set():
            try:
                answers.append(stub.ListUserRecommendations(
                    pb.ListUserRecommendationsRequest(user_id=history.user_a),
                    metadata=rs.ADMIN, timeout=10))
            except grpc.RpcError as exc:  # pragma: no cover - reported below
                failures.append(exc)
            time.sleep(0.2)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        refreshed = stub.RefreshRecommendations(pb.RefreshRecommendationsRequest(),
                                                metadata=rs.ADMIN, timeout=900)
        # Keep reading a moment on the new version.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                a.model_version == refreshed.model_version for a in answers):
            time.sleep(0.2)
    finally:
        done.set()
        reader.join()
    assert not failures, failures[:3]
    old, new = first_model["model_version"], refreshed.model_version
    assert new != old
    assert (refreshed.users, refreshed.items, refreshed.interactions) == (
        first_model["users"], first_model["items"], first_model["interactions"])
    assert refreshed.dropped_versions == 0  # the first is kept until the next publish
    # Both versions are still stored (the replaced one is kept until the
    # next publish), so each answer can be checked against its own list.
    expected = {v: [i for i in stored_user_list(cassandra, v, history.user_a)
                    if i != history.out_of_stock][:20] for v in (old, new)}
    assert expected[old] and expected[new]
    versions = {a.model_version for a in answers}
    assert versions <= {old, new} and new in versions, versions
    for a in answers:
        assert [r.item_id for r in a.recommendations] == expected[a.model_version]


def test_flips_under_load_never_mix_versions_and_old_ones_are_dropped(
        first_model: dict[str, Any], stub: pb_grpc.RecommendationServiceStub,
        history: rs.History, cassandra: Any) -> None:
    """Many publishes in a row while reading: each answer carries one
    version's scores only, and at most two versions stay stored."""
    phones = [p for p in history.phones if p not in history.a_bought]
    answers: list[pb.ListUserRecommendationsResponse] = []
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                answers.append(stub.ListUserRecommendations(
                    pb.ListUserRecommendationsRequest(user_id=history.user_a),
                    metadata=rs.ADMIN, timeout=10))
            except grpc.RpcError as exc:  # pragma: no cover - reported below
                failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    published: dict[str, float] = {}
    try:
        for n in range(8):
            version = recs_store.new_version(rs.recent(hours=0))
            score = float(n + 1)
            order = phones[n % len(phones):] + phones[:n % len(phones)]
            lists = recs_store.ModelLists(
                user_recs={history.user_a: [recs_store.Ranked(i, score) for i in order]},
                category_recs={}, similar_items={}, bought={history.user_a: history.a_bought},
                counts=recs_store.ModelCounts(users=1))
            recs_store.publish(cassandra, version, rs.recent(hours=0), lists)
            published[version] = score
        # Read on until the last version shows.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                a.model_version == version for a in answers):
            time.sleep(0.1)
    finally:
        done.set()
        reader.join()
    assert not failures, failures[:3]
    mixed = [a for a in answers if a.model_version in published
             and {r.score for r in a.recommendations} != {published[a.model_version]}]
    assert not mixed, mixed[:1]
    assert sum(a.model_version in published for a in answers) > 0
    stored = {r.model_version for r in cassandra.execute("SELECT model_version FROM models")}
    assert stored == set(list(published)[-2:])
    assert not list(cassandra.execute(
        "SELECT * FROM user_recs WHERE model_version = %s AND user_id = %s",
        (list(published)[0], history.user_a)))
