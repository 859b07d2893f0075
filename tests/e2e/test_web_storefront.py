"""The storefront (web/, built by `make web`) in a real browser: headless
Debian Chromium driven by Playwright, against Envoy serving the built files
at ``/`` in front of every real service, exactly as a shopper would use it.

Journeys: sign up, add an address, search with a typo and a pincode (each
hit with its delivery promise, and "Not deliverable to ..." for a pincode no
warehouse serves), open the item, add it to the cart, check out, pay with
``tok_success`` -> PLACED, find the order in the history; a second shopper
pays with ``tok_decline`` -> CANCELLED. Also: API errors shown with their
message and field, keyboard-only use, text alternatives, untrusted text
never rendered as markup, the notifications and recommendations pages
the order's email in the notifications inbox (svc_notify), recommendations
honest while svc_recs is not running, the operations page for an admin
(health of every service, Chart.js charts of the streaming reports, stock
editing). The report rows are written to Cassandra the way the Spark job
writes them (tests/integration/test_analytics.py covers the job).

A screenshot of every page visited lands in ``test-artifacts/screenshots/``
(git-ignored). Needs every server the services use: ECOM_TEST_SERVERS=
mariadb,redis,kafka,ferretdb,elasticsearch,cassandra,mailpit,kannel.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge import registry
from infra import tools
from infra.core import REPO, STACK, tail
from mesh import tokens
from tests.e2e.conftest import Edge, free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

NEEDED = ("users", "catalog", "tat", "inventory", "cart", "payments", "orders", "search",
          "notify", "analytics")
PINCODE = "560001"  # Bengaluru, served by WH-BLR
NON_DELIVERY = "380014"  # a pincode with only a non-delivery post office
WAREHOUSE = "WH-BLR"
PASSWORD = "correct horse battery"
DIST = REPO / "web" / "dist"
SHOTS = REPO / "test-artifacts" / "screenshots"
WAIT_MS = 30_000
HOLD_SECONDS = 60


# --------------------------------------------------------------------------
# the system under test
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def web_addr(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The storefront's file server (edge.static) over web/dist."""
    assert (DIST / "index.html").is_file(), "web/dist is not built: run `make web` (make test does)"
    addr = f"127.0.0.1:{free_port()}"
    log = STACK / "logs" / f"test-{stack.run_id}-web.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.static", "--addr", addr, "--dir", str(DIST)],
            stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"edge.static exited with {proc.returncode}:\n{tail(log)}")
            try:
                if httpx.get(f"http://{addr}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"edge.static not serving:\n{tail(log)}")
            time.sleep(0.1)
        yield addr
    finally:
        proc.terminate()
        proc.wait(10)


# The current and the previous hourly window: the ops page asks for the
# default range (the last 24 windows up to now).
HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
EARLIER = HOUR - timedelta(hours=1)


def reports_prefix(stack) -> str:  # type: ignore[no-untyped-def]
    """The keyspace prefix of this module's svc_analytics: its own, so reports
    the analytics job wrote for earlier tests of the run (the simulator's
    orders, in the same hour) never mix with the rows seeded here. Still
    under the run's prefix, so the run's clean-up drops it."""
    return f"{stack.db_prefix}web_"


@pytest.fixture(scope="module")
def reports(stack) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """Report rows in this module's analytics keyspace, as the Spark job writes them."""
    from svc_analytics import store as report_store

    hosts = [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1]))
             for h in stack.env["ECOM_CASSANDRA_HOSTS"].split(",")]
    session = report_store.connect(hosts, reports_prefix(stack) + report_store.KEYSPACE)
    report_store.create_schema(session)
    for item, cat, units, paise in (("i-phone", "mobiles", 4, 4_000_200),
                                    ("i-case", "accessories", 2, 59_998)):
        for scope in ("*", cat):
            session.execute(
                "INSERT INTO top_items (window_size, window_start, scope, item_id, category,"
                " units, revenue_paise) VALUES ('1h', %s, %s, %s, %s, %s, %s)",
                (HOUR, scope, item, cat, units, paise))
    for report in ("top_items", "zero_result_searches"):
        session.execute("INSERT INTO report_windows (report, window_size, window_start)"
                        " VALUES (%s, '1h', %s)", (report, HOUR))
    for start, net in ((EARLIER, 1_000_000), (HOUR, 3_950_175)):
        for cat, scale in (("mobiles", 1), ("accessories", 0.1)):
            session.execute(
                "INSERT INTO category_revenue (window_size, day, window_start, category,"
                " placed_paise, cancelled_paise, refunded_paise, net_paise, net_orders)"
                " VALUES ('1h', %s, %s, %s, %s, 0, 0, %s, 3)",
                (start.date(), start, cat, int(net * scale), int(net * scale)))
        session.execute(
            "INSERT INTO funnel (window_size, day, window_start, searches, cart_adds,"
            " orders_created, orders_placed) VALUES ('1h', %s, %s, 5, 3, 2, 1)",
            (start.date(), start))
    session.execute("INSERT INTO zero_result_searches (window_size, window_start, query,"
                    " searches) VALUES ('1h', %s, 'zzz gadget', 2)", (HOUR,))
    session.execute("INSERT INTO job_state (job, watermark) VALUES ('analytics', %s)",
                    (HOUR + timedelta(minutes=1),))
    yield
    session.cluster.shutdown()


