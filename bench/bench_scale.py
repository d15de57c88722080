"""Benchmark: the two stages `--engine ray` distributes, BM25 top-k and embedding, with 1 and 2 Ray
workers on this machine, against the local engine in the same run; then a projection for 1M and 10M
pools from the measured per-worker throughput.

Each configuration starts its own local Ray (every CPU; `workers` actors per job); Ray's start-up and the actor
pool's model loads are timed apart from the job. Every Ray result is checked byte for byte against
the local engine's. The projection's BM25 rate is measured on one thread over a 1M-doc pool
(`--large-docs`). Retrieval: a synthetic pool of sentence-length sources (Zipf words), every row a
query against the whole pool with the leakage guard, as the build runs it. Embedding: English-like
sentences through the build's default CPU embedder (MiniLM, static int8 ONNX), a fresh embedding
cache per configuration so every text is embedded.

    python bench/bench_scale.py --n 50000 --embed-texts 16384
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

from bench_embed import english_like_sentences  # noqa: E402
from bench_retrieve import leakage_exclusions, make_sources  # noqa: E402
from stages.retrieve.bm25 import BM25Index, tokenize_many  # noqa: E402
from stages.scale import LocalEngine, make_engine  # noqa: E402

K = 20  # the pipeline's M: candidates kept per query


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def embedder_factory(model_cache: Path):
    """The build's default CPU embedder, as a picklable maker (what Ray workers call)."""
    import functools

    from schemas.config import EmbedderSpec
    from stages.embed.models import make_embedder

    return functools.partial(make_embedder, EmbedderSpec(), progress=False, model_cache=model_cache)


def fresh_embedder(factory, root: Path):
    from stages.embed.cache import CachedEmbedder

    return CachedEmbedder(factory(), Path(tempfile.mkdtemp(dir=root)), factory=factory)


def timed(job) -> tuple[object, float]:
    started = time.perf_counter()
    result = job()
    return result, time.perf_counter() - started


def run_retrieve(engine, index: BM25Index, queries, exclude) -> tuple[tuple, float]:
    return timed(lambda: engine.topk(index, queries, K, exclude=exclude))


def run_embed(engine, factory, root: Path, texts: list[str]) -> tuple[np.ndarray, float]:
    embedder = fresh_embedder(factory, root)
    return timed(lambda: engine.embed(embedder, texts))


def ray_round(workers: int, index, queries, exclude, factory, root: Path, texts, reference) -> dict:
    """One local Ray with `workers` actors per job: its start-up, a one-row job of each kind (every job starts
    its own actor pool: actor start, index fetch or model load; the fixed cost of a job), then the
    timed jobs (fixed cost included); results compared with the local engine's."""
    with make_engine("ray", workers=workers, progress=False) as engine:
        _, start_s = timed(lambda: engine._ray())
        _, retrieve_fixed_s = run_retrieve(engine, index, queries[:1], exclude[:1])
        _, embed_fixed_s = run_embed(engine, factory, root, texts[:1])
        (idx, scores), retrieve_s = run_retrieve(engine, index, queries, exclude)
        vectors, embed_s = run_embed(engine, factory, root, texts)
    same = (np.array_equal(idx, reference["idx"]) and scores.tobytes() == reference["scores"].tobytes()
            and vectors.tobytes() == reference["vectors"].tobytes())
    return {"workers": workers, "start_s": start_s, "retrieve_fixed_s": retrieve_fixed_s,
            "embed_fixed_s": embed_fixed_s, "retrieve_s": retrieve_s, "embed_s": embed_s,
            "identical": same, "load": load()}


def local_round(index, queries, exclude, factory, root: Path, texts) -> tuple[dict, dict]:
    engine = LocalEngine()
    run_embed(engine, factory, root, texts[:64])  # model load and any one-time export, untimed
    (idx, scores), retrieve_s = run_retrieve(engine, index, queries, exclude)
    vectors, embed_s = run_embed(engine, factory, root, texts)
    figures = {"workers": "local", "retrieve_s": retrieve_s, "embed_s": embed_s, "load": load()}
    return figures, {"idx": idx, "scores": scores, "vectors": vectors}


def large_pool_pairs_per_s(n_docs: int, n_queries: int, seed: int) -> float:
    """One thread's BM25 rate in (query x doc) pairs per second over a pool of `n_docs`: what one
    Ray worker (one CPU thread) sustains at that size. Measured, not taken from the small pool:
    above ~4M docs a scoring block holds a single query, so the dense head terms are read once per
    query instead of once per block, and the rate per pair drops."""
    from threadpoolctl import threadpool_limits

    docs = tokenize_many(make_sources(n_docs, 50000, seed + 2))
    index = BM25Index(docs).prepare()
    queries, exclude = docs[:n_queries], [{i} for i in range(n_queries)]
    with threadpool_limits(1):
        _, seconds = timed(lambda: index.topk(queries, K, exclude=exclude))
    print(f"one thread, pool {n_docs:,}: {seconds / n_queries * 1000:.1f} ms per query "
          f"({n_queries} queries, load {load()})")
    return n_queries * n_docs / seconds


