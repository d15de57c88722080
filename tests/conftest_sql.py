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
    return write_database(
        db_dir, db_id,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT, email TEXT);"
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER REFERENCES "
        "customers(id), product_id INTEGER REFERENCES products(id), quantity INTEGER, "
        "order_date TEXT);", _rows(seed))


def write_database(db_dir: Path, db_id: str, ddl: str, tables: dict[str, list[tuple]]) -> Path:
    """`<db_dir>/<db_id>/<db_id>.sqlite` (BIRD's layout) made from a DDL script and rows per table."""
    path = Path(db_dir) / db_id / f"{db_id}.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    try:
        connection.executescript(ddl)
        for table, rows in tables.items():
            marks = ", ".join("?" * len(rows[0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        connection.commit()
    finally:
        connection.close()
    return path


# --- a hand-made text-to-SQL version folder, scored by execution accuracy ---------------------

QUESTIONS = (
    ("How many customers live in {city}?", "SELECT count(*) FROM customers WHERE city = '{city}'"),
    ("Which products are in the {category} category?",
     "SELECT name FROM products WHERE category = '{category}'"),
    ("How many items did customer {n} order?",
     "SELECT sum(quantity) FROM orders WHERE customer_id = {n}"),
)
EVAL_CONTEXTS = ("random", "topk", "one_near", "paraphrase")
SIMILARITIES = {"random": 0.1, "topk": 0.5, "one_near": 0.7, "paraphrase": 0.9}


def sql_items(db_ids: tuple[str, ...] = (DB_ID, "market")) -> list[dict]:
    """Two questions of each template per database: id, question, gold SQL and db_id."""
    items = []
    for db_index, db_id in enumerate(db_ids):
        for template_index, (question, sql) in enumerate(QUESTIONS):
            for repeat in range(2):
                n = 1 + db_index + 2 * template_index + repeat
                values = {"city": CITIES[n % len(CITIES)], "category": CATEGORIES[n % len(CATEGORIES)],
                          "n": n}
                items.append({"id": f"{db_id}-{template_index}-{repeat}", "db_id": db_id,
                              "source": question.format(**values), "target": sql.format(**values)})
    return items


def _eval_row(item: dict, context: str) -> dict:
    return {"id": f"{item['id']}-{context}", "target_id": item["id"], "source": item["source"],
            "target": item["target"], "regime": "eval", "context_kind": context, "examples": [],
            "max_sim": SIMILARITIES[context], "prompt": f"Question: {item['source']}\nSQL:",
            "completion": " " + item["target"], "test_set": "id", "eval_context": context,
            "db_id": item["db_id"]}


def write_sql_version(root: Path, db_dir: Path) -> Path:
    """`root/sql-tiny/v0000sql` with an eval split over two databases written into `db_dir`
    (`shop` and `market`, built by `make_database` with different seeds), and its manifest."""
    import json

    import pyarrow as pa
    from datasets import Dataset

    from schemas.rows import EVAL_SCHEMA

    items = sql_items()
    for seed, db_id in enumerate(sorted({item["db_id"] for item in items}, reverse=True)):
        make_database(db_dir, db_id, seed=seed)
    schema = EVAL_SCHEMA if "db_id" in EVAL_SCHEMA.names else EVAL_SCHEMA.append(
        pa.field("db_id", pa.string()))
    rows = [_eval_row(item, context) for item in items for context in EVAL_CONTEXTS]
    folder = root / "sql-tiny" / "v0000sql"
    Dataset(pa.Table.from_pylist(rows, schema=schema)).save_to_disk(str(folder / "eval"))
    manifest = {"task": "sql-tiny", "version": "v0000sql", "package_version": "test",
                "config": {"task": {"name": "sql-tiny", "kind": "sql",
                                    "metric": "execution_accuracy"}},
                "inputs": {}, "created": "2025-01-01T00:00:00Z", "stages": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return folder
