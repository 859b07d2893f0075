"""Serviceability precompute: transit days for every warehouse x pincode.

Input: the ~19,500 Indian pincodes of the ``bharatpin`` dataset (India Post
offices with coordinates and a delivery flag) and the warehouse config
(:mod:`svc_tat.warehouses`). Output: one packed row per pincode in Redis
(:func:`svc_tat.domain.encode_row`: flags, one transit byte per warehouse,
the state), in a hash under a new version, then an atomic flip of the
``tat:current`` pointer and the deletion of older versions. svc_tat reads
any pincode with one ``HGET`` of the current version.

The computation is vectorised numpy (haversine on a pincodes x warehouses
array). :func:`transit_matrix_spark` is the same computation in Spark,
kept for the benchmark (``tests/perf/bench_tat.py``) that compares the two.

Run it by hand with ``python -m pipelines.serviceability`` (uses the
``ECOM_*`` settings); svc_tat runs it at start-up and periodically.

Data cleaning, because the post-office coordinates are noisy: a pincode's
position is the median of its offices' coordinates that fall inside India;
when that lies more than 300 km from the median of its sorting district
(first three digits) it is replaced by that district median, as is a
missing one. Pincodes whose offices are all "Non Delivery" get no
delivery flag and therefore no route.
"""

from __future__ import annotations

import csv
import logging
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from svc_tat.domain import (
    DISTANCE_BANDS,
    FLAG_DELIVERY,
    FLAG_METRO,
    FLAG_REMOTE,
    LONGEST_BAND_DAYS,
    METRO_CENTRES,
    METRO_RADIUS_KM,
    NO_ROUTE,
    NON_METRO_EXTRA_DAYS,
    REMOTE_EXTRA_DAYS,
    encode_row,
    is_remote,
)
from svc_tat.warehouses import WarehouseConfig

if TYPE_CHECKING:
    import redis
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

EARTH_RADIUS_KM = 6371.0
# India's bounding box: coordinates outside it are data-entry errors.
LAT_RANGE = (6.0, 37.5)
LON_RANGE = (68.0, 97.5)
OUTLIER_KM = 300.0

# Redis key layout (every key through settings.redis_key).
CURRENT_KEY = "tat:current"
SEQUENCE_KEY = "tat:version_seq"
BUILD_LOCK_KEY = "tat:build_lock"


def rows_key(version: int) -> str:
    """Hash of pincode -> packed row for one matrix version."""
    return f"tat:v{version}:pins"


def meta_key(version: int) -> str:
    """Hash describing one matrix version (warehouse column order, ...)."""
    return f"tat:v{version}:meta"


# --------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PincodeTable:
    """Every pincode with a cleaned position and its flags, column-wise."""

    pincodes: list[str]
    states: list[str]
    lat: np.ndarray  # float64 degrees
    lon: np.ndarray
    has_delivery: np.ndarray  # bool
    remote: np.ndarray  # bool

    def __len__(self) -> int:
        return len(self.pincodes)


def dataset_path() -> Path:
    """The CSV shipped inside the bharatpin wheel."""
    import bharatpin

    return Path(bharatpin.__file__).parent / "data" / "pincodes.csv"


