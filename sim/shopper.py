"""The shopper simulator's plain parts: who a simulated shopper is, what they
choose to do next, and the small rules of talking to the REST edge.

Nothing here imports Locust (which monkey-patches the standard library with
gevent on import), so the unit tests and other tools can use it freely;
``sim/locustfile.py`` turns it into Locust users.

A shopper has a home city (a real pincode near one of the demo warehouses)
and two or three favourite categories; most of what they search, view,
wishlist, put in the cart and buy comes from those, the rest from anywhere,
so a recommender trained on the traffic has structure to find.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Demo categories (svc_catalog.demo) and words their titles carry. A shopper
# searches a word of the category, with the category filter on.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "mobiles": ("Samsung", "Xiaomi", "Realme", "OnePlus", "Vivo", "5G", "Motorola", "Apple"),
    "laptops": ("Laptop", "Lenovo", "Dell", "HP", "Asus", "Ryzen", "Core i5", "SSD"),
    "televisions": ("Smart TV", "Sony", "LG", "TCL", "4K", "OLED", "QLED", "inch"),
    "apparel": ("Jeans", "Shirt", "Kurta", "cotton", "linen", "Levi's", "Biba", "FabIndia"),
    "footwear": ("Sneakers", "Running Shoes", "Sandals", "Boots", "Nike", "Adidas", "Bata"),
    "books": ("Paperback", "Hardcover", "Monsoon", "River", "Garden", "Journey", "Empire"),
    "furniture": ("Sofa", "Table", "Bed", "sheesham", "teak", "Wakefit", "Nilkamal"),
    "kitchen-appliances": ("Mixer", "Kettle", "Prestige", "Philips", "Bajaj", "Havells"),
    "beauty": ("Lipstick", "Shampoo", "Sunscreen", "Moisturizer", "Lakme", "Nivea"),
    "toys": ("Puzzle", "Lego", "Board Game", "Doll", "Hot Wheels", "Funskool"),
    "groceries": ("Atta", "Rice", "Tata", "Aashirvaad", "Amul", "Haldiram's", "Daawat"),
    "headphones": ("Earbuds", "Wireless", "boAt", "JBL", "Sennheiser", "Noise"),
}

# Things people look for that the demo shop does not sell: the zero-result
# searches report should have rows too.
UNSOLD = ("drone", "bicycle", "aquarium", "treadmill", "guitar strings", "printer ink")


@dataclass(frozen=True)
class City:
    name: str
    state: str
    pincodes: tuple[str, ...]


# Real pincodes (all in the serviceability data) in the cities the demo
# warehouses serve.
CITIES: tuple[City, ...] = (
    City("Bengaluru", "Karnataka", ("560001", "560034", "560076")),
    City("New Delhi", "Delhi", ("110001", "110017", "110092")),
    City("Mumbai", "Maharashtra", ("400001", "400050")),
    City("Chennai", "Tamil Nadu", ("600001", "600040")),
    City("Kolkata", "West Bengal", ("700001", "700091")),
    City("Hyderabad", "Telangana", ("500001", "500081")),
    City("Pune", "Maharashtra", ("411001",)),
    City("Ahmedabad", "Gujarat", ("380009",)),
    City("Jaipur", "Rajasthan", ("302001",)),
    City("Lucknow", "Uttar Pradesh", ("226001",)),
    City("Kochi", "Kerala", ("682001",)),
    City("Guwahati", "Assam", ("781001",)),
)

FIRST_NAMES = ("Asha", "Rahul", "Priya", "Arjun", "Meera", "Vikram", "Ananya", "Rohan", "Kavya",
               "Aditya", "Sneha", "Karan", "Divya", "Nikhil", "Pooja", "Siddharth", "Isha",
               "Manish", "Neha", "Farhan", "Lakshmi", "Gurpreet", "Tenzin", "Joseph")
LAST_NAMES = ("Rao", "Sharma", "Iyer", "Patel", "Nair", "Singh", "Das", "Reddy", "Khan",
              "Menon", "Gupta", "Bose", "Kulkarni", "Fernandes", "Chatterjee", "Verma")
STREETS = ("MG Road", "Station Road", "Park Street", "Nehru Nagar", "Gandhi Road",
           "Lake View Colony", "Temple Street", "Market Road")

PASSWORD = "sim-shopper-password"


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclass(frozen=True)
class Knobs:
    """The simulator's settings, from ``ECOM_SIM_*`` variables (README)."""

    # Share of payments made with tok_decline (the rest use tok_success).
    decline_rate: float = 0.1
    # Chance that a shopper looking at their orders cancels a PLACED one.
    cancel_rate: float = 0.15
    # Share of a shopper's choices that come from their favourite categories.
    favourite_share: float = 0.85
    # Think time between two actions of one shopper, seconds (min, max).
    think_min: float = 1.0
    think_max: float = 3.0
    # Tags the run's accounts (emails), so runs never collide.
    run_tag: str = ""
    # Seed of the shoppers' profiles and choices; empty: random.
    seed: str = ""
    # A JSON-lines file recording each account and order made (for tests).
    journal: str = ""
    # Give each shopper its own loopback source address (127.77.x.y) when
    # the edge is on this machine, as real shoppers each have their own:
    # the edge limits requests per client address.
    source_addresses: bool = True

    @classmethod
    def from_env(cls) -> Knobs:
        think = os.environ.get("ECOM_SIM_THINK_SECONDS", "1,3").split(",")
        lo = float(think[0])
        hi = float(think[1]) if len(think) > 1 else lo
        knobs = cls(
            decline_rate=_env_float("ECOM_SIM_DECLINE_RATE", cls.decline_rate),
            cancel_rate=_env_float("ECOM_SIM_CANCEL_RATE", cls.cancel_rate),
            favourite_share=_env_float("ECOM_SIM_FAVOURITE_SHARE", cls.favourite_share),
            think_min=lo, think_max=hi,
            run_tag=os.environ.get("ECOM_SIM_RUN", "") or new_run_tag(),
            seed=os.environ.get("ECOM_SIM_SEED", ""),
            journal=os.environ.get("ECOM_SIM_JOURNAL", ""),
            source_addresses=os.environ.get("ECOM_SIM_SOURCE_ADDRESSES", "1")
            not in ("0", "false", "no"),
        )
        knobs.check()
        return knobs

    def check(self) -> None:
        for name in ("decline_rate", "cancel_rate", "favourite_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ECOM_SIM_{name.upper()} must be between 0 and 1, not {value}")
        if not 0.0 <= self.think_min <= self.think_max:
            raise ValueError("ECOM_SIM_THINK_SECONDS must be MIN,MAX with 0 <= MIN <= MAX")


