"""The dataset card (`README.md` of a version folder): what it is, how it was built, counts."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from stages.base import fingerprint

BINS = (("Low", 0.0, 0.33), ("Medium", 0.33, 0.67), ("High", 0.67, 1.0001))


def max_sim_histogram(values: np.ndarray, width: int = 40) -> list[str]:
    lines = []
    total = max(len(values), 1)
    for name, lo, hi in BINS:
        count = int(((values >= lo) & (values < hi)).sum())
        bar = "#" * int(round(width * count / total))
        lines.append(f"    {name:<6} [{lo:.2f}, {min(hi, 1.0):.2f}{']' if hi > 1 else ')'} {count:>7}  {bar}")
    return lines


def _overridden(manifest: dict[str, Any]) -> list[str]:
    """Splits built from a file other than the source the task declares (a command-line override);
    a split a non-generated task declares no source for (it expects a local file) is no override."""
    task = manifest["config"]["task"]
    out = []
    for split, used in manifest.get("inputs", {}).items():
        declared = task.get(split) or {}
        if not task.get("generator") and not any(declared.get(kind) for kind in ("hub", "opus", "path")):
            continue
        if "file" in used and Path(declared.get("path") or "").name != used["file"]:
            out.append(split)
    return out


def inputs_section(manifest: dict[str, Any]) -> list[str]:
    """What each split was read from, by name and content hash or pinned coordinates, and rows."""
    read = manifest["stages"].get("ingest", {}).get("counters", {}).get("inputs", {})
    lines = ["## Inputs", "", "| split | source | identity | rows read |", "|---|---|---|---|"]
    for split, used in manifest.get("inputs", {}).items():
        if not used:  # a split the task does not have (bird: no out-of-domain test)
            continue
        if split == "databases":  # an SQL task's databases: db_id -> content fingerprint
            digest = fingerprint(used)[:16]
            lines.append(f"| databases | {len(used)} SQLite databases ({', '.join(sorted(used)[:5])}"
                         f"{', ...' if len(used) > 5 else ''}) | fingerprints {digest} (manifest: inputs) | - |")
            continue
        if "file" in used:
            source, identity = used["file"], f"sha256 {str(used.get('sha256'))[:16]}"
        elif "hub" in used:
            source = read.get(split, {}).get("source") or f"hub:{used['hub']['path']}"
            identity = f"revision {used['hub'].get('revision') or 'unpinned'}"
        elif "opus" in used:
            opus = used["opus"]
            source, identity = f"opus:{opus['corpus']}/{opus['version']}/{opus['pair']}", "OPUS archive"
        else:
            source, identity = split, json.dumps(used, sort_keys=True)
        lines.append(f"| {split} | {source} | {identity} | {read.get(split, {}).get('rows_read', '-')} |")
    if "generator" in manifest.get("inputs", {}):
        lines[4:] = [f"| all | generated in code | {json.dumps(manifest['inputs']['generator'])} | - |"]
    return lines + [""]


def build_warnings(manifest: dict[str, Any]) -> list[str]:
    """Every stage's warnings (the τ filter leaving train-similar empty, ...), in stage order."""
    return [w for stage in manifest["stages"].values() for w in stage.get("warnings", [])]


def _tau_line(manifest: dict[str, Any]) -> str:
    passed = manifest["stages"].get("assemble", {}).get("counters", {}).get("similar_tau")
    counts = f" ({passed['passed']} of {passed['targets']} targets passed)" if passed else ""
    return f"- similar-regime τ filter: {manifest['config']['tau']}{counts}"


def labels_in_pool_line(manifest: dict[str, Any]) -> list[str]:
    """The share of test rows whose gold label is verbatim among pool targets (ingest counts it)."""
    counts = manifest["stages"].get("ingest", {}).get("counters", {}).get("test_labels_in_pool")
    if not counts:
        return []
    parts = [f"{split} {c['in_pool']} of {c['rows']} ({100 * c['in_pool'] / max(c['rows'], 1):.1f}%)"
             for split, c in counts.items()]
    return [f"- test labels found verbatim among pool targets: {', '.join(parts)}"]


LOAD_FROM_DISK = ("Load any split with `datasets.load_from_disk(<this folder>/<split>)`.")


def dataset_card(manifest: dict[str, Any], tables: dict[str, pa.Table], how_to_load: str = LOAD_FROM_DISK) -> str:
    """The build card; `how_to_load` is the sentence that tells a reader how to open a split."""
    config = manifest["config"]
    task = config["task"]
    overridden = _overridden(manifest)
    about = task.get("description", "").strip() if not overridden else (
        f"Task `{task['name']}` ({task['kind']}), built from local files for {', '.join(overridden)} "
        "instead of the task's declared sources; see Inputs.")
    warnings = build_warnings(manifest)
    lines = [f"# IC-Train dataset: {manifest['task']} ({manifest['version']})", "",
             about, "",
             *([f"**Warning:** {w}" for w in warnings] + [""] if warnings else []),
             "Built by ictrain's `pipeline build` with contrastive context sampling.", how_to_load, "",
             *inputs_section(manifest),
             "## How it was built", "",
             f"- k = {config['k']} examples per context, M = {config['m']} BM25 candidates for `near`, seed {config['seed']}",
             f"- contrastive weights: {json.dumps(config['weights'])}",
             _tau_line(manifest), *labels_in_pool_line(manifest), f"- paraphraser: {config['paraphraser']}",
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
