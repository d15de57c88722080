"""A full disk, a quota, a read-only or an unwritable folder: one line naming the folder, no temp
folder left, nothing that looks complete, and the same command succeeds once the disk is freed.

Tests run as root, so permissions never stop a write: the writers are made to fail part-way."""
import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

import pipeline.store
from pipeline.store import SPLIT_FOLDERS, load_split
from stages.base import Artifacts, write_error
from tests.conftest import SMALL, build_small, run_pipeline

REASONS = {errno.ENOSPC: "no space left on device; free space", errno.EDQUOT: "disk quota exceeded; free space",
           errno.EROFS: "read-only file system; make it writable", errno.EACCES: "permission denied; make it writable"}


def _build(out: Path, cache: Path | None = None) -> tuple[int, str, str]:
    cache_args = ["--cache-dir", str(cache)] if cache else []
    return run_pipeline("build", "--task", "align-synth", "--out", str(out), *cache_args, *SMALL)


def _fail_stage_save(monkeypatch, code):
    original = Artifacts.save

    def save(self, folder):
        original(Artifacts(list(self.items())[:1]), folder)  # the first artifact is on disk
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(Artifacts, "save", save)


def _fail_publish(monkeypatch, code, writer):
    original = getattr(pipeline.store, writer)
    calls = []

    def write(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3 or writer == "write_json_atomically":  # the third split, or the manifest
            raise OSError(code, os.strerror(code))
        return original(*args, **kwargs)

    monkeypatch.setattr(pipeline.store, writer, write)


def _assert_clean_failure(result, folder: Path, code: int, out: Path, cache: Path, failed_stage: str | None):
    status, stdout, stderr = result
    lines = stderr.strip().splitlines()
    assert status == 2 and stdout == "" and "Traceback" not in stderr, stderr
    assert lines[-1] == f"error: cannot write {folder}: {REASONS[code]} or pass --out/--cache-dir elsewhere"
    leftovers = [p for root in (out, cache) for p in root.rglob(".*") if p.name not in (".cache",)]
    assert leftovers == []  # no .tmp-*, .old-*, .latest-* file or folder
    if failed_stage:
        assert not list((cache / "stages" / failed_stage).rglob("_DONE.json"))
    task_dir = out / "align-synth"
    assert not task_dir.exists() or not any(task_dir.rglob("manifest.json"))
    assert not (task_dir / "latest").exists()


@pytest.fixture
def cached_upstream(align_synth_version, tmp_path) -> Path:
    """A copy of the shared build's stage cache without its assemble output: only assemble runs."""
    cache = tmp_path / "cache"
    shutil.copytree(align_synth_version.parent.parent / ".cache", cache)
    shutil.rmtree(cache / "stages" / "assemble")
    return cache


@pytest.mark.parametrize("where, code", [("stage", errno.ENOSPC), ("stage", errno.EACCES),
                                         ("save_dataset", errno.EROFS), ("save_dataset", errno.ENOSPC),
                                         ("write_json_atomically", errno.EDQUOT)])
def test_write_error_is_one_line_and_leaves_nothing(monkeypatch, tmp_path, cached_upstream, where, code):
    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        if where == "stage":
            _fail_stage_save(patch, code)
        else:
            _fail_publish(patch, code, where)
        result = _build(out, cached_upstream)
    folder = cached_upstream if where == "stage" else out / "align-synth"
    _assert_clean_failure(result, folder, code, out, cached_upstream, "assemble" if where == "stage" else None)
    status, stdout, stderr = _build(out, cached_upstream)  # the disk is freed
    assert status == 0, stderr
    version = Path(stdout.strip())
    assert (version / "manifest.json").exists() and (out / "align-synth" / "latest").resolve() == version
    assert all(len(load_split(version / folder)) > 0 for folder in SPLIT_FOLDERS.values())


def test_only_write_errors_about_the_folder_are_translated(tmp_path):
    assert write_error(OSError(errno.ENOENT, "No such file"), tmp_path) is None
    assert write_error(PermissionError(errno.EACCES, "denied", "/elsewhere/train.tsv"), tmp_path) is None
    inside = write_error(PermissionError(errno.EACCES, "denied", str(tmp_path / "a" / "b.arrow")), tmp_path)
    assert str(inside) == f"cannot write {tmp_path}: permission denied; make it writable or pass --out/--cache-dir elsewhere"
    assert write_error(OSError(errno.EPERM, "not permitted"), tmp_path) is not None


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 2 MB filesystem (tmpfs); skipped where mounting is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk(tiny_filesystem):
    out = tiny_filesystem / "out"
    _assert_clean_failure(_build(out), out / ".cache", errno.ENOSPC, out, out / ".cache", "embed")
    subprocess.run(["mount", "-o", "remount,size=64m", str(tiny_filesystem)], check=True)
    version = build_small(out)
    assert (version / "manifest.json").exists()
