"""The paper's mix ablation: contrastive training data without paraphrases (eps = 0) or without
the random and similar kinds (p = 0), against the default mix, on the same eval rows.

    python -m experiments.regimes.run --seeds 0 1 2 --models contrastive --name eps0 --build-arg=--eps=0
    python -m experiments.regimes.run --seeds 0 1 2 --models contrastive --name p0 --build-arg=--p=0
    python -m experiments.regimes.ablation --work runs/regimes --names default eps0 p0 --seeds 0

Tables on exact match and on chrF/100 (graded, so it still separates models in bins where exact
match is 0); `--output NAME` keeps ablations of different settings apart.

The builds differ only in the contrastive training split (their eval splits are the same rows,
checked here), so each variant is compared to the default by paired differences per bin.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from schemas.errors import UserError
from stages.base import write_json_atomically

from . import TASK
from .aggregate import METRICS, by_bin, load_predictions, paired_difference
from .figures import figure3

HERE = Path(__file__).resolve().parent


def build_weights(work: Path) -> dict[str, float]:
    """The context-kind weights of the build under `work` (whichever synthetic task it is)."""
    manifests = sorted(work.glob("*/latest/manifest.json"))
    if not manifests:
        raise UserError(f"{work}: no <task>/latest/manifest.json; run experiments.regimes.run first")
    return json.loads(manifests[0].read_text(encoding="utf-8"))["config"]["weights"]


def _row_ids(runs: dict) -> set[str]:
    return set.intersection(*(set(rows) for rows in runs.values()))


def contrastive_rows(work: Path, seeds: list[int] | None = None, metric: str = "exact_match"
                     ) -> tuple[dict[str, dict], list[int]]:
    runs = load_predictions(work / "eval", metric).get("contrastive", {})
    runs = {s: rows for s, rows in runs.items() if seeds is None or s in seeds}
    if not runs:
        raise UserError(f"{work}/eval: no contrastive-s*.predictions.jsonl; run the build first")
    return runs, sorted(runs)


def ablation(work: Path, names: list[str], seeds: list[int] | None = None,
             metric: str = "exact_match") -> dict[str, Any]:
    """Only `seeds` when given, so builds with different numbers of finished seeds compare fairly."""
    rows = {name: contrastive_rows(work / name, seeds, metric) for name in names}
    reference = names[0]
    if any(_row_ids(r) != _row_ids(rows[reference][0]) for r, _ in rows.values()):
        raise UserError(f"{work}: the builds' eval rows differ; rebuild them with the same "
                        "pool, test and seed options")
    return {name: {"weights": build_weights(work / name), "seeds": seeds,
                   "by_bin": by_bin(pooled),
                   "minus_" + reference: None if name == reference
                   else paired_difference(pooled, rows[reference][0])}
            for name, (pooled, seeds) in rows.items()}


def markdown(table: dict[str, Any], reference: str) -> str:
    cell = lambda s: f"{s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}]"  # noqa: E731
    bins = list(next(iter(table.values()))["by_bin"])
    lines = ["| build | weights (random/similar/near/paraphrase) | seeds | "
             + " | ".join(bins) + f" | minus {reference}: " + " / ".join(bins) + " |",
             "|---|---|---|" + "---|" * (len(bins) + 1)]
    for name, entry in table.items():
        w = entry["weights"]
        mix = "/".join(f"{w[k]:g}" for k in ("random", "similar", "near", "paraphrase"))
        diff = entry["minus_" + reference]
        diffs = " / ".join(cell(diff[b]) for b in bins) if diff else "-"
        lines.append(f"| {name} | {mix} | {','.join(map(str, entry['seeds']))} | "
                     + " | ".join(cell(entry["by_bin"][b]) for b in bins) + f" | {diffs} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/regimes"))
    parser.add_argument("--names", nargs="+", default=["default", "eps0", "p0"])
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: every seed")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--figures", type=Path, default=HERE / "figures")
    parser.add_argument("--task", default=TASK, help="the task the builds are of (figure title)")
    parser.add_argument("--output", default="ablation", help="name of the results and figure files")
    args = parser.parse_args(argv)
    tables = {metric: ablation(args.work, args.names, args.seeds, metric)
              for metric in ("exact_match", "chrf")}
    write_json_atomically(args.results / f"{args.output}.json", tables)
    text = "\n".join(f"{METRICS[metric][1]} by bin, seed mean, 95% seed-and-item bootstrap interval\n\n"
                     + markdown(table, args.names[0]) for metric, table in tables.items())
    (args.results / f"{args.output}.md").write_text(text, encoding="utf-8")
    table = tables["exact_match"]
    plot = {"dataset": {"task": args.task, "version": args.output, "primary_metric": "exact_match"},
            "by_bin": {f"contrastive/{n}": e["by_bin"] for n, e in table.items()},
            "seeds": {f"contrastive/{n}": e["seeds"] for n, e in table.items()}}
    figure3(plot, args.figures / f"{args.output}_figure3.png")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
