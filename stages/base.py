"""The one contract every stage follows, and the content-addressed cache of stage outputs.

A stage declares the parameters its output depends on and implements `run`; `execute` does the
rest: fingerprinting, cache lookup, timing, counters and the atomic write. A stage's fingerprint
hashes its name, code version, parameters and its inputs' fingerprints, so changing one knob
reruns that stage and everything downstream of it, and nothing upstream.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from schemas.errors import UserError

DONE_MARKER = "_DONE.json"


def fingerprint(*parts: Any) -> str:
    """sha256 of the canonical JSON of `parts`: explicit values only, never pickled code."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


@dataclass
class StageStats:
    rows_in: int = 0
    rows_out: int = 0
    dropped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    cached: bool = False
    counters: dict[str, Any] = field(default_factory=dict)  # stage-specific figures
    warnings: list[str] = field(default_factory=list)  # the build logs them; the card lists them

    def drop(self, reason: str, n: int = 1) -> None:
        if n:
            self.dropped[reason] += n

    def to_json(self) -> dict[str, Any]:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out,
                "dropped": dict(sorted(self.dropped.items())), "seconds": round(self.seconds, 3),
                "cached": self.cached, **({"counters": self.counters} if self.counters else {}),
                **({"warnings": self.warnings} if self.warnings else {})}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "StageStats":
        return cls(rows_in=data["rows_in"], rows_out=data["rows_out"],
                   dropped=Counter(data.get("dropped", {})), seconds=data.get("seconds", 0.0),
                   cached=data.get("cached", False), counters=data.get("counters", {}),
                   warnings=list(data.get("warnings", [])))


class _PlainWriter:
    """A file seen by numpy as a plain stream: numpy then writes it through `write`, whose errors
    carry their errno (on a real file numpy uses `tofile`, whose short write on a full disk is an
    OSError without one)."""

    def __init__(self, handle):
        self.write = handle.write


def save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.lib.format.write_array(_PlainWriter(handle), np.asarray(array), allow_pickle=False)


class Artifacts(dict):
    """Named outputs of a stage: pyarrow tables, numpy arrays, or JSON-able values."""

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        index = {}
        for name, value in self.items():
            if isinstance(value, pa.Table):
                with ipc.new_file(str(folder / f"{name}.arrow"), value.schema) as writer:
                    writer.write_table(value)
                index[name] = "arrow"
            elif isinstance(value, np.ndarray):
                save_npy(folder / f"{name}.npy", value)
                index[name] = "npy"
            else:
                (folder / f"{name}.json").write_text(json.dumps(value, ensure_ascii=False))
                index[name] = "json"
        (folder / "_index.json").write_text(json.dumps(index, sort_keys=True))

    @classmethod
    def load(cls, folder: Path) -> "Artifacts":
        index = json.loads((folder / "_index.json").read_text())
        out = cls()
        for name, kind in index.items():
            if kind == "arrow":
                with ipc.open_file(str(folder / f"{name}.arrow")) as reader:
                    out[name] = reader.read_all()
            elif kind == "npy":
                out[name] = np.load(folder / f"{name}.npy", allow_pickle=False)
            else:
                out[name] = json.loads((folder / f"{name}.json").read_text())
        return out


@dataclass
class StageResult:
    name: str
    fingerprint: str
    artifacts: Artifacts
    stats: StageStats

    def manifest_entry(self) -> dict[str, Any]:
        return {"fingerprint": self.fingerprint, **self.stats.to_json()}


class Stage(ABC):
    """Subclasses set `name` and `version` and implement `params` and `run` (and `check` where a
    setting outside `params` must suit the inputs)."""

    name: ClassVar[str]
    version: ClassVar[str]  # bump whenever a code change alters the stage's output

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Every value the stage's output depends on (besides its inputs)."""

    @abstractmethod
    def run(self, inputs: dict[str, Artifacts], stats: StageStats) -> Artifacts:
        """Compute the outputs, counting rows in/out and drop reasons into `stats`."""

    def fingerprint(self, upstream: dict[str, str]) -> str:
        return fingerprint(self.name, self.version, self.params(), sorted(upstream.items()))

    def check(self, inputs: dict[str, Artifacts]) -> None:
        """Raise `UserError` when the inputs cannot serve the run's settings. Runs on a cache hit
        too: a cached output may have been made under settings its fingerprint does not hold."""


