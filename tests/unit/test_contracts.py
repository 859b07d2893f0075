"""The contracts as shipped in generated/ecom.protoset (the descriptor set Envoy
loads): documented, mapped to exactly the REST surface of docs/architecture.md, and
buf-lint clean. test_generated_fresh.py makes sure the descriptor set matches
proto/."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTOSET = ROOT / "generated" / "ecom.protoset"

# The public REST surface, row by row from docs/architecture.md ("exactly these
# paths"), with the RPC that serves each. `GET /healthz` is answered by Envoy
# itself, not by a transcoded RPC, so it is not listed.
REST_TABLE: dict[tuple[str, str], str] = {
    ("POST", "/v1/users"): "ecom.users.v1.UserService.CreateUser",
    ("POST", "/v1/auth:login"): "ecom.users.v1.AuthService.Login",
    ("GET", "/v1/users/{user_id}"): "ecom.users.v1.UserService.GetUser",
    ("PATCH", "/v1/users/{user_id}"): "ecom.users.v1.UserService.UpdateUser",
    ("POST", "/v1/users/{user_id}/addresses"): "ecom.users.v1.UserService.CreateAddress",
    ("GET", "/v1/users/{user_id}/addresses"): "ecom.users.v1.UserService.ListAddresses",
    ("POST", "/v1/items"): "ecom.catalog.v1.CatalogService.CreateItem",
    ("GET", "/v1/items/{item_id}"): "ecom.catalog.v1.CatalogService.GetItem",
    ("PATCH", "/v1/items/{item_id}"): "ecom.catalog.v1.CatalogService.UpdateItem",
    ("DELETE", "/v1/items/{item_id}"): "ecom.catalog.v1.CatalogService.DeleteItem",
    ("GET", "/v1/items:batchGet"): "ecom.catalog.v1.CatalogService.BatchGetItems",
    ("POST", "/v1/suppliers/{supplier_id}/feeds"): "ecom.catalog.v1.CatalogService.SubmitFeed",
    ("GET", "/v1/search"): "ecom.search.v1.SearchService.Search",
    ("GET", "/v1/serviceability"): (
        "ecom.serviceability.v1.ServiceabilityService.CheckServiceability"
    ),
    ("GET", "/v1/warehouses"): "ecom.serviceability.v1.ServiceabilityService.ListWarehouses",
    ("PUT", "/v1/inventory/{item_id}/warehouses/{warehouse_id}"): (
        "ecom.inventory.v1.InventoryService.SetStock"
    ),
    ("GET", "/v1/inventory/{item_id}"): "ecom.inventory.v1.InventoryService.GetStock",
    # Bulk stock loads (issue 12): SetStock for up to 1000 rows.
    ("POST", "/v1/inventory:batchSetStock"): "ecom.inventory.v1.InventoryService.BatchSetStock",
    ("GET", "/v1/users/{user_id}/cart"): "ecom.cart.v1.CartService.GetCart",
    ("POST", "/v1/users/{user_id}/cart/items"): "ecom.cart.v1.CartService.AddCartItem",
    ("DELETE", "/v1/users/{user_id}/cart/items/{item_id}"): (
        "ecom.cart.v1.CartService.RemoveCartItem"
    ),
    ("GET", "/v1/users/{user_id}/wishlist"): "ecom.wishlist.v1.WishlistService.GetWishlist",
    ("POST", "/v1/users/{user_id}/wishlist/items"): (
        "ecom.wishlist.v1.WishlistService.AddWishlistItem"
    ),
    ("DELETE", "/v1/users/{user_id}/wishlist/items/{item_id}"): (
        "ecom.wishlist.v1.WishlistService.RemoveWishlistItem"
    ),
    ("POST", "/v1/orders"): "ecom.orders.v1.OrderService.CreateOrder",
    ("POST", "/v1/orders/{order_id}:pay"): "ecom.orders.v1.OrderService.PayOrder",
    ("GET", "/v1/orders/{order_id}"): "ecom.orders.v1.OrderService.GetOrder",
    ("POST", "/v1/orders/{order_id}:cancel"): "ecom.orders.v1.OrderService.CancelOrder",
    ("POST", "/v1/orders/{order_id}:ship"): "ecom.orders.v1.OrderService.ShipOrder",
    ("POST", "/v1/orders/{order_id}:deliver"): "ecom.orders.v1.OrderService.DeliverOrder",
    ("GET", "/v1/users/{user_id}/orders"): "ecom.orders.v1.OrderService.ListUserOrders",
    ("POST", "/v1/orders:archive"): "ecom.orderhistory.v1.OrderHistoryService.ArchiveOrders",
    ("GET", "/v1/sellers/{seller_id}/orders"): (
        "ecom.orderhistory.v1.OrderHistoryService.ListSellerOrders"
    ),
    ("GET", "/v1/users/{user_id}/recommendations"): (
        "ecom.recommendations.v1.RecommendationService.ListUserRecommendations"
    ),
    ("GET", "/v1/categories/{category}/recommendations"): (
        "ecom.recommendations.v1.RecommendationService.ListCategoryRecommendations"
    ),
    ("GET", "/v1/users/{user_id}/notifications"): (
        "ecom.notifications.v1.NotificationService.ListUserNotifications"
    ),
    # Operators: failed notifications and their retry (admin).
    ("GET", "/v1/notifications"): "ecom.notifications.v1.NotificationService.ListNotifications",
    ("POST", "/v1/notifications/{notification_id}:retry"): (
        "ecom.notifications.v1.NotificationService.RetryNotification"
    ),
    ("GET", "/v1/reports/top-items"): "ecom.analytics.v1.AnalyticsService.GetTopItems",
    ("GET", "/v1/reports/category-revenue"): (
        "ecom.analytics.v1.AnalyticsService.GetCategoryRevenue"
    ),
    ("GET", "/v1/reports/funnel"): "ecom.analytics.v1.AnalyticsService.GetFunnel",
    ("GET", "/v1/reports/zero-result-searches"): (
        "ecom.analytics.v1.AnalyticsService.GetZeroResultSearches"
    ),
}

# Query-string parameters docs/architecture.md names; each must be a request field.
QUERY_PARAMS: dict[tuple[str, str], list[str]] = {
    ("GET", "/v1/items:batchGet"): ["item_ids"],
    ("GET", "/v1/search"): [
        "query",
        "pincode",
        "category",
        "min_price",
        "max_price",
        "sort",
        "page_size",
        "page_token",
    ],
    ("GET", "/v1/serviceability"): ["item_id", "pincode"],
    ("GET", "/v1/reports/top-items"): ["window", "category", "metric", "limit"],
    ("GET", "/v1/reports/category-revenue"): ["window", "from", "to"],
    ("GET", "/v1/reports/funnel"): ["window", "from", "to"],
    ("GET", "/v1/reports/zero-result-searches"): ["window"],
}

PUBLIC_RPCS = set(REST_TABLE.values())

# Every service the mesh serves (Envoy's transcoder lists them by these names).
SERVICES = {
    "ecom.catalog.v1.CatalogService",
    "ecom.search.v1.SearchService",
    "ecom.serviceability.v1.ServiceabilityService",
    "ecom.users.v1.UserService",
    "ecom.users.v1.AuthService",
    "ecom.cart.v1.CartService",
    "ecom.wishlist.v1.WishlistService",
    "ecom.inventory.v1.InventoryService",
    "ecom.orders.v1.OrderService",
    "ecom.payments.v1.PaymentService",
    "ecom.recommendations.v1.RecommendationService",
    "ecom.notifications.v1.NotificationService",
    "ecom.orderhistory.v1.OrderHistoryService",
    "ecom.analytics.v1.AnalyticsService",
}

# Mutating RPCs whose idempotency key is not `request_id`: the reservation
# protocol is keyed by `order_id` (one reservation per order).
IDEMPOTENT_BY_OTHER_KEY = {
    "ecom.inventory.v1.InventoryService.ReserveStock",
    "ecom.inventory.v1.InventoryService.CommitReservation",
    "ecom.inventory.v1.InventoryService.ReleaseReservation",
}
READ_PREFIXES = ("Get", "List", "BatchGet", "BatchCheck", "Check", "Search", "Login")

FDP = descriptor_pb2.FieldDescriptorProto
SCALAR_QUERY_TYPES = {
    FDP.TYPE_STRING,
    FDP.TYPE_INT32,
    FDP.TYPE_INT64,
    FDP.TYPE_UINT32,
    FDP.TYPE_UINT64,
    FDP.TYPE_BOOL,
    FDP.TYPE_ENUM,
    FDP.TYPE_DOUBLE,
    FDP.TYPE_FLOAT,
}


@pytest.fixture(scope="module")
def files() -> list[descriptor_pb2.FileDescriptorProto]:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(PROTOSET.read_bytes())
    ours = [f for f in fds.file if f.name.startswith("ecom/")]
    assert ours, "no ecom/ files in the descriptor set"
    return ours


@pytest.fixture(scope="module")
def messages(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, msgs: list[descriptor_pb2.DescriptorProto]) -> None:
        for m in msgs:
            found[f"{prefix}.{m.name}"] = m
            walk(f"{prefix}.{m.name}", list(m.nested_type))

    for f in files:
        walk(f".{f.package}", list(f.message_type))
    return found


def rpcs(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> Iterator[tuple[str, descriptor_pb2.MethodDescriptorProto]]:
    for f in files:
        for s in f.service:
            for m in s.method:
                yield f"{f.package}.{s.name}.{m.name}", m


def http_rules(method: descriptor_pb2.MethodDescriptorProto) -> list[http_pb2.HttpRule]:
    if not method.options.HasExtension(annotations_pb2.http):
        return []
    rule = method.options.Extensions[annotations_pb2.http]
    return [rule, *rule.additional_bindings]


def verb_and_path(rule: http_pb2.HttpRule) -> tuple[str, str]:
    kind = rule.WhichOneof("pattern")
    assert kind in {"get", "put", "post", "delete", "patch"}, kind
    return kind.upper(), getattr(rule, kind)


def path_params(path: str) -> list[str]:
    return [seg.split("}")[0] for seg in path.split("{")[1:]]


# -- documentation -------------------------------------------------------------


def _synthetic_oneof(m: descriptor_pb2.DescriptorProto, index: int) -> bool:
    """The oneof protoc makes for a proto3 ``optional`` field (not written)."""
    return any(fld.proto3_optional for fld in m.field if fld.oneof_index == index)


class _DocAudit:
    """Collects the elements of one file that have no leading comment."""

    def __init__(self, f: descriptor_pb2.FileDescriptorProto) -> None:
        self.name = f.name
        self.comments = {
            tuple(loc.path): loc.leading_comments.strip() for loc in f.source_code_info.location
        }
        self.missing: list[str] = []

    def need(self, path: tuple[int, ...], what: str) -> None:
        if not self.comments.get(path):
            self.missing.append(f"{self.name}: {what}")

    def enum(self, path: tuple[int, ...], e: descriptor_pb2.EnumDescriptorProto) -> None:
        self.need(path, f"enum {e.name}")
        for i, v in enumerate(e.value):
            self.need((*path, 2, i), f"enum value {v.name}")

    def message(self, path: tuple[int, ...], m: descriptor_pb2.DescriptorProto) -> None:
        self.need(path, f"message {m.name}")
        for i, fld in enumerate(m.field):
            self.need((*path, 2, i), f"field {m.name}.{fld.name}")
        for i, o in enumerate(m.oneof_decl):
            if not _synthetic_oneof(m, i):
                self.need((*path, 8, i), f"oneof {m.name}.{o.name}")
        for i, n in enumerate(m.nested_type):
            if not n.options.map_entry:
                self.message((*path, 3, i), n)
        for i, e in enumerate(m.enum_type):
            self.enum((*path, 4, i), e)


def undocumented(f: descriptor_pb2.FileDescriptorProto) -> list[str]:
    """Every service, RPC, message, field, oneof, enum and enum value without a
    leading comment, as `file: kind name`."""
    audit = _DocAudit(f)
    for si, s in enumerate(f.service):
        audit.need((6, si), f"service {s.name}")
        for mi, m in enumerate(s.method):
            audit.need((6, si, 2, mi), f"rpc {s.name}.{m.name}")
    for i, m in enumerate(f.message_type):
        audit.message((4, i), m)
    for i, e in enumerate(f.enum_type):
        audit.enum((5, i), e)
    return audit.missing


def test_every_element_is_documented(files: list[descriptor_pb2.FileDescriptorProto]) -> None:
    assert all(f.source_code_info.location for f in files), "protoset lacks source info"
    missing = [m for f in files for m in undocumented(f)]
    assert not missing, "undocumented:\n" + "\n".join(missing)


def test_expected_services_exist(files: list[descriptor_pb2.FileDescriptorProto]) -> None:
    found = {f"{f.package}.{s.name}" for f in files for s in f.service}
    assert found == SERVICES


# -- REST surface --------------------------------------------------------------


def test_public_rpcs_have_http_annotations(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    names = dict(rpcs(files))
    assert PUBLIC_RPCS <= names.keys(), PUBLIC_RPCS - names.keys()
    for name in sorted(PUBLIC_RPCS):
        assert http_rules(names[name]), f"{name} has no google.api.http annotation"


def test_annotations_are_exactly_the_rest_table(
    files: list[descriptor_pb2.FileDescriptorProto],
) -> None:
    mapped: dict[tuple[str, str], str] = {}
    for name, method in rpcs(files):
        for rule in http_rules(method):
            key = verb_and_path(rule)
            assert key not in mapped, f"{key} mapped twice: {mapped[key]} and {name}"
            mapped[key] = name
    assert set(mapped) == set(REST_TABLE), (
        f"extra: {sorted(set(mapped) - set(REST_TABLE))}\n"
        f"missing: {sorted(set(REST_TABLE) - set(mapped))}"
    )
    assert mapped == REST_TABLE


def test_http_bindings_match_request_fields(
    files: list[descriptor_pb2.FileDescriptorProto],
    messages: dict[str, descriptor_pb2.DescriptorProto],
) -> None:
    """Path parameters, bodies and query parameters name real request fields,
    and GET/DELETE requests carry only query-string-friendly fields."""
    for name, method in rpcs(files):
        request = messages[method.input_type]
        fields = {f.name: f for f in request.field}
        for rule in http_rules(method):
            verb, path = verb_and_path(rule)
            params = path_params(path)
            for p in params:
                assert p in fields, f"{name}: path param {{{p}}} is not a request field"
            if verb in {"GET", "DELETE"}:
                assert not rule.body, f"{name}: {verb} must not have a body"
                for f in request.field:
                    if f.name not in params:
                        assert f.type in SCALAR_QUERY_TYPES, (
                            f"{name}: query field {f.name} is not a scalar or enum"
                        )
            else:
                assert rule.body == "*" or rule.body in fields, f"{name}: bad body {rule.body}"
            for q in QUERY_PARAMS.get((verb, path), []):
                assert q in fields, f"{name}: query parameter {q} is not a request field"


def test_mutating_rpcs_take_request_id(
    files: list[descriptor_pb2.FileDescriptorProto],
    messages: dict[str, descriptor_pb2.DescriptorProto],
) -> None:
    for name, method in rpcs(files):
        if method.name.startswith(READ_PREFIXES) or name in IDEMPOTENT_BY_OTHER_KEY:
            continue
        fields = {f.name for f in messages[method.input_type].field}
        assert "request_id" in fields, f"{name} mutates but has no request_id"


# -- generated Python and lint -------------------------------------------------


def test_generated_modules_import(files: list[descriptor_pb2.FileDescriptorProto]) -> None:
    for f in files:
        module = f.name.removesuffix(".proto").replace("/", ".")
        pb2 = importlib.import_module(f"{module}_pb2")
        grpc_mod = importlib.import_module(f"{module}_pb2_grpc")
        for s in f.service:
            assert hasattr(grpc_mod, f"{s.name}Stub"), f"{module}: no {s.name}Stub"
            assert hasattr(grpc_mod, f"{s.name}Servicer"), f"{module}: no {s.name}Servicer"
        assert pb2.DESCRIPTOR.package == f.package


def test_buf_lint_clean() -> None:
    from infra.lint import buf_lint

    findings = buf_lint()
    assert not findings, "buf lint:\n" + "\n".join(findings)
