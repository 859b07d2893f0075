"""The demo catalog: a deterministic (seeded) generator of realistic items
over every category, a stock plan across the demo warehouses, and a bulk
loader through the catalog's own store.

``python -m svc_catalog.demo [--count N]`` loads it into the database the
service uses (``ECOM_MONGO_URL``, ``ECOM_DB_PREFIX``); loading twice inserts
nothing new. The items' ItemUpserted events are then published straight to
``catalog.items`` with deterministic event ids (publishing them again on the
next load changes nothing downstream), so search indexes the demo at once.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import mesh
from mesh.kafka import OutgoingEvent, ensure_topics, make_admin, make_producer, publish
from svc_catalog import codec, domain
from svc_catalog.store import ItemStore, connect

SEED = 20240601
DEFAULT_COUNT = 5_040
# Placeholder warehouse ids until svc_tat publishes the real list.
WAREHOUSES = ("WH-BLR", "WH-DEL", "WH-MUM", "WH-CHE", "WH-KOL", "WH-HYD", "WH-PUN", "WH-AMD",
              "WH-JAI", "WH-LKO", "WH-GUW", "WH-KOC")
# Fixed creation time, so two runs generate identical items.
CREATED = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)

Gen = Callable[[random.Random, int], tuple[str, str, int, dict[str, Any]]]


def _pick(r: random.Random, *xs: Any) -> Any:
    return r.choice(xs)


def _mobile(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Samsung", "Xiaomi", "Realme", "OnePlus", "Vivo", "Oppo", "Apple",
                  "Motorola", "Nothing", "iQOO")
    ram, storage = _pick(r, (4, 64), (6, 128), (8, 128), (8, 256), (12, 256), (12, 512))
    network = _pick(r, "4G", "5G", "5G")
    model = f"{_pick(r, 'Nova', 'Edge', 'Pro', 'Neo', 'Max', 'Lite', 'Prime')} {r.randint(5, 99)}"
    attrs = {"ram_gb": ram, "storage_gb": storage, "screen_inches": _pick(r, 6.1, 6.5, 6.67, 6.8),
             "color": _pick(r, "black", "blue", "silver", "green", "purple"), "network": network,
             "os": "ios" if brand == "Apple" else "android",
             "battery_mah": _pick(r, 4500, 5000, 5000, 6000), "rear_camera_mp":
             _pick(r, 12, 48, 50, 64, 108, 200), "dual_sim": brand != "Apple"}
    price = 6_999 + ram * 1_500 + storage * 20 + (4_000 if network == "5G" else 0)
    if brand == "Apple":
        price *= 3
    return (brand, f"{brand} {model} {network} ({ram}GB RAM, {storage}GB)", price, attrs)


def _laptop(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Lenovo", "HP", "Dell", "Asus", "Acer", "Apple", "MSI")
    cpu = "Apple M3" if brand == "Apple" else _pick(r, "Intel Core i3", "Intel Core i5",
                                                    "Intel Core i7", "AMD Ryzen 5", "AMD Ryzen 7")
    ram, storage = _pick(r, (8, 256), (8, 512), (16, 512), (16, 1024), (32, 1024))
    screen = _pick(r, 13.3, 14.0, 15.6, 16.0)
    attrs = {"ram_gb": ram, "storage_gb": storage, "storage_type": "ssd", "screen_inches": screen,
             "processor": cpu, "os": "macos" if brand == "Apple" else "windows",
             "weight_kg": round(r.uniform(1.1, 2.4), 2), "color": _pick(r, "grey", "silver",
                                                                        "black"),
             "touchscreen": r.random() < 0.2}
    price = 28_000 + ram * 1_800 + storage * 15 + (40_000 if brand == "Apple" else 0)
    return brand, f"{brand} {cpu} Laptop {screen}\" ({ram}GB/{storage}GB SSD)", price, attrs


def _tv(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Sony", "Samsung", "LG", "TCL", "Xiaomi", "OnePlus", "Vu")
    size = _pick(r, 32, 43, 50, 55, 65, 75)
    res = "hd" if size == 32 else _pick(r, "full-hd", "4k", "4k")
    panel = _pick(r, "led", "qled", "oled") if size >= 55 else "led"
    attrs = {"screen_inches": size, "resolution": res, "panel": panel, "smart_tv": True,
             "refresh_rate_hz": _pick(r, 60, 60, 120), "hdmi_ports": _pick(r, 2, 3, 4)}
    price = size * 650 + (25_000 if panel == "oled" else 0) + (5_000 if res == "4k" else 0)
    return brand, f"{brand} {size} inch {res.upper()} {panel.upper()} Smart TV", price, attrs


def _apparel(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Roadster", "Allen Solly", "Levi's", "H&M", "Biba", "FabIndia", "Puma")
    kind, gender = _pick(r, ("T-Shirt", "men"), ("Shirt", "men"), ("Kurta", "women"),
                         ("Top", "women"), ("Hoodie", "unisex"), ("Jeans", "men"))
    material = "denim" if kind == "Jeans" else _pick(r, "cotton", "linen", "polyester", "rayon")
    color = _pick(r, "black", "white", "navy", "maroon", "olive", "beige", "pink")
    attrs = {"size": _pick(r, "S", "M", "L", "XL", "XXL"), "color": color, "material": material,
             "gender": gender, "fit": _pick(r, "slim", "regular", "relaxed"),
             "pattern": _pick(r, "solid", "striped", "printed", "checked")}
    price = _pick(r, 399, 499, 699, 999, 1299, 1799, 2499)
    return brand, f"{brand} {gender.title()} {color.title()} {material.title()} {kind}", \
        price, attrs


def _footwear(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Nike", "Adidas", "Puma", "Bata", "Woodland", "Skechers", "Campus")
    kind = _pick(r, "sneakers", "running", "formal", "sandals", "boots")
    attrs = {"size_uk": r.randint(5, 11), "color": _pick(r, "black", "white", "brown", "grey",
                                                           "navy"),
             "gender": _pick(r, "men", "women", "unisex"), "type": kind,
             "material": "leather" if kind == "formal" else _pick(r, "mesh", "synthetic",
                                                                  "canvas")}
    price = _pick(r, 799, 1299, 1999, 2999, 4499, 6999)
    return brand, f"{brand} {kind.title()} Shoes for {attrs['gender'].title()}", price, attrs


_AUTHORS = ("R. K. Narayan", "Amish Tripathi", "Chetan Bhagat", "Sudha Murty", "Ruskin Bond",
            "Arundhati Roy", "Vikram Seth", "Premchand", "Devdutt Pattanaik", "Jhumpa Lahiri")
_WORDS = ("River", "Monsoon", "City", "Secret", "Garden", "Empire", "Journey", "Shadows",
          "Dreams", "Stories", "Kingdom", "Letters")


def _book(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    publisher = _pick(r, "Penguin", "HarperCollins", "Rupa", "Westland", "Hachette")
    title = f"The {_pick(r, *_WORDS)} of {_pick(r, *_WORDS)}"
    attrs = {"author": _pick(r, *_AUTHORS), "language": _pick(r, "english", "english", "hindi",
                                                             "tamil", "bengali"),
             "format": _pick(r, "paperback", "hardcover"), "pages": r.randint(120, 720),
             "publisher": publisher, "isbn": f"978-{r.randint(10**8, 10**9 - 1)}",
             "genre": [_pick(r, "fiction", "mythology", "biography", "self-help", "history")]}
    return publisher, f"{title} ({attrs['format'].title()})", _pick(r, 199, 299, 399, 499,
                                                                       699), attrs


def _furniture(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Urban Ladder", "Pepperfry", "Nilkamal", "Godrej Interio", "Wakefit")
    kind, seats = _pick(r, ("Sofa", 3), ("Dining Chair", 1), ("Study Table", 1),
                        ("Bookshelf", 1), ("Coffee Table", 1), ("Bed", 2))
    material = _pick(r, "sheesham", "teak", "engineered-wood", "metal")
    attrs = {"material": material, "color": _pick(r, "brown", "beige", "grey", "white"),
             "width_cm": r.randint(40, 220), "depth_cm": r.randint(35, 100),
             "height_cm": r.randint(40, 200), "assembly_required": r.random() < 0.6,
             "seating_capacity": seats}
    price = _pick(r, 2_499, 4_999, 8_999, 14_999, 24_999, 39_999)
    return brand, f"{brand} {material.replace('-', ' ').title()} {kind}", price, attrs


def _kitchen(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Prestige", "Philips", "Bajaj", "Morphy Richards", "Havells", "Kent")
    kind, watts, price = _pick(r, ("mixer-grinder", 750, 3_499), ("microwave", 1200, 8_999),
                               ("induction", 2000, 2_499), ("kettle", 1500, 1_199),
                               ("air-fryer", 1400, 6_499), ("water-purifier", 60, 12_999))
    attrs = {"type": kind, "power_watts": watts, "capacity_litres": _pick(r, 1.2, 1.5, 4.0, 20.0),
             "color": _pick(r, "black", "white", "silver", "red"),
             "warranty_years": _pick(r, 1, 2, 5)}
    return brand, f"{brand} {kind.replace('-', ' ').title()} {watts}W", price, attrs


def _beauty(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Lakme", "Maybelline", "Nivea", "Mamaearth", "Biotique", "L'Oreal")
    kind = _pick(r, "lipstick", "foundation", "moisturizer", "shampoo", "face-wash", "sunscreen")
    attrs: dict[str, Any] = {"type": kind, "volume_ml": _pick(r, 30, 50, 100, 200, 340),
                             "skin_type": _pick(r, "all", "dry", "oily"),
                             "vegan": r.random() < 0.3}
    if kind == "sunscreen":
        attrs["spf"] = _pick(r, 30, 50)
    price = _pick(r, 149, 249, 349, 499, 799)
    return brand, f"{brand} {kind.replace('-', ' ').title()} {attrs['volume_ml']}ml", price, attrs


def _toy(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Lego", "Funskool", "Hasbro", "Mattel", "Hot Wheels", "Skillmatics")
    kind = _pick(r, "building-blocks", "puzzle", "board-game", "doll", "remote-control",
                 "educational")
    attrs = {"age_min_years": r.randint(3, 12), "type": kind,
             "material": _pick(r, "plastic", "wood", "cardboard"),
             "battery_operated": kind == "remote-control", "pieces": r.randint(1, 1500)}
    price = _pick(r, 299, 499, 999, 1_999, 3_499)
    return brand, f"{brand} {kind.replace('-', ' ').title()} Set ({attrs['age_min_years']}+ yrs)", \
        price, attrs


def _grocery(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "Tata", "Aashirvaad", "Fortune", "Haldiram's", "Amul", "MDH", "Daawat")
    kind, name = _pick(r, ("staples", "Basmati Rice"), ("staples", "Whole Wheat Atta"),
                       ("snacks", "Bhujia"), ("beverages", "Premium Tea"),
                       ("spices", "Garam Masala"), ("oils", "Sunflower Oil"),
                       ("dry-fruits", "Cashews"))
    weight = _pick(r, 100, 200, 500, 1000, 5000)
    attrs = {"weight_g": weight, "type": kind, "veg": True, "organic": r.random() < 0.15,
             "shelf_life_days": _pick(r, 90, 180, 365)}
    price = max(30, weight // 10 + _pick(r, 20, 50, 80))
    return brand, f"{brand} {name} {weight if weight < 1000 else weight // 1000}" \
                  f"{'g' if weight < 1000 else 'kg'}", price, attrs


def _headphones(r: random.Random, n: int) -> tuple[str, str, int, dict[str, Any]]:
    brand = _pick(r, "boAt", "Sony", "JBL", "Sennheiser", "OnePlus", "Noise")
    kind = _pick(r, "in-ear", "on-ear", "over-ear", "earbuds")
    wireless = kind == "earbuds" or r.random() < 0.7
    attrs = {"type": kind, "wireless": wireless, "noise_cancelling": r.random() < 0.4,
             "battery_hours": r.randint(8, 60) if wireless else 1,
             "color": _pick(r, "black", "white", "blue")}
    price = _pick(r, 999, 1_499, 2_999, 7_999, 14_999)
    return brand, f"{brand} {'Wireless ' if wireless else ''}{kind.title()} Headphones", price, \
        attrs


GENERATORS: dict[str, Gen] = {
    "mobiles": _mobile, "laptops": _laptop, "televisions": _tv, "apparel": _apparel,
    "footwear": _footwear, "books": _book, "furniture": _furniture,
    "kitchen-appliances": _kitchen, "beauty": _beauty, "toys": _toy, "groceries": _grocery,
    "headphones": _headphones,
}


def demo_items(count: int = DEFAULT_COUNT, seed: int = SEED) -> list[domain.Item]:
    """``count`` items spread evenly over every category; the same arguments
    always give the same items. Every item passes the catalog's validation."""
    r = random.Random(seed)
    cats = sorted(GENERATORS)
    out = []
    for n in range(count):
        cat = cats[n % len(cats)]
        brand, title, rupees, attrs = GENERATORS[cat](r, n)
        item_id = f"demo-{cat}-{n // len(cats):05d}"
        mrp = rupees + rupees * r.choice((0, 10, 20, 30)) // 100
        fields = domain.ItemFields(
            title=title, description=f"{title}. Sold and shipped by the ecom demo store.",
            category=cat, brand=brand, price_paise=rupees * 100,
            list_price_paise=mrp * 100, attributes=attrs,
            image_urls=(f"https://images.ecom.example/demo/{item_id}.jpg",),
            supplier_id="demo", sku=item_id.upper())
        out.append(domain.new_item(item_id, fields, CREATED))
    return out