@pytest.fixture(scope="module")
def edge(services, edge_factory, web_addr: str, stack, reports: None) -> Edge:  # type: ignore[no-untyped-def]
    for name in NEEDED:
        env = {}
        if name in ("orders", "payments"):
            # A short hold, so the tok_timeout journey sees it expire.
            env["ECOM_ORDER_HOLD_SECONDS"] = str(HOLD_SECONDS)
        if name == "analytics":
            env["ECOM_KEYSPACE_PREFIX"] = reports_prefix(stack)
        services.start(name, **env)
    return edge_factory("web", {n: services.addr(n) for n in NEEDED},
                        [registry.process_named(n) for n in NEEDED], web_addr=web_addr)


@pytest.fixture(scope="module")
def api(edge: Edge) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=edge.url, timeout=40) as c:
        yield c


@pytest.fixture(scope="module")
def admin_token(signing_key) -> str:  # type: ignore[no-untyped-def]
    return str(tokens.issue_token(signing_key, user_id="web-admin", roles=["admin"])[0])


@pytest.fixture(scope="module")
def word() -> str:
    """A made-up word in this run's item titles, so search finds only them."""
    return "zq" + uuid.uuid4().hex[:8]


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code == 200, f"{resp.request.method} {resp.request.url}: " \
                                    f"{resp.status_code} {resp.text}"
    return resp.json()


def seed_item(api: httpx.Client, admin_token: str, title: str, rupees: int, stock: int) -> str:
    """An item with ``stock`` units at WH-BLR, created by an admin over REST."""
    admin = {"Authorization": f"Bearer {admin_token}"}
    item = ok(api.post("/v1/items", headers=admin, json={"requestId": uuid.uuid4().hex, "item": {
        "title": title, "category": "mobiles", "brand": "Acme",
        "description": "A phone for the browser journey.",
        "price": {"currencyCode": "INR", "units": str(rupees), "nanos": 0},
        "attributes": {"ram_gb": 8, "storage_gb": 128, "screen_inches": 6.5, "color": "black"},
    }}))
    item_id = str(item["itemId"])
    ok(api.put(f"/v1/inventory/{item_id}/warehouses/{WAREHOUSE}", headers=admin,
               json={"available": str(stock), "requestId": uuid.uuid4().hex}))
    return item_id


@pytest.fixture(scope="module")
def items(api: httpx.Client, admin_token: str, word: str) -> dict[str, str]:
    phone = seed_item(api, admin_token, f"Nimbus {word} Phone", 14999, 20)
    # Untrusted text in a title: must show as text, never become markup.
    evil = seed_item(api, admin_token, f"Nimbus {word} <img src=x onerror=alert(1)> Case", 499, 20)
    return {"phone": phone, "evil": evil}


