"""Orchestration of `pipeline build`: resolve, fingerprint, run or reuse each stage, publish.

Stage fingerprints chain (each hashes its inputs' fingerprints), so they are all known before
anything runs: that is what lets the build check a paid backend's key before any work, and print
which stages will be reused.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

from pipeline.components import make_specs
from pipeline.store import publish_version
from schemas.config import BuildConfig, RunOptions
from stages.base import DONE_MARKER, StageResult, StageSpec, cache_folder, execute, fingerprint
from pipeline.preflight import SPLITS, overrides, preflight, source_access, sql_databases
from stages.ingest.sources import describe_source, split_source


def input_fingerprints(config: BuildConfig, options: RunOptions,
                       databases: dict[str, Path] | None = None) -> dict[str, Any]:
    """What the inputs are, by content: hashed into the version and written to the manifest. An
    SQL task's databases count by their content fingerprints (`stages.sql.schema`), never by path."""
    task = config.task
    if task.kind == "synthetic" and not options.train_path:
        return {"generator": task.generator.model_dump()}
    given = overrides(options)
    found = {split: describe_source(split_source(task, split, given[split])) for split in SPLITS}
    if databases:
        from stages.sql.databases import fingerprints

        found["databases"] = fingerprints(databases)
    return found


def plan_fingerprints(specs: list[StageSpec], cache_root: Path) -> dict[str, tuple[str, bool]]:
    """Stage name -> (fingerprint, already cached), without running anything."""
    fps: dict[str, str] = {}
    out = {}
    for spec in specs:
        fp = spec.stage.fingerprint({**{name: fps[name] for name in spec.inputs}, **spec.extra})
        fps[spec.stage.name] = fp
        out[spec.stage.name] = (fp, (cache_folder(cache_root, spec.stage.name, fp) / DONE_MARKER).exists())
    return out


def run_stages(specs: list[StageSpec], cache_root: Path, log: Callable[[str], None]) -> dict[str, StageResult]:
    results: dict[str, StageResult] = {}
    for spec in specs:
        result = execute(spec.stage, {name: results[name] for name in spec.inputs}, cache_root, spec.extra)
        results[spec.stage.name] = result
        s = result.stats
        state = "cached" if s.cached else "done"
        log(f"[{spec.stage.name}] {state} in {s.seconds:.1f}s: {s.rows_in} in, {s.rows_out} out"
            + (f", dropped {dict(s.dropped)}" if s.dropped else ""))
        for warning in s.warnings:
            log(f"warning: {warning}")
    return results


def build(config: BuildConfig, options: RunOptions, log: Callable[[str], None] | None = None,
          dry_run: bool = False, engine: Any = None) -> Path | dict:
    """Run the build; returns the published version folder (or, with dry_run, the paraphrase
    cost estimate, having run only the stages that decide what would be paraphrased). `engine`
    (`stages.scale.make_engine`; default local) runs retrieve and embed; the bytes never depend on it."""
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    databases = sql_databases(config, options)
    inputs = input_fingerprints(config, options, databases)
    cache_root = Path(options.cache_dir or Path(options.out_dir) / ".cache")
    specs, components = make_specs(config, options, cache_root, {"inputs": fingerprint(inputs)}, databases,
                                   engine)
    versions = {spec.stage.name: spec.stage.version for spec in specs}
    version = fingerprint(config.model_dump(mode="json"), inputs, versions, components.identities())[:12]
    planned = plan_fingerprints(specs, cache_root)
    log(f"building {config.task.name} version {version}; cached stages: "
        + (", ".join(name for name, (_, hit) in planned.items() if hit) or "none"))
    need_backend = not dry_run and not planned["paraphrase"][1]
    preflight(config, options, source_access(options, cache_root), not planned["ingest"][1],
              components.check_paraphraser if need_backend else None, log)
    if dry_run:
        return components.estimate(run_stages(specs[:2], cache_root, log))
    results = run_stages(specs, cache_root, log)
    folder = publish_version(config, options, version, inputs, results)
    log(f"wrote {folder}")
    return folder
