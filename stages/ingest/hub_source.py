"""A Hub source's rows and its preflight check, from files resolved once per pinned commit.

Which files a source (repo, commit, configs, split) needs is recorded in the source cache the
first time, so a pinned source fetched before (`pipeline sources --download`) is read, and
checked, with no network at all.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from schemas.config import HubSource
from schemas.errors import UserError
from stages.ingest.access import SourceAccess
from stages.ingest.batches import RowBatch, arrow_batch, batches_from_rows
from stages.ingest.datafiles import column_batches, read_columns
from stages.ingest.hub import SHA, HubRepo, hub_label, safe_name
from stages.ingest.readers import RawRow


def resolve_manifest_path(access: SourceAccess, spec: HubSource) -> Path:
    """Where the files one source (repo, revision, configs, split) resolved to are recorded: one
    record per source, since tasks share repos and commits but not configs."""
    from stages.base import fingerprint

    key = fingerprint(spec.name, spec.source and spec.source.name, spec.target and spec.target.name, spec.split)[:16]
    return access.download_dir / "hub" / spec.path.replace("/", "__") / f"{spec.revision}.{key}.resolved.json"


def hub_rows(spec: HubSource, access: SourceAccess, progress=None) -> Iterator[RawRow]:
    """Rows of a Hub source: one config with two fields, or two configs joined by sentence id."""
    name = hub_label(spec)
    for index, (source, target) in enumerate(_pairs(spec, resolved_files(spec, access, progress)), start=1):
        yield RawRow(name, index, source, target)


def hub_batches(spec: HubSource, access: SourceAccess, progress=None) -> Iterator[RowBatch]:
    """The rows of `hub_rows` as batches. One config with two fields is read shard by shard,
    batch by batch; two configs joined by sentence id are read whole (such datasets are small)."""
    files = resolved_files(spec, access, progress)
    name = hub_label(spec)
    if spec.source is not None and spec.target is not None:
        yield from batches_from_rows(RawRow(name, i, s, t) for i, (s, t) in enumerate(_pairs(spec, files), start=1))
        return
    fields, line = [spec.source_field or "", spec.target_field or ""], 1
    for path in files["pair"]:
        for columns in column_batches(path, fields):
            batch = arrow_batch(name, line, columns[fields[0]], columns[fields[1]])
            line += len(batch)
            yield batch


def _pairs(spec: HubSource, files: dict[str, list[Path]]) -> list[tuple[object, object]]:
    if spec.source is not None and spec.target is not None:
        sources = _concat(files["source"], [spec.source.field], ("id",))
        targets = _concat(files["target"], [spec.target.field], ("id",))
        if sources["id"] != targets["id"]:
            raise UserError(f"{spec.path}: configs {spec.source.name!r} and {spec.target.name!r} do not hold the "
                            f"same sentence ids in {spec.split!r} (rows {len(sources['id'])} and "
                            f"{len(targets['id'])}); they cannot be paired")
        return list(zip(sources[spec.source.field], targets[spec.target.field]))
    columns = _concat(files["pair"], [spec.source_field or "", spec.target_field or ""])
    return list(zip(columns[spec.source_field], columns[spec.target_field]))


def _concat(paths: list[Path], fields: list[str], optional: tuple[str, ...] = ()) -> dict[str, list]:
    out: dict[str, list] = {f: [] for f in (*fields, *optional)}
    for path in paths:
        for field, values in read_columns(path, fields, optional).items():
            out[field].extend(values)
    return out


def _cached_files(spec: HubSource, access: SourceAccess) -> dict[str, list[Path]] | None:
    """The local copies of a pinned source fetched before, when all of them are still there."""
    if not (spec.revision and SHA.match(spec.revision)):
        return None
    record = resolve_manifest_path(access, spec)
    try:
        recorded = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
    except ValueError:
        return None
    if not isinstance(recorded, dict):
        return None
    folder = record.parent / spec.revision
    cached = {side: [folder / safe_name(n) for n in names] for side, names in recorded.items()}
    return cached if all(p.is_file() for paths in cached.values() for p in paths) else None


def resolved_files(spec: HubSource, access: SourceAccess, progress=None) -> dict[str, list[Path]]:
    """Local copies of every file the source needs. Offline, a pinned source whose files were
    fetched before (`pipeline sources --download`) is served from the cache alone."""
    cached = _cached_files(spec, access)
    if cached is not None:
        return cached
    repo = HubRepo(spec, access)
    sides = {"source": spec.source.name, "target": spec.target.name} if spec.source and spec.target \
        else {"pair": spec.name}
    names = {side: repo.data_files(config, spec.split) for side, config in sides.items()}
    out = {side: [repo.local_file(n, progress) for n in files] for side, files in names.items()}
    if spec.revision and repo.commit == spec.revision:
        from stages.base import write_json_atomically

        write_json_atomically(resolve_manifest_path(access, spec),
                              {side: [safe_name(n) for n in files] for side, files in names.items()})
    return out


def check_hub(spec: HubSource, access: SourceAccess, require_pin: bool = False) -> dict:
    """Probe without downloading data: config and split exist, access granted, revision pinned
    (an error with `require_pin`, else reported as `pinned: False`). A pinned source fetched
    before (`pipeline sources --download`) needs no network."""
    pinned = bool(spec.revision and SHA.match(spec.revision))
    cached = _cached_files(spec, access)
    if cached is not None:
        paths = [p for side in cached.values() for p in side]
        return {"files": len(paths), "bytes": sum(p.stat().st_size for p in paths), "pinned": True, "cached": True}
    repo = HubRepo(spec, access)
    if require_pin and not pinned:
        raise UserError(f"{spec.path}: revision not pinned; set `revision: {repo.commit}` (the newest commit "
                        "of main) in the task YAML")
    sides = [spec.source.name, spec.target.name] if spec.source and spec.target else [spec.name]
    files = [f for config in sides for f in repo.data_files(config, spec.split)]
    sizes = repo.files()
    repo.check_access(files[0])
    return {"files": len(files), "bytes": sum(sizes.get(f) or 0 for f in files), "pinned": pinned,
            "licence": (repo.info.get("cardData") or {}).get("license")}
