"""Ingest's scratch folder: `.ingest-<pid>-<random>/` under the cache folder, holding the spill
of every usable row while a build samples them.

A build killed by SIGKILL or the OOM killer cannot delete its folder, and the cache pruner skips
dot-names, so each ingest first removes the `.ingest-*` folders whose process is gone (the pid in
the name is not alive). A folder whose pid has since been reused by another process is left
until that process ends; a folder of a live build is never touched.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

PREFIX = ".ingest-"


@contextlib.contextmanager
def scratch_folder(parent: Path | None) -> Iterator[Path]:
    """A fresh scratch folder in `parent` (default: the temp dir), stale ones cleared first;
    removed on exit."""
    parent = Path(parent if parent is not None else tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    clear_stale(parent)
    with tempfile.TemporaryDirectory(prefix=f"{PREFIX}{os.getpid()}-", dir=parent) as folder:
        yield Path(folder)


def clear_stale(parent: Path) -> list[Path]:
    """Remove the scratch folders in `parent` whose process is not alive; the ones removed."""
    removed = []
    for folder in parent.glob(f"{PREFIX}*"):
        pid = _pid_of(folder.name)
        if pid is not None and folder.is_dir() and not _alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _pid_of(name: str) -> int | None:
    stamp = name[len(PREFIX):].split("-", 1)[0]
    return int(stamp) if stamp.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
