"""The streaming ingest gives what the row-by-row ingest gave (tests/ingest_reference.py), byte
for byte and whatever the batch size, and ingests a corpus larger than a memory cap within it."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest_reference import reference_run
from pipeline.tasks import load_task
from stages.base import StageStats
from stages.ingest import batches
from stages.ingest.stage import Ingest
from tests.conftest_hub import fake_hub  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
WORDS = ["alpha", "Beta", "gamma", "Café", "Cafe\u0301", "naïve", "nai\u0308ve", "straße", "İstanbul", "中文", "שלום",
         "مرحبا", "हिन्दी", "क़", "ﬁne", "\u1100\u1161", "😀", "x\u0316\u0301", "x\u0301\u0316"]
GAPS = [" ", "  ", "\u00a0", "\u3000", "\u2009", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", " \x01", "\x7f"]


def _sentence(rng: np.random.Generator) -> str:
    words = [WORDS[i] for i in rng.integers(len(WORDS), size=int(rng.integers(0, 5)))]
    text = "".join(w + GAPS[rng.integers(len(GAPS))] for w in words)
    return GAPS[rng.integers(len(GAPS))] + text if rng.random() < 0.2 else text


def _pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """Rows with exact duplicates, duplicates once cleaned, empty and blank sides, odd Unicode."""
    rng = np.random.default_rng(seed)
    rows = [(_sentence(rng), _sentence(rng)) for _ in range(n)]
    for i in rng.integers(1, n, size=n // 5):
        rows[i] = rows[int(rng.integers(0, i))]
    return rows


def _write(path: Path, rows: list[tuple[str, str]], extra_lines: list[bytes] = ()) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.table({"source": [s for s, _ in rows], "target": [t for _, t in rows]}), path,
                       row_group_size=97)
    elif path.suffix == ".jsonl":
        lines = [json.dumps({"source": s, "target": t}).encode() for s, t in rows]
        path.write_bytes(b"\n".join(lines[:5] + list(extra_lines) + lines[5:]) + b"\n")
    else:
        clean = [(s.replace("\t", " ").replace("\n", " ").replace("\r", " "),
                  t.replace("\t", " ").replace("\n", " ").replace("\r", " ")) for s, t in rows]
        body = [f"{s}\t{t}".encode() for s, t in clean]
        path.write_bytes(b"source\ttarget\n" + b"\n".join(body[:5] + list(extra_lines) + body[5:]) + b"\n")
    return path


EXTRA = {".tsv": [b"Broken \xff bytes\tX", b"only one column", b"ok\tTarget \xfe"],
         ".jsonl": [b"{not json", b'{"source": "a \xff", "target": "b"}', b'{"source": 12, "target": 3.5}', b'{"source": null, "target": "x"}',
                    b'{"target": "no source"}', b"[1, 2]"],
         ".parquet": []}


def _both(stage_args: dict, tmp_path: Path):
    stats_new, stats_old = StageStats(), StageStats()
    stage = Ingest(**stage_args)
    new = stage.run({}, stats_new)
    old = reference_run(stage, stats_old)  # reads the stage's settings and its sources' labels only
    for name, artifacts in (("new", new), ("old", old)):
        artifacts.save(tmp_path / name)
    for name in ("pool", "tests", "rejects"):
        assert (tmp_path / "new" / f"{name}.arrow").read_bytes() == (tmp_path / "old" / f"{name}.arrow").read_bytes(), name
    drop_seconds = lambda s: {k: v for k, v in s.to_json().items() if k != "seconds"}  # noqa: E731
    assert drop_seconds(stats_new) == drop_seconds(stats_old)
    return new, stats_new


@pytest.mark.parametrize("suffix", [".tsv", ".jsonl", ".parquet"])
@pytest.mark.parametrize("batch_rows", [7, 1 << 16])
def test_streaming_ingest_equals_row_by_row_ingest(tmp_path, monkeypatch, suffix, batch_rows):
    monkeypatch.setattr(batches, "BATCH_ROWS", batch_rows)
    train_rows = _pairs(600, 1)
    test_rows = [(s.upper(), t) for s, t in train_rows[:40:3]] + _pairs(60, 2)  # overlap by normalised source
    train = _write(tmp_path / f"train{suffix}", train_rows, EXTRA[suffix])
    test = _write(tmp_path / f"test{suffix}", test_rows, EXTRA[suffix])
    ood = _write(tmp_path / f"ood{suffix}", _pairs(50, 3))
    task = load_task("en-lt").model_copy(update={"pool_size": 150, "test_size": 30, "ood_size": 20})
    args = {"task": task, "seed": 5, "overrides": {"train": str(train), "test": str(test), "test_ood": str(ood)}}
    out, stats = _both(args, tmp_path)
    assert stats.dropped["exact duplicate"] and stats.dropped["pool row also in a test set"]
    assert out["pool"].num_rows < 150 and out["tests"].num_rows == 50
    if suffix != ".parquet":
        assert {"undecodable bytes", "unparsable row" if suffix == ".jsonl" else "missing target"} <= set(
            out["rejects"].column("reason").to_pylist())


def test_streaming_ingest_equals_row_by_row_for_sql_and_generated_tasks(tmp_path, monkeypatch):
    from bird_data import write_bird_files

    monkeypatch.setattr(batches, "BATCH_ROWS", 5)
    files = write_bird_files(tmp_path / "bird", train_count=30, dev_count=10)
    task = load_task("bird").model_copy(update={"pool_size": 20, "test_size": 8})
    _both({"task": task, "seed": 1, "overrides": {"train": str(files["train"]), "test": str(files["dev"])}},
          tmp_path / "sql")
    synth = load_task("align-synth").model_copy(update={"pool_size": 200, "test_size": 30, "ood_size": 20})
    _both({"task": synth, "seed": 2, "overrides": {}}, tmp_path / "synth")


MEMORY_CHILD = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from pipeline.tasks import load_task
    from stages.base import StageStats
    from stages.ingest import batches
    from stages.ingest.stage import Ingest

    batches.BATCH_ROWS = 8192  # memory per batch is the stage's working set: keep it well under the cap
    def ingest(train, pool):
        task = load_task("en-lt").model_copy(update={"pool_size": pool})
        folder = Path(train).parent
        overrides = {"train": train, "test": str(folder / "test.tsv"), "test_ood": str(folder / "test.tsv")}
        return Ingest(task, 0, overrides, scratch_dir=folder).run({}, StageStats())

    ingest(sys.argv[1], 50)  # imports, the cleaner's tables, polars' thread pool: the baseline
    def status_kib(field):  # VmRSS: resident now; VmHWM: peak since exec (ru_maxrss would carry the
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field))
        return int(line.split()[1])  # forking test process's peak over)

    before = status_kib("VmRSS:")
    out = ingest(sys.argv[2], 1000)
    print(json.dumps({"growth_kib": status_kib("VmHWM:") - before, "pool": out["pool"].num_rows}))
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak RSS from /proc (Linux)")
@pytest.mark.parametrize("suffix", [".parquet", ".tsv"])
def test_a_corpus_larger_than_a_memory_cap_ingests_within_it(tmp_path, suffix):
    """The old ingest held every row as Python objects (a RawRow, then a cleaned tuple and a set
    entry: about 3x the size of its strings); the cap on the growth of peak RSS over the resident
    size before the run is 60% of what the strings of the corpus alone take as Python objects, and
    the stage's working set (batches, allocator pools) is a constant ~100 MB of it. A TSV file was
    once read whole (its bytes and its decoded text: about 2.5x the cap); it is read line by line."""
    rows, words = 600_000, pa.array([f"w{i}" for i in range(5000)])
    rng = np.random.default_rng(0)

    def column():
        lengths = rng.integers(20, 31, size=rows)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        picks = words.take(pa.array(rng.integers(0, len(words), size=int(lengths.sum()))))
        return pa.compute.binary_join(pa.ListArray.from_arrays(offsets, picks), " ")

    import pyarrow.compute  # noqa: F401

    source, target = column(), column()
    if suffix == ".parquet":
        pq.write_table(pa.table({"source": source, "target": target}), tmp_path / "big.parquet", row_group_size=50_000)
        pq.write_table(pa.table({"source": source[:100], "target": target[:100]}), tmp_path / "small.parquet")
    else:
        lines = pa.compute.binary_join_element_wise(source, target, "\t").to_pylist()
        (tmp_path / "big.tsv").write_text("source\ttarget\n" + "\n".join(lines) + "\n")
        (tmp_path / "small.tsv").write_text("source\ttarget\n" + "\n".join(lines[:100]) + "\n")
    (tmp_path / "test.tsv").write_text("source\ttarget\nnot in the corpus\tx\n")
    as_objects = sum(sys.getsizeof(s) for s in source.to_pylist() + target.to_pylist())
    cap_kib = as_objects * 3 // 5 // 1024
    done = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(tmp_path / f"small{suffix}"),
                           str(tmp_path / f"big{suffix}")], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["pool"] == 1000
    assert result["growth_kib"] < cap_kib, (result, cap_kib)


@pytest.mark.parametrize("part_rows", [1 << 20, 1000, 7])
def test_first_occurrences_compares_all_128_bits(part_rows):
    from stages.ingest.scan import first_occurrences

    rng = np.random.default_rng(0)
    keys = rng.integers(0, 2**64 - 1, size=(6000, 2), dtype=np.uint64, endpoint=True)
    keys[1::3] = keys[0::3][: len(keys[1::3])]
    keys[5, 0] = keys[4, 0]  # one half equal, the other not: distinct rows
    keys[7:9], keys[9] = 2**64 - 1, 0  # the extreme values
    seen, want = set(), []
    for i, key in enumerate(map(tuple, keys.tolist())):
        if key not in seen:
            seen.add(key)
            want.append(i)
    assert first_occurrences(keys, part_rows).tolist() == want


@pytest.mark.parametrize("task_name", ["en-lt", "en-hi"])
def test_hub_sources_stream_shard_by_shard_as_the_row_by_row_ingest_read_them(task_name, fake_hub, tmp_path,
                                                                              monkeypatch):
    """Parquet shards (two for Europarl), nested fields (IITB's translation.en) and configs joined
    by sentence id (Flores+) give what the row-by-row ingest gave, in batches of 7 rows."""
    from stages.ingest.access import SourceAccess

    monkeypatch.setattr(batches, "BATCH_ROWS", 7)
    access = SourceAccess(download_dir=tmp_path / "sources", hub_endpoint=fake_hub.url,
                          hub_token="hf_test_good_token", opus_url=fake_hub.url)
    task = load_task(task_name).model_copy(update={"pool_size": 100, "test_size": 30, "ood_size": 20})
    out, _ = _both({"task": task, "seed": 3, "overrides": {}, "access": access}, tmp_path / "built")
    assert out["pool"].num_rows > 50


def test_a_lone_surrogate_from_a_json_escape_is_rejected_not_a_crash(tmp_path):
    """Only surrogateescape's \\udc80-\\udcff were caught before; "\\ud800" from a JSON escape went
    on and broke the Arrow table at the end of ingest."""
    train = tmp_path / "train.jsonl"
    train.write_text('{"source": "ok", "target": "fine"}\n{"source": "bad \\ud800", "target": "x"}\n')
    test = tmp_path / "test.tsv"
    test.write_text("source\ttarget\nother\ty\n")
    task = load_task("en-lt")
    out = Ingest(task, 0, {"train": str(train), "test": str(test), "test_ood": str(test)}).run({}, StageStats())
    assert out["rejects"].to_pylist() == [{"file": "train.jsonl", "line": 2, "reason": "undecodable bytes",
                                           "detail": "source is not valid UTF-8"}]