# --------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    chromium = tools.chromium()  # Debian's package, installed by infra like any tool
    with sync_playwright() as p:
        # --no-sandbox: Chromium's sandbox refuses to run as root (CI, this machine).
        b = p.chromium.launch(executable_path=str(chromium), headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Shop:
    """One visitor's tab, with helpers; screenshots every page it shows."""

    def __init__(self, browser: Any, edge: Edge, name: str) -> None:
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.ctx.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.edge, self.name = edge, name
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", self._dialog)
        SHOTS.mkdir(parents=True, exist_ok=True)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        # confirm() of "Cancel order?" is accepted; an alert() would be XSS.
        dialog.accept()

    def go(self, hash_: str) -> Any:
        self.page.goto(f"{self.edge.url}/{hash_}")
        return self.page

    def shot(self, label: str) -> Path:
        path = SHOTS / f"{self.name}-{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def shop_factory(browser: Any, edge: Edge) -> Iterator[Any]:
    opened: list[Shop] = []

    def make(name: str) -> Shop:
        shop = Shop(browser, edge, name)
        opened.append(shop)
        return shop

    yield make
    for s in opened:
        assert not s.errors, f"JavaScript errors in the page: {s.errors}"
        s.close()


def sign_up(shop: Shop, name: str) -> str:
    page = shop.go("#/signup")
    email = f"{name.lower()}-{uuid.uuid4().hex[:10]}@example.com"
    page.get_by_label("Name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Mobile number").fill("9876543210")
    page.get_by_label("Password").fill(PASSWORD)
    shop.shot("signup")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"#/account"))
    page.locator("nav .who").filter(has_text=email).wait_for()
    page.locator("main p").filter(has_text=email).wait_for()
    return email


def add_address(shop: Shop, pincode: str = PINCODE) -> None:
    page = shop.page
    page.get_by_label("Full name").fill("Asha Rao")
    page.get_by_label("Address line 1").fill("12 MG Road")
    page.get_by_label("City").fill("Bengaluru")
    page.get_by_label("State").fill("Karnataka")
    page.get_by_label("Pincode").fill(pincode)
    page.get_by_label("Phone").fill("9876543210")
    page.get_by_role("button", name="Save address").click()
    saved = page.locator("ul.addresses li").filter(has_text=pincode)
    saved.wait_for()
    assert "default" in saved.inner_text()
    shop.shot("account")


def search_until_found(shop: Shop, query: str, pincode: str, item_id: str) -> Any:
    """Search from the search page until the item is indexed (search is
    eventually consistent with the catalog); returns its hit."""
    page = shop.page

    def search() -> Any:
        shop.go("#/search")
        page.get_by_label("Search", exact=True).fill(query)
        page.get_by_label("Deliver to pincode").fill(pincode)
        page.get_by_role("button", name="Search").click()
        page.wait_for_url(re.compile(r"#/search\?q="))
        page.locator("section.results:not([aria-busy])").wait_for()
        hit = page.locator(f"li.hit[data-item-id='{item_id}']")
        return hit if hit.count() else None

    return wait_until(search, f"{item_id} found by search for {query!r} at {pincode}",
                      timeout=90, interval=0.5)


def typo(word: str) -> str:
    """One letter changed in the middle (fuzzy search still finds it)."""
    i = len(word) // 2
    return word[:i] + ("x" if word[i] != "x" else "y") + word[i + 1:]


def check_out(shop: Shop, token: str) -> tuple[str, str]:
    """From the cart page: check out, pay with ``token``; (order id, final state)."""
    page = shop.page
    page.get_by_role("link", name="Check out").click()
    page.wait_for_url(re.compile(r"#/checkout"))
    page.get_by_role("radio").first.wait_for()
    shop.shot("checkout")
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url(re.compile(r"#/order/"))
    order_id = page.url.rsplit("/", 1)[1]
    badge = page.locator(".order [data-state]")
    badge.filter(has_text="CREATED").wait_for()
    hold = page.locator(".hold")
    hold.filter(has_text="expires in").wait_for()  # the hold, ticking
    shop.shot("order-created")
    page.get_by_label("Pay with").select_option(token)
    page.get_by_role("button", name="Pay now").click()
    page.locator(".order [data-state='PLACED'], .order [data-state='CANCELLED']").wait_for()
    shop.shot(f"order-{token}")
    return order_id, str(badge.get_attribute("data-state"))


