"""`pipeline export`: a version folder laid out as a Hub dataset repository, on local disk.

Each split folder becomes a config with Parquet shards under `data/<config>/`, and the card's YAML
declares the configs, so `datasets.load_dataset(folder_or_repo, "train-contrastive")` returns the
rows of `load_from_disk(<version>/train-contrastive)` in the same order with the same features.
Only the data, the card and the manifest (machine paths cut to file names) are written: nothing
else from the builder's machine goes into what is published.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from pathlib import Path

from pipeline.store import read_manifest
from schemas.errors import UserError

MAX_SHARD_BYTES = 256 * 2**20  # Arrow bytes per Parquet file: large splits go up in shards
# Hugging Face, OpenAI, Google and generic `sk-`/`ghp_` tokens, as they may be pasted into an option
KEY_LIKE = re.compile(r"\b(?:hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|AIza[0-9A-Za-z_-]{30,}|ghp_[A-Za-z0-9]{30,})")


def refuse_keys(name: str, text: str) -> str:
    """A key pasted into a build option (`--paraphraser-option api_key=...`) reaches the manifest;
    it must never reach a public repository."""
    found = KEY_LIKE.search(text)
    if found:
        raise UserError(f"{name} of this version holds something that looks like an API key "
                        f"({found.group()[:6]}...); rebuild without it in the options (keys belong in the environment)")
    return text


def shard_count(num_bytes: int, max_bytes: int = MAX_SHARD_BYTES) -> int:
    return max(1, math.ceil(num_bytes / max_bytes))


def write_shards(dataset, folder: Path, split: str, max_bytes: int = MAX_SHARD_BYTES) -> int:
    """The rows in order as `<split>-0000i-of-0000n.parquet`; the Arrow schema carries the
    datasets features, so nested columns (`examples`) read back with their types."""
    import pyarrow.parquet as pq

    table = dataset.flatten_indices().data.table  # rows as the dataset shows them, selections applied
    schema = dataset.features.arrow_schema
    shards = min(shard_count(table.nbytes, max_bytes), max(table.num_rows, 1))  # never an empty shard
    per_shard = math.ceil(table.num_rows / shards) if table.num_rows else 0
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(shards):
        part = table.slice(index * per_shard, per_shard).cast(schema)
        path = folder / f"{split}-{index:05d}-of-{shards:05d}.parquet"
        pq.write_table(part, path)
    return shards


def split_info(config: str, split: str, dataset):
    """What the card's `dataset_info` says of one config: its features and its row count."""
    from datasets import DatasetInfo, SplitDict, SplitInfo

    splits = SplitDict(dataset_name="ictrain")
    splits.add(SplitInfo(name=split, num_examples=len(dataset), num_bytes=dataset.data.table.nbytes,
                         dataset_name="ictrain"))
    return DatasetInfo(features=dataset.features, config_name=config, dataset_name="ictrain", splits=splits)


def write_export(folder: Path, target: Path, license_override: str | None, repo_id: str | None,
                 log=None) -> None:
    """Fill `target` (a fresh folder) with data/, README.md and manifest.json."""
    from pipeline.card import dataset_card
    from pipeline.hub_card import CONFIG_SPLIT, hub_card
    from pipeline.store import SPLIT_FOLDERS, load_split, without_machine_paths

    log = log or (lambda line: None)
    manifest = without_machine_paths(read_manifest(folder))
    infos, tables = {}, {}
    for name, config in SPLIT_FOLDERS.items():
        dataset = load_split(folder / config)
        tables[name] = dataset.data.table
        if not len(dataset):  # `load_dataset` cannot open a split of 0 rows: no config for it
            log(f"skipped {config}: 0 rows (see the card's warnings)")
            continue
        split = CONFIG_SPLIT[config]
        shards = write_shards(dataset, target / "data" / config, split)
        log(f"exported {config}: {len(dataset)} rows in {shards} Parquet shard(s)")
        infos[config] = split_info(config, split, dataset)
    body = dataset_card(manifest, tables, "Load a split with `datasets.load_dataset(<repository>, <config>)` "
                                          "(see Loading).")
    card = hub_card(manifest, body, infos, license_override, repo_id)
    (target / "README.md").write_text(refuse_keys("the card", card), encoding="utf-8")
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    (target / "manifest.json").write_text(refuse_keys("manifest.json", text), encoding="utf-8")


def _is_replaceable(out: Path) -> bool:
    """An existing --out may be replaced only when it is empty or an earlier export."""
    if not out.exists():
        return True
    if not out.is_dir():
        return False
    names = {p.name for p in out.iterdir()}
    return not names or names == {"manifest.json", "README.md", "data"}  # never a clone (.git) or more


def export_version(folder: Path, out: Path, license_override: str | None = None, repo_id: str | None = None,
                   log=None) -> Path:
    """Write the repository layout of version `folder` to `out`, atomically (temp folder, then rename)."""
    from pipeline.hub_card import card_license

    folder, out = Path(folder), Path(out)
    card_license(read_manifest(folder), license_override)  # a bad --license fails before any writing
    if not _is_replaceable(out):
        raise UserError(f"--out {out}: exists and is not an earlier export; give a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-export-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write_export(folder, tmp, license_override, repo_id, log)
        if out.exists():
            trash = out.parent / f".old-export-{uuid.uuid4().hex[:8]}"
            os.replace(out, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.replace(tmp, out)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write the export ({exc.strerror or exc}); check space and permissions")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def exported_files(out: Path) -> list[str]:
    """Every file of an export, relative and with forward slashes, in a stable order."""
    return sorted(p.relative_to(out).as_posix() for p in Path(out).rglob("*") if p.is_file())
