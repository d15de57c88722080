"""Does the fast embedder keep a build's decisions? A built version's `max_sim` bins and `near`
candidate rankings, recomputed with plain fp32 MiniLM on the same texts.

    python bench/bench_agreement.py --version runs/en-lt/<version> [--rows 500] [--queries 300]

Samples `--rows` rows of each contrastive-relevant table (train-random, train-similar,
train-contrastive, eval) and `--queries` pool targets. Every text involved is embedded by the fast
path (the shipped default; batch-independent, so its vectors equal the build's, which the recorded
`max_sim` confirms) and by plain fp32 `SentenceTransformer.encode` (`--exact-embeddings`). Bins:
Low [0, 0.33), Medium [0.33, 0.67), High [0.67, 1] (trainer/report.py). `near` draws one of a
target's top-M BM25 candidates with probability proportional to its cosine, so the rankings are
compared on those M candidates: top-1 equal, Kendall tau, top-5 overlap and the total variation
distance between the two sampling distributions.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.store import SPLIT_FOLDERS, load_split  # noqa: E402
from schemas.config import BuildConfig, EmbedderSpec  # noqa: E402
from stages.embed.models import make_embedder  # noqa: E402
from stages.retrieve.bm25 import BM25Index  # noqa: E402
from stages.retrieve.stage import retrieval_tokenizer, same_source_exclusions, source_groups  # noqa: E402
from trainer.report import BIN_NAMES, similarity_bin  # noqa: E402

TABLES = ("train_random", "train_similar", "train_contrastive", "eval")


def sampled_rows(version: Path, per_table: int, rng: np.random.Generator) -> list[dict]:
    rows = []
    for table in TABLES:
        split = load_split(version / SPLIT_FOLDERS[table])
        for i in sorted(rng.choice(len(split), size=min(per_table, len(split)), replace=False).tolist()):
            row = split[i]
            rows.append({"table": table, "query": row["source"], "examples": [e["source"] for e in row["examples"]],
                         "max_sim": row["max_sim"]})
    return rows


def near_candidates(pool: list[str], task, m: int, count: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(sampled pool rows, their top-m BM25 candidates), with the build's leakage guard; tokenised
    and grouped as the build's task (its validated config.task) says."""
    tokenize = retrieval_tokenizer(task.retrieval_tokens, task.kind)
    tokens = tokenize(pool)
    groups, _ = source_groups(pool, task.kind)
    shared = same_source_exclusions(groups)
    queries = np.sort(rng.choice(len(pool), size=min(count, len(pool)), replace=False))
    exclude = [shared.get(int(groups[q]), {int(q)}) for q in queries]
    idx, _ = BM25Index(tokens).topk([tokens[q] for q in queries], m, exclude=exclude)
    return queries, idx


def bin_figures(rows: list[dict], fast: dict, exact: dict) -> dict:
    def max_sim(vectors, row):
        return float(np.clip(max(vectors[row["query"]] @ vectors[e] for e in row["examples"]), 0.0, 1.0))

    fast_sims = np.array([max_sim(fast, r) for r in rows])
    exact_sims = np.array([max_sim(exact, r) for r in rows])
    fast_bins = [similarity_bin(v) for v in fast_sims]
    exact_bins = [similarity_bin(v) for v in exact_sims]
    agree = np.array([a == b for a, b in zip(fast_bins, exact_bins)])
    tables = np.array([r["table"] for r in rows])
    return {"rows": len(rows), "agreement": float(agree.mean()),
            "per_table": {t: float(agree[tables == t].mean()) for t in TABLES},
            "confusion": {(a, b): sum(1 for x, y in zip(exact_bins, fast_bins) if (x, y) == (a, b))
                          for a in BIN_NAMES for b in BIN_NAMES},
            "delta_max": float(np.abs(fast_sims - exact_sims).max()),
            "delta_mean": float(np.abs(fast_sims - exact_sims).mean()),
            "recorded_diff": float(np.abs(fast_sims - np.array([r["max_sim"] for r in rows])).max())}


