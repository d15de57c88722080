"""Benchmark: execution-accuracy throughput (queries/s) with the time limit in force.

Generates a SQLite database (customers, products, orders; 200k orders by default, seed 0) and an
eval-like workload: `--items` gold queries from templates (lookups, joins, GROUP BY, ORDER BY),
each asked in the 4 eval contexts, with predictions that are the gold query rewritten (about
half), a wrong query, an SQL error, a refused statement, or, for a `--slow-share` of the rows, a
runaway recursive query that only the time limit stops. Then times:

1. the sandbox alone (`run_readonly`: one fresh read-only connection per query, in the worker
   process, which is started once before the timing and reported apart) against plain sqlite3 on
   one shared connection, on the gold queries and on one heavy aggregation over every order (the
   cost of the safety layers: the round trip to the worker, opening, the authorizer, the watchdog,
   the progress handler);
2. the scorer of trainer/evaluate.py (`ExecutionAccuracy.score`) on every row, with its gold and
   outcome caches, as an evaluation run sees it;
3. how far past the limit a runaway query returns, and what the progress handler that enforces
   the limit costs (the heavy aggregation with and without it, best of 3).

    python bench/bench_sql_exec.py --items 500 --timeout 1 --slow-share 0.01
"""
from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.sql.sandbox import PROGRESS_STEPS, run_readonly  # noqa: E402
from trainer.sql_metric import ExecutionAccuracy  # noqa: E402

CITIES = [f"city {i}" for i in range(40)]
CATEGORIES = [f"category {i}" for i in range(12)]
RUNAWAY = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r"
HEAVY = ("SELECT p.category, c.city, sum(o.quantity * p.price) FROM orders AS o "
         "JOIN products AS p ON p.id = o.product_id JOIN customers AS c ON c.id = o.customer_id "
         "GROUP BY 1, 2")
TEMPLATES = (
    "SELECT count(*) FROM customers WHERE city = '{city}'",
    "SELECT name, price FROM products WHERE category = '{category}' ORDER BY price DESC LIMIT 5",
    "SELECT sum(o.quantity) FROM orders AS o JOIN products AS p ON p.id = o.product_id "
    "WHERE p.category = '{category}' AND o.order_date LIKE '2024-{month:02d}%'",
    "SELECT c.city, count(*) FROM orders AS o JOIN customers AS c ON c.id = o.customer_id "
    "WHERE o.product_id = {product} GROUP BY c.city",
    "SELECT customer_id, sum(quantity) AS total FROM orders WHERE order_date >= '2024-{month:02d}-01' "
    "GROUP BY customer_id ORDER BY total DESC LIMIT 10",
    "SELECT DISTINCT p.name FROM products AS p JOIN orders AS o ON o.product_id = p.id "
    "WHERE o.customer_id = {customer}",
)


def make_database(folder: Path, orders: int, seed: int) -> Path:
    """`folder/bench/bench.sqlite` with customers (orders/10), products (2k) and `orders` rows."""
    rng = np.random.default_rng(seed)
    path = folder / "bench" / "bench.sqlite"
    path.parent.mkdir(parents=True)
    n_customers, n_products = max(orders // 10, 10), 2000
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, city TEXT);"
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category TEXT, price REAL);"
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER, "
        "quantity INTEGER, order_date TEXT);"
        "CREATE INDEX orders_customer ON orders(customer_id);"
        "CREATE INDEX orders_product ON orders(product_id);")
    connection.executemany("INSERT INTO customers VALUES (?, ?, ?)", (
        (i, f"customer {i}", CITIES[int(c)]) for i, c in
        enumerate(rng.integers(0, len(CITIES), n_customers), start=1)))
    connection.executemany("INSERT INTO products VALUES (?, ?, ?, ?)", (
        (i, f"product {i}", CATEGORIES[i % len(CATEGORIES)], round(float(p), 2)) for i, p in
        enumerate(rng.uniform(1, 500, n_products), start=1)))
    columns = zip(rng.integers(1, n_customers + 1, orders), rng.integers(1, n_products + 1, orders),
                  rng.integers(1, 9, orders), rng.integers(1, 13, orders), rng.integers(1, 29, orders))
    connection.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?)", (
        (i, int(c), int(p), int(q), f"2024-{int(m):02d}-{int(d):02d}")
        for i, (c, p, q, m, d) in enumerate(columns, start=1)))
    connection.commit()
    connection.close()
    return path


