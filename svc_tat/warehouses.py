"""The warehouse network, as data.

The demo network is twelve fulfilment centres in real Indian cities; the
coordinates are the industrial areas where such centres actually sit, and
each pincode is the real pincode of that area. Deployments replace the whole
list with a JSON file named by ``ECOM_TAT_WAREHOUSES_FILE``: a list of
objects with the fields of :class:`WarehouseConfig` (``states`` optional).

The service area of a warehouse is a radius (``max_distance_km``) and,
optionally, the states it may ship to; the precompute job applies both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class WarehouseConfig:
    """One fulfilment centre and the rules it ships under."""

    warehouse_id: str
    name: str
    city: str
    state: str
    pincode: str
    latitude: float
    longitude: float
    # Orders received at or after this IST hour ship a day later.
    cutoff_hour: int
    # Pick-and-pack days before the parcel reaches the carrier.
    processing_days: int
    # Farthest great-circle distance the warehouse ships to.
    max_distance_km: float
    # When non-empty, only these states (bharatpin's spelling) are served.
    states: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not 0 <= self.cutoff_hour <= 23:
            raise ValueError(f"{self.warehouse_id}: cutoff_hour must be 0-23")
        if self.processing_days < 0:
            raise ValueError(f"{self.warehouse_id}: processing_days must be >= 0")
        if not (len(self.pincode) == 6 and self.pincode.isdigit()):
            raise ValueError(f"{self.warehouse_id}: pincode must be six digits")


# National hubs (Bengaluru, Delhi, Mumbai) reach the whole country; regional
# centres serve a radius around them. The ids are the ones the catalog's demo
# stock plan uses.
DEMO_WAREHOUSES: tuple[WarehouseConfig, ...] = (
    WarehouseConfig("WH-AMD", "Ahmedabad Changodar FC", "Ahmedabad", "Gujarat", "382213",
                    22.9293, 72.4477, 15, 1, 1200),
    WarehouseConfig("WH-BLR", "Bengaluru Electronics City FC", "Bengaluru", "Karnataka",
                    "560100", 12.8452, 77.6602, 16, 0, 3500),
    WarehouseConfig("WH-CHE", "Chennai Sriperumbudur FC", "Chennai", "Tamil Nadu", "602105",
                    12.9675, 79.9419, 15, 1, 1500),
    WarehouseConfig("WH-DEL", "Delhi Okhla FC", "New Delhi", "Delhi", "110020",
                    28.5355, 77.2710, 16, 0, 3500),
    WarehouseConfig("WH-GUW", "Guwahati Panikhaiti FC", "Guwahati", "Assam", "781026",
                    26.1805, 91.8251, 13, 1, 900),
    WarehouseConfig("WH-HYD", "Hyderabad Shamshabad FC", "Hyderabad", "Telangana", "501218",
                    17.2403, 78.4294, 15, 1, 1500),
    WarehouseConfig("WH-JAI", "Jaipur Sitapura FC", "Jaipur", "Rajasthan", "302022",
                    26.7777, 75.8422, 14, 1, 1200),
    WarehouseConfig("WH-KOC", "Kochi Kalamassery FC", "Kochi", "Kerala", "683104",
                    10.0510, 76.3210, 14, 1, 600),
    WarehouseConfig("WH-KOL", "Kolkata Salt Lake FC", "Kolkata", "West Bengal", "700091",
                    22.5726, 88.4339, 15, 1, 1600),
    WarehouseConfig("WH-LKO", "Lucknow Gomti Nagar FC", "Lucknow", "Uttar Pradesh", "226010",
                    26.8500, 81.0076, 14, 1, 1200),
    WarehouseConfig("WH-MUM", "Mumbai Bhiwandi FC", "Mumbai", "Maharashtra", "421302",
                    19.2813, 73.0483, 16, 0, 3500),
    WarehouseConfig("WH-PUN", "Pune Chakan FC", "Pune", "Maharashtra", "410501",
                    18.7606, 73.8636, 15, 1, 1200),
)


def load_warehouses(path: str | Path | None = None) -> tuple[WarehouseConfig, ...]:
    """The configured warehouses ordered by id: the demo set, or the JSON list
    at ``path`` (``ECOM_TAT_WAREHOUSES_FILE``)."""
    if not path:
        return tuple(sorted(DEMO_WAREHOUSES, key=lambda w: w.warehouse_id))
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path}: expected a non-empty JSON list of warehouses")
    items = [
        WarehouseConfig(**{**entry, "states": tuple(entry.get("states", ()))}) for entry in raw
    ]
    ids = [w.warehouse_id for w in items]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate warehouse ids")
    return tuple(sorted(items, key=lambda w: w.warehouse_id))