def ranking_figures(pool: list[str], queries: np.ndarray, candidates: np.ndarray, fast: dict, exact: dict) -> dict:
    from scipy.stats import kendalltau

    top1, taus, overlap, tvd = [], [], [], []
    for q, cands in zip(queries, candidates):
        cands = cands[cands >= 0]
        if len(cands) < 2:
            continue
        f = np.array([fast[pool[q]] @ fast[pool[c]] for c in cands])
        e = np.array([exact[pool[q]] @ exact[pool[c]] for c in cands])
        top1.append(np.argmax(f) == np.argmax(e))
        taus.append(kendalltau(f, e).statistic)
        overlap.append(len(set(np.argsort(-f)[:5]) & set(np.argsort(-e)[:5])) / 5)
        pf, pe = np.clip(f, 0, None), np.clip(e, 0, None)
        tvd.append(0.5 * np.abs(pf / pf.sum() - pe / pe.sum()).sum() if pf.sum() > 0 and pe.sum() > 0 else 0.0)
    return {"queries": len(top1), "top1": float(np.mean(top1)), "tau_mean": float(np.mean(taus)),
            "tau_p05": float(np.quantile(taus, 0.05)), "top5": float(np.mean(overlap)),
            "tvd_mean": float(np.mean(tvd)), "tvd_max": float(np.max(tvd))}


def embed_all(texts: list[str], cache: Path | None) -> tuple[dict, dict, dict]:
    """Vectors of both paths by text, and each path's rate (same texts, one after the other)."""
    out, rates = {}, {}
    for name, fast in (("fast", True), ("exact", False)):
        embedder = make_embedder(EmbedderSpec(), progress=False, fast=fast, model_cache=cache)
        embedder.embed(texts[:32])  # load (and for the fast path: export once) outside the timing
        started = time.perf_counter()
        vectors = embedder.embed(texts)
        rates[name] = len(texts) / (time.perf_counter() - started)
        out[name] = dict(zip(texts, vectors))
    return out["fast"], out["exact"], rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", type=Path, required=True, help="a built version folder (MiniLM task)")
    parser.add_argument("--rows", type=int, default=500, help="rows sampled from each table")
    parser.add_argument("--queries", type=int, default=300, help="pool targets whose near rankings are compared")
    parser.add_argument("--cache-dir", type=Path, help="embedding cache holding the int8 encoder (saves the export)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = json.loads((args.version / "manifest.json").read_text())
    rng = np.random.default_rng(args.seed)
    rows = sampled_rows(args.version, args.rows, rng)
    pool = load_split(args.version / SPLIT_FOLDERS["train_zero"])["source"]
    queries, candidates = near_candidates(pool, BuildConfig.model_validate(manifest["config"]).task, manifest["config"]["m"],
                                         args.queries, rng)
    needed = {t for r in rows for t in (r["query"], *r["examples"])}
    needed |= {pool[q] for q in queries} | {pool[c] for c in candidates[candidates >= 0]}
    load_before = os.getloadavg()
    fast, exact, rates = embed_all(sorted(needed), args.cache_dir)
    report(bin_figures(rows, fast, exact), ranking_figures(pool, queries, candidates, fast, exact), rates,
           len(needed), (load_before, os.getloadavg()))


def report(bins: dict, ranks: dict, rates: dict, texts: int, load: tuple) -> None:
    print(f"texts embedded by both paths: {texts:,}; fast {rates['fast']:.1f}/s, exact fp32 {rates['exact']:.1f}/s "
          f"({rates['fast'] / rates['exact']:.2f}x); load average {load[0][0]:.1f} before, {load[1][0]:.1f} after")
    print(f"max_sim bin agreement on {bins['rows']:,} rows: {100 * bins['agreement']:.2f}% (target >= 97%); "
          + ", ".join(f"{t} {100 * v:.2f}%" for t, v in bins["per_table"].items()))
    print(f"  |max_sim fast - fp32|: mean {bins['delta_mean']:.4f}, max {bins['delta_max']:.4f}; "
          f"fast max_sim vs the build's recorded max_sim: max diff {bins['recorded_diff']:.2e}")
    print("  bins (rows: fp32, columns: fast): " + "; ".join(
        f"{a}: " + " ".join(str(bins["confusion"][(a, b)]) for b in BIN_NAMES) for a in BIN_NAMES))
    print(f"near candidates ({ranks['queries']} pool targets, top-M BM25): top-1 equal {100 * ranks['top1']:.1f}%, "
          f"Kendall tau mean {ranks['tau_mean']:.3f} (5% quantile {ranks['tau_p05']:.3f}), top-5 overlap "
          f"{100 * ranks['top5']:.1f}%, near sampling distribution total variation mean {ranks['tvd_mean']:.4f}, "
          f"max {ranks['tvd_max']:.4f}")


if __name__ == "__main__":
    main()
