"""Benchmark: the example index behind `pipeline serve` at 100k and 1M examples.

What is timed, per size:
- query latency (`ExampleIndex.query`: exact BM25 over the whole index with the leakage guard,
  the build's context sampler, cosines of the k=4 examples, the prompt), p50/p99, both policies;
- appends per second, one fsync'd record per pair and per 100 pairs (embedding excluded);
- a reference in the same run: the build's static `BM25Index` top-k for the same queries (it
  cannot take appends) and, at 100k, rank_bm25's get_scores on a few queries.

Embedding 1M texts with MiniLM on 2 CPU cores takes hours, so the stored vectors are random unit
vectors (retrieval cost does not depend on their values) and queries are embedded by a stub; the
real MiniLM query embedding is timed on its own. Texts are Zipf word soups (bench_retrieve).

    python bench/bench_serve.py --sizes 100000 1000000
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_retrieve import make_sources, peak_rss_mib  # noqa: E402
from pipeline.tasks import load_task  # noqa: E402
from stages.index.files import BaseRows, IndexMeta, write_index  # noqa: E402
from stages.index.index import ExampleIndex  # noqa: E402
from stages.index.live_bm25 import LiveBM25  # noqa: E402
from stages.retrieve.bm25 import BM25Index, tokenize_many  # noqa: E402

DIM = 384


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def percentiles(seconds: list[float]) -> str:
    ms = np.array(seconds) * 1000
    return f"p50 {np.percentile(ms, 50):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms"


def unit_rows(n: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, DIM), dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def make_index(folder: Path, n: int, vocab: int) -> tuple[ExampleIndex, float, list[list[str]]]:
    sources = make_sources(n, vocab, seed=1)
    started = time.perf_counter()
    tokens = tokenize_many(sources)
    rows = BaseRows([f"row-{i}" for i in range(n)], sources, [f"label {i}" for i in range(n)], unit_rows(n, 2),
                    LiveBM25.from_corpus(tokens))
    meta = IndexMeta(task=load_task("en-hi"), embedder={"kind": "bench-random-unit-vectors"}, base_rows=n, dim=DIM)
    write_index(folder, meta, rows)
    stub = np.random.default_rng(3)
    index = ExampleIndex.open(folder, lambda texts: unit_rows(len(texts), int(stub.integers(1 << 30))), writable=True)
    return index, time.perf_counter() - started, tokens


def time_queries(index: ExampleIndex, queries: list[str], policy: str) -> list[float]:
    seconds = []
    for text in queries:
        started = time.perf_counter()
        index.query(text, k=4, policy=policy)
        seconds.append(time.perf_counter() - started)
    return seconds


def time_static(tokens: list[list[str]], queries: list[str]) -> tuple[list[float], float]:
    started = time.perf_counter()
    static = BM25Index(tokens)
    static.topk(tokenize_many(queries[:2]), 4)  # builds its float32 copies once
    build = time.perf_counter() - started
    seconds = []
    for query in tokenize_many(queries):
        started = time.perf_counter()
        static.topk([query], 4)
        seconds.append(time.perf_counter() - started)
    return seconds, build


def time_appends(index: ExampleIndex, count: int, batch: int, tag: str) -> float:
    started = time.perf_counter()
    for i in range(count // batch):
        index.add([(f"appended {tag} {i} {j} " + "word " * (j % 5), f"label {tag} {i} {j}") for j in range(batch)])
    return count / (time.perf_counter() - started)


def rank_bm25_seconds(tokens: list[list[str]], queries: list[str]) -> float:
    from rank_bm25 import BM25Okapi

    oracle = BM25Okapi(tokens)
    started = time.perf_counter()
    for query in tokenize_many(queries):
        oracle.get_scores(query)
    return (time.perf_counter() - started) / len(queries)


def minilm_query_seconds(queries: list[str], threads: int | None) -> list[float]:
    """One text per call, as a server embeds each request's input; threads None: torch's default."""
    import torch

    from schemas.config import EmbedderSpec
    from stages.embed.models import make_embedder

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    embedder = make_embedder(EmbedderSpec(), progress=False)
    embedder.embed(queries[:2])  # loads the model
    seconds = []
    for text in queries:
        started = time.perf_counter()
        embedder.embed([text])
        seconds.append(time.perf_counter() - started)
    torch.set_num_threads(before)
    return seconds


def bench_size(n: int, args) -> None:
    queries = make_sources(args.queries, args.vocab, seed=9)
    with tempfile.TemporaryDirectory() as tmp:
        index, build, tokens = make_index(Path(tmp) / "idx", n, args.vocab)
        print(f"\n### {n:,} examples\nbuild + write + open: {build:.1f} s (load {load()})")
        for policy in ("topk", "one_near"):
            print(f"query {policy}: {percentiles(time_queries(index, queries, policy))} (load {load()})")
        live = time_queries(index, queries, "topk")
        static, static_build = time_static(tokens, queries)
        print(f"reference, static BM25Index top-4 (no appends, build {static_build:.1f} s): {percentiles(static)}; "
              f"live/static p50 ratio {np.median(live) / np.median(static):.2f} (load {load()})")
        if n <= args.rank_bm25_max:
            per_query = rank_bm25_seconds(tokens, queries[:3])
            print(f"reference, rank_bm25 get_scores: {per_query * 1000:.0f} ms/query; rank_bm25/live p50 ratio "
                  f"{per_query / np.median(live):.1f} (load {load()})")
        single = time_appends(index, args.appends, 1, "one")
        batched = time_appends(index, args.appends * 10, 100, "batch")
        print(f"appends (fsync each, embedding excluded): {single:.0f} pairs/s one per record, {batched:.0f} pairs/s "
              f"100 per record (load {load()})")
        print(f"query topk after {args.appends * 11} appends: {percentiles(time_queries(index, queries, 'topk'))} "
              f"(load {load()}); peak RSS {peak_rss_mib():.0f} MiB")
        index.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--appends", type=int, default=200)
    parser.add_argument("--rank-bm25-max", type=int, default=100_000)
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    for threads in (1, None):
        embed = minilm_query_seconds(make_sources(100, args.vocab, seed=11), threads)
        print(f"MiniLM query embedding (int8 CPU path, one text, torch threads {threads or 'default'}): "
              f"{percentiles(embed)} (load {load()})")
    for n in args.sizes:
        bench_size(n, args)


if __name__ == "__main__":
    main()
