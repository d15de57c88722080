"""`RayEngine`: BM25 top-k and embedding as Ray Data jobs, byte-identical to `LocalEngine`.

Retrieve: the index goes into the object store once per engine, without its vocabulary (the driver
turns the queries into term-count rows and ships those); the queries are cut into shards of whole
`BM25Index.query_step` blocks aligned to the local block boundaries (queries [s, s + m * step)),
and each shard is scored by `index.topk` on exactly those rows and their exclusion sets, so every
float32 block has the shape it has locally (the exact float64 re-scoring of `BM25Index.topk` already
makes the top-k independent of the block shape; the alignment also keeps every float32 proposal,
and so every row's path through the margin test, as it is locally). Embed: the cache misses are cut into the
`CachedEmbedder` chunks the local path makes; an actor pool (one embedder load per actor, one GPU
per actor when the build runs on CUDA) embeds one chunk per call and the driver writes each as
one cache shard as it arrives. Results carry their position and are put back in place.

Fault tolerance is Ray Data's: it creates pool actors with `max_restarts=-1` and
`max_task_retries=-1` (its defaults for actor pools, checked in Ray 2.60), so a killed actor is
restarted and its call retried; a call always redoes a whole shard or chunk, so a killed worker
changes no byte (tests/test_engine_ray.py kills one). The restarts are not bounded: in Ray 2.60
`max_restarts` reaches the actors only through `map_batches(**ray_remote_args)`, which is
deprecated there (to be removed in 2.64), so an actor that is OOM-killed on every try is retried
until the build is stopped. Ray starts lazily on the first job: a fully cached rebuild never starts it.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
from typing import Any, Iterator

import numpy as np

from schemas.errors import UserError
from stages.base import fingerprint
from stages.scale.ray_workers import ChunkEmbedder, ShardScorer, pack, unpack, worker_error
from stages.scale.sharding import shard_rows


@contextlib.contextmanager
def ray_data_errors_unprinted():
    """Ray Data logs a failed job's traceback on the console before raising it; the engine raises
    it again as one line, so the console copy goes (Ray's session log file keeps it)."""
    handlers = [h for h in logging.getLogger("ray.data").handlers if type(h).__name__ != "SessionFileHandler"]

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR

    for handler in handlers:
        handler.addFilter(below_error)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(below_error)


class RayEngine:
    """`workers`: actors per job (None: every CPU, or with device cuda every GPU, of the cluster).
    `address`: a running cluster to join (None: start a local Ray with `workers` CPUs, shut down by
    `close`). `device`: where embedding actors run; cuda asks one GPU per actor."""

    name = "ray"

    def __init__(self, workers: int | None = None, address: str | None = None, progress: bool = True,
                 device: str = "cpu"):
        if workers is not None and workers < 1:
            raise UserError(f"--workers must be >= 1, got {workers}")
        if device.startswith("cuda") and device != "cuda":
            raise UserError(f"--engine ray --device {device}: each Ray actor sees only the GPU Ray gives it; "
                            "pass --device cuda")
        self.workers, self.address, self.progress, self.device = workers, address, progress, device
        self._started = False
        self._shipped: tuple[Any, Any] | None = None  # (the last index put, its object ref)

    def _ray(self):
        import ray

        if not ray.is_initialized():
            quiet = {"logging_level": logging.WARNING, "log_to_driver": False, "include_dashboard": False}
            if self.address:
                ray.init(address=self.address, **quiet)
            else:
                # every CPU of this machine, never more: --workers above that is refused by
                # `_pool_size` rather than run as that many actors on fewer cores
                ray.init(address="local", num_cpus=os.cpu_count(), **quiet)
                self._started = True
        return ray

    def _pool_size(self, ray, resource: str) -> int:
        available = int(ray.cluster_resources().get(resource, 0))
        if available < 1:
            raise UserError(f"--engine ray with --device {self.device}: the Ray cluster has no {resource}; "
                            "use --device cpu or join a cluster that has one")
        if self.workers is not None and self.workers > available:
            raise UserError(f"--workers {self.workers}: the Ray cluster has {available} {resource}(s), one per "
                            f"actor; pass --workers {available} or less")
        return self.workers or available

    def _run(self, job: str, actor: type, constructor_args: tuple, rows: list[dict], progress: bool,
             gpu: bool = False) -> Iterator[tuple[int, Any]]:
        """Maps `actor` over `rows` (one row per call) in an actor pool; yields (position, result),
        each row's position exactly once (checked: a lost or repeated row is an error, never a hole).
        One call in flight per actor: a row is a whole shard or chunk, so queueing a second on a busy
        actor buys nothing and (Ray Data's default) let the first ready actor take every row."""
        from ray.data import DataContext

        ray = self._ray()
        context = DataContext.get_current()  # Ray Data draws its own bars: off with --no-progress
        context.enable_progress_bars = context.enable_operator_progress_bars = progress
        context.print_on_execution_start = progress
        logging.getLogger("ray.data").setLevel(logging.INFO if progress else logging.ERROR)  # its text progress too
        size = min(self._pool_size(ray, "GPU" if gpu else "CPU"), len(rows))
        pool = ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1)
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            actor, fn_constructor_args=constructor_args, batch_size=1, compute=pool,
            num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)
        expected, arrived = {row["position"] for row in rows}, set()
        try:
            with ray_data_errors_unprinted():
                for row in dataset.iter_rows():
                    position = int(row["position"])
                    if position in arrived or position not in expected:
                        raise RuntimeError(f"the Ray {job} job returned row {position} twice or unasked")
                    arrived.add(position)
                    yield position, unpack(row["payload"])
        except ray.exceptions.RayError as error:
            raise worker_error(job, error) from None
        if arrived != expected:
            raise RuntimeError(f"the Ray {job} job returned {len(arrived)} of {len(expected)} rows")

    def _index_ref(self, index):
        """One object-store copy of `index` per engine: Retrieve scores pool and test queries
        against the same index, and a second `put` would ship and hold it twice."""
        if self._shipped is None or self._shipped[0] is not index:
            shipped = copy.copy(index.prepare())
            shipped.vocab = None  # the driver turns queries into term rows: workers need no vocabulary
            self._shipped = (index, self._ray().put(shipped))
        return self._shipped[1]

    def topk(self, index, queries: list[list[str]], k: int, exclude: list[set[int]] | None = None,
             progress: bool = False, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
        """`index.topk` over query shards on the cluster, the same bytes; `device` is not used
        (the actors score on CPU; the result is exact either way)."""
        if exclude is not None and len(exclude) != len(queries):
            raise UserError(f"BM25 top-k: exclude has {len(exclude)} entries for {len(queries)} queries; "
                            "give one set per query")
        n = len(queries)
        if n == 0 or k == 0 or index.n_docs == 0:
            return index.topk(queries, k, exclude=exclude)
        shard = shard_rows(n, index.n_docs, index.query_step(), self._pool_size(self._ray(), "CPU"))
        matrix = index.query_matrix(queries)
        rows = [{"position": start, "payload": pack((matrix[start:start + shard],
                                                     None if exclude is None else exclude[start:start + shard]))}
                for start in range(0, n, shard)]
        out_idx, out_scores = np.full((n, k), -1, np.int64), np.full((n, k), -np.inf, np.float32)
        for start, (idx, scores) in self._run("retrieve (BM25 top-k)", ShardScorer, ([self._index_ref(index)], k),
                                                rows, progress and self.progress):
            if len(idx) != min(shard, n - start):
                raise RuntimeError(f"Ray BM25 job returned shard {start} with {len(idx)} rows")
            out_idx[start:start + len(idx)], out_scores[start:start + len(idx)] = idx, scores
        return out_idx, out_scores

    def embed(self, embedder: Any, texts: list[str]) -> np.ndarray:
        """The cache misses of a `CachedEmbedder` built with a `factory`, chunk by chunk on the
        cluster; any other embedder (the symbol embedders: microseconds a text) on the driver."""
        factory = getattr(embedder, "factory", None)
        if factory is None or not hasattr(embedder, "embed_with"):
            return embedder.embed(texts)
        identity = fingerprint(embedder.identity())
        gpu = self.device.startswith("cuda")

        def run(chunks: list[list[str]]) -> Iterator[tuple[int, Any]]:
            if getattr(embedder.inner, "onnx", False):  # CPU int8: export once here, not in every actor
                embedder.inner.model()
            return self._run("embed", ChunkEmbedder, (factory, identity),
                             [{"position": i, "payload": pack(c)} for i, c in enumerate(chunks)], self.progress, gpu=gpu)

        return embedder.embed_with(texts, run)

    def close(self) -> None:
        """Shuts down a Ray this engine started; a joined cluster (or a Ray the caller started) is left alone."""
        self._shipped = None
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
