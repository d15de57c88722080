"""The example index's append-only log: one line per append, fsync'd before the append counts.

A line is `<crc32 hex> <json>\\n`. An append is in the index exactly when its whole line is on
disk with a matching checksum, so a crash (SIGKILL, power loss) while writing leaves the append
fully out: the torn tail fails the check, `read_log` stops there, and the next writer cuts it off
before writing. Only the last line can be torn that way: a bad line with records after it is
damage (disk, a hand edit) and loading refuses it, naming the byte, rather than drop the later,
acknowledged appends. Embeddings travel in the record (base64 float32), so replaying the log on load
never runs the embedder and gives back the very vectors the append stored.
"""
from __future__ import annotations

import base64
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas.errors import UserError
from stages.base import fsync_path


@dataclass
class LogRecord:
    """One append: its pairs and their embeddings (rows in the order of the pairs)."""

    ids: list[str]
    sources: list[str]
    targets: list[str]
    embeddings: np.ndarray

    def to_line(self) -> bytes:
        vectors = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        body = json.dumps({"ids": self.ids, "sources": self.sources, "targets": self.targets,
                           "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
                           "emb": base64.b64encode(vectors.tobytes()).decode("ascii")},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return b"%08x " % zlib.crc32(body) + body + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> "LogRecord | None":
        """The record of a complete line, or None when the line is torn or corrupt."""
        if len(line) < 10 or not line.endswith(b"\n") or line[8:9] != b" ":
            return None
        body = line[9:-1]
        try:
            if int(line[:8], 16) != zlib.crc32(body):
                return None
            data = json.loads(body)
            vectors = np.frombuffer(base64.b64decode(data["emb"]), dtype=np.float32)
            return cls(data["ids"], data["sources"], data["targets"], vectors.reshape(len(data["ids"]), data["dim"]))
        except (ValueError, KeyError):
            return None


def read_log(path: Path) -> tuple[list[LogRecord], int]:
    """Every complete record in order, and the byte length of that valid prefix. Only the final
    line may be bad (a write torn by a crash: left out here, cut by the next writer); a bad line
    with data after it is damage, not a torn write, and raises rather than hide later appends.
    The file is read whole first, so a line still being appended reads as the final one."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records, offset = [], 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        end = len(data) if end < 0 else end + 1
        record = LogRecord.from_line(data[offset:end])
        if record is None:
            if end < len(data):
                raise UserError(f"{path}: corrupt record at byte {offset} with more records after it (damage, not "
                                f"a torn write); restore the index from a backup, or cut the log there "
                                f"(truncate -s {offset}) to drop it and every later append")
            break
        records.append(record)
        offset = end
    return records, offset


class AppendLog:
    """The writer's handle: opened once, torn tail cut, each `write` durable when it returns."""

    def __init__(self, path: Path, valid_bytes: int):
        self.path = Path(path)
        new = not self.path.exists()
        self._handle = open(self.path, "ab", buffering=0)
        if self._handle.tell() > valid_bytes:
            self._handle.truncate(valid_bytes)
            os.fsync(self._handle.fileno())
        if new:
            fsync_path(self.path.parent)  # a new file's name is durable only once its folder is

    def write(self, record: LogRecord) -> None:
        """Durable on return. A failed write (disk full) is cut off again, so the next append
        does not land behind a torn line that would hide it from `read_log`."""
        start = self._handle.tell()
        try:
            line = memoryview(record.to_line())
            while line:  # an unbuffered write may take only part of the line
                line = line[self._handle.write(line):]
            os.fsync(self._handle.fileno())
        except OSError:
            self._handle.truncate(start)
            raise

    def close(self) -> None:
        self._handle.close()