def demo_item_ids(count: int = DEFAULT_COUNT, seed: int = SEED) -> list[str]:
    """Ids of the generated items (for other services' demo data)."""
    return [i.item_id for i in demo_items(count, seed)]


def demo_stock(item_id: str) -> dict[str, int]:
    """Deterministic units per warehouse for ``item_id``: stocked in 2-6 of
    the demo warehouses; about 1 item in 25 is out of stock everywhere."""
    r = random.Random(f"stock:{item_id}")
    if r.random() < 0.04:
        return {}
    return {wh: r.randint(1, 120) for wh in sorted(r.sample(WAREHOUSES, r.randint(2, 6)))}


async def load_demo(store: ItemStore, count: int = DEFAULT_COUNT, seed: int = SEED,
                    batch: int = 500) -> int:
    """Bulk-insert the demo items; items already present are left alone.
    Returns how many were inserted. Their creation events are not queued in
    the documents (one relay round per item would be wasted on a bulk load):
    :func:`publish_demo_events` sends them straight to Kafka instead."""
    items = demo_items(count, seed)
    inserted = 0
    for start in range(0, len(items), batch):
        part = items[start:start + batch]
        skipped = await store.insert_items(part, [f"bulk:{i.item_id}" for i in part])
        inserted += len(part) - len(skipped)
    return inserted


