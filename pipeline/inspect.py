"""`pipeline versions`, `show` and `tasks`: look at what was built without loading a model."""
from __future__ import annotations

import re
from pathlib import Path

from schemas.errors import UserError
from pipeline.card import build_warnings
from pipeline.store import SPLIT_FOLDERS, list_versions, load_split, read_manifest
from pipeline.tasks import builtin_tasks, load_task


def known_task_dir(out_dir: Path, task: str) -> Path:
    """OUT/<task> for a built-in task, a task YAML (by the name it declares) or a task built under
    OUT; anything else is a typo, and "no built versions" would hide it."""
    path = Path(task)
    name = load_task(task).name if path.suffix in (".yaml", ".yml") and path.is_file() else task
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"--task {task!r}: not a task name; give a built-in task or a task YAML path")
    folder = Path(out_dir) / name
    if name not in builtin_tasks() and not folder.is_dir():
        raise UserError(f"unknown task {name!r}: nothing built under {folder}, and the built-in tasks are "
                        f"{', '.join(builtin_tasks())} (`pipeline tasks` describes them)")
    return folder


def cmd_versions(out_dir: str, task: str) -> int:
    name = known_task_dir(Path(out_dir), task).name
    rows = list_versions(Path(out_dir), name)
    if not rows:
        print(f"no built versions of {name} under {out_dir}; build one with "
              f"`pipeline build --task {task} --out {out_dir}`")
        return 0
    for row in rows:
        counts = " ".join(f"{k}={v}" for k, v in row["rows"].items())
        print(f"{row['version']}{' (latest)' if row['latest'] else ''}  {row['created']}  {counts}")
    return 0


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s+", " ".join(text.split()), maxsplit=1)[0]


def cmd_tasks() -> int:
    names = builtin_tasks()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {first_sentence(load_task(name).description)}")
    return 0


def cmd_show(path: Path, prompts_per_split: int = 2) -> int:
    manifest = read_manifest(path)
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