def _coord(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def load_pincodes(path: Path | None = None) -> PincodeTable:
    """Read and clean the bharatpin dataset (see the module doc)."""
    offices: dict[str, list[tuple[float, float]]] = defaultdict(list)
    delivery: dict[str, bool] = {}
    states: dict[str, str] = {}
    with open(path or dataset_path(), encoding="utf-8", newline="") as fh:
        for rec in csv.DictReader(fh):
            pin = rec["pincode"]
            delivery[pin] = delivery.get(pin, False) or rec["delivery"] == "Delivery"
            states.setdefault(pin, rec["state"])
            la, lo = _coord(rec["latitude"]), _coord(rec["longitude"])
            if (
                la is not None and lo is not None
                and LAT_RANGE[0] <= la <= LAT_RANGE[1] and LON_RANGE[0] <= lo <= LON_RANGE[1]
            ):
                offices[pin].append((la, lo))
    pins = sorted(delivery)
    own: dict[str, tuple[float, float]] = {
        p: _median_point(offices[p]) for p in pins if offices[p]
    }
    by_district: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for p, point in own.items():
        by_district[p[:3]].append(point)
    district = {d: _median_point(cs) for d, cs in by_district.items()}
    lat = np.full(len(pins), np.nan)
    lon = np.full(len(pins), np.nan)
    for i, p in enumerate(pins):
        c: tuple[float, float] | None = own.get(p)
        ref = district.get(p[:3])
        if c is None or (ref is not None and _haversine_scalar(c, ref) > OUTLIER_KM):
            c = ref
        if c is not None:
            lat[i], lon[i] = c
    return PincodeTable(
        pincodes=pins,
        states=[states[p] for p in pins],
        lat=lat,
        lon=lon,
        has_delivery=np.array([delivery[p] for p in pins]) & ~np.isnan(lat),
        remote=np.array([is_remote(p) for p in pins]),
    )


def _median_point(points: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(c[0] for c in points), statistics.median(c[1] for c in points)


def _haversine_scalar(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(_haversine(np.array([a[0]]), np.array([a[1]]), np.array(b[0]), np.array(b[1]))[0])


# --------------------------------------------------------------------------
# The computation (numpy)
# --------------------------------------------------------------------------


def _haversine(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray:
    """Great-circle km; broadcasts (so (P,1) against (W,) gives (P,W))."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dlat = p2 - p1
    dlon = np.radians(lon2) - np.radians(lon1)
    a = np.sin(dlat / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def metro_mask(table: PincodeTable) -> np.ndarray:
    """True where a pincode lies within a metro area."""
    centres = np.array(METRO_CENTRES)
    d = _haversine(table.lat[:, None], table.lon[:, None], centres[:, 0], centres[:, 1])
    return np.nan_to_num(d, nan=np.inf).min(axis=1) <= METRO_RADIUS_KM


def transit_matrix(table: PincodeTable, warehouses: Sequence[WarehouseConfig]) -> np.ndarray:
    """uint8 (pincodes x warehouses) carrier days; NO_ROUTE where the
    warehouse does not serve the pincode (out of radius or state, or no
    delivery office)."""
    wlat = np.array([w.latitude for w in warehouses])
    wlon = np.array([w.longitude for w in warehouses])
    dist = _haversine(table.lat[:, None], table.lon[:, None], wlat, wlon)
    dist = np.nan_to_num(dist, nan=np.inf)
    limits = np.array([b[0] for b in DISTANCE_BANDS])
    band_days = np.array([b[1] for b in DISTANCE_BANDS] + [LONGEST_BAND_DAYS])
    days = band_days[np.searchsorted(limits, dist, side="left")]
    metro = metro_mask(table)
    days = days + np.where(~metro[:, None] & (dist > DISTANCE_BANDS[0][0]), NON_METRO_EXTRA_DAYS, 0)
    days = days + np.where(table.remote[:, None], REMOTE_EXTRA_DAYS, 0)
    served = dist <= np.array([w.max_distance_km for w in warehouses])
    states = np.array(table.states)
    for j, w in enumerate(warehouses):
        if w.states:
            served[:, j] &= np.isin(states, list(w.states))
    served &= table.has_delivery[:, None]
    return np.where(served, days, NO_ROUTE).astype(np.uint8)


def row_flags(table: PincodeTable) -> np.ndarray:
    """The flags byte per pincode (delivery office, metro, remote)."""
    return (
        np.where(table.has_delivery, FLAG_DELIVERY, 0)
        | np.where(metro_mask(table), FLAG_METRO, 0)
        | np.where(table.remote, FLAG_REMOTE, 0)
    ).astype(np.uint8)


# --------------------------------------------------------------------------
# The same computation in Spark (benchmark comparison)
# --------------------------------------------------------------------------


def transit_matrix_spark(
    spark: SparkSession, table: PincodeTable, warehouses: Sequence[WarehouseConfig]
) -> np.ndarray:
    """:func:`transit_matrix` as a Spark cross join; same result."""
    from pyspark.sql import functions as F

    metro = metro_mask(table)
    pins = spark.createDataFrame(
        [
            (i, float(table.lat[i]) if not np.isnan(table.lat[i]) else None,
             float(table.lon[i]) if not np.isnan(table.lon[i]) else None,
             bool(table.has_delivery[i]), bool(metro[i]), bool(table.remote[i]), table.states[i])
            for i in range(len(table))
        ],
        "idx INT, lat DOUBLE, lon DOUBLE, delivery BOOLEAN, metro BOOLEAN, remote BOOLEAN, "
        "state STRING",
    )
    whs = spark.createDataFrame(
        [(j, w.latitude, w.longitude, float(w.max_distance_km), list(w.states))
         for j, w in enumerate(warehouses)],
        "col INT, wlat DOUBLE, wlon DOUBLE, max_km DOUBLE, states ARRAY<STRING>",
    )
    a = (
        F.sin(F.radians(F.col("wlat") - F.col("lat")) / 2) ** 2
        + F.cos(F.radians("lat")) * F.cos(F.radians("wlat"))
        * F.sin(F.radians(F.col("wlon") - F.col("lon")) / 2) ** 2
    )
    clipped = F.least(F.greatest(a, F.lit(0.0)), F.lit(1.0))
    dist = F.lit(2 * EARTH_RADIUS_KM) * F.asin(F.sqrt(clipped))
    band = F.lit(LONGEST_BAND_DAYS)
    for limit, days in reversed(DISTANCE_BANDS):
        band = F.when(F.col("dist") <= limit, F.lit(days)).otherwise(band)
    first = DISTANCE_BANDS[0][0]
    total = (
        band
        + F.when(~F.col("metro") & (F.col("dist") > first), NON_METRO_EXTRA_DAYS).otherwise(0)
        + F.when(F.col("remote"), REMOTE_EXTRA_DAYS).otherwise(0)
    )
    served = (
        F.col("delivery") & F.col("dist").isNotNull() & (F.col("dist") <= F.col("max_km"))
        & ((F.size("states") == 0) | F.array_contains(F.col("states"), F.col("state")))
    )
    out = (
        pins.crossJoin(whs)
        .withColumn("dist", dist)
        .select("idx", "col", F.when(served, total).otherwise(NO_ROUTE).alias("days"))
    )
    matrix = np.full((len(table), len(warehouses)), NO_ROUTE, dtype=np.uint8)
    for r in out.toLocalIterator():
        matrix[r["idx"], r["col"]] = r["days"]
    return matrix


# --------------------------------------------------------------------------
# Output: a new Redis version, then an atomic pointer flip
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildReport:
    """What one precompute run produced and how long each part took."""

    version: int
    pincodes: int
    warehouses: int
    served_pairs: int
    load_seconds: float
    compute_seconds: float
    write_seconds: float


def write_matrix(
    client: Any,
    key: Any,
    table: PincodeTable,
    warehouses: Sequence[WarehouseConfig],
    matrix: np.ndarray,
    *,
    chunk: int = 2000,
) -> int:
    """Write ``matrix`` as a new version, flip ``tat:current`` to it and
    delete older versions. ``key`` is ``settings.redis_key``. Returns the
    version. Readers never see a half-written version: the pointer moves
    only after every row is in."""
    version = int(client.incr(key(SEQUENCE_KEY)))
    flags = row_flags(table)
    rows = key(rows_key(version))
    pipe = client.pipeline(transaction=False)
    for start in range(0, len(table), chunk):
        mapping = {
            table.pincodes[i]: encode_row(int(flags[i]), matrix[i].tobytes(), table.states[i])
            for i in range(start, min(start + chunk, len(table)))
        }
        pipe.hset(rows, mapping=mapping)
    pipe.hset(
        key(meta_key(version)),
        mapping={
            "columns": ",".join(w.warehouse_id for w in warehouses),
            "built_at": str(time.time()),
            "pincodes": str(len(table)),
        },
    )
    pipe.execute()
    previous = client.getset(key(CURRENT_KEY), str(version))
    # Older versions go after the flip; UNLINK frees them in the background.
    # A reader that fetched the old pointer just before retries on a miss.
    stale = [v for v in _versions(client, key) if v != version]
    if previous is not None and int(previous) not in stale and int(previous) != version:
        stale.append(int(previous))
    for v in stale:
        client.unlink(key(rows_key(v)), key(meta_key(v)))
    return version


def _versions(client: Any, key: Any) -> list[int]:
    found = []
    for raw in client.scan_iter(match=key("tat:v*:meta"), count=1000):
        name = raw.decode() if isinstance(raw, bytes) else raw
        middle = name[len(key("tat:v")) :].split(":", 1)[0]
        if middle.isdigit():
            found.append(int(middle))
    return found


def build(
    client: redis.Redis,
    key: Any,
    warehouses: Sequence[WarehouseConfig],
    *,
    table: PincodeTable | None = None,
) -> BuildReport:
    """Load, compute and publish one matrix version."""
    t0 = time.perf_counter()
    table = table or load_pincodes()
    t1 = time.perf_counter()
    matrix = transit_matrix(table, warehouses)
    t2 = time.perf_counter()
    version = write_matrix(client, key, table, warehouses, matrix)
    t3 = time.perf_counter()
    return BuildReport(
        version=version,
        pincodes=len(table),
        warehouses=len(warehouses),
        served_pairs=int((matrix != NO_ROUTE).sum()),
        load_seconds=t1 - t0,
        compute_seconds=t2 - t1,
        write_seconds=t3 - t2,
    )


def build_locked(
    client: redis.Redis,
    key: Any,
    warehouses: Sequence[WarehouseConfig],
    *,
    only_if_missing: bool = False,
    fresher_than: float | None = None,
    lock_seconds: int = 300,
) -> BuildReport | None:
    """:func:`build` under a Redis lock so concurrent instances do not build
    the same matrix twice; None when another builder holds the lock,
    (``only_if_missing``) a current version already exists, or the current
    version was built less than ``fresher_than`` seconds ago (by another
    instance of a periodic refresh: each period rebuilds once, not once per
    process)."""
    token = uuid.uuid4().hex
    if not client.set(key(BUILD_LOCK_KEY), token, nx=True, ex=lock_seconds):
        return None
    try:
        current = client.get(key(CURRENT_KEY))
        if only_if_missing and current is not None:
            return None
        if fresher_than is not None and current is not None:
            built_at: Any = client.hget(key(meta_key(int(current))), "built_at")  # type: ignore[arg-type]
            if built_at is not None and time.time() - float(built_at) < fresher_than:
                return None
        return build(client, key, warehouses)
    finally:
        if client.get(key(BUILD_LOCK_KEY)) == token.encode():
            client.delete(key(BUILD_LOCK_KEY))


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m pipelines.serviceability``: build and publish once.

    Its settings come as arguments (defaults from the shared ``ECOM_*``
    environment), never from a service's own settings class."""
    import argparse
    import os

    import redis as redis_lib

    import mesh
    from svc_tat.warehouses import load_warehouses

    shared = mesh.load_settings(mesh.ServiceSettings)
    parser = argparse.ArgumentParser(prog="python -m pipelines.serviceability")
    parser.add_argument("--redis-url", default=shared.redis_url)
    parser.add_argument(
        "--warehouses-file",
        default=os.environ.get("ECOM_TAT_WAREHOUSES_FILE"),
        help="warehouse list (default: the bundled one)",
    )
    args = parser.parse_args(argv)
    client = redis_lib.Redis.from_url(args.redis_url)
    report = build(client, shared.redis_key, load_warehouses(args.warehouses_file))
    print(report)


if __name__ == "__main__":
    main()
