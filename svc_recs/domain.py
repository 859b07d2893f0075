"""Recommendation rules without I/O: page sizes and tokens, which sources a
list may come from, and which hits a shopper may be shown."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mesh.errors import InvalidArgument

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 50
MAX_ID_LENGTH = 64
MAX_CATEGORY_LENGTH = 100

# Where a list came from (the `source` field of every answer).
PERSONAL = "personal"
SIMILAR = "similar_items"
CATEGORY_POPULARITY = "category_popularity"
POPULARITY = "popularity"

# Per-item explanation keys (the `reason` field of each Recommendation).
REASONS = {
    PERSONAL: "similar_to_history",
    SIMILAR: "bought_together",
    CATEGORY_POPULARITY: "popular_in_category",
    POPULARITY: "popular",
}


@dataclass(frozen=True)
class Hit:
    """One candidate from a stored list."""

    item_id: str
    score: float


@dataclass(frozen=True)
class Sellable:
    """What the catalog and inventory say about a candidate."""

    title: str
    price_paise: int
    image_url: str
    active: bool
    in_stock: bool


@dataclass(frozen=True)
class Page:
    """Where a page starts: the model version of the first page and the
    position in the stored list after which to continue."""

    version: str
    offset: int


def page_size(value: int) -> int:
    if value < 0 or value > MAX_PAGE_SIZE:
        raise InvalidArgument.for_field("page_size", f"must be between 1 and {MAX_PAGE_SIZE}")
    return value or DEFAULT_PAGE_SIZE


def required_id(field: str, value: str) -> str:
    v = value.strip()
    if not v:
        raise InvalidArgument.for_field(field, "is required")
    if len(v) > MAX_ID_LENGTH:
        raise InvalidArgument.for_field(field, f"must be at most {MAX_ID_LENGTH} characters")
    return v


def category(value: str, *, required: bool) -> str:
    v = value.strip().lower()
    if not v:
        if required:
            raise InvalidArgument.for_field("category", "is required")
        return ""
    if len(v) > MAX_CATEGORY_LENGTH or "/" in v or v == "*":
        raise InvalidArgument.for_field(
            "category", f"must be a category slug of at most {MAX_CATEGORY_LENGTH} characters")
    return v


def encode_token(page: Page, scope: str) -> str:
    raw = json.dumps({"v": page.version, "o": page.offset, "s": scope}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str) -> Page | None:
    """The page a token points at; None for an empty token. A token of
    another list (``scope``) or a garbled one is INVALID_ARGUMENT."""
    if not token:
        return None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        page = Page(str(raw["v"]), int(raw["o"]))
        ok = raw["s"] == scope and page.offset >= 0
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise InvalidArgument.for_field("page_token", "is not a token of this list")
    return page


def shown(hits: Sequence[Hit], facts: dict[str, Sellable], exclude: Iterable[str]) -> list[Hit]:
    """The hits a shopper may be shown, in order: known to the catalog,
    active, in stock somewhere, not already bought (``exclude``), once each."""
    excluded = set(exclude)
    out: list[Hit] = []
    seen: set[str] = set()
    for hit in hits:
        fact = facts.get(hit.item_id)
        if hit.item_id in seen or hit.item_id in excluded or fact is None:
            continue
        if not (fact.active and fact.in_stock):
            continue
        seen.add(hit.item_id)
        out.append(hit)
    return out