def demo_events(count: int = DEFAULT_COUNT, seed: int = SEED) -> list[OutgoingEvent]:
    """The ItemUpserted event of every demo item, with a deterministic event
    id, so publishing them again is a no-op for idempotent consumers."""
    out = []
    for item in demo_items(count, seed):
        env = codec.item_upserted(item, created=True, request_id="demo")
        env.event_id = f"demo:{item.item_id}:v{item.version}"
        out.append(OutgoingEvent(topic=codec.ITEMS_TOPIC, key=item.item_id.encode(),
                                 payload=env.SerializeToString(), event_id=env.event_id,
                                 event_type=env.event_type))
    return out


async def publish_demo_events(bootstrap: str, topic: str, count: int = DEFAULT_COUNT,
                              seed: int = SEED) -> int:
    """Publish the demo items' creation events to ``topic`` (prefix applied
    by the caller); raises if any was not delivered. Returns how many."""
    ensure_topics(make_admin(bootstrap), [topic])
    producer = make_producer(bootstrap, client_id="svc_catalog-demo")
    events = [replace(e, topic=topic) for e in demo_events(count, seed)]
    reports = await publish(producer, events)
    failed = [r for r in reports if not r.delivered]
    if failed:
        raise RuntimeError(f"{len(failed)} demo events not delivered: {failed[0].error}")
    return len(events)


async def _main(count: int) -> None:
    settings = mesh.load_settings()
    client = connect(settings.mongo_url)
    try:
        store = ItemStore(client[settings.database("catalog")])
        await store.create_indexes()
        n = await load_demo(store, count)
        sent = await publish_demo_events(settings.kafka_bootstrap,
                                         settings.topic(codec.ITEMS_TOPIC), count)
        print(f"demo catalog: {n} new items ({count} generated), {sent} events published")
    finally:
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    asyncio.run(_main(parser.parse_args().count))
