"""The int8 encoder on disk, and the runtime it was made and is run with.

The encoder is written with fsync and a sha256 beside it (`<model>.sha256`); a load checks the
digest, so a truncated or damaged file (a full disk, a copy cut short) is made again with a
one-line warning instead of failing deep in ONNX Runtime's protobuf parser.

The runtime identity names every package that shapes the exported graph or rounds its int8
kernels (onnxruntime, onnx, torch, transformers) and the CPU's int8 instruction set: ONNX Runtime
picks its u8 x s8 kernels by instruction set (AVX-512 VNNI, AVX-VNNI, AVX2 without VNNI, where
the pairwise products can saturate), so an embedding cache shared between machines keeps one
folder per kind of CPU instead of mixing their vectors.
"""
from __future__ import annotations

import functools
import hashlib
import os
import platform
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from schemas.errors import UserError
from stages.base import fsync_path

DIGEST_SUFFIX = ".sha256"
# Most specific first: the first flag /proc/cpuinfo lists decides the int8 kernels ONNX Runtime runs.
_ISA_FLAGS = (("avx512_vnni", "avx512-vnni"), ("avx_vnni", "avx-vnni"), ("avx512bw", "avx512"), ("avx2", "avx2"))
_PACKAGES = {"onnxruntime": "onnxruntime", "onnx": "onnx", "torch": "torch", "transformers": "transformers"}


def _package_version(name: str) -> str:
    """Read from the package metadata (no import); onnxruntime builds such as onnxruntime-gpu carry
    another distribution name, so it falls back to the module's own version."""
    try:
        return version(name)
    except PackageNotFoundError:
        pass
    try:
        module = __import__(name)
    except ImportError:
        raise UserError(f"the CPU embedding fast path needs {name}: run `pip install {name}`, "
                        "or pass --exact-embeddings for plain fp32") from None
    return module.__version__


def runtime_identity() -> dict[str, str]:
    """Part of the embedder identity: every value here can change the int8 vectors."""
    return {**{key: _package_version(name) for key, name in _PACKAGES.items()}, "isa": instruction_set()}


@functools.lru_cache(maxsize=1)
def instruction_set() -> str:
    """The CPU's int8 kernel family, from /proc/cpuinfo's flags (the machine name elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return isa_tag(text, platform.machine())


def isa_tag(cpuinfo: str, machine: str) -> str:
    flags = next((set(line.split(":", 1)[1].split()) for line in cpuinfo.splitlines()
                  if line.startswith(("flags", "Features")) and ":" in line), set())
    return next((tag for flag, tag in _ISA_FLAGS if flag in flags), machine.lower() or "unknown")


def file_sha256(path: Path) -> str:
    """In one read: the encoder (66 MiB) is about to be loaded whole by ONNX Runtime anyway."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def intact(model: Path) -> bool:
    """True when `model` exists and matches its stored sha256; a damaged one is reported once."""
    if not model.is_file():
        return False
    digest = model.with_name(model.name + DIGEST_SUFFIX)
    try:
        expected = digest.read_text(encoding="ascii").strip()
    except OSError:
        expected = ""
    if expected and file_sha256(model) == expected:
        return True
    warnings.warn(f"the cached int8 encoder {model} is damaged or unverified (sha256 mismatch); exporting it "
                  "again", stacklevel=3)
    return False


def publish(tmp: Path, target: Path) -> None:
    """fsync `tmp`, rename it to `target`, then write its sha256 beside it (temp, fsync, rename)."""
    fsync_path(tmp)
    checksum = file_sha256(tmp)
    os.replace(tmp, target)
    digest = target.with_name(target.name + DIGEST_SUFFIX)
    digest_tmp = tmp.with_name(tmp.name + DIGEST_SUFFIX)
    try:
        digest_tmp.write_text(checksum + "\n", encoding="ascii")
        fsync_path(digest_tmp)
        os.replace(digest_tmp, digest)
    finally:
        digest_tmp.unlink(missing_ok=True)
    try:
        fsync_path(target.parent)  # the renames survive a crash only once the folder is synced
    except OSError:
        pass  # some filesystems refuse to sync a folder; the file itself is synced


def discard(model: Path) -> None:
    for path in (model, model.with_name(model.name + DIGEST_SUFFIX)):
        path.unlink(missing_ok=True)
