"""The example index on disk and what goes into it: a SIGKILL that lands inside an append's write,
damage in the middle of the log, fsyncs on create, and pair files read and judged by ingest."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import stages.index.files as index_files
from pipeline.index import create_index, open_index
from schemas.errors import UserError
from stages.index.files import LOG
from tests.conftest import run_pipeline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def index_dir(align_synth_version, tmp_path_factory) -> Path:
    return create_index(align_synth_version, tmp_path_factory.mktemp("index") / "idx")


@pytest.fixture
def folder(index_dir, tmp_path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(index_dir, copy)
    return copy


# Appends 300 pairs as one record in a child process that stops inside the write and says so:
# "torn" after half the line reached the file, "written" after all of it, before the fsync.
_STALLED_ADD = textwrap.dedent("""
    import os, sys, time
    from pipeline.index import open_index

    folder, stop_at = sys.argv[1], sys.argv[2]

    def stall(what):
        print(what, flush=True)
        time.sleep(120)

    class HalfWrites:
        def __init__(self, handle):
            self.handle, self.calls = handle, 0
        def write(self, data):
            self.calls += 1
            if self.calls == 2:
                stall("torn")
            return self.handle.write(data[: len(data) // 2])
        def __getattr__(self, name):
            return getattr(self.handle, name)

    index = open_index(folder, writable=True)
    if stop_at == "torn":
        index._log._handle = HalfWrites(index._log._handle)
    else:
        os.fsync = lambda fd: stall("written")
    index.add([(f"Z{i} A B", f"z{i}") for i in range(300)])
""")


@pytest.mark.parametrize("stop_at, added", [("torn", 0), ("written", 300)])
def test_sigkill_inside_the_write_leaves_the_append_fully_in_or_out(folder, stop_at, added):
    base = len(open_index(folder))
    proc = subprocess.Popen([sys.executable, "-c", _STALLED_ADD, str(folder), stop_at], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == stop_at, proc.stderr.read()
        written = (folder / LOG).stat().st_size
        assert written > 10_000  # the kill lands with (part of) the 300-pair line in the file
    finally:
        proc.kill()
        proc.wait()
    assert (folder / LOG).stat().st_size == written
    index = open_index(folder, writable=True)
    assert len(index) == base + added
    assert index.contains("Z299 A B", "z299") == bool(added)
    report = index.add([(f"Z{i} A B", f"z{i}") for i in range(300)])
    index.close()
    assert report["added"] == 300 - added and len(open_index(folder)) == base + 300


def _append_three(folder: Path) -> list[int]:
    """Three appends; the byte offset where each line starts."""
    index = open_index(folder, writable=True)
    starts = []
    for i in range(3):
        starts.append((folder / LOG).stat().st_size if (folder / LOG).exists() else 0)
        index.add([(f"K L {i}", f"k{i}")])
    index.close()
    return starts


def test_a_corrupt_line_before_the_end_raises_and_nothing_is_cut(folder):
    starts = _append_three(folder)
    data = bytearray((folder / LOG).read_bytes())
    data[starts[1] + 20] ^= 0x01  # the middle record: its checksum no longer matches
    (folder / LOG).write_bytes(bytes(data))
    for writable in (False, True):
        with pytest.raises(UserError, match=rf"{LOG}: corrupt record at byte {starts[1]} ") as caught:
            open_index(folder, writable=writable)
        assert "\n" not in str(caught.value)
    assert (folder / LOG).read_bytes() == bytes(data)  # the later, acknowledged append is still there
    code, _, err = run_pipeline("index", "query", str(folder), "K L")
    assert code == 2 and err.startswith("error:") and f"byte {starts[1]}" in err


def test_a_corrupt_final_line_is_a_torn_write_and_is_cut(folder):
    starts = _append_three(folder)
    data = bytearray((folder / LOG).read_bytes())
    data[starts[2] + 20] ^= 0x01
    (folder / LOG).write_bytes(bytes(data))
    index = open_index(folder, writable=True)
    assert index.contains("K L 1", "k1") and not index.contains("K L 2", "k2")
    index.close()
    assert (folder / LOG).stat().st_size == starts[2]


def test_create_fsyncs_every_file_the_folder_and_then_its_parent(align_synth_version, tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(index_files.os, "fsync", recording_fsync)
    folder = create_index(align_synth_version, tmp_path / "out" / "idx")
    assert synced[-1] == str((tmp_path / "out").resolve())  # the rename, after the contents
    tmp_names = {Path(path).name for path in synced[:-1] if Path(path).parent.name.startswith(".tmp-idx-")}
    assert tmp_names == {path.name for path in folder.iterdir()}
    assert any(Path(path).name.startswith(".tmp-idx-") for path in synced[:-1])  # the folder's own entries


def test_add_reads_files_as_ingest_and_reports_rejects_by_file_and_line(folder, tmp_path):
    csv = tmp_path / "pairs.csv"
    csv.write_bytes("\ufeffnote,target,source\nx,\"k, 1\",C1 D\ny,k2,\n".encode() + b"z,k3,C3 \xff\n")
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text('{"source": "J1 K", "target": 7}\n{not json\n{"source": "J2 \\ud800", "target": "j2"}\n'
                     '{"source": "J3 K", "target": "j3"}\n', encoding="utf-8")
    code, out, err = run_pipeline("index", "add", str(folder), str(csv))
    report = json.loads(out)
    assert code == 0 and report["added"] == 1, err
    assert [(r["file"], r["line"], r["reason"]) for r in report["rejected"]] == \
        [("pairs.csv", 3, "empty source"), ("pairs.csv", 4, "undecodable bytes")]
    code, out, err = run_pipeline("index", "add", str(folder), str(jsonl))
    report = json.loads(out)
    assert code == 0 and report["added"] == 2, err
    assert [(r["line"], r["reason"]) for r in report["rejected"]] == [(2, "unparsable row"), (3, "undecodable bytes")]
    index = open_index(folder)
    assert index.contains("C1 D", "k, 1") and index.contains("J1 K", "7") and index.contains("J3 K", "j3")
    code, _, err = run_pipeline("index", "add", str(folder), str(ROOT / "pyproject.toml"))
    assert code == 2 and "unknown file type '.toml'" in err


def test_a_query_with_a_lone_surrogate_is_a_one_line_error(folder):
    index = open_index(folder)
    with pytest.raises(UserError, match="lone surrogate"):
        index.query("A \ud800 B")
    assert not index.contains("A \ud800", "b")
