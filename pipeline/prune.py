"""`pipeline prune`: delete old version folders of a task and the stage caches no version uses.

Only two kinds of folder are ever deleted: version folders directly under OUT/<task> (never the
one `latest` points to) and stage cache folders `<cache>/stages/<stage>/<fingerprint[:24]>` that
no remaining version manifest under OUT lists, of any task, since one cache serves every task.
The per-text embedding cache and the paraphrase answer cache are keyed by content and shared by
every task and build, so they stay. Nothing is deleted or measured through a symbolic link;
links are read only to find references, which can only keep more.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.inspect import known_task_dir
from pipeline.store import list_versions

STAGE_CACHE_NAME = re.compile(r"[0-9a-f]{24}")
SHARED_CACHES = ("embeddings", "paraphrase", "sources")


@dataclass
class Doomed:
    what: str  # "version" or "stage cache"
    path: Path
    size: int


@dataclass
class PrunePlan:
    doomed: list[Doomed] = field(default_factory=list)
    kept_versions: list[str] = field(default_factory=list)
    kept_caches: int = 0
    notes: list[str] = field(default_factory=list)


def human_size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def folder_size(folder: Path) -> int:
    """Bytes of the files under `folder`, links counted as links (os.walk does not follow them)."""
    return sum(os.lstat(os.path.join(root, name)).st_size
               for root, _, files in os.walk(folder) for name in files)


def _real_subfolders(folder: Path) -> list[Path]:
    """Visible subfolders that are not links: the only things prune may measure or delete."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and not p.is_symlink() and p.is_dir())


def split_versions(out_dir: Path, task: str, keep: int) -> tuple[list[dict], list[dict]]:
    """(kept, dropped) versions: the `keep` newest by creation time, plus the one `latest` names."""
    task_dir = out_dir / task
    if not task_dir.is_dir() or task_dir.is_symlink():
        return [], []
    rows = list_versions(out_dir, task)  # version folders only: no links, no temp folders
    rows.sort(key=lambda r: (r["created"], (Path(r["path"]) / "manifest.json").stat().st_mtime_ns), reverse=True)
    kept = [r for i, r in enumerate(rows) if i < keep or r["latest"]]
    return kept, [r for r in rows if r not in kept]


def referenced_caches(out_dir: Path, dropped: set[Path]) -> set[tuple[str, str]] | None:
    """(stage, fingerprint[:24]) listed by every version under OUT except `dropped`; None when a
    manifest cannot be read, since then nobody can tell which caches are in use."""
    refs: set[tuple[str, str]] = set()
    for task_dir in (p for p in sorted(out_dir.iterdir()) if p.is_dir() and not p.name.startswith(".")):
        for folder in (p for p in sorted(task_dir.iterdir()) if not p.name.startswith(".")):
            manifest_path = folder / "manifest.json"
            if folder.resolve() in dropped or not manifest_path.is_file():
                continue
            try:
                stages = json.loads(manifest_path.read_text(encoding="utf-8"))["stages"]
                refs.update((name, str(entry["fingerprint"])[:24]) for name, entry in stages.items())
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                return None
    return refs


def stage_cache_root(out_dir: Path, cache_dir: str | None) -> Path | None:
    """`<cache>/stages`, or None where reaching it would mean following a link out of OUT."""
    root = Path(cache_dir) if cache_dir else out_dir / ".cache"
    if (not cache_dir and root.is_symlink()) or (root / "stages").is_symlink():
        return None
    return root / "stages"


def plan_prune(out_dir: Path, task: str, keep: int, cache_dir: str | None = None) -> PrunePlan:
    plan = PrunePlan()
    kept, dropped = split_versions(out_dir, task, keep)
    plan.kept_versions = [r["version"] + (" (latest)" if r["latest"] else "") for r in kept]
    plan.doomed += [Doomed("version", Path(r["path"]), folder_size(Path(r["path"]))) for r in dropped]
    stage_root = stage_cache_root(out_dir, cache_dir)
    refs = referenced_caches(out_dir, {Path(r["path"]).resolve() for r in dropped}) if out_dir.is_dir() else set()
    if stage_root is None:
        plan.notes.append(f"{out_dir / '.cache'} is a link out of {out_dir}: stage caches left alone "
                          f"(pass --cache-dir to prune them)")
    elif refs is None:
        plan.notes.append("a version manifest under OUT cannot be read: stage caches left alone")
    else:
        for stage_dir in _real_subfolders(stage_root):
            for entry in _real_subfolders(stage_dir):
                if not STAGE_CACHE_NAME.fullmatch(entry.name):
                    continue  # not a stage cache folder: not ours to judge
                if (stage_dir.name, entry.name) in refs:
                    plan.kept_caches += 1
                else:
                    plan.doomed.append(Doomed("stage cache", entry, folder_size(entry)))
    return plan


def delete(plan: PrunePlan) -> None:
    for item in plan.doomed:
        if not item.path.is_symlink():  # rmtree removes links inside a folder, never their targets
            shutil.rmtree(item.path)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def report(plan: PrunePlan, task: str, cache_root: Path, dry_run: bool) -> list[str]:
    lines = ["would delete (dry run, nothing deleted):" if dry_run else "deleted:"] if plan.doomed \
        else ["nothing to delete"]
    width = max((len(str(d.path)) for d in plan.doomed), default=0)
    lines += [f"  {d.what:<11}  {str(d.path):<{width}}  {human_size(d.size):>10}" for d in plan.doomed]
    if plan.doomed:
        total = human_size(sum(d.size for d in plan.doomed))
        lines.append(f"total {total} in {_count(len(plan.doomed), 'folder')}{' would be freed' if dry_run else ' freed'}")
    lines.append(f"kept: {_count(len(plan.kept_versions), 'version')} of {task}"
                 + (f" ({', '.join(plan.kept_versions)})" if plan.kept_versions else "")
                 + f", {_count(plan.kept_caches, 'stage cache')} that remaining versions use")
    lines += [f"note: {note}" for note in plan.notes]
    shared = ", ".join(str(cache_root / name) for name in SHARED_CACHES)
    lines.append(f"left alone: {shared} (embeddings, paraphrase answers and downloaded sources, keyed by content "
                 "and shared by every task; delete a folder by hand to reclaim it)")
    return lines


def cmd_prune(out_dir: str, task: str, keep: int, cache_dir: str | None, dry_run: bool) -> int:
    out = Path(out_dir)
    name = known_task_dir(out, task).name
    plan = plan_prune(out, name, keep, cache_dir)
    if not dry_run:
        delete(plan)
    print("\n".join(report(plan, name, Path(cache_dir) if cache_dir else out / ".cache", dry_run)))
    return 0
