"""`--engine ray` checks that need no Ray running: option combinations, shard sizing, the
embedding cache's chunk check and the paths a worker's embedder factory carries."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.cli import parse_args
from pipeline.cli_engine import engine_from_args
from pipeline.components import Components
from pipeline.tasks import load_task
from schemas.config import BuildConfig, EmbedderSpec, RunOptions
from schemas.errors import UserError
from stages.embed.cache import CachedEmbedder
from stages.embed.models import SymbolBagEmbedder
from stages.scale import make_engine
from stages.scale.sharding import PAIRS_PER_SHARD, shard_rows
from tests.conftest import run_pipeline

SMALL = ["--pool-size", "300", "--test-size", "40", "--ood-size", "20", "--probe-size", "10", "--no-progress"]


@pytest.mark.parametrize("flags", [["--workers", "2"], ["--ray-address", "auto"]])
def test_ray_options_without_engine_ray_are_one_error_line(tmp_path, flags):
    code, stdout, stderr = run_pipeline("build", "--task", "align-synth", "--out", str(tmp_path), *SMALL, *flags)
    assert code == 2 and stdout == "" and stderr.count("\n") == 1
    assert stderr.startswith(f"error: {flags[0]} applies only with --engine ray")


def test_ray_address_from_the_environment_reaches_the_engine(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    args = parse_args(["build", "--task", "align-synth", "--out", str(tmp_path), "--engine", "ray"])
    assert engine_from_args(args, progress=False).address == "auto"  # lazy: nothing is started
    args = parse_args(["build", "--task", "align-synth", "--out", str(tmp_path)])
    assert engine_from_args(args, progress=False).name == "local"  # $RAY_ADDRESS alone is no error


def test_engine_ray_refuses_a_numbered_cuda_device():
    with pytest.raises(UserError, match="pass --device cuda"):
        make_engine("ray", device="cuda:1")


def test_workers_beyond_the_cluster_are_refused_naming_the_count():
    class TwoCpus:
        @staticmethod
        def cluster_resources():
            return {"CPU": 2.0}

    assert make_engine("ray", workers=2)._pool_size(TwoCpus, "CPU") == 2
    with pytest.raises(UserError, match=r"--workers 3: the Ray cluster has 2 CPU"):
        make_engine("ray", workers=3)._pool_size(TwoCpus, "CPU")


def test_shards_are_sized_by_work_in_whole_blocks():
    step = 1  # the query step at 10M docs (4M floats a block)
    shard = shard_rows(10_000_000, 10_000_000, step, 8)
    assert shard % step == 0 and shard * 10_000_000 <= PAIRS_PER_SHARD  # minutes, not hours
    assert shard_rows(5000, 5000, 800, 2) == 800  # 7 blocks on 2 workers: a block a shard
    assert shard_rows(100 * 800, 5000, 800, 2) == 12 * 800  # floor(100 blocks / (4 a worker x 2 workers))
    for blocks, workers in [(9, 2), (100, 2), (33, 4)]:  # at least 4 shards per worker where blocks allow
        shard = shard_rows(blocks * 800, 5000, 800, workers)
        assert -(-blocks * 800 // shard) >= 4 * workers
    assert shard_rows(10, 10**10, 1, 1) == 1  # never less than one block


def test_a_chunk_that_never_comes_back_is_a_clear_error(tmp_path):
    embedder = CachedEmbedder(SymbolBagEmbedder(), tmp_path, chunk_size=2, factory=SymbolBagEmbedder)
    only_first = lambda chunks: [(0, SymbolBagEmbedder().embed(chunks[0]))]  # noqa: E731
    with pytest.raises(RuntimeError, match="returned 1 of 3 chunks; 2 never came back"):
        embedder.embed_with(["a", "b", "c", "d", "e"], only_first)


def test_worker_factory_carries_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "mini").mkdir(parents=True)
    task = load_task("en-lt").model_copy(update={"embedder": EmbedderSpec(model="models/mini")})
    factory = Components(BuildConfig(task=task), RunOptions(), Path("cache"))._embedder_factory(False)
    assert factory.args[0].model == str(tmp_path / "models" / "mini")
    assert factory.keywords["model_cache"] == tmp_path / "cache" / "embeddings"
    # a symlinked model folder keeps the name it was given: the embedder identity (and so the
    # version id) records the folder's name, whichever engine runs
    (tmp_path / "models" / "linked").symlink_to(tmp_path / "models" / "mini")
    task = task.model_copy(update={"embedder": EmbedderSpec(model="models/linked")})
    factory = Components(BuildConfig(task=task), RunOptions(), Path("cache"))._embedder_factory(False)
    assert factory.args[0].model == str(tmp_path / "models" / "linked")


def test_a_local_ray_gets_this_machines_cpus_so_too_many_workers_are_refused(monkeypatch):
    """Starting the local Ray with --workers CPUs would run 64 actors on 2 cores without a word."""
    import os

    import ray

    started = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: started.update(kwargs))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": float(started["num_cpus"])})
    engine = make_engine("ray", workers=os.cpu_count() + 1, progress=False)
    with pytest.raises(UserError, match=f"the Ray cluster has {os.cpu_count()} CPU"):
        engine._pool_size(engine._ray(), "CPU")
    assert started["num_cpus"] == os.cpu_count()
    engine._started = False  # nothing was started for real
