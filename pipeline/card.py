"""The dataset card (`README.md` of a version folder): what it is, how it was built, counts."""
from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa

BINS = (("Low", 0.0, 0.33), ("Medium", 0.33, 0.67), ("High", 0.67, 1.0001))


def max_sim_histogram(values: np.ndarray, width: int = 40) -> list[str]:
    lines = []
    total = max(len(values), 1)
    for name, lo, hi in BINS:
        count = int(((values >= lo) & (values < hi)).sum())
        bar = "#" * int(round(width * count / total))
        lines.append(f"    {name:<6} [{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'} {count:>7}  {bar}")
    return lines


def build_warnings(manifest: dict[str, Any]) -> list[str]:
    """Every stage's warnings (the τ filter leaving train-similar empty, ...), in stage order."""
    return [w for stage in manifest["stages"].values() for w in stage.get("warnings", [])]


def _tau_line(manifest: dict[str, Any]) -> str:
    passed = manifest["stages"].get("assemble", {}).get("counters", {}).get("similar_tau")
    counts = f" ({passed['passed']} of {passed['targets']} targets passed)" if passed else ""
    return f"- similar-regime τ filter: {manifest['config']['tau']}{counts}"


def dataset_card(manifest: dict[str, Any], tables: dict[str, pa.Table]) -> str:
    config = manifest["config"]
    task = config["task"]
    warnings = build_warnings(manifest)
    lines = [f"# IC-Train dataset: {manifest['task']} ({manifest['version']})", "",
             task.get("description", "").strip(), "",
             *([f"**Warning:** {w}" for w in warnings] + [""] if warnings else []),
             "Built by ictrain's `pipeline build` with contrastive context sampling. Load any split with",
             "`datasets.load_from_disk(<this folder>/<split>)`.", "",
             "## How it was built", "",
             f"- k = {config['k']} examples per context, M = {config['m']} BM25 candidates for `near`, seed {config['seed']}",
             f"- contrastive weights: {json.dumps(config['weights'])}",
             _tau_line(manifest), f"- paraphraser: {config['paraphraser']}",
             f"- embedder: {json.dumps(task['embedder'])}", f"- package version {manifest['package_version']}",
             "", "## Stages", "", "| stage | rows in | rows out | dropped | seconds | cached |", "|---|---|---|---|---|---|"]
    for name, st in manifest["stages"].items():
        dropped = ", ".join(f"{k}: {v}" for k, v in st["dropped"].items()) or "-"
        lines.append(f"| {name} | {st['rows_in']} | {st['rows_out']} | {dropped} | {st['seconds']} | {st['cached']} |")
    lines += ["", "## Splits", ""]
    for name, table in tables.items():
        kinds = Counter(table.column("context_kind").to_pylist())
        lines.append(f"### {name.replace('_', '-')}: {table.num_rows} rows")
        lines.append("")
        lines.append("context kinds: " + (", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "- (empty split)"))
        lines.append("")
        lines.append("max_sim histogram:")
        lines.append("")
        lines += max_sim_histogram(np.asarray(table.column("max_sim").to_numpy(zero_copy_only=False)))
        lines.append("")
    return "\n".join(lines) + "\n"
