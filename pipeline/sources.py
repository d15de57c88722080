"""`pipeline sources --task T [--check] [--download]`: what a task reads, and whether it can.

The first command to run on a new machine: it lists each split's source with its size and
licence; `--check` probes each one (revision pinned, config and split exist, access granted)
without downloading data, and exits 1 with a table of what fails; `--download` fetches every
source into the cache, so a build can later run with no network (copy the cache folder along).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from pipeline.preflight import SPLITS, source_access
from pipeline.prune import human_size
from pipeline.tasks import load_task
from schemas.config import RunOptions, SourceSpec, TaskConfig
from schemas.errors import UserError
from stages.base import writing
from stages.ingest.sources import check_source, label, source_batches


def task_sources(task: TaskConfig) -> dict[str, SourceSpec]:
    return {split: spec for split in SPLITS if (spec := getattr(task, split)) is not None and spec.kind != "none"}


def _row(split: str, spec: SourceSpec, status: str, detail: str) -> list[str]:
    return [split, label(spec), spec.size or "-", spec.licence or "-", status, detail]


def _print_table(rows: list[list[str]], out: Callable[[str], None]) -> None:
    header = ["split", "source", "size", "licence", "status", "detail"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        out("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])


def _probe(split: str, spec: SourceSpec, options: RunOptions, cache_root: Path, download: bool) -> list[str]:
    access = source_access(options, cache_root)
    try:
        found = check_source(spec, split, access, require_pin=True)
        if download:
            with writing(cache_root):
                rows = sum(len(batch) for batch in source_batches(spec, access))
            return _row(split, spec, "ok", f"downloaded, {rows} rows")
        cached = " (in the cache)" if found.get("cached") else ""
        cached += f", sha256 {found['sha256']}" if found.get("sha256") else ""
        return _row(split, spec, "ok", f"{found.get('files', 0)} file(s), {human_size(found['bytes']) if found.get('bytes') else '-'}{cached}")
    except UserError as err:
        return _row(split, spec, "FAIL", str(err))


def cmd_sources(task_name: str, options: RunOptions, cache_root: Path, check: bool, download: bool,
                out: Callable[[str], None] = print) -> int:
    task = load_task(task_name)
    sources = task_sources(task)
    if not sources:
        out(f"{task.name}: generated in code, no sources to fetch" if task.kind == "synthetic" else
            f"{task.name}: declares no remote source, nothing to fetch; build it from local files "
            "(--train PATH --test PATH" + (" --db-dir DIR" if task.kind == "sql" else ", optionally --test-ood PATH") + ")")
        return 0
    if not (check or download):
        _print_table([_row(split, spec, "", "") for split, spec in sources.items()], out)
        out("run with --check to probe each source (nothing is downloaded)")
        return 0
    rows = [_probe(split, spec, options, cache_root, download) for split, spec in sources.items()]
    _print_table(rows, out)
    failed = sum(1 for row in rows if row[4] == "FAIL")
    out(f"{len(rows) - failed} of {len(rows)} sources ok" + (f"; {failed} failed" if failed else ""))
    return 1 if failed else 0
