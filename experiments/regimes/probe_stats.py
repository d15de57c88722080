"""Probe curves of one build of the regime comparison (the paper's Figure 4), with intervals.

Probe files written since per-item scores were kept hold every probe item's own scores, so a
probe mean gets the same 95% interval as an eval bin: training seeds and probe items resampled
together (`aggregate.seed_item_bootstrap`). A change over training (last point minus first) is
paired by run and item, a difference between regimes by item. Older files hold only means, and
runs probed on different items cannot be paired: their points get the seed range (lowest to
highest seed) and no interval.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .aggregate import PAPER_REGIMES, PROBES, REGIMES, Runs, seed_item_bootstrap, seed_of, sign_of

ALL = "all"  # the probe items pooled over test sets form one group for the bootstrap


def probe_histories(work: Path, regime: str, seeds: set[int] | None = None) -> list[list[dict]]:
    """One probe history per finished run of `regime`: recorded during training
    (`train/<regime>-s<seed>/probes.json`), or else probed after training
    (`probe/<regime>-s<seed>.json`, run with `run --final-probes`), with the untuned base's
    `probe/base.json` as step 0, which is what every adapter starts from (LoRA starts as a no-op)."""
    def wanted(stem: str) -> bool:
        return seeds is None or seed_of(stem) in seeds

    histories = [json.loads(p.read_text(encoding="utf-8"))["history"]
                 for p in sorted((work / "train").glob(f"{regime}-s*/probes.json"))
                 if (p.parent / "run_config.json").is_file() and wanted(p.parent.name)]
    if histories:
        return histories
    base = work / "probe" / "base.json"
    start = json.loads(base.read_text(encoding="utf-8"))["history"] if base.is_file() else []
    return [start + json.loads(p.read_text(encoding="utf-8"))["history"]
            for p in sorted((work / "probe").glob(f"{regime}-s*.json")) if wanted(p.stem)]


def load_histories(work: Path, seeds: set[int] | None = None) -> dict[str, list[list[dict]]]:
    """regime -> its runs' probe histories (regimes without a finished run left out), read once
    for both the summary and the copy verdict."""
    return {regime: histories for regime in REGIMES if (histories := probe_histories(work, regime, seeds))}


def _points(histories: list[list[dict]], step: int) -> list[dict]:
    """Every run's probe point at `step`."""
    return [next(point for point in history if point["step"] == step) for history in histories]


def item_runs(histories: list[list[dict]], step: int, probe: str) -> Runs | None:
    """run -> item -> {item, bin, score} at `step`, for `seed_item_bootstrap`. None when a run's
    point lacks per-item scores, or when the runs were probed on different items (a rerun with
    another `--probe-limit`): an interval over the shared items would not match the mean printed
    beside it. Items without this probe (copy_nongold where no shown label differs from the gold
    one, which depends on the context, not the model) are left out, as they are from the mean."""
    points = _points(histories, step)
    if not all(point.get("items") for point in points) or len({frozenset(p["items"]) for p in points}) > 1:
        return None
    runs = {index: {key: {"item": key, "bin": ALL, "score": float(scores[probe])}
                    for key, scores in point["items"].items() if scores[probe] is not None}
            for index, point in enumerate(points)}
    return runs if all(runs.values()) else None


def shared_steps(histories: list[list[dict]]) -> list[int]:
    """The probe steps every run has, in order."""
    return sorted(set.intersection(*({h["step"] for h in history} for history in histories)))


def _point(histories: list[list[dict]], step: int, probe: str) -> dict[str, Any]:
    """Mean over seeds of the `all` score, the seed range, and the seed-and-item interval."""
    values = [v for point in _points(histories, step) if (v := point["scores"][ALL][probe]) is not None]
    stats = _spread(values)
    runs = item_runs(histories, step, probe)
    if runs is not None:
        interval = seed_item_bootstrap([(1.0, runs)])[ALL]
        stats.update(low=interval["low"], high=interval["high"])
    return stats


def _change(histories: list[list[dict]], first: int, last: int, probe: str) -> dict[str, Any] | None:
    """Last point minus first, per run and item (so a seed is paired with itself and an item with
    itself), with a seed-and-item interval; None without per-item scores on the same items."""
    start, end = item_runs(histories, first, probe), item_runs(histories, last, probe)
    if first == last or start is None or end is None or set(start[0]) != set(end[0]):
        return None
    runs = {run: {key: {**row, "score": row["score"] - start[run][key]["score"]} for key, row in rows.items()}
            for run, rows in end.items()}
    return {"from": first, "to": last, **seed_item_bootstrap([(1.0, runs)])[ALL]}


def probe_summary(histories_of: dict[str, list[list[dict]]]) -> dict[str, Any]:
    """regime -> step -> probe -> mean / seed range / interval (test set `all`), the last step,
    and the change from the first step to the last, from `load_histories`."""
    out: dict[str, Any] = {}
    for regime, histories in histories_of.items():
        steps = shared_steps(histories)
        curve = {step: {name: _point(histories, step, name) for name in PROBES} for step in steps}
        change = {name: c for name in PROBES if (c := _change(histories, steps[0], steps[-1], name))}
        out[regime] = {"seeds": len(histories), "curve": curve, "final": curve[steps[-1]],
                       **({"change": change} if change else {})}
    return out


def judge_copy(probes: dict[str, Any], histories_of: dict[str, list[list[dict]]]) -> dict[str, Any]:
    """Claim (c), second half: similar copies most (final `copy_nongold`). With per-item scores:
    similar minus each other regime, paired by item, seeds and items resampled; supported when
    every difference excludes 0 upwards, contradicted when one excludes 0 downwards (as the eval
    claims are judged; with one seed per regime the interval holds item variance only). Without
    them: seed ranges, which must not overlap (one seed cannot show that)."""
    final = {r: probes[r]["final"]["copy_nongold"] for r in PAPER_REGIMES if r in probes}
    top = max(final, key=lambda r: final[r]["mean"])
    others = [r for r in final if r != "similar"]
    runs = {r: item_runs(histories_of[r], shared_steps(histories_of[r])[-1], "copy_nongold") for r in final}
    if all(runs.values()) and len({frozenset(r[0]) for r in runs.values()}) == 1:
        diffs = [{"pair": f"similar - {r}", **seed_item_bootstrap([(1.0, runs["similar"]),
                                                                   (-1.0, runs[r])])[ALL]} for r in others]
        signs = [sign_of(d) for d in diffs]
        verdict = ("supported" if all(s > 0 for s in signs) else
                   "contradicted" if any(s < 0 for s in signs) else "inconclusive")
        return {"verdict": verdict, "highest": top, "final_copy_nongold": final, "differences": diffs}
    runner = max((r for r in final if r != top), key=lambda r: final[r]["mean"])
    clear = probes[top]["seeds"] > 1 and final[top]["min"] > final[runner]["max"]
    verdict = ("supported" if top == "similar" and clear else
               "contradicted" if top != "similar" and probes[top]["seeds"] > 1
               and final[top]["min"] > final["similar"]["max"]
               else "inconclusive")
    return {"verdict": verdict, "highest": top, "final_copy_nongold": final}


def _spread(values: list[float]) -> dict[str, float]:
    if not values:
        return {"mean": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"mean": round(float(np.mean(values)), 4), "min": round(float(min(values)), 4),
            "max": round(float(max(values)), 4)}