# --------------------------------------------------------------------------
# the journeys
# --------------------------------------------------------------------------


def test_shopper_journey_tok_success(shop_factory, items: dict[str, str], word: str,  # type: ignore[no-untyped-def]
                                     api: httpx.Client) -> None:
    shop = shop_factory("success")
    page = shop.page
    shop.go("")
    page.get_by_role("heading", name="Search").wait_for()
    sign_up(shop, "Asha")
    add_address(shop)

    # Search with a typo and the pincode: found, with its delivery promise.
    hit = search_until_found(shop, f"nimbus {typo(word)} phone", PINCODE, items["phone"])
    promise = hit.locator(".promise")
    assert promise.get_attribute("data-deliverable") == "true"
    text = promise.inner_text()
    assert re.fullmatch(r"Get it by \w{3} \d{1,2} \w{3}", text), text
    assert "₹14,999.00" in hit.inner_text()
    assert page.locator("aside.facets").get_by_text(re.compile(r"^mobiles \(\d+\)$")).count() == 1
    shop.shot("search")

    # The same search for a pincode no warehouse delivers to.
    page.get_by_label("Deliver to pincode").fill(NON_DELIVERY)
    page.get_by_role("button", name="Search").click()
    far = page.locator(f"li.hit[data-item-id='{items['phone']}'] .promise[data-deliverable]")
    far.filter(has_text=f"Not deliverable to {NON_DELIVERY}").wait_for()
    shop.shot("search-not-deliverable")

    # The item page: serviceability for the shopper's pincode, add to cart.
    page.get_by_label("Deliver to pincode").fill(PINCODE)
    page.get_by_role("button", name="Search").click()
    phone_hit = page.locator(f"li.hit[data-item-id='{items['phone']}']")
    phone_hit.locator(".promise[data-deliverable='true']").wait_for()
    phone_hit.locator("a.hit-title").click()
    page.wait_for_url(re.compile(r"#/item/"))
    page.locator(".serviceability .promise[data-deliverable='true']").wait_for()
    assert "ships from WH-BLR" in page.locator(".serviceability").inner_text()
    # Similar items: svc_recs is not running here -> an honest empty state.
    page.locator(".recs").first.get_by_text("Recommendations are not available yet").wait_for()
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_text(re.compile(r"Added to cart \(1 items\)")).wait_for()
    shop.shot("item")

    # The cart: line, per-line deliverability, live total.
    page.get_by_role("link", name="Go to cart").click()
    line = page.locator(f"tr[data-item-id='{items['phone']}']")
    line.wait_for()
    assert line.locator(".promise[data-deliverable='true']").count() == 1
    assert page.locator("#cart-total").inner_text() == "₹14,999.00"
    line.get_by_role("button", name=re.compile("One more")).click()
    page.locator("#cart-total").filter(has_text="₹29,998.00").wait_for()
    shop.shot("cart")

    order_id, state = check_out(shop, "tok_success")
    assert state == "PLACED"
    page.get_by_role("status").filter(has_text="Order PLACED").wait_for()

    # The order history lists it, PLACED, with cancel offered.
    page.get_by_role("link", name="All your orders").click()
    entry = page.locator(f"ol.orders .order[data-order-id='{order_id}']")
    entry.wait_for()
    assert entry.locator("[data-state]").get_attribute("data-state") == "PLACED"
    assert "₹29,998.00" in entry.inner_text()
    shop.shot("orders")

    # Cross-check through the API with the shopper's own token.
    token = page.evaluate("JSON.parse(sessionStorage.getItem('ecom.session')).token")
    order = ok(api.get(f"/v1/orders/{order_id}", headers={"Authorization": f"Bearer {token}"}))
    assert order["state"] == "ORDER_STATE_PLACED"
    assert order["payment"]["status"] == "PAYMENT_STATUS_SUCCEEDED"

    # Cancel from the history (before shipping): CANCELLED, refunded.
    page.locator(f"ol.orders > li:has(.order[data-order-id='{order_id}'])").get_by_role(
        "button", name="Cancel order").click()
    page.locator(f".order[data-order-id='{order_id}'] [data-state='CANCELLED']").wait_for()
    assert any(order_id in d for d in shop.dialogs)

    # Notifications: the order's confirmation email, sent by svc_notify from
    # the order's Kafka event (eventually: reload until it is there).
    page.get_by_role("link", name="Notifications").click()
    mail = page.locator("ol.inbox li").filter(has_text="EMAIL").filter(has_text=order_id)

    def inbox() -> bool:
        page.reload()
        page.locator("main section:not([aria-busy])").first.wait_for()
        return bool(mail.count())

    wait_until(inbox, f"the email of order {order_id} in the inbox", timeout=120, interval=1)
    assert "confirmed" in mail.first.inner_text().lower() or order_id in mail.first.inner_text()
    shop.shot("notifications")


