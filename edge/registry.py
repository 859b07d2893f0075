"""The registry of service processes the edge fronts, and the edge's policy
per RPC: which calls are public, how long each may take.

One ``svc_<name>`` process serves one or more proto services. A process is
*present* when ``svc_<name>/main.py`` exists in the repository: the edge
only routes to (and the transcoder only loads) services that exist, so the
generated configuration grows as services land.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mesh.config import SERVICE_PORTS, ServiceSettings

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ServiceProcess:
    """One ``svc_<name>`` process and the proto services it serves."""

    name: str
    # Proto services reachable through the REST edge.
    public_services: tuple[str, ...]
    # Proto services served by the same process but only to other services
    # (no REST binding; the edge has no route to them).
    internal_services: tuple[str, ...] = ()

    @property
    def package(self) -> str:
        return f"svc_{self.name}"

    @property
    def cluster(self) -> str:
        """The Envoy cluster name of this process."""
        return f"svc_{self.name}"

    def present(self, root: Path = ROOT) -> bool:
        """True once the service is implemented (its ``main.py`` exists)."""
        return (root / self.package / "main.py").is_file()


PROCESSES: tuple[ServiceProcess, ...] = (
    ServiceProcess("catalog", ("ecom.catalog.v1.CatalogService",)),
    ServiceProcess("search", ("ecom.search.v1.SearchService",)),
    ServiceProcess("tat", ("ecom.serviceability.v1.ServiceabilityService",)),
    ServiceProcess("users", ("ecom.users.v1.UserService", "ecom.users.v1.AuthService")),
    ServiceProcess("cart", ("ecom.cart.v1.CartService", "ecom.wishlist.v1.WishlistService")),
    ServiceProcess("inventory", ("ecom.inventory.v1.InventoryService",)),
    # OrderHistoryService is public for ArchiveOrders and ListSellerOrders
    # (admin); its other RPCs have no REST binding.
    ServiceProcess(
        "orders", ("ecom.orders.v1.OrderService", "ecom.orderhistory.v1.OrderHistoryService")
    ),
    ServiceProcess("payments", (), internal_services=("ecom.payments.v1.PaymentService",)),
    ServiceProcess("recs", ("ecom.recommendations.v1.RecommendationService",)),
    ServiceProcess("notify", ("ecom.notifications.v1.NotificationService",)),
    ServiceProcess("analytics", ("ecom.analytics.v1.AnalyticsService",)),
)

# RPCs anyone may call without a token. A token, when sent, is still
# verified (and forwarded), so e.g. search can use the caller's default
# address. Everything else needs a valid token.
PUBLIC_RPCS: frozenset[str] = frozenset(
    {
        "ecom.users.v1.UserService.CreateUser",
        "ecom.users.v1.AuthService.Login",
        "ecom.search.v1.SearchService.Search",
        "ecom.catalog.v1.CatalogService.GetItem",
        "ecom.catalog.v1.CatalogService.BatchGetItems",
        "ecom.serviceability.v1.ServiceabilityService.CheckServiceability",
        "ecom.serviceability.v1.ServiceabilityService.ListWarehouses",
        "ecom.recommendations.v1.RecommendationService.ListCategoryRecommendations",
        "ecom.recommendations.v1.RecommendationService.ListItemRecommendations",
    }
)

# Paths the edge answers itself; always public.
HEALTH_PATH = "/healthz"
OPENAPI_PATH = "/openapi.json"

# Upstream time budgets (seconds). Reads are quick lookups; writes may run a
# transaction plus an outbox insert.
READ_TIMEOUT_SECONDS = 5.0
WRITE_TIMEOUT_SECONDS = 10.0
TIMEOUT_OVERRIDES: dict[str, float] = {
    # Checkout reserves stock in inventory and may call users for the address.
    "ecom.orders.v1.OrderService.CreateOrder": 15.0,
    # Paying waits for the gateway, which may time out itself (tok_timeout);
    # the service answers PENDING rather than hanging, within this budget.
    "ecom.orders.v1.OrderService.PayOrder": 30.0,
    # A supplier feed may be large.
    "ecom.catalog.v1.CatalogService.SubmitFeed": 30.0,
    # Up to 1000 stock rows in one transaction.
    "ecom.inventory.v1.InventoryService.BatchSetStock": 30.0,
    # An archive run moves up to 100,000 orders in batches.
    "ecom.orderhistory.v1.OrderHistoryService.ArchiveOrders": 300.0,
    # Trains a Spark ALS model (waiting for a training already running).
    "ecom.recommendations.v1.RecommendationService.RefreshRecommendations": 1200.0,
}


def timeout_for(rpc_full_name: str, is_read: bool) -> float:
    """The route timeout of an RPC through the edge."""
    default = READ_TIMEOUT_SECONDS if is_read else WRITE_TIMEOUT_SECONDS
    return TIMEOUT_OVERRIDES.get(rpc_full_name, default)


def present_processes(root: Path = ROOT) -> list[ServiceProcess]:
    """The processes implemented in this checkout."""
    return [p for p in PROCESSES if p.present(root)]


def process_named(name: str) -> ServiceProcess:
    """The registry entry of ``svc_<name>``."""
    for p in PROCESSES:
        if p.name == name:
            return p
    raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICE_PORTS)}")


def default_addresses(settings: ServiceSettings | None = None) -> dict[str, str]:
    """``name -> host:port`` for every process, from ``ECOM_<SVC>_ADDR``."""
    settings = settings or ServiceSettings()
    return {p.name: settings.addr_of(p.name) for p in PROCESSES}
