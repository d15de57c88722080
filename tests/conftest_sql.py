"""A small real SQLite database for the text-to-SQL tests, written in BIRD's folder layout.

Not a conftest.py on purpose (others own that name); the test modules import from here.
`make_database(db_dir)` writes `<db_dir>/shop/shop.sqlite`: customers (120 rows, some e-mails
NULL), products (40) and orders (300), all from a seeded generator, so every run sees the same
rows.
"""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np

DB_ID = "shop"
CITIES = ("Lyon", "Paris", "Nantes", "Lille", "Nice")
CATEGORIES = ("book", "game", "tool", "food")


def _rows(seed: int) -> dict[str, list[tuple]]:
    rng = np.random.default_rng(seed)
    customers = [(i, f"customer {i}", CITIES[int(rng.integers(len(CITIES)))],
                  None if i % 7 == 0 else f"c{i}@example.org") for i in range(1, 121)]
    products = [(i, f"product {i}", CATEGORIES[i % len(CATEGORIES)],
                 round(float(rng.uniform(1, 100)), 2)) for i in range(1, 41)]
    orders = [(i, int(rng.integers(1, 121)), int(rng.integers(1, 41)), int(rng.integers(1, 6)),
               f"2024-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d}")
              for i in range(1, 301)]
    return {"customers": customers, "products": products, "orders": orders}


def make_database(db_dir: Path, db_id: str = DB_ID, seed: int = 0) -> Path:
    """Write the database and return its path (`<db_dir>/<db_id>/<db_id>.sqlite`)."""
    path = Path(db_dir) / db_id / f"{db_id}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.executescript(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, email TEXT);"
            "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);"
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES "
            "customers(id), product_id INTEGER REFERENCES products(id), quantity INTEGER, "
            "order_date TEXT);")
        for table, rows in _rows(seed).items():
            marks = ", ".join("?" * len(rows[0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        connection.commit()
    finally:
        connection.close()
    return path