def test_shopper_journey_tok_decline(shop_factory, items: dict[str, str], word: str) -> None:  # type: ignore[no-untyped-def]
    shop = shop_factory("decline")
    page = shop.page
    sign_up(shop, "Ravi")
    add_address(shop)
    hit = search_until_found(shop, word, PINCODE, items["phone"])
    hit.locator("a.hit-title").click()
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_text(re.compile(r"Added to cart")).wait_for()
    shop.go("#/cart")
    page.locator(f"tr[data-item-id='{items['phone']}']").wait_for()

    order_id, state = check_out(shop, "tok_decline")
    assert state == "CANCELLED"
    page.get_by_role("status").filter(has_text="Order CANCELLED: payment declined").wait_for()
    assert page.get_by_role("button", name="Pay now").count() == 0

    shop.go("#/orders")
    entry = page.locator(f"ol.orders .order[data-order-id='{order_id}']")
    entry.wait_for()
    assert entry.locator("[data-state]").get_attribute("data-state") == "CANCELLED"
    assert "payment declined" in entry.inner_text()
    assert page.locator(f"ol.orders > li:has(.order[data-order-id='{order_id}'])").get_by_role(
        "button", name="Cancel order").count() == 0


def test_pending_payment_then_the_hold_expires(shop_factory, items: dict[str, str],  # type: ignore[no-untyped-def]
                                               word: str) -> None:
    """tok_timeout: the gateway never answers, the order page says the
    payment is pending with the hold ticking, watches the order, and shows
    it CANCELLED once the hold expired."""
    shop = shop_factory("timeout")
    page = shop.page
    sign_up(shop, "Meera")
    add_address(shop)
    shop.go(f"#/item/{items['phone']}")
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_text(re.compile(r"Added to cart")).wait_for()
    shop.go("#/cart")
    page.locator(f"tr[data-item-id='{items['phone']}']").wait_for()
    page.get_by_role("link", name="Check out").click()
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url(re.compile(r"#/order/"))
    page.get_by_label("Pay with").select_option("tok_timeout")
    page.get_by_role("button", name="Pay now").click()
    page.get_by_role("status").filter(has_text="Payment pending").wait_for()
    assert page.locator(".order [data-state]").get_attribute("data-state") == "CREATED"
    assert "expires in" in page.locator(".hold").inner_text()
    assert page.get_by_role("button", name="Pay now").count() == 0  # no second payment
    shop.shot("order-pending")
    # No reload: the page itself watches the order until the hold expires.
    page.locator(".order [data-state='CANCELLED']").wait_for(timeout=(HOLD_SECONDS + 90) * 1000)
    assert "hold expired" in page.locator(".order").inner_text()
    shop.shot("order-hold-expired")


