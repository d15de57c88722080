"""Everything a build needs from the outside world, checked before any work and reported at once.

A newcomer without network and without an API key should read both problems in the first second,
not the second one after fixing the first. Only what the build will actually use is checked: a
stage already in the cache needs neither its sources nor its backend.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from schemas.config import BuildConfig, RunOptions, SourceSpec
from schemas.errors import UserError
from stages.ingest.access import SourceAccess
from stages.ingest.sources import SPLITS, SPLIT_FLAGS, check_source, split_source



def source_access(options: RunOptions, cache_root: Path) -> SourceAccess:
    return SourceAccess(download_dir=Path(cache_root) / "sources", hub_endpoint=options.hub_endpoint,
                        hub_token=options.hub_token, opus_url=options.opus_url)


def overrides(options: RunOptions) -> dict[str, str | None]:
    return {"train": options.train_path, "test": options.test_path, "test_ood": options.test_ood_path}


def build_sources(config: BuildConfig, options: RunOptions) -> dict[str, SourceSpec]:
    """The sources ingest will read, by split (none for a generated task)."""
    if config.task.kind == "synthetic" and not options.train_path:
        return {}
    given = overrides(options)
    found = {split: split_source(config.task, split, given[split]) for split in SPLITS}
    return {split: spec for split, spec in found.items() if spec is not None and spec.kind != "none"}


def sql_databases(config: BuildConfig, options: RunOptions) -> dict[str, Path]:
    """An SQL task's databases, db_id -> file, for every db_id its input files name; checked before
    anything else, since their fingerprints go into the version. A split file that does not exist
    is left to `preflight` to report."""
    if config.task.kind != "sql":
        return {}
    from stages.ingest.sqlfiles import database_ids
    from stages.sql.databases import locate_databases

    sources = build_sources(config, options)
    missing = [SPLIT_FLAGS[split] for split in ("train", "test") if split not in sources]
    if missing:
        raise UserError(f"task {config.task.name!r} reads local files: pass {' and '.join(f'{m} PATH' for m in missing)} "
                        "(BIRD's train.json and dev.json, or JSONL/Parquet with question, evidence, SQL, db_id)")
    ids: set[str] = set()
    for spec in sources.values():
        if spec.path and Path(spec.path).is_file():
            ids |= database_ids(spec)
    return locate_databases(options.db_dirs, ids)


def _with_flag(problem: str, flag: str) -> str:
    """Every source problem ends with the way around it: the split's local-file flag."""
    if "pass a local file instead" in problem:
        return problem.replace("pass a local file instead", f"pass a local file with {flag} PATH")
    return problem if flag in problem else f"{problem}; or pass a local file with {flag} PATH"


def _attempt(problems: list[str], check: Callable[[], object]) -> object:
    try:
        return check()
    except UserError as err:
        problems.extend(line for line in str(err).splitlines() if line)
        return None


def preflight(config: BuildConfig, options: RunOptions, access: SourceAccess, need_sources: bool,
              check_backend: Callable[[], None] | None, log: Callable[[str], None]) -> None:
    """Raise one UserError listing every failed precondition, one per line."""
    problems: list[str] = []
    if need_sources:
        for split, spec in build_sources(config, options).items():
            before = len(problems)
            found = _attempt(problems, lambda: check_source(spec, split, access))
            problems[before:] = [_with_flag(line, SPLIT_FLAGS[split]) for line in problems[before:]]
            if isinstance(found, dict) and found.get("pinned") is False:
                log(f"warning: {spec.hub.path} has no pinned revision: its data can change under the same "
                    "version id; set `revision` to a commit id in the task YAML")
    if check_backend is not None:
        _attempt(problems, check_backend)
    if problems:
        raise UserError("\n".join(problems))
