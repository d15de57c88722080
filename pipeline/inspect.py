"""`pipeline versions` and `pipeline show`: look at what was built without loading a model."""
from __future__ import annotations

import json
from pathlib import Path

from schemas.errors import UserError
from pipeline.card import build_warnings
from pipeline.store import SPLIT_FOLDERS, list_versions, load_split


def cmd_versions(out_dir: str, task: str) -> int:
    rows = list_versions(Path(out_dir), task)
    if not rows:
        print(f"no built versions of {task} under {out_dir}")
        return 0
    for row in rows:
        counts = " ".join(f"{k}={v}" for k, v in row["rows"].items())
        print(f"{row['version']}{' (latest)' if row['latest'] else ''}  {row['created']}  {counts}")
    return 0


def cmd_show(path: Path, prompts_per_split: int = 2) -> int:
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise UserError(f"{path}: not a version folder (no manifest.json); give OUT/<task>/<version> or OUT/<task>/latest")
    manifest = json.loads(manifest_path.read_text())
    print(f"{manifest['task']} version {manifest['version']} built {manifest['created']}")
    for warning in build_warnings(manifest):
        print(f"warning: {warning}")
    for folder in SPLIT_FOLDERS.values():
        ds = load_split(path / folder)
        kinds = {}
        for kind in ds["context_kind"]:
            kinds[kind] = kinds.get(kind, 0) + 1
        print(f"\n== {folder}: {len(ds)} rows" + (f"; context kinds {kinds}" if len(ds) else " (empty)"))
        for row in ds.select(range(min(prompts_per_split, len(ds)))):
            print(f"--- {row['id']} (max_sim {row['max_sim']:.2f})")
            print(row["prompt"] + row["completion"])
    return 0