def test_errors_show_message_and_field(shop_factory) -> None:  # type: ignore[no-untyped-def]
    shop = shop_factory("errors")
    page = shop.page
    # Sign-up with a bad email: the API's INVALID_ARGUMENT, its field named
    # and marked on the input.
    shop.go("#/signup")
    page.get_by_label("Name").fill("Bad Email")
    page.get_by_label("Email").fill("not-an-email")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    alert = page.locator(".form-error [role=alert]")
    alert.wait_for()
    assert alert.get_attribute("data-code") == "INVALID_ARGUMENT"
    assert alert.locator("code.field-name").filter(has_text="email").count() >= 1
    assert page.get_by_label("Email").get_attribute("aria-invalid") == "true"
    shop.shot("signup-error")

    # A bad pincode on search: the error, not a blank page.
    shop.go("#/search?q=phone&pincode=12ab")
    box = page.locator("section.results [role=alert]")
    box.wait_for()
    assert box.get_attribute("data-code") == "INVALID_ARGUMENT"
    assert "pincode" in box.inner_text()
    shop.shot("search-error")

    # A wrong password: UNAUTHENTICATED shown in words.
    shop.go("#/login")
    page.get_by_label("Email").fill(f"nobody-{uuid.uuid4().hex[:6]}@example.com")
    page.get_by_label("Password").fill("wrong password here")
    page.get_by_role("button", name="Log in").click()
    page.locator(".form-error [role=alert]").wait_for()
    assert page.locator(".form-error .error-message").inner_text().strip()
    shop.shot("login-error")


def test_untrusted_text_keyboard_and_alt_text(  # type: ignore[no-untyped-def]
        shop_factory, items: dict[str, str], word: str) -> None:
    shop = shop_factory("a11y")
    page = shop.page
    hit = search_until_found(shop, word, PINCODE, items["evil"])
    title = hit.locator("a.hit-title")
    # The title is shown literally; no <img> element was made from it.
    assert "<img src=x onerror=alert(1)>" in title.inner_text()
    assert page.locator("li.hit img[src='x']").count() == 0
    assert shop.dialogs == []

    # Every picture (or placeholder) has a text alternative.
    for el in page.locator("img, [role=img]").all():
        alt = el.get_attribute("alt") or el.get_attribute("aria-label")
        assert alt and alt.strip(), el.evaluate("e => e.outerHTML")

    # Keyboard only: the skip link first, then the pages' links; Enter follows.
    shop.go("#/search")
    page.reload()  # a fresh load: focus starts at the top of the document
    page.get_by_role("heading", name="Search").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    assert "#/search" in page.url  # the skip link moves focus, not the route
    # From the page's start, Tab reaches the search box (and nothing is a trap).
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "q":
            break
    assert page.evaluate("document.activeElement.name") == "q"
    page.keyboard.type(word)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"q={word}"))
    first = page.locator("a.hit-title").first
    first.wait_for()
    first.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"#/item/"))
    page.get_by_role("heading", level=1).wait_for()
    shop.shot("keyboard-item")