@dataclass
class StageSpec:
    """A stage placed in a build: the upstream stages it reads, and fingerprints of files it reads
    itself (only ingest has those)."""

    stage: Stage
    inputs: tuple[str, ...]
    extra: dict[str, str] = field(default_factory=dict)


def cache_folder(cache_root: Path, stage_name: str, stage_fingerprint: str) -> Path:
    return Path(cache_root) / "stages" / stage_name / stage_fingerprint[:24]


def execute(stage: Stage, inputs: dict[str, StageResult], cache_root: Path,
            extra_inputs: dict[str, str] | None = None) -> StageResult:
    """Run `stage` or load its cached output. `extra_inputs` are fingerprints of non-stage inputs
    (files read directly) that must also key the cache."""
    fp = stage.fingerprint({**{name: r.fingerprint for name, r in inputs.items()}, **(extra_inputs or {})})
    stage.check({name: result.artifacts for name, result in inputs.items()})
    folder = cache_folder(cache_root, stage.name, fp)
    if (folder / DONE_MARKER).exists():
        started = time.perf_counter()
        artifacts = Artifacts.load(folder)
        stats = StageStats.from_json(json.loads((folder / DONE_MARKER).read_text()))
        stats.cached, stats.seconds = True, time.perf_counter() - started
        return StageResult(stage.name, fp, artifacts, stats)
    stats = StageStats()
    started = time.perf_counter()
    with writing(cache_root):  # a stage's run writes its own caches (embeddings, answers) there too
        artifacts = stage.run({name: result.artifacts for name, result in inputs.items()}, stats)
        stats.seconds = time.perf_counter() - started
        write_folder_atomically(folder, artifacts.save, DONE_MARKER, stats.to_json())
    return StageResult(stage.name, fp, artifacts, stats)


def write_folder_atomically(folder: Path, fill, marker: str, marker_content: Any) -> None:
    """Fill a temp sibling folder, write the marker last, then rename it into place, so a crash
    never leaves a folder that looks complete."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    try:
        fill(tmp)
        write_json_atomically(tmp / marker, marker_content)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomically(path: Path, text: str, encoding: str = "utf-8") -> None:
    """Write a file under a temp name in its folder, then rename it into place: readers (and a
    crash) see the old file or the whole new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_text(text, encoding=encoding)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (new names, renames), to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomically(path: Path, data: Any) -> None:
    write_text_atomically(path, json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n")


# errno -> (what it means, what the user can do about it)
_WRITE_ERRORS = {errno.ENOSPC: ("no space left on device", "free space"),
                 errno.EROFS: ("read-only file system", "make it writable"),
                 errno.EACCES: ("permission denied", "make it writable"),
                 errno.EPERM: ("operation not permitted", "make it writable")}
if hasattr(errno, "EDQUOT"):  # not on every platform
    _WRITE_ERRORS[errno.EDQUOT] = ("disk quota exceeded", "free space")


def write_error(exc: OSError, folder: Path) -> UserError | None:
    """The one-line error for an OSError meaning `folder` cannot be written (disk full, quota,
    read-only, permission), or None for any other error, or one about a file outside `folder`
    (say, an input that cannot be read)."""
    if exc.errno not in _WRITE_ERRORS:
        return None
    names = [name for name in (exc.filename, exc.filename2) if name is not None]
    root = Path(folder).absolute()
    if names and not any(root == p or root in p.parents for p in (Path(os.fsdecode(n)).absolute() for n in names)):
        return None
    reason, remedy = _WRITE_ERRORS[exc.errno]
    return UserError(f"cannot write {folder}: {reason}; {remedy} or pass --out/--cache-dir elsewhere")


@contextmanager
def writing(folder: Path) -> Iterator[None]:
    """Turn a disk-full / read-only / permission OSError raised inside into `write_error`'s UserError."""
    try:
        yield
    except OSError as exc:
        error = write_error(exc, folder)
        if error is None:
            raise
        raise error from exc
