"""ecom's shopper simulator, which is also its load test (Locust).

Each Locust user is one shopper talking only to the public REST edge
(Envoy), as a storefront would: sign up, log in, save an address, then,
with think time in between, search (with their pincode) mostly in their
favourite categories, view items, add some to the wishlist, fill the cart,
check out from the cart, pay with a test card token (mostly tok_success,
some tok_decline), look at their orders and now and then cancel one. Every
write carries an ``Idempotency-Key``; a write that meets a connection error
or a 502/503/504 is retried with the same key, so it never happens twice.

Run it with ``make simulate`` (headless, bounded users and duration) or
``python -m sim``; or with Locust's own command line and web UI:
``locust -f sim/locustfile.py --host http://127.0.0.1:8080``. Knobs are the
``ECOM_SIM_*`` variables (see ``sim/shopper.py`` and the README).
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from typing import Any

# Locust puts this file's folder on sys.path; the repository root is needed
# for `sim.shopper`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gevent  # noqa: E402
from locust import HttpUser, events, task  # noqa: E402
from locust.clients import LocustHttpAdapter  # noqa: E402
from urllib3 import PoolManager  # noqa: E402

from sim import shopper  # noqa: E402

KNOBS = shopper.Knobs.from_env()
JOURNAL = shopper.Journal(KNOBS.journal)
_numbers = itertools.count(1)

# Status codes worth retrying a write for, with its key: the edge or a
# service was briefly unreachable (0 is Locust's "no response").
RETRYABLE = frozenset({0, 502, 503, 504})
EMAIL_TAKEN = frozenset({"EMAIL_TAKEN"})


class Shopper(HttpUser):
    """One simulated shopper (see the module doc)."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.number = next(_numbers)
        self.rng = shopper.shopper_rng(KNOBS, self.number)
        self.profile = shopper.make_profile(self.number, KNOBS.run_tag, self.rng)
        if KNOBS.source_addresses and shopper.is_loopback_url(self.host or ""):
            pool = PoolManager(source_address=(shopper.source_address(self.number), 0))
            self.client.mount("http://", LocustHttpAdapter(pool_manager=pool))
        self.user_id = ""
        self.token = ""
        self.address_id = ""
        # One key each for the account and the address, however often they
        # are tried: a sign-up that timed out and is tried again later
        # returns the account the first attempt made.
        self.signup_key = shopper.idempotency_key()
        self.address_key = shopper.idempotency_key()
        self.wishlist: list[str] = []
        self.placed: list[str] = []

    def wait_time(self) -> float:
        return self.rng.uniform(KNOBS.think_min, KNOBS.think_max)

    # -- talking to the edge ---------------------------------------------

    def call(self, method: str, path: str, *, name: str, json: Any = None,
             params: dict[str, Any] | None = None, write: bool = False, key: str = "",
             fine: frozenset[str] = frozenset(), auth: bool = True) -> tuple[int, Any]:
        """One request, counted under ``name``. A 200 succeeds; a refusal
        whose ErrorInfo reason is in ``fine`` is a normal shop answer (also
        counted as a success); anything else is a failure. A RETRYABLE
        answer is retried (twice at most, as a storefront would), a write
        with the same idempotency key (``key``, or a new one per call); an
        expired token is renewed once."""
        key = key or (shopper.idempotency_key() if write else "")
        renewed = False
        for attempt in range(3):
            headers = {"Authorization": f"Bearer {self.token}"} if auth and self.token else {}
            if key:
                headers["Idempotency-Key"] = key
            with self.client.request(method, path, name=name, json=json, params=params,
                                     headers=headers, catch_response=True) as resp:
                status = resp.status_code or 0
                try:
                    body = resp.json() if resp.content else None
                except ValueError:
                    body = None
                if status == 200:
                    resp.success()
                    return status, body
                reason = shopper.error_reason(body)
                if reason and reason in fine:
                    resp.success()
                    return status, body
                if status == 401 and auth and self.token and not renewed:
                    resp.failure("401: token refused, logging in again")
                    renewed = True
                    if self.log_in():
                        continue
                    return status, body
                text = (resp.text or "")[:200] if status else str(resp.error)
                resp.failure(f"{status} {reason or text}")
                if not (status in RETRYABLE and attempt < 2):
                    return status, body
            gevent.sleep(0.5 * (attempt + 1))
        return status, body

    # -- the account -------------------------------------------------------

    def on_start(self) -> None:
        self.set_up_account()

    def set_up_account(self) -> bool:
        """Sign up, log in, save a delivery address; True when all done."""
        p = self.profile
        if not self.user_id:
            status, body = self.call("POST", "/v1/users", name="/v1/users", write=True,
                                     key=self.signup_key, auth=False, fine=EMAIL_TAKEN,
                                     json={"email": p.email, "password": shopper.PASSWORD,
                                           "name": p.name, "phone": p.phone})
            if status == 200:
                self.user_id = str(body["userId"])
            elif not (shopper.error_reason(body) in EMAIL_TAKEN and self.log_in()):
                # (EMAIL_TAKEN: made by an attempt whose answer was lost; the
                # account is ours and logging in names it.)
                return False
            JOURNAL.record("signed_up", user_id=self.user_id, email=p.email,
                           favourites=list(p.favourites), pincode=p.pincode)
        if not self.token and not self.log_in():
            return False
        if not self.address_id:
            status, body = self.call(
                "POST", f"/v1/users/{self.user_id}/addresses",
                name="/v1/users/{user_id}/addresses", write=True, key=self.address_key,
                json={"address": {"name": p.name, "lines": [p.street], "city": p.city.name,
                                  "state": p.city.state, "pincode": p.pincode,
                                  "phone": p.phone}})
            if status != 200:
                return False
            self.address_id = str(body["addressId"])
        return True

    def log_in(self) -> bool:
        self.token = ""
        status, body = self.call("POST", "/v1/auth:login", name="/v1/auth:login", auth=False,
                                 json={"email": self.profile.email,
                                       "password": shopper.PASSWORD})
        if status != 200:
            return False
        self.token = str(body["accessToken"])
        self.user_id = str(body.get("userId") or self.user_id)
        return True

    def ready(self) -> bool:
        return bool(self.user_id and self.token and self.address_id) or self.set_up_account()

    # -- browsing ------------------------------------------------------------

    def search(self, category: str | None = None) -> list[dict[str, Any]]:
        """A search with the shopper's pincode; returns the deliverable hits."""
        category = category or shopper.pick_category(self.profile, self.rng,
                                                     KNOBS.favourite_share)
        query, only = shopper.search_query(category, self.rng)
        params: dict[str, Any] = {"query": query, "pincode": self.profile.pincode,
                                  "page_size": 20}
        if only:
            params["category"] = only
        status, body = self.call("GET", "/v1/search", name="/v1/search", params=params)
        if status != 200:
            return []
        JOURNAL.record("searched")
        return shopper.deliverable_hits(body)

    def view(self, item_id: str) -> dict[str, Any] | None:
        status, body = self.call("GET", f"/v1/items/{item_id}", name="/v1/items/{item_id}")
        if status != 200:
            return None
        JOURNAL.record("viewed")
        return body if isinstance(body, dict) else None

    @task(6)
    def browse(self) -> None:
        """Search, look at a few hits, keep one on the wishlist now and then."""
        if not self.ready():
            return
        hits = self.search()
        for hit in self.rng.sample(hits, min(len(hits), self.rng.randint(1, 3))):
            item = self.view(hit["itemId"])
            if item and self.rng.random() < 0.25:
                status, _ = self.call(
                    "POST", f"/v1/users/{self.user_id}/wishlist/items",
                    name="/v1/users/{user_id}/wishlist/items", write=True,
                    json={"itemId": hit["itemId"]})
                if status == 200:
                    self.wishlist.append(hit["itemId"])
                    JOURNAL.record("wishlisted", user_id=self.user_id, item_id=hit["itemId"],
                                   category=hit.get("category", ""))

    # -- buying --------------------------------------------------------------

    @task(3)
    def buy(self) -> None:
        """Pick one or two items (from a search, or the wishlist), put them
        in the cart, check out from the cart and pay."""
        if not self.ready():
            return
        chosen = self.choose_items()
        if not chosen:
            return
        self.fill_cart(chosen)
        order_id = self.check_out(chosen)
        if order_id:
            self.pay(order_id)

    def choose_items(self) -> list[str]:
        """A wishlisted item now and then; else one or two search hits."""
        if self.wishlist and self.rng.random() < 0.3:
            return [self.rng.choice(self.wishlist)]
        hits = self.search()
        if not hits:
            return []
        chosen = [self.rng.choice(hits[:8])["itemId"]]
        if len(hits) > 1 and self.rng.random() < 0.25:
            other = self.rng.choice(hits)["itemId"]
            if other not in chosen:
                chosen.append(other)
        return chosen

    def fill_cart(self, item_ids: list[str]) -> None:
        for item_id in item_ids:
            self.view(item_id)
            status, _ = self.call(
                "POST", f"/v1/users/{self.user_id}/cart/items",
                name="/v1/users/{user_id}/cart/items", write=True,
                json={"itemId": item_id, "quantity": 1 if self.rng.random() < 0.85 else 2})
            if status == 200:
                JOURNAL.record("carted", user_id=self.user_id, item_id=item_id)
        self.call("GET", f"/v1/users/{self.user_id}/cart", name="/v1/users/{user_id}/cart",
                  params={"pincode": self.profile.pincode})

    def check_out(self, chosen: list[str]) -> str:
        """Order the cart to the saved address; the order id, or '' when
        refused (an expected refusal empties the cart of what was chosen)."""
        status, order = self.call(
            "POST", "/v1/orders", name="/v1/orders", write=True,
            fine=shopper.EXPECTED_CHECKOUT_REFUSALS,
            json={"userId": self.user_id, "fromCart": True, "addressId": self.address_id})
        if status == 200:
            order_id = str(order["orderId"])
            JOURNAL.record("ordered", user_id=self.user_id, order_id=order_id,
                           items=[ln["itemId"] for ln in order.get("lines", [])])
            return order_id
        reason = shopper.error_reason(order)
        if reason in shopper.EXPECTED_CHECKOUT_REFUSALS:
            JOURNAL.record("checkout_refused", user_id=self.user_id, reason=reason)
            self.empty_cart(chosen)
        return ""

    def pay(self, order_id: str) -> None:
        """Pay with a test card token (mostly tok_success), then look at the order."""
        token = shopper.payment_token(self.rng, KNOBS.decline_rate)
        status, paid = self.call("POST", f"/v1/orders/{order_id}:pay",
                                 name="/v1/orders/{order_id}:pay", write=True,
                                 json={"paymentToken": token})
        if status != 200:
            return
        state = str(paid.get("state", ""))
        outcome = {"ORDER_STATE_PLACED": "placed",
                   "ORDER_STATE_CANCELLED": "declined"}.get(state, "pending")
        JOURNAL.record(outcome, user_id=self.user_id, order_id=order_id, token=token,
                       state=state)
        if outcome == "placed":
            self.placed.append(order_id)
        self.call("GET", f"/v1/orders/{order_id}", name="/v1/orders/{order_id}")

    def empty_cart(self, item_ids: list[str]) -> None:
        for item_id in item_ids:
            self.call("DELETE", f"/v1/users/{self.user_id}/cart/items/{item_id}",
                      name="/v1/users/{user_id}/cart/items/{item_id}", write=True)

    # -- after buying ---------------------------------------------------------

    @task(1)
    def review_orders(self) -> None:
        """Look at the order history; now and then cancel a placed order."""
        if not self.ready():
            return
        self.call("GET", f"/v1/users/{self.user_id}/orders",
                  name="/v1/users/{user_id}/orders", params={"page_size": 10})
        if self.placed and self.rng.random() < KNOBS.cancel_rate:
            order_id = self.placed.pop(self.rng.randrange(len(self.placed)))
            status, body = self.call(
                "POST", f"/v1/orders/{order_id}:cancel", name="/v1/orders/{order_id}:cancel",
                write=True, fine=frozenset({"ILLEGAL_TRANSITION"}),
                json={"note": "changed my mind"})
            if status == 200:
                JOURNAL.record("cancelled", user_id=self.user_id, order_id=order_id,
                               state=str(body.get("state", "")))

    @task(1)
    def look_at_lists(self) -> None:
        """Open the cart (priced for the pincode) and the wishlist."""
        if not self.ready():
            return
        self.call("GET", f"/v1/users/{self.user_id}/cart", name="/v1/users/{user_id}/cart",
                  params={"pincode": self.profile.pincode})
        self.call("GET", f"/v1/users/{self.user_id}/wishlist",
                  name="/v1/users/{user_id}/wishlist")


    # -- recommendations (when the edge serves them) --------------------------

    @task(1)
    def see_recommendations(self) -> None:
        """Read the own and a favourite category's recommendations and the
        similar items of a viewed one, and open one of them (a click)."""
        if not RECS or not self.ready():
            return
        picks: list[str] = []
        if "user" in RECS:
            status, body = self.call("GET", f"/v1/users/{self.user_id}/recommendations",
                                     name="/v1/users/{user_id}/recommendations")
            picks += shopper.recommended_ids(body) if status == 200 else []
        if "category" in RECS:
            category = shopper.pick_category(self.profile, self.rng, KNOBS.favourite_share)
            status, body = self.call("GET", f"/v1/categories/{category}/recommendations",
                                     name="/v1/categories/{category}/recommendations")
            picks += shopper.recommended_ids(body) if status == 200 else []
        if "item" in RECS and self.wishlist:
            item_id = self.rng.choice(self.wishlist)
            status, body = self.call("GET", f"/v1/items/{item_id}/recommendations",
                                     name="/v1/items/{item_id}/recommendations")
            picks += shopper.recommended_ids(body) if status == 200 else []
        if picks:
            self.view(self.rng.choice(picks[:5]))


# Which recommendation routes the edge serves ("user", "category", "item"),
# found once at the start: a run against a system without svc_recs skips
# them instead of counting failures.
RECS: set[str] = set()


@events.test_start.add_listener
def _probe_recommendations(environment: Any, **_: Any) -> None:
    import requests

    host = (environment.host or "").rstrip("/")
    # Public routes, asked without a token; a user's own list comes from the
    # same service as the category lists.
    for kind, path in (("category", "/v1/categories/mobiles/recommendations"),
                       ("item", "/v1/items/sim-probe/recommendations")):
        try:
            resp = requests.get(host + path, timeout=10)
        except requests.RequestException:
            continue
        if shopper.route_served(resp.status_code, resp.headers.get("content-type", ""),
                                resp.content):
            RECS.add(kind)
    if "category" in RECS:
        RECS.add("user")
    print(f"sim: recommendation routes served: {', '.join(sorted(RECS)) or 'none'}",
          flush=True)


@events.quitting.add_listener
def _print_summary(environment: Any, **_: Any) -> None:
    print(JOURNAL.summary(), flush=True)
