"""The versioned store: `OUT/<task>/<version>/` folders, published whole or not at all.

A version is written into a hidden temp folder, the manifest last, then renamed into place and
`latest` re-pointed, so a crash never leaves a folder that looks complete. A full disk or an
unwritable folder ends the build with one line naming the folder, its temp folders removed.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa

from schemas.config import BuildConfig, RunOptions
from schemas.errors import UserError
from stages.base import StageResult, fingerprint, write_json_atomically, writing

SPLIT_FOLDERS = {"train_zero": "train-zero", "train_random": "train-random", "train_similar": "train-similar",
                 "train_contrastive": "train-contrastive", "eval": "eval", "probe": "probe"}


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of a version folder, or one line saying what folder to give instead."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise UserError(f"{folder}: not a version folder (no manifest.json); give OUT/<task>/<version> or OUT/<task>/latest")
    return json.loads(path.read_text(encoding="utf-8"))


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("ictrain")
    except Exception:  # running from a source tree that is not installed
        return "0+source"


def save_dataset(table: pa.Table, folder: Path, seed_key: str) -> None:
    """`datasets.load_from_disk`-compatible, byte-identical for identical tables (the datasets
    fingerprint is derived from the content key instead of being random). An empty table still
    gets its one (empty) data file: left to itself, `save_to_disk` writes none for 0 rows and
    `load_from_disk` then fails."""
    import datasets
    from datasets.utils import logging as ds_logging

    was_enabled = ds_logging.is_progress_bar_enabled()
    ds_logging.disable_progress_bar()
    try:
        datasets.Dataset(table, fingerprint=fingerprint(seed_key)[:16]).save_to_disk(
            str(folder), num_shards=None if table.num_rows else 1)
    finally:
        if was_enabled:
            ds_logging.enable_progress_bar()


def load_split(folder: Path):
    """`datasets.load_from_disk`, which also opens an empty split written before empty splits got
    their data file (as a 0-row dataset with the split's features)."""
    import datasets

    state = json.loads((Path(folder) / "state.json").read_text())
    if state.get("_data_files"):
        return datasets.load_from_disk(str(folder))
    info = datasets.DatasetInfo.from_directory(str(folder))
    return datasets.Dataset(info.features.arrow_schema.empty_table(), info=info)


def publish_version(config: BuildConfig, options: RunOptions, version: str, inputs: dict[str, Any],
                    results: dict[str, StageResult]) -> Path:
    task_dir = Path(options.out_dir) / config.task.name
    with writing(task_dir):
        task_dir.mkdir(parents=True, exist_ok=True)
        final = _write_version(config, version, inputs, results, task_dir)
        point_latest(task_dir, version)
    return final


def _write_version(config: BuildConfig, version: str, inputs: dict[str, Any],
                   results: dict[str, StageResult], task_dir: Path) -> Path:
    """Fill a temp folder, manifest last, and rename it to `task_dir/version`."""
    from pipeline.card import dataset_card

    final = task_dir / version
    tmp = task_dir / f".tmp-{version}-{uuid.uuid4().hex[:8]}"
    try:
        assembled = results["assemble"].artifacts
        for name, folder in SPLIT_FOLDERS.items():
            save_dataset(assembled[name], tmp / folder, f"{version}/{folder}/{results['assemble'].fingerprint}")
        rejects = results["ingest"].artifacts["rejects"]
        if rejects.num_rows:
            with open(tmp / "rejects.jsonl", "w", encoding="utf-8") as handle:
                for batch in rejects.to_batches(max_chunksize=1 << 16):  # a corpus may reject millions
                    handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in batch.to_pylist())
        manifest = build_manifest(config, version, inputs, results)
        (tmp / "README.md").write_text(dataset_card(manifest, assembled), encoding="utf-8")
        write_json_atomically(tmp / "manifest.json", manifest)
        if final.exists():
            trash = task_dir / f".old-{version}-{uuid.uuid4().hex[:8]}"
            os.replace(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def point_latest(task_dir: Path, version: str) -> None:
    link = task_dir / "latest"
    tmp = task_dir / f".latest-{uuid.uuid4().hex[:8]}"
    try:
        os.symlink(version, tmp)
        os.replace(tmp, link)
    finally:
        if tmp.is_symlink():
            tmp.unlink()


def without_machine_paths(value: Any) -> Any:
    """The manifest and card are published: absolute paths of the builder's machine (a task YAML's
    file, a paraphrase file, an embedder folder) are cut to their file names."""
    if isinstance(value, dict):
        return {key: without_machine_paths(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_machine_paths(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name
    return value


def published_options(options: dict[str, Any]) -> dict[str, Any]:
    """Paraphraser options as published: file options cut to their names (relative paths name the
    builder's folders too) and a server URL cut to its scheme (its host is the builder's network)."""
    out = dict(options)
    for key in ("path", "model_path"):
        if isinstance(out.get(key), str):
            out[key] = Path(out[key]).name
    if isinstance(out.get("base_url"), str):
        out["base_url"] = out["base_url"].split("://", 1)[0] + "://<server>"
    return out


def build_manifest(config: BuildConfig, version: str, inputs: dict[str, Any],
                   results: dict[str, StageResult]) -> dict[str, Any]:
    dumped = without_machine_paths(config.model_dump(mode="json"))
    dumped["paraphraser_options"] = published_options(dumped.get("paraphraser_options") or {})
    return {"task": config.task.name, "version": version, "config": dumped,
            "inputs": inputs, "package_version": package_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "stages": {name: result.manifest_entry() for name, result in results.items()}}


def list_versions(out_dir: Path, task: str) -> list[dict[str, Any]]:
    task_dir = Path(out_dir) / task
    if not task_dir.is_dir():
        return []
    latest = os.readlink(task_dir / "latest") if (task_dir / "latest").is_symlink() else None
    rows = []
    for folder in sorted(task_dir.iterdir()):
        manifest_path = folder / "manifest.json"
        if folder.name.startswith(".") or folder.is_symlink() or not manifest_path.exists():
            continue
        manifest = json.loads(manifest_path.read_text())
        counts = manifest["stages"].get("assemble", {}).get("counters", {}).get("rows", {})
        rows.append({"version": folder.name, "created": manifest["created"], "latest": folder.name == latest,
                     "path": str(folder), "rows": counts})
    return sorted(rows, key=lambda r: r["created"])
