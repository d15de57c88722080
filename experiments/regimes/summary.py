"""Results JSON, markdown tables and figures of one build of the regime comparison.

    python -m experiments.regimes.summary --name default        # reads runs/regimes/default

Reads `<work>/<name>/eval/*.json|*.predictions.jsonl` and
`<work>/<name>/train/*/{run_config,probes}.json` written by `experiments.regimes.run`, so it can be
rerun after more seeds finish.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from schemas.errors import UserError
from stages.base import write_json_atomically
from trainer.report import BIN_NAMES

from .aggregate import (MODELS, PAPER_MODELS, PAPER_REGIMES, PROBES, REGIMES, bin_means, by_bin, judge_claims,
                        load_predictions)
from .probe_stats import judge_copy, load_histories, probe_summary
from .figures import figure3, figure4

HERE = Path(__file__).resolve().parent


def run_records(work: Path) -> dict[str, Any]:
    """Wall times, losses and adapter settings of every training and evaluation run."""
    trains = {}
    for path in sorted((work / "train").glob("*/run_config.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        cfg = record["config"]
        trains[path.parent.name] = {
            "regime": cfg["regime"], "seed": cfg["seed"], "steps": record["train"]["steps"],
            "seconds": record["train"]["seconds"], "train_loss": round(record["train"]["train_loss"], 4),
            "device": record["device"], "dtype": record["dtype"],
            "adapter": {k: cfg[k] for k in ("lora_r", "lora_alpha", "lora_dropout", "lora_targets",
                                            "learning_rate", "batch_size", "grad_accum", "max_length")}}
    evals = {}
    for path in sorted((work / "eval").glob("*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        evals[path.stem] = {"rows": report["rows"], "items": report["items"],
                            "seconds": report["generation"]["seconds"]}
    return {"train": trains, "eval": evals}


def dataset_identity(work: Path) -> dict[str, Any]:
    first = min((work / "eval").glob("*.json"), default=None)
    if first is None:
        raise UserError(f"{work}/eval: no evaluation reports; run experiments.regimes.run first")
    report = json.loads(first.read_text(encoding="utf-8"))
    identity = dict(report["dataset"])
    identity.pop("folder", None)  # a machine path, not part of the version
    return {**identity, "primary_metric": report["primary_metric"]}


def common_seeds(predictions: dict[str, dict]) -> dict[str, dict]:
    """Keep only the seeds every trained model has, so a run still in progress cannot make one
    regime's mean rest on more seeds than another's."""
    trained = [set(runs) for model, runs in predictions.items() if model in REGIMES]
    keep = set.intersection(*trained) if trained else set()
    return {model: {s: rows for s, rows in runs.items() if s is None or s in keep}
            for model, runs in predictions.items()}


def collect(work: Path) -> dict[str, Any]:
    dataset = dataset_identity(work)
    predictions = common_seeds(load_predictions(work / "eval", dataset["primary_metric"]))
    models = [m for m in MODELS if m in predictions]
    pooled = {m: predictions[m] for m in models}
    table = {m: by_bin(pooled[m]) for m in models}
    per_seed = {m: {"-" if s is None else str(s): bin_means(rows)
                    for s, rows in sorted(predictions[m].items(), key=lambda kv: kv[0] or 0)}
                for m in models}
    seeds = {s for runs in predictions.values() for s in runs} - {None}
    histories = load_histories(work, seeds)
    probes = probe_summary(histories)
    complete = set(PAPER_MODELS) <= set(models) and set(PAPER_REGIMES) <= set(probes)
    copy = judge_copy(probes, histories) if complete else None
    return {"dataset": dataset, "seeds": {m: sorted(s for s in predictions[m] if s is not None)
                                          for m in models},
            "by_bin": table, "by_bin_per_seed": per_seed, "probes": probes,
            "claims": judge_claims(pooled, table, copy) if complete else None,
            "chrf": chrf_block(work, copy), "runs": run_records(work)}


def chrf_block(work: Path, copy: dict[str, Any] | None) -> dict[str, Any]:
    """The same table and verdicts on chrF/100: a graded score, for bins where exact match is 0."""
    predictions = common_seeds(load_predictions(work / "eval", "chrf"))
    pooled = {m: runs for m, runs in predictions.items() if m in MODELS}
    table = {m: by_bin(pooled[m]) for m in MODELS if m in pooled}
    return {"by_bin": table, "claims": judge_claims(pooled, table, copy) if copy else None}


def _cell(stats: dict[str, Any]) -> str:
    return f"{stats['mean']:.3f} [{stats['low']:.3f}, {stats['high']:.3f}]"


def bin_table(results: dict[str, Any], table: dict[str, Any]) -> list[str]:
    lines = ["| model | seeds | " + " | ".join(f"{b} (rows)" for b in BIN_NAMES) + " |",
             "|---|---|" + "---|" * len(BIN_NAMES)]
    for model, bins in table.items():
        seeds = ",".join(map(str, results["seeds"][model])) or "-"
        lines.append(f"| {model} | {seeds} | " + " | ".join(
            f"{_cell(bins[b])} ({bins[b]['rows']})" if b in bins else "-" for b in BIN_NAMES) + " |")
    return lines


def markdown(results: dict[str, Any]) -> str:
    lines = [f"{results['dataset']['primary_metric']} by bin, seed mean, 95% seed-and-item bootstrap interval", ""]
    lines += bin_table(results, results["by_bin"])
    lines += ["", "chrF/100 by bin", ""] + bin_table(results, results["chrf"]["by_bin"])
    lines += ["", "| model | seed | " + " | ".join(BIN_NAMES) + " |", "|---|---|" + "---|" * len(BIN_NAMES)]
    for model, seeds in results["by_bin_per_seed"].items():
        for seed, bins in seeds.items():
            lines.append(f"| {model} | {seed} | " + " | ".join(
                f"{bins[b]:.3f}" if b in bins else "-" for b in BIN_NAMES) + " |")
    lines += ["", "final probes, seed mean: [95% seed-and-item interval] where items were kept, "
              "else (seed range)", ""] + probe_table(results["probes"], "final")
    if any("change" in summary for summary in results["probes"].values()):
        lines += ["", "probe change over training: last point - first, paired by run and item, "
                  "[95% seed-and-item interval]", ""]
        lines += probe_table(results["probes"], "change")
    return ("\n".join(lines) + "\n\nclaims on " + results["dataset"]["primary_metric"] + "\n\n"
            + claims_markdown(results["claims"]) + "\nclaims on chrF/100\n\n"
            + claims_markdown(results["chrf"]["claims"]))


def _probe_cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "-"
    if "low" in stats:
        return _cell(stats)
    return f"{stats['mean']:.3f} ({stats['min']:.3f}-{stats['max']:.3f})"


def probe_table(probes: dict[str, Any], key: str) -> list[str]:
    lines = ["| regime | seeds | " + " | ".join(PROBES) + " |", "|---|---|" + "---|" * len(PROBES)]
    for regime, summary in probes.items():
        if key in summary:
            lines.append(f"| {regime} | {summary['seeds']} | "
                         + " | ".join(_probe_cell(summary[key].get(p)) for p in PROBES) + " |")
    return lines


def claims_markdown(claims: dict[str, Any] | None) -> str:
    if not claims:
        return "claims: not judged (some models or probes are missing)\n"
    lines = ["| claim | verdict | paired differences, mean [95% interval] |", "|---|---|---|"]
    for name, claim in claims.items():
        parts = [claim.get("differences", [])]
        if "worst_low" in claim:
            parts = [claim["worst_low"]["differences"]]
        if "bins" in claim:
            parts = [[b["difference"] for b in claim["bins"].values() if "difference" in b]]
        diffs = "; ".join(f"{d['pair']} ({d['bin']}) {_cell(d)}" for d in parts[0])
        if "copies_most" in claim:
            copy = claim["copies_most"]
            diffs += "".join(f"; {d['pair']} (final copy_nongold) {_cell(d)}" for d in copy.get("differences", []))
            diffs += f"; highest final copy_nongold: {copy['highest']}"
        lines.append(f"| {name} | {claim['verdict']} | {diffs or 'contrastive is best in every bin'} |")
    return "\n".join(lines) + "\n"


def write_results(work: Path, name: str, results_dir: Path, figures_dir: Path) -> dict[str, Any]:
    results = collect(Path(work))
    results_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomically(results_dir / f"{name}.json", results)
    tmp = results_dir / f".{name}.md.tmp"
    tmp.write_text(markdown(results), encoding="utf-8")
    tmp.replace(results_dir / f"{name}.md")
    figure3(results, figures_dir / f"{name}_figure3.png")
    if results["probes"]:
        figure4(results, figures_dir / f"{name}_figure4.png")
    print(markdown(results))
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/regimes"),
                        help="the folder `run --work` wrote to; the build is read from WORK/NAME")
    parser.add_argument("--name", default="default", help="the build's `run --name`")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--figures", type=Path, default=HERE / "figures")
    args = parser.parse_args(argv)
    write_results(args.work / args.name, args.name, args.results, args.figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