def new_run_tag() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class Profile:
    """One simulated shopper."""

    number: int
    name: str
    email: str
    phone: str
    city: City
    pincode: str
    street: str
    # Two or three categories this shopper mostly buys from.
    favourites: tuple[str, ...]


def make_profile(number: int, run_tag: str, rng: random.Random) -> Profile:
    """The ``number``-th shopper of a run; the same rng state gives the same one."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    city = rng.choice(CITIES)
    favourites = tuple(rng.sample(sorted(CATEGORIES), rng.choice((2, 2, 3))))
    return Profile(
        number=number,
        name=f"{first} {last}",
        email=f"{first.lower()}.{last.lower()}.{number}.{run_tag}@shoppers.example.com",
        phone=f"9{rng.randrange(10**9):09d}",
        city=city,
        pincode=rng.choice(city.pincodes),
        street=f"{rng.randint(1, 300)} {rng.choice(STREETS)}",
        favourites=favourites,
    )


def shopper_rng(knobs: Knobs, number: int) -> random.Random:
    """The shopper's own random stream: reproducible with ECOM_SIM_SEED."""
    if knobs.seed:
        return random.Random(f"{knobs.seed}:{number}")
    return random.Random()


def pick_category(profile: Profile, rng: random.Random, favourite_share: float) -> str:
    """Mostly one of the shopper's favourites, sometimes any category."""
    if rng.random() < favourite_share:
        return rng.choice(profile.favourites)
    return rng.choice(sorted(CATEGORIES))