def test_operations_page_for_admin(shop_factory, items: dict[str, str], api: httpx.Client,  # type: ignore[no-untyped-def]
                                   admin_token: str) -> None:
    shop = shop_factory("ops")
    page = shop.page
    # The admin's session, as the login page would store it (the first admin
    # account lives in svc_users; here the token comes from the signing key).
    shop.go("#/")
    page.evaluate("""([t]) => sessionStorage.setItem('ecom.session', JSON.stringify({
        token: t, userId: 'web-admin', role: 'ROLE_ADMIN', email: 'admin@example.com',
        expires: Date.now() + 600000}))""", [admin_token])
    shop.go("#/ops")
    page.get_by_role("heading", name="Operations").wait_for()

    # Health: every probe answered; routed services up, the others named.
    table = page.locator("section[aria-labelledby=h-health] table")
    table.wait_for()
    states = {r.get_attribute("data-service"): r.get_attribute("data-health")
              for r in table.locator("tr[data-service]").all()}
    for name in ("edge", "users", "catalog", "search", "cart", "inventory", "orders", "notify",
                 "analytics"):
        assert states[name] == "up", states
    assert states["tat (serviceability)"] == "up"
    assert states["recs"] == "not deployed"

    # Reports: three charts drawn (top items, category revenue over time,
    # funnel), each with its numbers as a table, and the zero-result searches.
    charts = page.locator("figure.chart")
    charts.nth(2).wait_for()
    assert charts.count() == 3
    assert page.locator("figure.chart canvas[role=img][aria-label]").count() == 3
    drawn = page.evaluate("""() => [...document.querySelectorAll('figure.chart canvas')]
        .map(c => c.width > 0 && c.getContext('2d').getImageData(0, 0, c.width, c.height)
                     .data.some(v => v !== 0))""")
    assert drawn == [True, True, True]
    top = charts.nth(0).locator("details table")
    charts.nth(0).locator("summary").click()
    assert "i-phone" in top.inner_text() and "₹40,002.00" in top.inner_text()
    charts.nth(1).locator("summary").click()
    revenue = charts.nth(1).locator("details table").inner_text()
    assert "mobiles" in revenue and "₹39,501.75" in revenue
    charts.nth(2).locator("summary").click()
    funnel = charts.nth(2).locator("details table").inner_text()
    assert "Searches\t10" in funnel and "Orders placed\t2" in funnel, funnel
    assert "zzz gadget" in page.locator(".charts").inner_text()

    # Stock editing: set 7 at WH-BLR for an item, then read it back via REST.
    page.get_by_label("Item id").fill(items["evil"])
    page.get_by_role("button", name="Show stock").click()
    row = page.locator(f"tr[data-warehouse-id='{WAREHOUSE}']")
    row.wait_for()
    row.get_by_role("spinbutton").fill("7")
    row.get_by_role("button", name="Save").click()
    page.get_by_text(f"{WAREHOUSE}: 7 available").wait_for()
    shop.shot("ops")
    stock = ok(api.get(f"/v1/inventory/{items['evil']}",
                       headers={"Authorization": f"Bearer {admin_token}"}))
    at = {w["warehouseId"]: int(w["available"]) for w in stock["warehouses"]}
    assert at[WAREHOUSE] == 7


def test_edge_serves_files_and_keeps_api_errors(edge: Edge, admin_token: str) -> None:
    """`/` and the hashed assets come from the file server with their
    headers; unknown paths and other verbs keep the API's JSON errors."""
    index = httpx.get(f"{edge.url}/", timeout=10)
    assert index.status_code == 200 and "text/html" in index.headers["content-type"]
    assert index.headers["cache-control"] == "no-cache"
    assert "script-src 'self'" in index.headers["content-security-policy"]
    asset = re.search(r'src="(/assets/[^"]+\.js)"', index.text)
    assert asset, index.text
    js = httpx.get(f"{edge.url}{asset.group(1)}", timeout=10)
    assert js.status_code == 200 and "immutable" in js.headers["cache-control"]
    # Only the page and its assets are files; anything else is not served
    # (outside the file server's routes the edge wants a token: 401).
    assert httpx.get(f"{edge.url}/assets/nope.js", timeout=10).status_code == 404
    for path in ("/assets/../../pyproject.toml", "/assets/%2e%2e/%2e%2e/pyproject.toml", "/.env",
                 "/web/package.json"):
        got = httpx.get(f"{edge.url}{path}", timeout=10)
        assert got.status_code in (400, 401, 404), (path, got.status_code)
        assert "dependencies" not in got.text
    # Outside the files, the API's JSON errors: a token is wanted (401), and
    # with one an unknown path is a JSON 404 naming it.
    missing = httpx.get(f"{edge.url}/v1/nope", timeout=10)
    assert missing.status_code == 401 and missing.json()["code"] == 16
    missing = httpx.get(f"{edge.url}/v1/nope", timeout=10,
                        headers={"Authorization": f"Bearer {admin_token}"})
    assert missing.status_code == 404 and missing.json()["code"] == 5
    assert "/v1/nope" in missing.json()["message"]
    posted = httpx.post(f"{edge.url}/", timeout=10)
    assert posted.status_code in (401, 404)
    assert os.path.basename(asset.group(1)) in {p.name for p in (DIST / "assets").iterdir()}
