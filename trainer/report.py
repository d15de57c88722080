"""Accuracy against target-context similarity, with bootstrap intervals over test items.

Each test item appears once per eval context, usually in different similarity bins, so the
bootstrap resamples *items* (all their rows go in or out together), never single rows, as in the
paper's Figure 3 (1000 resamples, 95% percentile interval).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

BINS: tuple[tuple[str, float, float], ...] = (
    ("low", 0.0, 0.33), ("medium", 0.33, 0.67), ("high", 0.67, 1.0))
BIN_NAMES = tuple(name for name, _, _ in BINS)


def similarity_bin(max_sim: float) -> str:
    """Low [0, 0.33), Medium [0.33, 0.67), High [0.67, 1]; values outside [0, 1] clip to the ends."""
    if max_sim < BINS[1][1]:
        return "low"
    if max_sim < BINS[2][1]:
        return "medium"
    return "high"


def resample_counts(rng: np.random.Generator, resamples: int, n: int) -> np.ndarray:
    """resamples x n: how often each of n units is drawn in each bootstrap resample of size n."""
    counts = np.zeros((resamples, n), dtype=np.float64)
    np.add.at(counts, (np.arange(resamples)[:, None], rng.integers(0, n, size=(resamples, n))), 1.0)
    return counts


def bootstrap_group_means(items: Sequence[str], groups: Sequence[str], scores: Sequence[float],
                          resamples: int = 1000, seed: int = 0,
                          level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Mean score per group with a percentile interval from resampling items with replacement.

    A resample in which a group has no rows leaves that group's mean undefined for that draw; such
    draws are skipped for the group (they are rare unless the group is tiny)."""
    unique_items, item_index = np.unique(np.asarray(items, dtype=object).astype(str), return_inverse=True)
    group_values = np.asarray(groups, dtype=object).astype(str)
    values = np.asarray(scores, dtype=np.float64)
    counts = resample_counts(np.random.default_rng(seed), resamples, len(unique_items))
    tail = (1.0 - level) / 2.0 * 100.0
    out: dict[str, dict[str, Any]] = {}
    for group in sorted(set(group_values)):
        rows = group_values == group
        weights = counts[:, item_index[rows]]  # resamples x rows of this group
        totals = weights.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (weights @ values[rows]) / totals
        means = means[np.isfinite(means)]
        low, high = (np.percentile(means, [tail, 100.0 - tail]) if means.size
                     else (float("nan"), float("nan")))
        out[group] = {"mean": float(values[rows].mean()), "low": float(low), "high": float(high),
                      "rows": int(rows.sum()), "items": int(len(np.unique(item_index[rows])))}
    return out


def similarity_report(rows: list[dict[str, Any]], scores: Sequence[float], resamples: int = 1000,
                      seed: int = 0) -> dict[str, Any]:
    """Per test set (and all together): means and intervals by bin, by eval context, and both;
    by database too when the rows carry a `db_id` (text-to-SQL, where the paper reports each of
    BIRD's dev databases)."""
    test_sets = sorted({row["test_set"] for row in rows})
    report: dict[str, Any] = {}
    for test_set in [*test_sets, "all"] if len(test_sets) > 1 else test_sets:
        chosen = [i for i, row in enumerate(rows) if test_set == "all" or row["test_set"] == test_set]
        items = [f"{rows[i]['test_set']}/{rows[i]['target_id']}" for i in chosen]
        values = [scores[i] for i in chosen]
        bins = [similarity_bin(rows[i]["max_sim"]) for i in chosen]
        contexts = [rows[i]["eval_context"] for i in chosen]
        both = [f"{c}/{b}" for c, b in zip(contexts, bins)]
        by_both = bootstrap_group_means(items, both, values, resamples, seed)
        nested: dict[str, dict[str, Any]] = {}
        for key, stats in by_both.items():
            context, bin_name = key.split("/")
            nested.setdefault(context, {})[bin_name] = stats
        report[test_set] = {
            "by_bin": _in_bin_order(bootstrap_group_means(items, bins, values, resamples, seed)),
            "by_context": bootstrap_group_means(items, contexts, values, resamples, seed),
            "by_context_bin": {c: _in_bin_order(v) for c, v in sorted(nested.items())},
            "overall": bootstrap_group_means(items, ["all"] * len(items), values, resamples, seed)["all"],
        }
        databases = [rows[i].get("db_id") or "" for i in chosen]
        if any(databases):
            report[test_set]["by_database"] = bootstrap_group_means(items, databases, values,
                                                                    resamples, seed)
    return report


def _in_bin_order(stats: dict[str, Any]) -> dict[str, Any]:
    return {name: stats[name] for name in BIN_NAMES if name in stats}
