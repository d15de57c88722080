"""One entry point per question about a split's source, whatever its kind (file, Hub, OPUS).

- `split_source`: the source a split actually uses (a command-line file overrides the YAML);
- `describe_source`: its input fingerprint, which goes into the version id and the published
  manifest, so it holds no path of the builder's machine (a file is named and hashed);
- `check_source`: the preflight probe (nothing downloaded); `source_rows`: the rows themselves.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

from schemas.config import SourceSpec, TaskConfig
from schemas.errors import UserError
from stages.ingest.access import SourceAccess
from stages.ingest.batches import RowBatch, batches_from_rows, parquet_batches
from stages.ingest.readers import RawRow, file_fingerprint, local_kind, read_local

SPLIT_FLAGS = {"train": "--train", "test": "--test", "test_ood": "--test-ood"}
SPLITS = tuple(SPLIT_FLAGS)


def split_source(task: TaskConfig, split: str, override: str | None) -> SourceSpec | None:
    spec: SourceSpec | None = getattr(task, split)
    if override:
        return SourceSpec(path=override, source_column=spec.source_column if spec else "source",
                          target_column=spec.target_column if spec else "target")
    return spec


def describe_source(spec: SourceSpec | None) -> dict:
    """The input fingerprint of one split: a file's name and sha256, or the remote coordinates."""
    if spec is None:
        return {}
    if spec.path:
        path = Path(spec.path)
        return {"file": path.name, "sha256": file_fingerprint(path) if path.is_file() else None}
    if spec.hub:
        return {"hub": spec.hub.model_dump(exclude_none=True)}
    if spec.opus:
        return {"opus": {**spec.opus.model_dump(), "pair": spec.opus.pair}}
    return {}


def label(spec: SourceSpec) -> str:
    """How the source is named to the user: file name, `hub:repo/config/split` or `opus:...`."""
    if spec.path:
        return Path(spec.path).name
    if spec.hub:
        from stages.ingest.hub import hub_label

        return hub_label(spec.hub)
    if spec.opus:
        from stages.ingest.opus import opus_label

        return opus_label(spec.opus)
    return "none"


def check_source(spec: SourceSpec, split: str, access: SourceAccess, require_pin: bool = False) -> dict:
    """Raise UserError (one line) when the source cannot be read; else figures about it."""
    if spec.path:
        path = Path(spec.path)
        if not path.is_file():
            raise UserError(f"{spec.path}: file not found; check the path given to {SPLIT_FLAGS[split]} "
                            "(or in the task YAML)")
        return {"files": 1, "bytes": path.stat().st_size}
    if spec.hub:
        from stages.ingest.hub_source import check_hub

        return check_hub(spec.hub, access, require_pin)
    if spec.opus:
        from stages.ingest.opus import check_opus

        return check_opus(spec.opus, access)
    raise UserError(f"the {split} split declares no source; pass {SPLIT_FLAGS[split]} PATH")


def source_batches(spec: SourceSpec, access: SourceAccess, progress=None) -> Iterator[RowBatch]:
    """The rows of `source_rows` as columnar batches; Parquet files and Hub shards are read by
    Arrow batch by batch, never as one whole column."""
    if spec.path and local_kind(Path(spec.path), spec.source_column, spec.target_column) == "parquet":
        return parquet_batches(Path(spec.path), spec.source_column, spec.target_column)
    if spec.hub:
        from stages.ingest.hub_source import hub_batches

        return hub_batches(spec.hub, access, progress)
    return batches_from_rows(source_rows(spec, access, progress))


def source_rows(spec: SourceSpec, access: SourceAccess, progress=None) -> Iterator[RawRow]:
    if spec.path:
        return read_local(Path(spec.path), spec.source_column, spec.target_column)
    if spec.hub:
        from stages.ingest.hub_source import hub_rows

        return hub_rows(spec.hub, access, progress)
    if spec.opus:
        from stages.ingest.opus import opus_rows

        return opus_rows(spec.opus, access, progress)
    raise UserError("a source with neither path, hub nor opus")