def gold_queries(items: int, orders: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed + 1)
    return [TEMPLATES[i % len(TEMPLATES)].format(
        city=CITIES[int(rng.integers(len(CITIES)))], category=CATEGORIES[int(rng.integers(12))],
        month=int(rng.integers(1, 13)), product=int(rng.integers(1, 2001)),
        customer=int(rng.integers(1, max(orders // 10, 10) + 1))) for i in range(items)]


def predictions_for(golds: list[str], slow_share: float, seed: int) -> tuple[list[str], list[str]]:
    """Four rows per gold query (the eval contexts); each row's prediction drawn by kind."""
    rng = np.random.default_rng(seed + 2)
    targets = [gold for gold in golds for _ in range(4)]
    kinds = rng.choice(["rewritten", "wrong", "error", "refused"], size=len(targets),
                       p=[0.55, 0.3, 0.1, 0.05])
    slow = rng.random(len(targets)) < slow_share
    made = {"rewritten": lambda g: g.replace("SELECT", "select") + ";",
            "wrong": lambda g: f"SELECT * FROM ({g}) LIMIT 1 OFFSET 1",
            "error": lambda g: g.replace("FROM", "FROM missing_table, "),
            "refused": lambda g: "DROP TABLE orders"}
    predictions = [RUNAWAY if is_slow else made[kind](gold)
                   for gold, kind, is_slow in zip(targets, kinds, slow)]
    return predictions, targets


def time_sandbox(db: Path, queries: list[str], timeout: float) -> float:
    started = time.perf_counter()
    for sql in queries:
        run_readonly(db, sql, timeout)
    return time.perf_counter() - started


def time_plain(db: Path, queries: list[str]) -> float:
    """The same queries on one shared, unguarded connection (no runaway ones: no limit here)."""
    connection = sqlite3.connect(db)
    started = time.perf_counter()
    for sql in queries:
        connection.execute(sql).fetchall()
    seconds = time.perf_counter() - started
    connection.close()
    return seconds


def handler_cost(db: Path, steps: int, repeats: int = 5) -> tuple[float, float]:
    """Best seconds of the heavy aggregation without and with a progress handler, the two
    alternating so that load changes on a shared machine hit both alike."""
    connection = sqlite3.connect(db)
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(repeats):
        for handled in (False, True):
            connection.set_progress_handler(
                (lambda: time.monotonic() > float("inf")) if handled else None, steps)
            started = time.perf_counter()
            connection.execute(HEAVY).fetchall()
            times[handled].append(time.perf_counter() - started)
    connection.close()
    return min(times[False]), min(times[True])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=500, help="gold queries (x4 eval rows)")
    parser.add_argument("--orders", type=int, default=200_000, help="rows of the orders table")
    parser.add_argument("--timeout", type=float, default=1.0, help="per-query limit, seconds")
    parser.add_argument("--slow-share", type=float, default=0.01, help="share of runaway rows")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        db = make_database(Path(tmp), args.orders, args.seed)
        print(f"database: {args.orders} orders, {db.stat().st_size / 2**20:.1f} MiB, built in "
              f"{time.perf_counter() - started:.1f} s")
        golds = gold_queries(args.items, args.orders, args.seed)
        predictions, targets = predictions_for(golds, args.slow_share, args.seed)
        started = time.perf_counter()
        run_readonly(db, "SELECT 1", args.timeout)
        print(f"sandbox worker process started in {(time.perf_counter() - started) * 1e3:.0f} ms "
              "(once per process, and again after a query it had to kill)")
        for name, queries in (("gold queries", golds), ("heavy aggregation x5", [HEAVY] * 5)):
            sandboxed, plain = time_sandbox(db, queries, args.timeout), time_plain(db, queries)
            print(f"{name}: sandbox {len(queries) / sandboxed:.1f} queries/s "
                  f"({sandboxed / len(queries) * 1e3:.2f} ms/query), plain sqlite3 "
                  f"{len(queries) / plain:.1f} queries/s ({plain / len(queries) * 1e3:.2f} ms/query)")
        runaway = sum(p == RUNAWAY for p in predictions)
        scorer = ExecutionAccuracy(db.parent.parent, timeout_s=args.timeout)
        started = time.perf_counter()
        outcomes = scorer.score(predictions, targets, ["bench"] * len(targets))
        seconds = time.perf_counter() - started
        ran = len(set(targets)) + len(set(zip(predictions, targets)))  # the caches' keys
        timed_out = sum(o.error == "timeout" for o in outcomes)
        print(f"scorer, {len(targets)} eval rows ({runaway} runaway, limit {args.timeout:g} s): "
              f"{seconds:.1f} s, {len(targets) / seconds:.1f} rows/s, {ran} queries run "
              f"({ran / seconds:.1f} queries/s); {sum(o.match for o in outcomes)} matches, "
              f"{timed_out} rows timed out")
        rest = seconds - timed_out * args.timeout
        print(f"scorer without the {timed_out} x {args.timeout:g} s of the runaway rows: "
              f"{rest:.1f} s, {(len(targets) - timed_out) / rest:.1f} rows/s")
        overshoot = []
        for _ in range(5):
            started = time.perf_counter()
            assert run_readonly(db, RUNAWAY, args.timeout).error == "timeout"
            overshoot.append(time.perf_counter() - started - args.timeout)
        print(f"runaway query returns {statistics.median(overshoot) * 1e3:.1f} ms after the limit "
              f"(median of 5, max {max(overshoot) * 1e3:.1f} ms)")
        without, with_handler = handler_cost(db, PROGRESS_STEPS)
        print(f"progress handler every {PROGRESS_STEPS} steps: heavy aggregation "
              f"{with_handler * 1e3:.0f} ms with it, {without * 1e3:.0f} ms without (best of 5, "
              "alternating)")


if __name__ == "__main__":
    main()