def projection(pairs_per_s: float, per_worker_tps: float, args) -> list[str]:
    """Wall time and cost for 1M and 10M pools. BM25 over a pool of N costs N queries x N docs;
    a query's cost grows linearly with N (one score row over every doc), so per-worker throughput
    in (query x doc) pairs per second, measured at 1M docs, is taken as constant up to 10M.
    Embedding is linear in N."""
    lines = ["| pool | nodes | BM25 top-k wall | embed wall (CPU nodes) | embed wall (GPU nodes) | cost (CPU) |",
             "|---|---|---|---|---|---|"]
    for pool in (1_000_000, 10_000_000):
        for nodes in args.nodes:
            workers = nodes * args.cores_per_node
            bm25_h = pool * pool / (pairs_per_s * workers) / 3600
            embed_cpu_h = pool / (per_worker_tps * workers) / 3600
            embed_gpu_h = pool / (args.gpu_sentences_per_s * nodes * args.gpus_per_node) / 3600
            cost = (bm25_h + embed_cpu_h) * nodes * args.cpu_node_price
            lines.append(f"| {pool:,} | {nodes} | {bm25_h:.2f} h | {embed_cpu_h:.2f} h | "
                         f"{embed_gpu_h * 60:.1f} min | ${cost:,.2f} |")
    return lines


def report(args, rows: list[dict], n_texts: int) -> None:
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}; "
          f"pool {args.n} (queries {args.n}), embed texts {n_texts}")
    print("| engine | Ray start | BM25 job fixed | BM25 top-k | queries/s | embed job fixed | embed | texts/s "
          "| same bytes | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['workers']} | {r.get('start_s', 0):.1f} s | {r.get('retrieve_fixed_s', 0):.1f} s | "
              f"{r['retrieve_s']:.1f} s | {args.n / r['retrieve_s']:.0f} | {r.get('embed_fixed_s', 0):.1f} s | "
              f"{r['embed_s']:.1f} s | {n_texts / r['embed_s']:.0f} | {r.get('identical', '-')} | {r['load']} |")
    one, two = rows[1], rows[2]
    print(f"2 workers vs 1: BM25 {one['retrieve_s'] / two['retrieve_s']:.2f}x, "
          f"embed {one['embed_s'] / two['embed_s']:.2f}x; 2 workers vs local: "
          f"BM25 {rows[0]['retrieve_s'] / two['retrieve_s']:.2f}x, embed {rows[0]['embed_s'] / two['embed_s']:.2f}x")
    # per-worker rates of the one-worker jobs, their fixed cost included (conservative at 1M rows)
    qps, tps = args.n / one["retrieve_s"], n_texts / one["embed_s"]
    pairs_per_s = qps * args.n
    print(f"per worker: {qps:.0f} queries/s over {args.n} docs ({pairs_per_s / 1e6:.1f} M pairs/s), {tps:.0f} texts/s")
    if args.large_docs:
        pairs_per_s = large_pool_pairs_per_s(args.large_docs, args.large_queries, args.seed)
        print(f"projection uses the {args.large_docs:,}-doc rate: {pairs_per_s / 1e6:.1f} M pairs/s per worker")
    print(f"projection ({args.cores_per_node} workers per CPU node at ${args.cpu_node_price}/h; "
          f"{args.gpus_per_node} GPU(s) per GPU node at {args.gpu_sentences_per_s:.0f} sentences/s each):")
    print("\n".join(projection(pairs_per_s, tps, args)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000, help="pool rows, each also a query")
    parser.add_argument("--embed-texts", type=int, default=16384, help="texts embedded per configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large-docs", type=int, default=1_000_000,
                        help="pool size of the one-thread BM25 rate the projection uses (0: the --n rate)")
    parser.add_argument("--large-queries", type=int, default=2000, help="queries timed at --large-docs")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 8, 32], help="cluster sizes projected")
    parser.add_argument("--cores-per-node", type=int, default=16, help="projection: Ray workers per CPU node")
    parser.add_argument("--cpu-node-price", type=float, default=0.80, help="projection: $ per CPU-node hour")
    parser.add_argument("--gpus-per-node", type=int, default=1, help="projection: embedding GPUs per node")
    parser.add_argument("--gpu-sentences-per-s", type=float, default=7000.0,
                        help="projection: MiniLM fp16 sentences/s on one GPU")
    args = parser.parse_args(argv)
    sources = make_sources(args.n, 50000, args.seed)
    queries = tokenize_many(sources)
    index, exclude = BM25Index(queries).prepare(), leakage_exclusions(sources)
    texts = english_like_sentences(args.embed_texts, args.seed + 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        factory = embedder_factory(root / "models")
        local, reference = local_round(index, queries, exclude, factory, root, texts)
        rows = [local] + [ray_round(w, index, queries, exclude, factory, root, texts, reference) for w in (1, 2)]
    report(args, rows, len(texts))


if __name__ == "__main__":
    main()
