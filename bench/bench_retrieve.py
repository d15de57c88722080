"""Benchmark: exact BM25 top-k for every pool row against the pool (the pipeline's neighbour search).

Generates a synthetic pool of sentence-length sources (10-30 words from a Zipf vocabulary), then
times tokenizing, building the index and `topk` for all rows with the leakage guard (rows whose
normalised source equals the query's are excluded). rank_bm25 is timed on a sample of queries and
extrapolated; its top-k on that sample is compared with ours (equal up to ties).

    python bench/bench_retrieve.py --n 50000
"""
from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.retrieve.bm25 import BM25Index, tokenize_many  # noqa: E402
from stages.text import normalize_text  # noqa: E402

_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "si", "vo", "be", "da", "fu", "ge", "ho", "ji", "pa", "ze"]


def make_vocabulary(size: int) -> list[str]:
    """Distinct pseudo-words: word i spells i in bijective base 16 with syllables, so the frequent
    (low-rank) words are the short ones, as in real text."""
    words = []
    for i in range(1, size + 1):
        syllables = []
        while i:
            i, digit = divmod(i - 1, len(_SYLLABLES))
            syllables.append(_SYLLABLES[digit])
        words.append("".join(reversed(syllables)))
    return words


def make_sources(n: int, vocab_size: int, seed: int) -> list[str]:
    """n sentences of 10-30 words, word ranks drawn from Zipf (p ~ 1/rank), some capitalised + punctuated."""
    rng = np.random.default_rng(seed)
    vocab = np.array(make_vocabulary(vocab_size))
    probs = 1.0 / np.arange(1, vocab_size + 1)
    probs /= probs.sum()
    lengths = rng.integers(10, 31, size=n)
    words = vocab[rng.choice(vocab_size, size=int(lengths.sum()), p=probs)]
    cuts = np.cumsum(lengths)[:-1]
    return [" ".join(chunk).capitalize() + "." for chunk in np.split(words, cuts)]


def leakage_exclusions(sources: list[str]) -> list[set[int]]:
    """For each row, every row (itself included) whose normalised source is the same."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, text in enumerate(sources):
        groups[normalize_text(text)].append(i)
    return [set(groups[normalize_text(text)]) for text in sources]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def oracle_topk(scores: np.ndarray, exclude: set[int], k: int) -> tuple[set[int], float]:
    """rank_bm25 top-k set (exclusions removed) and its k-th score, for a tie-aware comparison."""
    scores = scores.copy()
    scores[list(exclude)] = -np.inf
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return set(order.tolist()), float(scores[order[-1]])


def compare_with_rank_bm25(corpus, queries, exclude, ours_idx, ours_scores, sample: int, k: int, seed: int):
    """Seconds per rank_bm25 query, build seconds, and how many sampled rows agree (up to ties)."""
    from rank_bm25 import BM25Okapi

    start = time.perf_counter()
    oracle = BM25Okapi(corpus)
    build_s = time.perf_counter() - start
    rows = np.random.default_rng(seed + 1).choice(len(queries), size=min(sample, len(queries)), replace=False)
    agree, max_err, query_s = 0, 0.0, 0.0
    for row in rows:
        start = time.perf_counter()
        scores = oracle.get_scores(queries[row])
        query_s += time.perf_counter() - start
        want, kth = oracle_topk(scores, exclude[row], k)
        got = set(ours_idx[row].tolist())
        # equal up to ties: any difference may only involve docs scoring the k-th score
        agree += all(abs(scores[d] - kth) <= 1e-6 * max(1, abs(kth)) for d in want ^ got)
        max_err = max(max_err, float(np.max(np.abs(ours_scores[row] - scores[ours_idx[row]]))))
    return query_s / len(rows), build_s, agree, len(rows), max_err


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=50000, help="pool rows (and queries)")
    parser.add_argument("--k", type=int, default=20, help="neighbours per query (the pipeline's M)")
    parser.add_argument("--vocab", type=int, default=30000)
    parser.add_argument("--sample", type=int, default=20, help="queries timed with rank_bm25")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    sources = make_sources(args.n, args.vocab, args.seed)
    exclude = leakage_exclusions(sources)
    base_rss = peak_rss_mib()
    start = time.perf_counter()
    corpus = tokenize_many(sources)
    tokenize_s = time.perf_counter() - start
    start = time.perf_counter()
    index = BM25Index(corpus)
    build_s = time.perf_counter() - start
    start, cpu_start = time.perf_counter(), time.process_time()
    idx, scores = index.topk(corpus, args.k, exclude=exclude, progress=not args.no_progress)
    topk_s, topk_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    ours_rss = peak_rss_mib()

    per_query, oracle_build, agree, sampled, max_err = compare_with_rank_bm25(
        corpus, corpus, exclude, idx, scores, args.sample, args.k, args.seed)
    oracle_total = oracle_build + per_query * args.n
    print(f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, python {platform.python_version()}")
    print(f"pool {args.n} rows, vocab {args.vocab}, k={args.k}, tokens {sum(map(len, corpus))}, "
          f"rows with a duplicate source {sum(len(e) > 1 for e in exclude)}")
    print(f"tokenize {tokenize_s:.1f} s | build index {build_s:.1f} s | topk all queries {topk_s:.1f} s "
          f"({1e3 * topk_s / args.n:.2f} ms/query; CPU time {topk_cpu:.1f} s)")
    print(f"load average at the end (1/5/15 min): {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"rank_bm25: build {oracle_build:.1f} s, {per_query:.3f} s/query on {sampled} queries -> "
          f"{oracle_total / 3600:.1f} h extrapolated; speed-up x{oracle_total / (build_s + topk_s):.0f} "
          f"(build + topk)")
    print(f"top-{args.k} agreement with rank_bm25 (up to ties): {agree}/{sampled}; max |score diff| {max_err:.2e}")
    print(f"peak RSS: {base_rss:.0f} MiB after data generation, {ours_rss:.0f} MiB after topk "
          f"(+{ours_rss - base_rss:.0f} MiB), before rank_bm25 ran")


if __name__ == "__main__":
    main()
