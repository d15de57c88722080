"""Pool the per-seed evaluation outputs of one build and judge the paper's Figure 3 claims
(the probes' statistics are in `probe_stats`, on the same bootstrap).

A model's score is the mean over its seeds of each eval row. 95% intervals resample both sources
of variation at once: training seeds (with replacement, per model, independently) and test items
(all rows of an item together, as `trainer.report` does), so they describe what a rerun with new
seeds on new test items could give. Claims are judged on *paired* differences (the same rows
scored by two models), whose intervals are tighter than comparing two unpaired intervals.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import UserError
from trainer.report import BIN_NAMES, resample_counts, similarity_bin

# the paper's four regimes, then its appendix D.3 mixture (random + similar contexts only)
PAPER_REGIMES = ("zero", "random", "similar", "contrastive")
REGIMES = (*PAPER_REGIMES, "mixture")
MODELS = ("base", *REGIMES)
PAPER_MODELS = ("base", *PAPER_REGIMES)
IC_TRAIN = ("random", "similar", "contrastive")
PROBES = ("iwl", "icl", "copy", "copy_nongold")
RESAMPLES, BOOT_SEED, LEVEL = 1000, 0, 0.95
# per-row metric in the prediction files -> (divisor to a 0-1 score, name in tables)
METRICS = {"exact_match": (1.0, "exact match"), "chrf": (100.0, "chrF/100"), "comet": (1.0, "COMET-22")}
Runs = dict  # seed (None for the untuned base) -> row id -> {item, bin, score}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def seed_of(stem: str) -> int | None:
    """`contrastive-s2` -> 2; `base` -> None (the base model has no training seed)."""
    head, _, tail = stem.rpartition("-s")
    return int(tail) if head and tail.isdigit() else None


def load_predictions(eval_dir: Path, metric: str) -> dict[str, dict[int | None, dict[str, dict]]]:
    """model -> seed -> row id -> {item, bin, score}, the score on a 0-1 scale (chrF / 100)."""
    divisor = METRICS[metric][0]
    runs: dict[str, dict] = defaultdict(dict)
    for path in sorted(eval_dir.glob("*.predictions.jsonl")):
        stem = path.name[: -len(".predictions.jsonl")]
        seed = seed_of(stem)
        model = stem if seed is None else stem.rpartition("-s")[0]
        runs[model][seed] = {r["id"]: {"item": f"{r['test_set']}/{r['target_id']}",
                                       "bin": similarity_bin(r["max_sim"]), "score": float(r[metric]) / divisor}
                             for r in read_jsonl(path)}
    if not runs:
        raise UserError(f"{eval_dir}: no *.predictions.jsonl; run experiments.regimes.run first")
    return dict(runs)


def seed_item_bootstrap(terms: list[tuple[float, Runs]]) -> dict[str, dict[str, Any]]:
    """Per bin (a row's `bin`: a similarity bin, or one group such as all probe items): the mean
    of sum(sign * model score) over the rows every run has, with a percentile interval from
    resampling each term's seeds and, jointly, the test items."""
    ids = sorted(set.intersection(*(set(rows) for _, runs in terms for rows in runs.values())))
    if not ids:
        raise UserError("no eval row is shared by the runs compared; they come from different builds")
    first = next(iter(terms[0][1].values()))
    items, item_index = np.unique([first[i]["item"] for i in ids], return_inverse=True)
    bins = np.array([first[i]["bin"] for i in ids])
    rng = np.random.default_rng(BOOT_SEED)
    point, mixed = np.zeros(len(ids)), np.zeros((RESAMPLES, len(ids)))
    for sign, runs in terms:
        scores = np.array([[rows[i]["score"] for i in ids] for rows in runs.values()])
        point += sign * scores.mean(axis=0)
        mixed += sign * (resample_counts(rng, RESAMPLES, len(scores)) / len(scores) @ scores)
    counts = resample_counts(rng, RESAMPLES, len(items))
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    out = {}
    groups = [*BIN_NAMES, *sorted(set(bins.tolist()) - set(BIN_NAMES))]  # bins, then any other group
    for name in [g for g in groups if (bins == g).any()]:
        rows = bins == name
        weights = counts[:, item_index[rows]]
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (weights * mixed[:, rows]).sum(axis=1) / weights.sum(axis=1)
        means = means[np.isfinite(means)]
        low, high = np.percentile(means, [tail, 100.0 - tail]) if means.size else (np.nan, np.nan)
        out[name] = _rounded({"mean": float(point[rows].mean()), "low": float(low), "high": float(high),
                              "rows": int(rows.sum()), "items": int(len(np.unique(item_index[rows]))),
                              "seeds": [len(runs) for _, runs in terms]})
    return out


def bin_means(rows: dict[str, dict]) -> dict[str, float]:
    """Mean score per bin of one run's rows (no interval: the per-seed tables)."""
    return {name: round(float(np.mean(scores)), 4) for name in BIN_NAMES
            if (scores := [r["score"] for r in rows.values() if r["bin"] == name])}


def by_bin(runs: Runs) -> dict[str, dict[str, Any]]:
    """Seed-mean score per bin with a seed-and-item bootstrap interval."""
    return seed_item_bootstrap([(1.0, runs)])


def paired_difference(a: Runs, b: Runs) -> dict[str, dict[str, Any]]:
    """Mean of a - b per bin over the rows both have; seeds of a and b resampled independently."""
    return seed_item_bootstrap([(1.0, a), (-1.0, b)])


def _rounded(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in stats.items()}


def sign_of(diff: dict[str, Any]) -> int:
    """+1 / -1 when the interval excludes 0 on that side, else 0."""
    return 1 if diff["low"] > 0 else -1 if diff["high"] < 0 else 0


def _diff(pooled, a: str, b: str, bin_name: str) -> dict[str, Any]:
    return {"pair": f"{a} - {b}", "bin": bin_name, **paired_difference(pooled[a], pooled[b])[bin_name]}


def judge_worst(pooled, model: str, others: tuple[str, ...], bin_name: str) -> dict[str, Any]:
    """`model` is worst in the bin: below every other (supported only if every gap excludes 0)."""
    diffs = [_diff(pooled, model, other, bin_name) for other in others if other != model]
    signs = [sign_of(d) for d in diffs]
    verdict = ("supported" if all(s < 0 for s in signs) else
               "contradicted" if any(s > 0 for s in signs) else "inconclusive")
    lowest = all(d["mean"] < 0 for d in diffs)
    return {"verdict": verdict, "lowest_mean": lowest, "differences": diffs}


def judge_contrastive(pooled, table) -> dict[str, Any]:
    """Claim (d): per bin, contrastive is the best model or its gap to the best includes 0."""
    per_bin, verdicts = {}, []
    for bin_name in [b for b in BIN_NAMES if all(b in table[m] for m in PAPER_MODELS)]:
        best = max(PAPER_MODELS, key=lambda m: table[m][bin_name]["mean"])
        if best == "contrastive":
            per_bin[bin_name], verdict = {"best": best}, "supported"
        else:
            diff = _diff(pooled, "contrastive", best, bin_name)
            verdict = "contradicted" if sign_of(diff) < 0 else "supported"
            per_bin[bin_name] = {"best": best, "difference": diff}
        per_bin[bin_name]["verdict"] = verdict
        verdicts.append(verdict)
    return {"verdict": "contradicted" if "contradicted" in verdicts else "supported", "bins": per_bin}


def judge_mixture(pooled) -> dict[str, Any]:
    """Appendix D.3: the random + similar mixture is as good as contrastive in the Low and Medium
    bins and loses in the High bin (it has no paraphrases). Supported when contrastive - mixture
    excludes 0 upwards in High and includes 0 in Low and Medium."""
    per_bin = paired_difference(pooled["contrastive"], pooled["mixture"])
    diffs = {b: {"pair": "contrastive - mixture", "bin": b, **per_bin[b]} for b in BIN_NAMES if b in per_bin}
    level = [sign_of(diffs[b]) for b in ("low", "medium") if b in diffs]
    high = sign_of(diffs["high"]) if "high" in diffs else 0
    verdict = ("contradicted" if high < 0 or any(level) else
               "supported" if high > 0 else "inconclusive")
    return {"verdict": verdict, "differences": list(diffs.values())}


def judge_claims(pooled, table, copy: dict[str, Any]) -> dict[str, Any]:
    """Every Figure 3 claim on `pooled` eval rows; `copy` is (c)'s copying half, judged on the
    probes (`probe_stats.judge_copy`)."""
    low = judge_worst(pooled, "similar", IC_TRAIN, "low")
    both = [low["verdict"], copy["verdict"]]
    mixture = {"d3_mixture_ties_low_medium_loses_high": judge_mixture(pooled)} if "mixture" in pooled else {}
    return {**mixture,
        "a_zero_loses_icl_high": judge_worst(pooled, "zero", ("base", "contrastive"), "high"),
        "b_random_worst_high": judge_worst(pooled, "random", IC_TRAIN, "high"),
        "c_similar_worst_low_copies_most": {
            "verdict": both[0] if both[0] == both[1] else
            "contradicted" if "contradicted" in both else "inconclusive",
            "worst_low": low, "copies_most": copy},
        "d_contrastive_best_or_tied": judge_contrastive(pooled, table),
    }
