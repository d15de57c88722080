"""`pipeline build --engine ray`: Ray Data jobs for retrieve and embed, byte-identical to local.

One local Ray with 2 CPUs serves the module (the engine joins a Ray already running in the
process and leaves it running). Compared files: every file of the two version folders, byte for
byte, after blanking what records how a build ran rather than what it made (`created`, each stage's
`seconds` and `cached`): two local builds differ there too.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stages.embed.cache import CachedEmbedder
from stages.embed.models import SymbolBagEmbedder
from stages.retrieve.bm25 import BM25Index
from schemas.errors import UserError
from stages.scale import LocalEngine, make_engine
from stages.scale.ray_workers import pack
from tests.conftest import run_pipeline, write_mt_inputs
from tests.ray_helpers import (ExportCountingEmbedder, FailingFactory, KillOnceFactory, KillOnceIndex,
                               OtherIdentityFactory, PidActor, PrepareCountingIndex)

SMALL = ["--pool-size", "300", "--test-size", "40", "--ood-size", "20", "--probe-size", "10", "--no-progress"]


@pytest.fixture(scope="module")
def ray_cluster():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _build(out: Path, *args: str) -> tuple[Path, str]:
    code, stdout, stderr = run_pipeline("build", "--out", str(out), *args)
    assert code == 0, stderr
    return Path(stdout.strip().splitlines()[-1]), stderr


def _without_timings(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name == "manifest.json":
        data = re.sub(rb'"(created|seconds|cached)": [^,\n]+', rb'"\1": -', data)
    elif path.name == "README.md":  # the stage table's seconds and cached columns
        data = re.sub(rb"\| [0-9.]+ \| (True|False) \|", rb"| - | - |", data)
    return data


def assert_same_version(a: Path, b: Path) -> None:
    assert a.name == b.name  # the version id: the engine is in no fingerprint
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    different = [str(f) for f in files_a if _without_timings(a / f) != _without_timings(b / f)]
    assert different == []


def _random_docs(n: int) -> list[list[str]]:
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(300)]
    return [list(rng.choice(vocab, rng.integers(2, 10))) for _ in range(n)]


def test_topk_shards_aligned_to_blocks_give_the_local_bytes_and_ship_the_index_once(ray_cluster):
    docs = _random_docs(5000)
    index = PrepareCountingIndex(docs)
    assert index.query_step() < len(docs) // 4  # several blocks, so several shards on 2 workers
    exclude = [{i, (7 * i) % len(docs)} for i in range(len(docs))]
    local = LocalEngine().topk(BM25Index(docs), docs, 12, exclude)
    engine = make_engine("ray", workers=2, progress=False)
    ray_idx, ray_scores = engine.topk(index, docs, 12, exclude)
    assert ray_idx.tobytes() == local[0].tobytes() and ray_scores.tobytes() == local[1].tobytes()
    again = engine.topk(index, docs[:700], 12, exclude[:700])  # Retrieve's second call: the test queries
    assert again[0].tobytes() == local[0][:700].tobytes()
    assert PrepareCountingIndex.prepared == 1  # one object-store copy for both jobs
    shipped = ray_cluster.get(engine._shipped[1])
    assert shipped.vocab is None and index.vocab  # workers get term rows, not tokens


def test_two_busy_rows_on_two_workers_run_on_two_actors(ray_cluster, tmp_path):
    """Ray Data's default lets the first ready actor queue several calls: both rows ran on one."""
    engine = make_engine("ray", workers=2, progress=False)
    rows = [{"position": i, "payload": pack(None)} for i in range(2)]
    pids = dict(engine._run("test", PidActor, (4.0, 1.0, tmp_path / "first"), rows, False))
    assert sorted(pids) == [0, 1] and pids[0] != pids[1]


