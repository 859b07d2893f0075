"""Elasticsearch as the search service will use it: a product index behind an
alias, fuzzy full-text search over several fields, filters, facets, sorting,
and a rebuild of the index swapped in behind the alias.

All of it runs on the standard analyzer: the integ-test distribution has no
analysis-common module (see infra/servers/elasticsearch.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from elasticsearch import Elasticsearch, helpers

from tests.conftest import Stack

pytestmark = pytest.mark.integration

MAPPINGS = {
    "dynamic": "strict",
    "properties": {
        "title": {"type": "text"},
        "description": {"type": "text"},
        "brand": {"type": "keyword"},
        "category": {"type": "keyword"},
        # Paise, so money stays integral (scaled_float is in mapper-extras, absent).
        "price_paise": {"type": "long"},
        "listed_at": {"type": "date"},
    },
}

PRODUCTS = [
    ("p1", "Running Shoes", "Lightweight mesh running shoes", "Nike", "footwear", 499900,
     "2025-01-10"),
    ("p2", "Trail Running Shoe", "Grippy sole for trail running", "Adidas", "footwear", 349900,
     "2025-02-11"),
    ("p3", "Leather Wallet", "Slim bifold wallet", "Fossil", "accessories", 129900,
     "2025-03-12"),
    ("p4", "Cotton T-Shirt", "Crew neck, pure cotton", "Nike", "apparel", 59900, "2025-04-13"),
    ("p5", "Yoga Mat", "Non-slip mat for yoga and pilates", "Decathlon", "fitness", 99900,
     "2025-05-14"),
]


def doc(p: tuple[str, str, str, str, str, int, str]) -> dict[str, Any]:
    _, title, description, brand, category, price, listed_at = p
    return {"title": title, "description": description, "brand": brand,
            "category": category, "price_paise": price, "listed_at": listed_at}


def prefix(stack: Stack) -> str:
    """This module's indices: a sub-prefix of the run's, so the cleanup
    never deletes the indices of the run's search service."""
    return f"{stack.es_prefix}estest-"


@pytest.fixture(scope="module")
def es(stack: Stack) -> Iterator[Elasticsearch]:
    client = Elasticsearch(stack.env["ECOM_ES_URL"], request_timeout=30)
    try:
        yield client
    finally:
        # Deleting by wildcard is refused (action.destructive_requires_name):
        # name every index of this run.
        ours = list(client.indices.get(index=f"{prefix(stack)}*", expand_wildcards="all"))
        if ours:
            client.indices.delete(index=",".join(ours))
        client.close()


def create_index(es: Elasticsearch, name: str, products: list[Any]) -> None:
    es.indices.create(index=name, mappings=MAPPINGS,
                      settings={"number_of_shards": 1, "number_of_replicas": 0})
    ok, errors = helpers.bulk(
        es, ({"_index": name, "_id": p[0], "_source": doc(p)} for p in products),
        refresh="wait_for")
    assert (ok, errors) == (len(products), [])


@pytest.fixture(scope="module")
def products(es: Elasticsearch, stack: Stack) -> str:
    """The v1 product index, behind the alias the search API reads."""
    alias = f"{prefix(stack)}products"
    create_index(es, f"{alias}-v1", PRODUCTS)
    es.indices.update_aliases(actions=[{"add": {"index": f"{alias}-v1", "alias": alias}}])
    return alias


def ids(resp: Any) -> list[str]:
    return [h["_id"] for h in resp["hits"]["hits"]]


def test_fuzzy_multi_match_finds_misspelled_words(es: Elasticsearch, products: str) -> None:
    query = {"multi_match": {"query": "runnign shoos", "fields": ["title^3", "description"]}}
    # Exactly as typed, nothing matches: it is the fuzziness that finds them.
    assert ids(es.search(index=products, query=query)) == []
    fuzzy = {"multi_match": {**query["multi_match"], "fuzziness": "AUTO"}}
    found = ids(es.search(index=products, query=fuzzy))
    assert set(found) == {"p1", "p2"}


def test_filters_and_sort_by_price_and_date(es: Elasticsearch, products: str) -> None:
    resp = es.search(
        index=products,
        query={"bool": {
            "must": [{"match": {"description": "running"}}],
            "filter": [{"term": {"category": "footwear"}},
                       {"range": {"price_paise": {"gte": 100000, "lte": 400000}}}],
        }})
    assert ids(resp) == ["p2"]

    by_price = es.search(index=products, sort=[{"price_paise": "asc"}], size=10)
    assert ids(by_price) == ["p4", "p5", "p3", "p2", "p1"]
    newest = es.search(index=products, sort=[{"listed_at": "desc"}], size=2)
    assert ids(newest) == ["p5", "p4"]


def test_terms_aggregation_counts_facets(es: Elasticsearch, products: str) -> None:
    resp = es.search(
        index=products, size=0,
        aggs={"brand": {"terms": {"field": "brand"}},
              "category": {"terms": {"field": "category"}},
              "price": {"range": {"field": "price_paise",
                                  "ranges": [{"to": 100000}, {"from": 100000}]}}})
    aggs = resp["aggregations"]
    brands = {b["key"]: b["doc_count"] for b in aggs["brand"]["buckets"]}
    assert brands == {"Nike": 2, "Adidas": 1, "Fossil": 1, "Decathlon": 1}
    assert aggs["brand"]["buckets"][0] == {"key": "Nike", "doc_count": 2}
    categories = {b["key"]: b["doc_count"] for b in aggs["category"]["buckets"]}
    assert categories == {"footwear": 2, "accessories": 1, "apparel": 1, "fitness": 1}
    assert [b["doc_count"] for b in aggs["price"]["buckets"]] == [2, 3]


def test_rebuilt_index_is_swapped_in_behind_the_alias(es: Elasticsearch, products: str) -> None:
    v1, v2 = f"{products}-v1", f"{products}-v2"
    # No `_reindex` in this distribution (reindex module absent): the rebuild
    # copies with scroll + bulk from the client, then swaps the alias atomically.
    create_index(es, v2, [])
    copied, errors = helpers.bulk(
        es, ({"_index": v2, "_id": h["_id"], "_source": h["_source"]}
             for h in helpers.scan(es, index=v1)),
        refresh="wait_for")
    assert (copied, errors) == (len(PRODUCTS), [])
    es.index(index=v2, id="p6", refresh="wait_for",
             document=doc(("p6", "Running Socks", "Cushioned socks", "Nike", "footwear", 29900,
                           "2025-06-15")))

    es.indices.update_aliases(actions=[
        {"remove": {"index": v1, "alias": products}},
        {"add": {"index": v2, "alias": products}},
    ])
    assert list(es.indices.get_alias(name=products)) == [v2]
    found = ids(es.search(index=products, query={"match": {"title": "socks"}}))
    assert found == ["p6"]
    assert es.count(index=products)["count"] == len(PRODUCTS) + 1
    # The old generation is still there, untouched, until it is dropped.
    assert es.count(index=v1)["count"] == len(PRODUCTS)