def typo(word: str, rng: random.Random) -> str:
    """The word with two neighbouring letters swapped (search is fuzzy)."""
    if len(word) < 5:
        return word
    i = rng.randrange(1, len(word) - 2)
    return word[:i] + word[i + 1] + word[i] + word[i + 2:]


def search_query(category: str, rng: random.Random) -> tuple[str, str]:
    """(query, category filter) for one search: usually a word of the
    category with its filter, sometimes the bare category listing, now and
    then a typo, and rarely something the shop does not sell."""
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(UNSOLD), ""
    if roll < 0.15:
        return "", category
    word = rng.choice(CATEGORIES[category])
    if roll < 0.25:
        word = typo(word, rng)
    return word, category


def payment_token(rng: random.Random, decline_rate: float) -> str:
    """The test-mode card token: mostly tok_success, some tok_decline."""
    return "tok_decline" if rng.random() < decline_rate else "tok_success"


def source_address(number: int) -> str:
    """A loopback address of its own for shopper ``number`` (127.77.0.1 on)."""
    n = number % (250 * 250)
    return f"127.77.{n // 250}.{n % 250 + 1}"


def is_loopback_url(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host == "localhost" or host.startswith("127.")


def idempotency_key() -> str:
    return uuid.uuid4().hex


def error_reason(body: Any) -> str:
    """The ErrorInfo reason of a JSON ``google.rpc.Status`` body, or ''."""
    if not isinstance(body, dict):
        return ""
    for detail in body.get("details") or ():
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"])
    return ""


# Checkout refusals a real shopper meets (someone bought the last unit,
# the item cannot reach the pincode): part of shopping, not failures.
EXPECTED_CHECKOUT_REFUSALS = frozenset({
    "INSUFFICIENT_STOCK", "NOT_DELIVERABLE", "ITEM_UNAVAILABLE",
})


def deliverable_hits(search_body: Any) -> list[dict[str, Any]]:
    """Hits of a search answer that can be delivered to its pincode."""
    if not isinstance(search_body, dict):
        return []
    hits = search_body.get("hits") or []
    return [h for h in hits
            if isinstance(h, dict) and (h.get("delivery") or {}).get("deliverable")]


def recommended_ids(body: Any) -> list[str]:
    """Item ids of a recommendations answer, best first."""
    if not isinstance(body, dict):
        return []
    return [str(r["itemId"]) for r in body.get("recommendations") or []
            if isinstance(r, dict) and r.get("itemId")]


def route_served(status: int, content_type: str, body: bytes) -> bool:
    """Whether the edge routes a public path to a service, from an answer to
    a request without a token. The edge demands a token on every path it
    does not know as public (401), and answers a bare 404 for a path no
    route matches; a service's own NOT_FOUND is JSON."""
    if status == 404:
        return "json" in content_type and bool(body.strip())
    return status not in (0, 401)


@dataclass
class Journal:
    """What the run did, one JSON object a line (accounts, orders and their
    outcomes), plus counters for the end-of-run summary. The file is
    optional (``ECOM_SIM_JOURNAL``); tests check each line against the API."""

    path: str = ""
    counts: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, **fields: Any) -> None:
        with self._lock:
            self.counts[kind] += 1
            if self.path:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                with open(self.path, "a", encoding="utf-8") as out:
                    out.write(json.dumps({"kind": kind, "at": time.time(), **fields}) + "\n")

    def summary(self) -> str:
        order = ("signed_up", "searched", "viewed", "wishlisted", "carted", "ordered",
                 "placed", "declined", "pending", "checkout_refused", "cancelled")
        parts = [f"{k} {self.counts[k]}" for k in order if self.counts.get(k)]
        return "shoppers: " + (", ".join(parts) if parts else "nothing done")


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line]