def test_a_user_error_in_a_worker_is_one_error_line(ray_cluster, tmp_path, monkeypatch):
    """An actor whose embedder identity differs from the driver's: `error: ...`, exit 2, no traceback."""
    from pipeline.components import Components

    def other_workers(self):
        return CachedEmbedder(self._make_embedder(False), self.cache_root / "embeddings",
                              factory=OtherIdentityFactory())

    monkeypatch.setattr(Components, "embedder", property(other_workers))
    code, stdout, stderr = run_pipeline("build", "--out", str(tmp_path), "--task", "align-synth", *SMALL,
                                        "--engine", "ray", "--workers", "2")
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert code == 2 and "Traceback" not in stderr and len(errors) == 1, stderr
    assert errors[0].startswith("error: a Ray worker's embedder identity") and stderr.endswith(errors[0] + "\n")
    assert "align-synth/" not in stdout  # no version folder (Ray's driver may print its own notices there)


def test_any_other_worker_failure_is_one_line_naming_the_job(ray_cluster, tmp_path):
    embedder = CachedEmbedder(SymbolBagEmbedder(), tmp_path, chunk_size=8, factory=FailingFactory())
    with pytest.raises(UserError) as caught:
        make_engine("ray", workers=1, progress=False).embed(embedder, ["a b", "c d"])
    message = str(caught.value)
    assert "\n" not in message and message.startswith("the Ray embed job failed in a worker: ")
    assert "ValueError: embedding exploded in the worker" in message


def test_the_driver_exports_the_int8_encoder_once_before_the_actors(ray_cluster, tmp_path):
    inner = ExportCountingEmbedder()
    embedder = CachedEmbedder(inner, tmp_path, chunk_size=8, factory=SymbolBagEmbedder)
    engine = make_engine("ray", workers=1, progress=False)
    engine.embed(embedder, [f"a {i}" for i in range(8)])
    assert inner.loads == 1
    engine.embed(embedder, [f"a {i}" for i in range(8)])  # all cached: no job, no load
    assert inner.loads == 1


def test_a_crash_after_one_chunk_resumes_with_only_the_rest(ray_cluster, tmp_path, monkeypatch):
    texts = [f"A {i} B {i % 7}" for i in range(64)]
    keep, kept = CachedEmbedder._keep, []

    def crash_after_one(self, keys, vectors):
        if kept:
            raise RuntimeError("driver crashed after one chunk")
        keep(self, keys, vectors)
        kept.append(len(keys))

    engine = make_engine("ray", workers=2, progress=False)
    with monkeypatch.context() as patch:
        patch.setattr(CachedEmbedder, "_keep", crash_after_one)
        with pytest.raises(RuntimeError, match="after one chunk"):
            engine.embed(CachedEmbedder(SymbolBagEmbedder(), tmp_path, chunk_size=16,
                                        factory=SymbolBagEmbedder), texts)
    rerun = CachedEmbedder(SymbolBagEmbedder(), tmp_path, chunk_size=16, factory=SymbolBagEmbedder)
    vectors = engine.embed(rerun, texts)
    assert kept == [16] and rerun.stats["cache_hits"] == 16 and rerun.stats["embedded"] == 48
    assert vectors.tobytes() == SymbolBagEmbedder().embed(texts).tobytes()


def test_topk_survives_a_killed_scoring_worker(ray_cluster, tmp_path):
    docs = _random_docs(3000)
    killing = KillOnceIndex(docs)
    killing.marker = tmp_path / "killed"
    local = LocalEngine().topk(BM25Index(docs), docs, 8)
    ray_idx, ray_scores = make_engine("ray", workers=2, progress=False).topk(killing, docs, 8)
    assert killing.marker.exists()  # a scoring actor was killed
    assert ray_idx.tobytes() == local[0].tobytes() and ray_scores.tobytes() == local[1].tobytes()


def test_embed_chunks_on_ray_give_the_local_vectors_and_shards(ray_cluster, tmp_path):
    texts = [f"A B {chr(67 + i % 20)} {chr(67 + i % 7)} {i % 3}" for i in range(200)] * 2
    local = CachedEmbedder(SymbolBagEmbedder(), tmp_path / "local", chunk_size=16)
    remote = CachedEmbedder(SymbolBagEmbedder(), tmp_path / "ray", chunk_size=16, factory=SymbolBagEmbedder)
    vectors = make_engine("ray", workers=2, progress=False).embed(remote, texts)
    assert vectors.tobytes() == local.embed(texts).tobytes()
    assert remote.stats == local.stats and remote.stats["shards_written"] > 2


