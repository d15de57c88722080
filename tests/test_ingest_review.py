"""Review findings on the streaming ingest: the dedupe keys' type, broken Parquet, the rejects'
memory, the scratch folder, the cache version."""
import numpy as np
import pyarrow as pa
import pytest


def test_dedupe_keys_fit_every_type_they_pass_through(monkeypatch):
    """The keys were handed to polars as decimal128(38), which 41% of 128-bit values overflow; a
    reader that checks the precision (as the Arrow spec allows) would have failed."""
    import polars as pl

    from stages.ingest.scan import first_occurrences

    real_from_arrow = pl.from_arrow

    def checking_from_arrow(data, *args, **kwargs):
        if isinstance(data, pa.Array) and pa.types.is_decimal(data.type):
            limit = 10 ** data.type.precision
            assert all(abs(int(v.as_py())) < limit for v in data if v.is_valid), "decimal out of its precision"
        return real_from_arrow(data, *args, **kwargs)

    monkeypatch.setattr(pl, "from_arrow", checking_from_arrow)
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 2**64 - 1, size=(500, 2), dtype=np.uint64, endpoint=True)
    keys[250:] = keys[:250]
    assert first_occurrences(keys).tolist() == list(range(250))


def _ingest(train, tmp_path, **kwargs):
    from pipeline.tasks import load_task
    from stages.base import StageStats
    from stages.ingest.stage import Ingest

    test = tmp_path / "test.tsv"
    test.write_text("source\ttarget\nnot in the corpus\tx\n")
    task = load_task("en-lt").model_copy(update={"pool_size": 10})
    overrides = {"train": str(train), "test": str(test), "test_ood": str(test)}
    return Ingest(task, 0, overrides, **kwargs).run({}, StageStats())


def _reject_heavy_parquet(path, rows: int):
    import pyarrow.parquet as pq

    sources = pa.array([f"sentence {i}" for i in range(rows)])
    targets = pa.array(["ok" if i % 1000 == 0 else "  " for i in range(rows)])  # all but 0.1%: empty target
    pq.write_table(pa.table({"source": sources, "target": targets}), path, row_group_size=20_000)
    return path


def test_rejects_come_back_memory_mapped_not_copied_into_memory(tmp_path):
    """The rejects were read back and combined into one chunk: a copy of the whole reject file in
    memory, held for the rest of the build."""
    train = _reject_heavy_parquet(tmp_path / "train.parquet", 200_000)
    before = pa.total_allocated_bytes()
    out = _ingest(train, tmp_path, scratch_dir=tmp_path / "scratch")
    rejects = out["rejects"]
    assert rejects.num_rows == 199_800 and rejects.nbytes > 5_000_000
    held = pa.total_allocated_bytes() - before - out["pool"].nbytes - out["tests"].nbytes
    assert held < rejects.nbytes // 10, (held, rejects.nbytes)
    assert rejects.column("reason").unique().to_pylist() == ["empty target"]


@pytest.mark.parametrize("reject_batch", [5, 1 << 16])
def test_the_rejects_file_does_not_depend_on_the_input_batching(tmp_path, monkeypatch, reject_batch):
    from stages.base import Artifacts
    from stages.ingest import batches, scan

    monkeypatch.setattr(scan, "REJECT_BATCH_ROWS", reject_batch)
    train = _reject_heavy_parquet(tmp_path / "train.parquet", 3000)
    saved = []
    for batch_rows in (7, 64, 1 << 16):
        monkeypatch.setattr(batches, "BATCH_ROWS", batch_rows)
        out = _ingest(train, tmp_path)
        Artifacts(rejects=out["rejects"]).save(tmp_path / str(batch_rows))
        saved.append((tmp_path / str(batch_rows) / "rejects.arrow").read_bytes())
    assert saved[0] == saved[1] == saved[2]
    assert out["rejects"].num_rows == 2997


def test_an_ingest_clears_scratch_folders_of_processes_that_are_gone(tmp_path):
    """A build killed by SIGKILL or the OOM killer left its `.ingest-*` spill (a copy of every
    usable row) in the cache folder for good; the pruner skips dot-names."""
    import os
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    scratch = tmp_path / "cache"
    dead = scratch / f".ingest-{int(gone.stdout)}-k1ll3d"
    live = scratch / f".ingest-{os.getpid()}-running"
    unstamped = scratch / ".ingest-abc123"
    for folder in (dead, live, unstamped):
        folder.mkdir(parents=True)
        (folder / "train.arrow").write_bytes(b"x" * 1000)
    train = tmp_path / "train.tsv"
    train.write_text("source\ttarget\nhello\tworld\n")
    _ingest(train, tmp_path, scratch_dir=scratch)
    assert not dead.exists() and live.exists() and unstamped.exists()
    assert sorted(p.name for p in scratch.iterdir()) == sorted([live.name, unstamped.name])


def test_the_cache_key_changed_with_the_lone_surrogate_rejection():
    """Version 6 finished on inputs holding a lone surrogate with other output than today's (the
    row is now rejected), so a cached version-6 ingest must not be reused."""
    from stages.ingest.stage import Ingest

    assert int(Ingest.version) >= 7


def _corrupt_parquet(path):
    """A Parquet file whose footer is intact (it opens) but whose middle bytes are flipped."""
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"source": [f"sentence number {i} " * 3 for i in range(20_000)],
                             "target": [f"t{i}" for i in range(20_000)]}), path, row_group_size=5000)
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - 2000:middle + 2000] = bytes(b ^ 0xFF for b in data[middle - 2000:middle + 2000])
    path.write_bytes(bytes(data))
    return path


def test_a_parquet_file_with_a_corrupt_body_is_a_one_line_user_error(tmp_path):
    from schemas.errors import UserError

    train = _corrupt_parquet(tmp_path / "train.parquet")
    with pytest.raises(UserError) as caught:
        _ingest(train, tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{train}: not a readable Parquet file (") and message.endswith("; re-export it")
    assert "\n" not in message and caught.value.__suppress_context__


@pytest.mark.parametrize("read", ["column_batches", "read_columns"])
def test_a_downloaded_parquet_shard_with_a_corrupt_body_is_a_one_line_user_error(tmp_path, read):
    from schemas.errors import UserError
    from stages.ingest import datafiles

    shard = _corrupt_parquet(tmp_path / "train-00000-of-00001.parquet")
    with pytest.raises(UserError) as caught:
        result = getattr(datafiles, read)(shard, ["source", "target"])
        list(result) if read == "column_batches" else result
    message = str(caught.value)
    assert message.startswith(f"{shard}: not a readable Parquet file (")
    assert message.endswith("delete it from the source cache and rerun") and "\n" not in message