def test_align_synth_build_on_ray_is_byte_identical_and_quiet(ray_cluster, tmp_path, capfd):
    local, _ = _build(tmp_path / "local", "--task", "align-synth", *SMALL)
    remote, stderr = _build(tmp_path / "ray", "--task", "align-synth", *SMALL, "--engine", "ray", "--workers", "2")
    assert_same_version(local, remote)
    logged = stderr + capfd.readouterr().err
    assert "Running Dataset" not in logged and "MapBatches" not in logged  # --no-progress silences Ray Data


def _mt_args(folder: Path) -> list[str]:
    paths = write_mt_inputs(folder)
    return ["--task", "en-hi", "--train", str(paths["train"]), "--test", str(paths["test"]),
            "--test-ood", str(paths["ood"]), "--probe-size", "5", "--paraphraser", "none", "--no-progress"]


def _copy_int8_encoder(local_cache: Path, ray_cache: Path) -> None:
    """The int8 encoder the local build exported, without its vector shards: the Ray build still
    embeds every text, but its actors skip the export."""
    for path in (local_cache / "embeddings").rglob("*.onnx*"):
        target = ray_cache / "embeddings" / path.relative_to(local_cache / "embeddings")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def test_minilm_build_on_ray_survives_a_killed_worker_with_the_local_bytes(ray_cluster, tmp_path, monkeypatch):
    """The first embedding call of a Ray actor SIGKILLs its process: Ray Data restarts the actor
    and retries the chunk, and the build's bytes equal the local build's."""
    from pipeline.components import Components

    args = _mt_args(tmp_path)
    local, _ = _build(tmp_path / "local", *args)
    _copy_int8_encoder(tmp_path / "local" / ".cache", tmp_path / "ray" / ".cache")
    marker, make = tmp_path / "killed", Components._embedder_factory
    monkeypatch.setattr(Components, "_embedder_factory",
                        lambda self, progress: KillOnceFactory(make(self, progress), marker))
    remote, stderr = _build(tmp_path / "ray", *args, "--engine", "ray", "--workers", "2")
    assert marker.exists()  # a worker was killed
    assert_same_version(local, remote)
    assert json.loads((remote / "manifest.json").read_text())["stages"]["embed"]["counters"]["embedded"] > 0


def test_a_rerun_after_a_driver_crash_in_embed_resumes_with_retrieve_cached(ray_cluster, tmp_path, monkeypatch):
    from stages.scale.ray_engine import RayEngine

    def crash(self, embedder, texts):
        raise RuntimeError("driver crashed in embed")

    args = ["--task", "align-synth", *SMALL, "--engine", "ray", "--workers", "2"]
    with monkeypatch.context() as patch:
        patch.setattr(RayEngine, "embed", crash)
        with pytest.raises(RuntimeError, match="driver crashed"):
            run_pipeline("build", "--out", str(tmp_path / "ray"), *args)
    remote, stderr = _build(tmp_path / "ray", *args)
    assert re.search(r"^\[retrieve\] cached", stderr, re.M) and re.search(r"^\[embed\] done", stderr, re.M)
    local, _ = _build(tmp_path / "local", "--task", "align-synth", *SMALL)
    assert_same_version(local, remote)


def test_the_cli_starts_its_own_ray_and_stops_it(tmp_path):
    """No Ray running and no RAY_ADDRESS: the engine starts a local Ray and the build exits cleanly."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", "--task", "align-synth", "--out",
                           str(tmp_path), *SMALL, "--engine", "ray", "--workers", "2"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip().splitlines()[-1]).is_dir()


def test_engine_ray_without_ray_installed_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    code, stdout, stderr = run_pipeline("build", "--task", "align-synth", "--out", str(tmp_path), *SMALL,
                                        "--engine", "ray")
    assert code == 2 and stdout == ""
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and "pip install 'ictrain[scale]'" in stderr
